package payload

import (
	"errors"
	"strings"
	"testing"
)

func TestCompileSplit(t *testing.T) {
	for _, tt := range []struct {
		expr    string
		members []string
		ok      bool
	}{
		{"$[*]", nil, true},
		{"$.events[*]", []string{"events"}, true},
		{"$.data.items[*]", []string{"data", "items"}, true},
		{"$['odd name'].x[*]", []string{"odd name", "x"}, true},
		{"events[*]", nil, false},
		{"$.events", nil, false},
		{"$.events[0]", nil, false},
		{"$.events[?(@.x)][*]", nil, false},
		{"$..events[*]", nil, false},
		{"$.*[*]", nil, false},
		{"$[0][*]", nil, false},
		{"$['open[*]", nil, false},
	} {
		t.Run(tt.expr, func(t *testing.T) {
			s, err := CompileSplit(tt.expr)
			if (err == nil) != tt.ok {
				t.Fatalf("CompileSplit(%q) = %v, want ok %v", tt.expr, err, tt.ok)
			}
			if err == nil && strings.Join(s.members, "|") != strings.Join(tt.members, "|") {
				t.Errorf("members = %q, want %q", s.members, tt.members)
			}
		})
	}
}

func TestSplitElements(t *testing.T) {
	for _, tt := range []struct {
		name, expr, body string
		raws, pointers   []string
		err              error
	}{
		{
			name: "top-level array", expr: "$[*]",
			body: `[{"b":1,"a":1.0},{"x":[1,2]}, 3]`,
			// The sender's text, key order and 1.0 included.
			raws: []string{`{"b":1,"a":1.0}`, `{"x":[1,2]}`, `3`}, pointers: []string{"/0", "/1", "/2"},
		},
		{
			name: "nested", expr: "$.batch['my/list'][*]",
			body: `{"batch":{"my/list":[{"id":"a"},{"id":"b"}]},"sentAt":"x"}`,
			raws: []string{`{"id":"a"}`, `{"id":"b"}`}, pointers: []string{"/batch/my~1list/0", "/batch/my~1list/1"},
		},
		{name: "missing", expr: "$.events[*]", body: `{"event":[1]}`, err: ErrNoElements},
		{name: "not an array", expr: "$.events[*]", body: `{"events":{"a":1}}`, err: ErrNoElements},
		{name: "empty", expr: "$[*]", body: `[]`, err: ErrNoElements},
		{name: "through a non-object", expr: "$.a.b[*]", body: `{"a":[1]}`, err: ErrNoElements},
		{name: "too many", expr: "$[*]", body: "[" + strings.Repeat("1,", MaxElements) + "1]", err: ErrTooManyElements},
	} {
		t.Run(tt.name, func(t *testing.T) {
			raw, value, err := Decode("application/json", []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			s, err := CompileSplit(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			els, err := s.Elements(raw, value)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Elements = %v, want %v", err, tt.err)
			}
			if len(els) != len(tt.raws) {
				t.Fatalf("%d elements, want %d", len(els), len(tt.raws))
			}
			for i, e := range els {
				if string(e.Raw) != tt.raws[i] || e.Pointer != tt.pointers[i] || e.Value == nil {
					t.Errorf("element %d = %s at %s, want %s at %s", i, e.Raw, e.Pointer, tt.raws[i], tt.pointers[i])
				}
			}
		})
	}
}

// FuzzSplit compiles arbitrary split expressions and applies those that
// compile to arbitrary bodies: no panic, and every element's text decodes
// to its value's JSON.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"$[*]", "$.events[*]", "$['a'].b[*]", "$.a..b[*]", "$[", "$['x"} {
		f.Add(s, `{"events":[{"a":1},2,"x"],"a":{"b":[[]]}}`)
	}
	f.Add("$[*]", `[1,{"k":[true,null]},"s"]`)
	f.Fuzz(func(t *testing.T, expr, body string) {
		s, err := CompileSplit(expr)
		if err != nil {
			return
		}
		raw, value, err := Decode("application/json", []byte(body))
		if err != nil {
			return
		}
		els, err := s.Elements(raw, value)
		if err != nil {
			return
		}
		for _, e := range els {
			_, v, err := Decode("application/json", []byte(`[`+string(e.Raw)+`]`))
			if err != nil {
				t.Fatalf("element %s of %q: %v", e.Pointer, e.Raw, err)
			}
			if !equal(v.([]any)[0], e.Value) {
				t.Fatalf("element %s: text %s does not decode to its value", e.Pointer, e.Raw)
			}
		}
	})
}
