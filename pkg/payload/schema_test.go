package payload

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// mustDecode decodes a JSON body for tests.
func mustDecode(t testing.TB, body string) any {
	t.Helper()
	_, v, err := Decode("application/json", []byte(body))
	if err != nil {
		t.Fatalf("Decode(%q) error = %v", body, err)
	}
	return v
}

func mustCompileSchema(t testing.TB, schema string) *Schema {
	t.Helper()
	s, err := CompileSchema([]byte(schema))
	if err != nil {
		t.Fatalf("CompileSchema(%s) error = %v", schema, err)
	}
	return s
}

const pushSchema = `{
	"type": "object",
	"required": ["ref", "repository"],
	"properties": {
		"ref": {"type": "string", "pattern": "^refs/"},
		"repository": {
			"type": "object",
			"required": ["name", "id"],
			"properties": {
				"name": {"type": "string", "minLength": 1},
				"id": {"type": "integer", "minimum": 1}
			}
		},
		"commits": {"type": "array", "items": {"$ref": "#/$defs/commit"}}
	},
	"$defs": {
		"commit": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
	}
}`

func TestSchemaValidate(t *testing.T) {
	tests := []struct {
		name    string
		schema  string
		payload string
		want    []Violation // nil when the payload matches
	}{
		{
			name:    "2020-12 match",
			schema:  pushSchema,
			payload: `{"ref":"refs/heads/main","repository":{"name":"inlet","id":7},"commits":[{"id":"abc"}]}`,
		},
		{
			name:    "2020-12 several violations with pointers",
			schema:  pushSchema,
			payload: `{"ref":"main","repository":{"name":"","id":0.5},"commits":[{"id":"a"},{"id":5},{}]}`,
			want: []Violation{
				{Pointer: "/commits/1/id", Message: "got number, want string"},
				{Pointer: "/commits/2", Message: "missing property 'id'"},
				{Pointer: "/ref", Message: "'main' does not match pattern '^refs/'"},
				{Pointer: "/repository/id", Message: "got number, want integer"},
				{Pointer: "/repository/name", Message: "minLength: got 0, want 1"},
			},
		},
		{
			name:    "missing required at the top level",
			schema:  pushSchema,
			payload: `{}`,
			want:    []Violation{{Pointer: "", Message: "missing properties 'ref', 'repository'"}},
		},
		{
			name:    "2020-12 prefixItems",
			schema:  `{"type":"array","prefixItems":[{"type":"string"},{"type":"number"}],"items":false}`,
			payload: `["a","b",3]`,
			want: []Violation{
				{Pointer: "/1", Message: "got string, want number"},
				{Pointer: "/2", Message: "false schema"},
			},
		},
		{
			name:    "2020-12 does not check format",
			schema:  `{"properties":{"email":{"type":"string","format":"email"}}}`,
			payload: `{"email":"not an email"}`,
		},
		{
			name:    "draft-07 checks format",
			schema:  `{"$schema":"http://json-schema.org/draft-07/schema#","properties":{"email":{"type":"string","format":"email"}}}`,
			payload: `{"email":"not an email"}`,
			want:    []Violation{{Pointer: "/email", Message: "'not an email' is not valid email: missing @"}},
		},
		{
			name:    "draft-07 items as array",
			schema:  `{"$schema":"http://json-schema.org/draft-07/schema#","type":"array","items":[{"type":"string"}],"additionalItems":false}`,
			payload: `[1,2]`,
			want: []Violation{
				{Pointer: "", Message: "last 1 additionalItem(s) not allowed"},
				{Pointer: "/0", Message: "got number, want string"},
			},
		},
		{
			name:    "draft-07 definitions ref",
			schema:  `{"$schema":"http://json-schema.org/draft-07/schema#","definitions":{"id":{"type":"integer"}},"properties":{"id":{"$ref":"#/definitions/id"}}}`,
			payload: `{"id":"x"}`,
			want:    []Violation{{Pointer: "/id", Message: "got string, want integer"}},
		},
		{
			name:    "anyOf reports every branch",
			schema:  `{"properties":{"v":{"anyOf":[{"type":"string"},{"type":"integer"}]}}}`,
			payload: `{"v":true}`,
			want: []Violation{
				{Pointer: "/v", Message: "got boolean, want integer"},
				{Pointer: "/v", Message: "got boolean, want string"},
			},
		},
		{
			name:    "huge integer compared exactly",
			schema:  `{"properties":{"n":{"type":"integer","maximum":12345678901234567890}}}`,
			payload: `{"n":12345678901234567891}`,
			want:    []Violation{{Pointer: "/n", Message: "maximum: got 1.2345678901234567×10¹⁹, want 1.2345678901234567×10¹⁹"}},
		},
		{
			name:    "huge integer at the maximum",
			schema:  `{"properties":{"n":{"type":"integer","maximum":12345678901234567890}}}`,
			payload: `{"n":12345678901234567890}`,
		},
		{
			name:    "json.Number const and enum",
			schema:  `{"properties":{"a":{"const":1},"b":{"enum":[2.5,"x"]}}}`,
			payload: `{"a":1.0,"b":2.50}`,
		},
		{
			name:    "long value clipped in message",
			schema:  `{"properties":{"ref":{"pattern":"^refs/"}}}`,
			payload: `{"ref":"` + strings.Repeat("x", 1000) + `"}`,
			want:    []Violation{{Pointer: "/ref", Message: "'" + strings.Repeat("x", 299) + "…"}},
		},
		{
			name:    "pointer tokens escaped",
			schema:  `{"additionalProperties":{"type":"string"}}`,
			payload: `{"a/b~c":1}`,
			want:    []Violation{{Pointer: "/a~1b~0c", Message: "got number, want string"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustCompileSchema(t, tt.schema)
			err := s.Validate(mustDecode(t, tt.payload))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate(%s) = %v, want nil", tt.payload, err)
				}
				return
			}
			var serr *SchemaError
			if !errors.As(err, &serr) {
				t.Fatalf("Validate(%s) = %v, want *SchemaError", tt.payload, err)
			}
			if !reflect.DeepEqual(serr.Violations, tt.want) {
				t.Errorf("Validate(%s) violations:\n got %q\nwant %q", tt.payload, serr.Violations, tt.want)
			}
		})
	}
}

