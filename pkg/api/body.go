package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// MaxBodyBytes is the largest management request body accepted.
const MaxBodyBytes = 1 << 20

// readBody reads the request body, refusing more than MaxBodyBytes with 413.
// It returns nil for an empty or all-whitespace body.
func readBody(c echo.Context) ([]byte, error) {
	r := c.Request()
	tooLarge := problem.New(http.StatusRequestEntityTooLarge, outcome.TooLarge, "request body exceeds %d bytes", MaxBodyBytes)
	if r.ContentLength > MaxBodyBytes {
		return nil, tooLarge
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, &problem.Error{Status: http.StatusBadRequest, Code: problem.Invalid, Detail: "cannot read request body", Err: err}
	}
	if len(b) > MaxBodyBytes {
		return nil, tooLarge
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	return b, nil
}

// fieldSet names the members a JSON object may have. A member whose value
// is itself an object with known members maps to its own fieldSet; any
// other member maps to nil.
type fieldSet map[string]fieldSet

// unknown appends an error for every member of raw, and of its nested
// objects, that fs does not name. Members that are not objects where an
// object is expected are left to the typed decoding, which reports them.
func (fs fieldSet) unknown(raw json.RawMessage, prefix string, errs []trigger.FieldError) []trigger.FieldError {
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil {
		return errs
	}
	names := make([]string, 0, len(members))
	for name := range members {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sub, known := fs[name]
		switch {
		case !known:
			errs = append(errs, trigger.FieldError{Field: prefix + name, Message: "unknown field"})
		case sub != nil:
			errs = sub.unknown(members[name], prefix+name+".", errs)
		}
	}
	return errs
}

// decodeBody decodes a JSON object into v. Malformed JSON or a value other
// than an object is a 400; members that fields does not name, or of the
// wrong type, are a 422 listing every one of them.
func decodeBody(b []byte, fields fieldSet, v any) error {
	var probe any
	if err := json.Unmarshal(b, &probe); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return problem.New(http.StatusBadRequest, problem.Invalid, "malformed JSON at byte %d", se.Offset)
		}
		return problem.New(http.StatusBadRequest, problem.Invalid, "malformed JSON")
	}
	if _, ok := probe.(map[string]any); !ok {
		return problem.New(http.StatusBadRequest, problem.Invalid, "request body must be a JSON object")
	}
	if errs := fields.unknown(b, "", nil); len(errs) > 0 {
		return invalid(errs)
	}
	return unmarshalFields(b, v, "")
}

// unmarshalFields decodes raw into v; a member of the wrong type is a 422
// naming it, with prefix before its path.
func unmarshalFields(raw json.RawMessage, v any, prefix string) error {
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := prefix + te.Field
			if te.Field == "" {
				field = strings.TrimSuffix(prefix, ".") // raw itself has the wrong type
			}
			return invalid([]trigger.FieldError{{Field: field, Message: "must be " + jsonKind(te.Type)}})
		}
		return &problem.Error{Status: http.StatusBadRequest, Code: problem.Invalid, Detail: "malformed JSON", Err: err}
	}
	return nil
}

// jsonKind names the JSON type that a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "of another type"
}

// invalid is the 422 for a list of invalid fields.
func invalid(errs []trigger.FieldError) *problem.Error {
	detail := "1 invalid field"
	if len(errs) != 1 {
		detail = strconv.Itoa(len(errs)) + " invalid fields"
	}
	fields := make([]string, len(errs))
	for i, e := range errs {
		fields[i] = e.Field
	}
	return &problem.Error{
		Status: http.StatusUnprocessableEntity,
		Code:   problem.Unprocessable,
		Detail: fmt.Sprintf("%s: %s", detail, strings.Join(fields, ", ")),
		Extra:  map[string]any{"errors": errs},
	}
}

// fieldErrors returns the fields of a *trigger.ValidationError, or nil.
func fieldErrors(err error) []trigger.FieldError {
	var v *trigger.ValidationError
	if errors.As(err, &v) {
		return v.Fields
	}
	return nil
}
