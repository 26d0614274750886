package payload

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects that Decode
// accepts: {"a":[1]} nests two levels deep, and 64 nested arrays are
// accepted while 65 are not. Decode stops at the first bracket past the
// limit, so a body of a million opening brackets costs no more than one of
// 65.
const MaxDepth = 64

// Error is a body that cannot be accepted. Status is 400 when the body
// cannot be parsed (invalid JSON, invalid UTF-8, nested deeper than
// MaxDepth, a duplicate object key, a number out of range, a bare scalar,
// an empty body) and 415 when its content type or charset is not
// supported. Detail says specifically what is wrong and is safe to show to
// the sender: it never quotes more of the body than a single character or
// object key.
type Error struct {
	Status int
	Detail string
}

// Error returns the detail.
func (e *Error) Error() string {
	return e.Detail
}

func badRequest(format string, args ...any) *Error {
	return &Error{Status: 400, Detail: fmt.Sprintf(format, args...)}
}

func unsupported(format string, args ...any) *Error {
	return &Error{Status: 415, Detail: fmt.Sprintf(format, args...)}
}

type mediaKind int

const (
	kindJSON mediaKind = iota
	kindForm
)

const formType = "application/x-www-form-urlencoded"

// Decode turns a raw request body into the event payload. It returns the
// payload as compact JSON and the same value decoded for schema checks and
// JSONPath: map[string]any, []any, string, bool, nil or json.Number. The
// compact JSON is the sender's own text without insignificant whitespace,
// so numbers and key order survive exactly. Every error is an *Error.
//
// Decode is safe for concurrent use; it neither keeps nor modifies body.
func Decode(contentType string, body []byte) (json.RawMessage, any, error) {
	kind, perr := parseContentType(contentType)
	if perr != nil {
		return nil, nil, perr
	}
	if !utf8.Valid(body) {
		return nil, nil, badRequest("body is not valid UTF-8 at byte %d", invalidUTF8At(body))
	}
	if len(trimSpace(body)) == 0 {
		return nil, nil, badRequest("body is empty")
	}
	if kind == kindForm {
		return decodeForm(body)
	}
	return decodeJSON(string(body), "")
}

// parseContentType classifies a Content-Type header value.
func parseContentType(ct string) (mediaKind, *Error) {
	ct = strings.TrimSpace(ct)
	// The common values skip mime.ParseMediaType, which allocates a map.
	switch {
	case ct == "", strings.EqualFold(ct, "application/json"), strings.EqualFold(ct, "application/json; charset=utf-8"):
		return kindJSON, nil
	case strings.EqualFold(ct, formType):
		return kindForm, nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, unsupported("content type cannot be parsed: %v", err)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return 0, unsupported("charset %q is not supported; send UTF-8", clip(cs, maxQuoted))
	}
	switch {
	case mt == "application/json", mt == "text/json",
		strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"):
		return kindJSON, nil
	case mt == formType:
		return kindForm, nil
	}
	return 0, unsupported("content type %s is not supported; send application/json or %s", mt, formType)
}

// decodeJSON decodes the JSON text s. field, when not empty, names the
// form field s came from, for error details.
func decodeJSON(s, field string) (json.RawMessage, any, error) {
	off := 0
	// RFC 8259 lets a parser ignore a byte order mark; some Windows senders
	// add one. It is not part of the payload.
	if strings.HasPrefix(s, "\uFEFF") {
		s = s[3:]
		off = 3
	}
	out, v, err := parseJSON(s, off)
	if err == nil {
		switch v.(type) {
		case map[string]any, []any:
			return out, v, nil
		}
		err = fmt.Errorf("the top-level JSON value must be an object or an array, not %s", kindOf(v))
	}
	if field != "" {
		return nil, nil, badRequest("form field %s: %v", field, err)
	}
	return nil, nil, badRequest("%v", err)
}

func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// decodeForm decodes an application/x-www-form-urlencoded body. See the
// package documentation for the three shapes it accepts.
func decodeForm(body []byte) (json.RawMessage, any, error) {
	if t := trimSpace(body); t[0] == '{' || t[0] == '[' {
		// curl -d '{"a":1}' labels JSON as a form. Such a body is treated
		// as JSON when it parses; only a grammar error sends it on to the
		// form parser, while a JSON-level rejection (depth, duplicate key,
		// number range) stands.
		out, v, err := parseJSON(string(body), 0)
		if err == nil {
			return out, v, nil
		}
		var se *syntaxError
		if !errors.As(err, &se) {
			return nil, nil, badRequest("%v", err)
		}
	}
	values, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, nil, badRequest("invalid form body: %v", err)
	}
	if p, ok := values["payload"]; ok {
		if len(p) != 1 {
			return nil, nil, badRequest("form field payload appears %d times", len(p))
		}
		if !utf8.ValidString(p[0]) {
			return nil, nil, badRequest("form field payload is not valid UTF-8 at byte %d", invalidUTF8At([]byte(p[0])))
		}
		if strings.TrimLeft(p[0], " \t\r\n") == "" {
			return nil, nil, badRequest("form field payload is empty")
		}
		return decodeJSON(p[0], "payload")
	}
	obj := make(map[string]any, len(values))
	for k, vs := range values {
		if !utf8.ValidString(k) {
			return nil, nil, badRequest("a form field name is not valid UTF-8")
		}
		for _, s := range vs {
			if !utf8.ValidString(s) {
				return nil, nil, badRequest("form field %q is not valid UTF-8", clip(k, maxQuoted))
			}
		}
		if len(vs) == 1 {
			obj[k] = vs[0]
			continue
		}
		a := make([]any, len(vs))
		for i, s := range vs {
			a[i] = s
		}
		obj[k] = a
	}
	out, err := appendValue(nil, obj)
	if err != nil {
		// Unreachable: the object holds only strings.
		return nil, nil, badRequest("encode form fields: %v", err)
	}
	return out, obj, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// invalidUTF8At returns the offset of the first byte of b that does not
// begin a valid UTF-8 sequence.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// maxQuoted is how many bytes of a sender's text an error detail quotes.
// Details are stored with every audit record and sent back, so a
// megabyte-long key must not make them a megabyte long.
const maxQuoted = 64

// clip shortens s to at most n bytes, cutting at a character boundary and
// marking the cut with an ellipsis.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
