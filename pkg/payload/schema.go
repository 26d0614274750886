package payload

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaURL is the base URL of every compiled schema. Its scheme is ours,
// so a relative $ref resolves to a URL no loader is asked about.
const schemaURL = "inlet:///payload-schema.json"

// Schema is a compiled JSON Schema. It is safe for concurrent use.
type Schema struct {
	s *jsonschema.Schema
}

// Violation is one way a payload fails its schema. Pointer is the JSON
// pointer (RFC 6901) of the offending value in the payload: "" for the
// payload itself, "/repository/name" for a nested value.
type Violation struct {
	Pointer string `json:"pointer"`
	Message string `json:"message"`
}

// SchemaError is a payload that does not match its schema. Violations
// holds every failed check, sorted by pointer and then message; where the
// schema combines subschemas (allOf, anyOf, oneOf, $ref), each innermost
// failed check is listed rather than the combination.
type SchemaError struct {
	Violations []Violation
}

// Error summarises the violations, naming the first three.
func (e *SchemaError) Error() string {
	return "payload does not match the schema" + summary(e.Violations)
}

// summary counts vs and names the first three.
func summary(vs []Violation) string {
	var b strings.Builder
	if len(vs) > 1 {
		fmt.Fprintf(&b, " (%d violations)", len(vs))
	}
	for i, v := range vs {
		if i == 3 {
			b.WriteString("; …")
			break
		}
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		if v.Pointer == "" {
			b.WriteString("at the top level: ")
		} else {
			fmt.Fprintf(&b, "at %s: ", v.Pointer)
		}
		b.WriteString(v.Message)
	}
	return b.String()
}

// refusingLoader is the compiler's only way to fetch a document, so a
// schema can never make the gateway read a file or reach the network. The
// meta-schemas of the standard drafts are built into the library and do
// not need it.
type refusingLoader struct{}

var errNoLoad = errors.New("a schema may only refer to itself (put shared definitions under $defs), never to another document")

func (refusingLoader) Load(string) (any, error) {
	return nil, errNoLoad
}

// CompileSchema compiles a JSON Schema. The schema follows draft 2020-12
// unless its "$schema" names another draft (draft-07, for example). Every
// $ref must point into the schema itself (for example "#/$defs/user"): a
// reference to another document, on the network or on disk, is an error
// and is never fetched. As the drafts specify, "format" is checked only
// under draft-07 and older.
func CompileSchema(raw json.RawMessage) (*Schema, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("compile schema: schema is empty")
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("compile schema: invalid JSON: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(refusingLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("compile schema: %w", err)
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		var le *jsonschema.LoadURLError
		if errors.As(err, &le) && errors.Is(le.Err, errNoLoad) {
			return nil, fmt.Errorf("compile schema: reference to %q: %w", le.URL, errNoLoad)
		}
		var sve *jsonschema.SchemaValidationError
		var ve *jsonschema.ValidationError
		if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
			// The schema breaks its meta-schema: name each broken keyword
			// instead of the library's indented tree.
			return nil, errors.New("compile schema: not a valid JSON Schema" + summary(violations(ve)))
		}
		return nil, fmt.Errorf("compile schema: %w", err)
	}
	return &Schema{s: s}, nil
}

// Validate checks v, a value as Decode returns it, against the schema. It
// returns nil or a *SchemaError.
func (s *Schema) Validate(v any) (err error) {
	defer func() {
		// The library is not expected to panic on values from Decode; a
		// payload that makes it do so anyway is rejected, not fatal.
		if r := recover(); r != nil {
			err = &SchemaError{Violations: []Violation{{Message: fmt.Sprintf("payload cannot be checked: %v", r)}}}
		}
	}()
	verr := s.s.Validate(v)
	if verr == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(verr, &ve) {
		return &SchemaError{Violations: []Violation{{Message: verr.Error()}}}
	}
	return &SchemaError{Violations: violations(ve)}
}

// violations lists the innermost failures of ve, sorted and without
// repeats.
func violations(ve *jsonschema.ValidationError) []Violation {
	vs := leaves(nil, ve.DetailedOutput())
	slices.SortFunc(vs, func(a, b Violation) int {
		return cmp.Or(cmp.Compare(a.Pointer, b.Pointer), cmp.Compare(a.Message, b.Message))
	})
	return slices.Compact(vs)
}

// maxMessage bounds a violation message, which may quote a value from the
// payload ("'…' does not match pattern '^refs/'").
const maxMessage = 300

// leaves appends the innermost failures below u.
func leaves(vs []Violation, u *jsonschema.OutputUnit) []Violation {
	if len(u.Errors) == 0 {
		msg := "invalid"
		if u.Error != nil {
			msg = u.Error.String()
		}
		return append(vs, Violation{Pointer: u.InstanceLocation, Message: clip(msg, maxMessage)})
	}
	for i := range u.Errors {
		vs = leaves(vs, &u.Errors[i])
	}
	return vs
}
