package payload

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

const pushPayload = `{
	"ref": "refs/heads/main",
	"after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
	"repository": {"id": 1296269, "full_name": "octo/hello", "private": false, "owner": {"login": "octo"}, "topics": []},
	"commits": [
		{"id": "a1", "message": "fix", "added": ["x.go"], "stats": {"lines": 3}},
		{"id": "b2", "message": "feat", "added": [], "stats": {"lines": 12}},
		{"id": "c3", "message": "docs <b>", "added": ["README.md"], "stats": {"lines": 10}}
	],
	"big": 123456789012345678901234567890,
	"nothing": null,
	"a/b": "slash"
}`

func TestMappingApply(t *testing.T) {
	tests := []struct {
		name    string
		mapping map[string]string
		want    string
	}{
		{name: "nested paths", mapping: map[string]string{"repo": "$.repository.full_name", "owner": "$.repository.owner.login"}, want: `{"owner":"octo","repo":"octo/hello"}`},
		{name: "bracket notation", mapping: map[string]string{"login": `$["repository"]["owner"]['login']`, "slash": `$["a/b"]`}, want: `{"login":"octo","slash":"slash"}`},
		{name: "missing path is null", mapping: map[string]string{"x": "$.repository.nope", "y": "$.nope.deeper", "z": "$.ref.length"}, want: `{"x":null,"y":null,"z":null}`},
		{name: "null value", mapping: map[string]string{"n": "$.nothing"}, want: `{"n":null}`},
		{name: "array index", mapping: map[string]string{"first": "$.commits[0].id", "last": "$.commits[2].message"}, want: `{"first":"a1","last":"docs <b>"}`},
		{name: "index out of range is null", mapping: map[string]string{"x": "$.commits[9].id", "y": "$.commits[-1]"}, want: `{"x":null,"y":null}`},
		{name: "wildcard", mapping: map[string]string{"ids": "$.commits[*].id"}, want: `{"ids":["a1","b2","c3"]}`},
		{name: "wildcard dot form", mapping: map[string]string{"ids": "$.commits.*.id"}, want: `{"ids":["a1","b2","c3"]}`},
		{name: "wildcard matching nothing is empty array", mapping: map[string]string{"x": "$.repository.topics[*]"}, want: `{"x":[]}`},
		{name: "slice", mapping: map[string]string{"ids": "$.commits[0:2].id"}, want: `{"ids":["a1","b2"]}`},
		{name: "union", mapping: map[string]string{"ids": "$.commits[0,2].id"}, want: `{"ids":["a1","c3"]}`},
		{name: "recursive descent", mapping: map[string]string{"lines": "$.commits..lines"}, want: `{"lines":[3,12,10]}`},
		{name: "filter on json.Number", mapping: map[string]string{"big": "$.commits[?(@.stats.lines > 5)].id"}, want: `{"big":["b2","c3"]}`},
		{name: "filter equality on json.Number", mapping: map[string]string{"ten": "$.commits[?(@.stats.lines == 10)].id"}, want: `{"ten":["c3"]}`},
		{name: "filter number compares numerically not as text", mapping: map[string]string{"x": "$.commits[?(@.stats.lines >= 3 && @.stats.lines < 11)].id"}, want: `{"x":["a1","c3"]}`},
		{name: "filter string", mapping: map[string]string{"x": `$.commits[?(@.message == "feat")].id`}, want: `{"x":["b2"]}`},
		{name: "filter number never equals string", mapping: map[string]string{"x": `$.commits[?(@.stats.lines == "10")].id`}, want: `{"x":[]}`},
		{name: "filter regex", mapping: map[string]string{"x": `$.commits[?(@.message =~ "^f")].id`}, want: `{"x":["a1","b2"]}`},
		{name: "filter missing member", mapping: map[string]string{"x": `$.commits[?(@.nope == 1)].id`}, want: `{"x":[]}`},
		{name: "filter negation", mapping: map[string]string{"x": `$.commits[?(!(@.message == "fix"))].id`}, want: `{"x":["b2","c3"]}`},
		{name: "huge number kept exactly", mapping: map[string]string{"big": "$.big"}, want: `{"big":123456789012345678901234567890}`},
		{name: "object and bool values", mapping: map[string]string{"owner": "$.repository.owner", "private": "$.repository.private"}, want: `{"owner":{"login":"octo"},"private":false}`},
		{name: "whole payload", mapping: map[string]string{"all": "$.commits[1].stats"}, want: `{"all":{"lines":12}}`},
		{name: "expression with spaces around", mapping: map[string]string{"ref": "  $.ref "}, want: `{"ref":"refs/heads/main"}`},
		{name: "field names escaped", mapping: map[string]string{`a"b`: "$.ref"}, want: `{"a\"b":"refs/heads/main"}`},
	}
	v := mustDecode(t, pushPayload)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := CompileMapping(tt.mapping)
			if err != nil {
				t.Fatalf("CompileMapping(%v) error = %v", tt.mapping, err)
			}
			got, err := m.Apply(v)
			if err != nil {
				t.Fatalf("Apply(%v) error = %v", tt.mapping, err)
			}
			if string(got) != tt.want {
				t.Errorf("Apply(%v) = %s, want %s", tt.mapping, got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("Apply(%v) = %s, not valid JSON", tt.mapping, got)
			}
		})
	}
}