func TestCompileSchemaErrors(t *testing.T) {
	tests := []struct {
		name   string
		schema string
		want   string // substring of the error
	}{
		{name: "remote ref", schema: `{"$ref":"http://example.com/schema.json"}`, want: `compile schema: reference to "http://example.com/schema.json": a schema may only refer to itself`},
		{name: "relative ref to another document", schema: `{"properties":{"a":{"$ref":"other.json"}}}`, want: "may only refer to itself"},
		{name: "file ref", schema: `{"$ref":"file:///etc/passwd"}`, want: `reference to "file:///etc/passwd"`},
		{name: "unknown meta-schema", schema: `{"$schema":"https://example.com/my-meta"}`, want: `reference to "https://example.com/my-meta"`},
		{name: "invalid keyword value", schema: `{"type":5}`, want: "compile schema: not a valid JSON Schema (2 violations): at /type: got number, want array; at /type: value must be one of"},
		{name: "invalid draft-07 keyword value", schema: `{"$schema":"http://json-schema.org/draft-07/schema#","properties":{"a":{"minimum":"x"}}}`, want: "compile schema: not a valid JSON Schema: at /properties/a/minimum: got string, want number"},
		{name: "invalid json", schema: `{"type":`, want: "compile schema: invalid JSON"},
		{name: "empty", schema: ``, want: "schema is empty"},
		{name: "bad pattern", schema: `{"pattern":"("}`, want: "compile schema: not a valid JSON Schema: at /pattern: '(' is not valid regex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := CompileSchema([]byte(tt.schema))
			if err == nil {
				t.Fatalf("CompileSchema(%s) = %v, want error containing %q", tt.schema, s, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CompileSchema(%s) error = %q, want it to contain %q", tt.schema, err, tt.want)
			}
		})
	}
}

func TestSchemaErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *SchemaError
		want string
	}{
		{
			name: "one",
			err:  &SchemaError{Violations: []Violation{{Pointer: "/a", Message: "got number, want string"}}},
			want: "payload does not match the schema: at /a: got number, want string",
		},
		{
			name: "top level",
			err:  &SchemaError{Violations: []Violation{{Pointer: "", Message: "missing property 'a'"}}},
			want: "payload does not match the schema: at the top level: missing property 'a'",
		},
		{
			name: "more than three",
			err: &SchemaError{Violations: []Violation{
				{Pointer: "/a", Message: "m1"}, {Pointer: "/b", Message: "m2"}, {Pointer: "/c", Message: "m3"}, {Pointer: "/d", Message: "m4"},
			}},
			want: "payload does not match the schema (4 violations): at /a: m1; at /b: m2; at /c: m3; …",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSchemaConcurrentValidate(t *testing.T) {
	s := mustCompileSchema(t, pushSchema)
	good := mustDecode(t, `{"ref":"refs/heads/main","repository":{"name":"inlet","id":7}}`)
	bad := mustDecode(t, `{"ref":"main","repository":{"name":"inlet","id":7}}`)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if err := s.Validate(good); err != nil {
					t.Errorf("Validate(good) = %v", err)
					return
				}
				if err := s.Validate(bad); err == nil {
					t.Error("Validate(bad) = nil, want an error")
					return
				}
			}
		})
	}
	wg.Wait()
}
