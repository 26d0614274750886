package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

var fuzzContentTypes = []string{
	"",
	"application/json",
	"application/json; charset=utf-8",
	"text/json",
	"application/vnd.api+json",
	formType,
	"text/plain",
	"application/json; charset=latin1",
}

var fuzzBodies = []string{
	`{"a":1,"b":[true,false,null,"x\u0000y"],"c":{"d":-1.5e-3}}`,
	"  [ 1 , 2 ]  ",
	`{"a":1,"a":2}`,
	`{"k":1,"c":[{"id":"a"},[{"x":[]}],{}],"z":{"y":[1,{"w":2}]}}`,
	`{"a":"\ud83d\ude00\ud83d"}`,
	`"scalar"`,
	`{"a":1} {}`,
	"\uFEFF{}",
	"{\"a\":\"\xff\"}",
	strings.Repeat("[", 65) + strings.Repeat("]", 65),
	`[` + strings.Repeat("9", 400) + `]`,
	`[1e1000,1e-1000,1E+1001]`,
	"payload=" + url.QueryEscape(`{"zen":"Keep it logically awesome."}`),
	"token=x&text=hello+world&text=again",
	"a=%zz",
	"[a]=1&{b}=2",
	"",
}

// checkDecoded checks what every successful Decode must satisfy.
func checkDecoded(t *testing.T, ct string, body []byte, raw json.RawMessage, v any) {
	t.Helper()
	if !json.Valid(raw) {
		t.Fatalf("Decode(%q, %q) = %q, not valid JSON", ct, body, raw)
	}
	if d := jsonDepth(raw); d > MaxDepth {
		t.Fatalf("Decode(%q, %q) = %q, nests %d levels", ct, body, raw, d)
	}
	var want any
	if err := unmarshalNumber(raw, &want); err != nil {
		t.Fatalf("Decode(%q, %q) = %q, does not unmarshal: %v", ct, body, raw, err)
	}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("Decode(%q, %q) value = %#v, but the output %q decodes to %#v", ct, body, v, raw, want)
	}
	switch v.(type) {
	case map[string]any, []any:
	default:
		t.Fatalf("Decode(%q, %q) value = %#v, want an object or array", ct, body, v)
	}
}

// jsonDepth returns how deeply the valid JSON text b nests.
func jsonDepth(b []byte) int {
	depth, deepest := 0, 0
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

func FuzzDecode(f *testing.F) {
	for _, ct := range fuzzContentTypes {
		for _, b := range fuzzBodies {
			f.Add(ct, []byte(b))
		}
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		raw, v, err := Decode(ct, body)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || (perr.Status != 400 && perr.Status != 415) || perr.Detail == "" {
				t.Fatalf("Decode(%q, %q) error = %#v, want *Error with status 400 or 415", ct, body, err)
			}
			if raw != nil || v != nil {
				t.Fatalf("Decode(%q, %q) returned a payload with its error", ct, body)
			}
		} else {
			checkDecoded(t, ct, body, raw, v)
		}

		// For JSON bodies, compare with encoding/json.
		kind, cerr := parseContentType(ct)
		if cerr != nil || kind != kindJSON || !utf8.Valid(body) {
			return
		}
		text := bytes.TrimPrefix(body, []byte("\uFEFF"))
		valid := json.Valid(text)
		if err == nil {
			if !valid {
				t.Fatalf("Decode(%q, %q) accepted what encoding/json refuses", ct, body)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, text); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(raw, compact.Bytes()) {
				t.Fatalf("Decode(%q, %q) = %q, json.Compact gives %q", ct, body, raw, compact.Bytes())
			}
			var want any
			if err := unmarshalNumber(text, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(v, want) {
				t.Fatalf("Decode(%q, %q) value = %#v, encoding/json gives %#v", ct, body, v, want)
			}
			return
		}
		if valid && strings.HasPrefix(err.Error(), "invalid JSON") {
			t.Fatalf("Decode(%q, %q) = %v, but encoding/json accepts it", ct, body, err)
		}
	})
}

func FuzzForm(f *testing.F) {
	for _, b := range fuzzBodies {
		f.Add([]byte(b))
	}
	f.Add([]byte("payload=%7B%22a%22%3A1%7D&other=x"))
	f.Add([]byte("a=1&a=2&a=3&b=%E2%82%AC"))
	f.Fuzz(func(t *testing.T, body []byte) {
		raw, v, err := Decode(formType, body)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || perr.Status != 400 || perr.Detail == "" {
				t.Fatalf("Decode(form, %q) error = %#v, want *Error with status 400", body, err)
			}
			return
		}
		checkDecoded(t, formType, body, raw, v)
		// A plain form (not JSON, no payload field) keeps every field.
		values, perr := url.ParseQuery(string(body))
		obj, isObj := v.(map[string]any)
		if perr != nil || !isObj || values.Has("payload") {
			return
		}
		if t := bytes.TrimLeft(body, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
			return
		}
		if len(obj) != len(values) {
			t.Fatalf("Decode(form, %q) = %s, want %d fields", body, raw, len(values))
		}
		for k, vs := range values {
			switch got := obj[k].(type) {
			case string:
				if len(vs) != 1 || got != vs[0] {
					t.Fatalf("Decode(form, %q) field %q = %q, want %q", body, k, got, vs)
				}
			case []any:
				if len(got) != len(vs) || len(vs) < 2 {
					t.Fatalf("Decode(form, %q) field %q = %q, want %q", body, k, got, vs)
				}
			default:
				t.Fatalf("Decode(form, %q) field %q = %#v", body, k, got)
			}
		}
	})
}

func FuzzCompilePath(f *testing.F) {
	for _, e := range []string{
		"$", "$.a", "$.a.b[0]", "$..c", "$.a[*]", "$.a[1:3]", "$.a[-1:]", "$.a[::2]", "$.a[0,1]",
		`$["a"]`, `$['a b']`, `$.a[?(@.n > 1 && @.s =~ "x")]`, `$.a[?(!(@.b == null))]`,
		"$.a[", "$..", "$.a b", "$[?(@.a", `$.a[?(@.b =~ @.c)]`, "$(", "$.a ?? 1", "$[1e400]",
	} {
		f.Add(e)
	}
	doc := fuzzDoc(f)
	f.Fuzz(func(t *testing.T, expr string) {
		p, err := CompilePath(expr)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("CompilePath(%q) returned an empty error", expr)
			}
			return
		}
		p.String(doc)
		m, err := CompileMapping(map[string]string{"f": expr})
		if err != nil {
			t.Fatalf("CompilePath(%q) compiled but CompileMapping failed: %v", expr, err)
		}
		out, err := m.Apply(doc)
		if err == nil && !json.Valid(out) {
			t.Fatalf("Apply(%q) = %q, not valid JSON", expr, out)
		}
	})
}

func fuzzDoc(f *testing.F) any {
	_, v, err := Decode("application/json", []byte(`{"a":[{"n":1,"s":"x","b":true},{"n":2.5,"s":"y","b":null}],"c":{"c":{"c":[1,[2,[3]]]}},"a b":"sp"}`))
	if err != nil {
		f.Fatal(err)
	}
	return v
}