func TestMappingWildcardOverObject(t *testing.T) {
	// Matches among an object's members come in no particular order, so
	// compare them as a set.
	m, err := CompileMapping(map[string]string{"v": "$.o.*"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Apply(mustDecode(t, `{"o":{"a":1,"b":2,"c":3}}`))
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ V []int }
	if err := json.Unmarshal(got, &out); err != nil {
		t.Fatalf("Apply = %s: %v", got, err)
	}
	sum := 0
	for _, n := range out.V {
		sum += n
	}
	if len(out.V) != 3 || sum != 6 {
		t.Errorf("Apply($.o.*) = %s, want the values 1, 2 and 3", got)
	}
}

func TestCompileMappingErrors(t *testing.T) {
	tests := []struct {
		name    string
		mapping map[string]string
		want    []string // substrings of the error
	}{
		{name: "empty expression", mapping: map[string]string{"repo": ""}, want: []string{`mapping field "repo": JSONPath is empty`}},
		{name: "blank expression", mapping: map[string]string{"repo": "   "}, want: []string{`mapping field "repo": JSONPath is empty`}},
		{name: "not starting with $", mapping: map[string]string{"repo": "repository.name"}, want: []string{`mapping field "repo": JSONPath "repository.name" must start with "$"`}},
		{name: "unclosed bracket", mapping: map[string]string{"repo": "$.commits["}, want: []string{`mapping field "repo": invalid JSONPath "$.commits[": unexpected EOF`}},
		{name: "trailing junk", mapping: map[string]string{"repo": "$.a b"}, want: []string{`mapping field "repo": invalid JSONPath "$.a b"`, "at column 5"}},
		{name: "dangling dot", mapping: map[string]string{"x": "$."}, want: []string{`mapping field "x": invalid JSONPath "$."`}},
		{name: "unknown operator", mapping: map[string]string{"x": "$.a + 1"}, want: []string{`mapping field "x": invalid JSONPath`}},
		{name: "bad regex", mapping: map[string]string{"x": `$.a[?(@.b =~ "(")]`}, want: []string{`mapping field "x": invalid JSONPath`, "missing closing )"}},
		{name: "regex not constant", mapping: map[string]string{"x": `$.a[?(@.b =~ @.c)]`}, want: []string{"must be a string constant"}},
		{name: "empty field name", mapping: map[string]string{"": "$.a"}, want: []string{"mapping field name is empty"}},
		{name: "every bad field named", mapping: map[string]string{"good": "$.a", "bad1": "x", "bad2": "$["}, want: []string{`"bad1"`, `"bad2"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := CompileMapping(tt.mapping)
			if err == nil {
				t.Fatalf("CompileMapping(%v) = %v, want an error", tt.mapping, m)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("CompileMapping(%v) error = %q, want it to contain %q", tt.mapping, err, w)
				}
			}
		})
	}
}

func TestMappingEmpty(t *testing.T) {
	tests := []struct {
		name    string
		mapping *Mapping
		want    bool
	}{
		{name: "nil", mapping: nil, want: true},
		{name: "no fields", mapping: mustCompileMapping(t, nil), want: true},
		{name: "one field", mapping: mustCompileMapping(t, map[string]string{"a": "$.a"}), want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.mapping.Empty(); got != tt.want {
				t.Errorf("Empty() = %v, want %v", got, tt.want)
			}
		})
	}
}

func mustCompileMapping(t testing.TB, m map[string]string) *Mapping {
	t.Helper()
	mp, err := CompileMapping(m)
	if err != nil {
		t.Fatalf("CompileMapping(%v) error = %v", m, err)
	}
	return mp
}

func TestPathString(t *testing.T) {
	v := mustDecode(t, pushPayload)
	tests := []struct {
		expr   string
		want   string
		wantOK bool
	}{
		{expr: "$.after", want: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", wantOK: true},
		{expr: "$.repository.id", want: "1296269", wantOK: true},
		{expr: "$.big", want: "123456789012345678901234567890", wantOK: true},
		{expr: "$.repository.private", want: "false", wantOK: true},
		{expr: "$.commits[1].id", want: "b2", wantOK: true},
		{expr: "$.nothing", wantOK: false},
		{expr: "$.missing", wantOK: false},
		{expr: "$.repository", wantOK: false},
		{expr: "$.commits[*].id", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			p, err := CompilePath(tt.expr)
			if err != nil {
				t.Fatalf("CompilePath(%q) error = %v", tt.expr, err)
			}
			got, ok := p.String(v)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("String(%q) = %q, %v, want %q, %v", tt.expr, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestCompilePathErrors(t *testing.T) {
	tests := []struct {
		expr string
		want string
	}{
		{expr: "", want: "JSONPath is empty"},
		{expr: "@.a", want: `must start with "$"`},
		{expr: "$.a[", want: `invalid JSONPath "$.a["`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := CompilePath(tt.expr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CompilePath(%q) error = %v, want it to contain %q", tt.expr, err, tt.want)
			}
		})
	}
}

func TestMappingConcurrentApply(t *testing.T) {
	m := mustCompileMapping(t, map[string]string{"ids": "$.commits[?(@.stats.lines > 5)].id", "repo": "$.repository.full_name"})
	v := mustDecode(t, pushPayload)
	want := `{"ids":["b2","c3"],"repo":"octo/hello"}`
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				got, err := m.Apply(v)
				if err != nil || string(got) != want {
					t.Errorf("Apply = %s, %v, want %s", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
