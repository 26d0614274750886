package payload

import (
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	huge := strings.Repeat("9", 400)
	tests := []struct {
		name        string
		contentType string
		body        string
		want        string // compact JSON, when the body is accepted
		wantStatus  int    // when the body is refused
		wantDetail  string // substring of Error.Detail
	}{
		{name: "json", contentType: "application/json", body: `{"a": 1, "b": [true, null, "x"]}`, want: `{"a":1,"b":[true,null,"x"]}`},
		{name: "json upper case with charset", contentType: "Application/JSON; Charset=UTF-8", body: `{"a":1}`, want: `{"a":1}`},
		{name: "json charset utf8 spelt without dash", contentType: "application/json;charset=utf8", body: `{"a":1}`, want: `{"a":1}`},
		{name: "text/json", contentType: "text/json", body: `[1,2]`, want: `[1,2]`},
		{name: "vendor +json", contentType: "application/vnd.github+json", body: `{"a":1}`, want: `{"a":1}`},
		{name: "cloudevents +json", contentType: "application/cloudevents+json; charset=utf-8", body: `{"a":1}`, want: `{"a":1}`},
		{name: "no content type", contentType: "", body: "\n{\"a\" :\t1 }\r\n", want: `{"a":1}`},
		{name: "key order and number text kept", contentType: "application/json", body: `{"z": 1.50, "a": 1e2, "m": -0}`, want: `{"z":1.50,"a":1e2,"m":-0}`},
		{name: "huge number preserved", contentType: "application/json", body: `{"n": ` + huge + `}`, want: `{"n":` + huge + `}`},
		{name: "escaped NUL is legal", contentType: "application/json", body: `{"a":"x\u0000y"}`, want: `{"a":"x\u0000y"}`},
		{name: "whitespace inside strings kept", contentType: "application/json", body: `{ "a b" : " c  d " }`, want: `{"a b":" c  d "}`},
		{name: "byte order mark ignored", contentType: "application/json", body: "\uFEFF{\"a\":1}", want: `{"a":1}`},
		{name: "empty object", contentType: "application/json", body: `{}`, want: `{}`},
		{name: "empty array", contentType: "application/json", body: ` [ ] `, want: `[]`},
		{name: "depth 64 accepted", contentType: "application/json", body: strings.Repeat("[", 64) + strings.Repeat("]", 64), want: strings.Repeat("[", 64) + strings.Repeat("]", 64)},

		{name: "github form payload", contentType: "application/x-www-form-urlencoded", body: "payload=" + url.QueryEscape(`{"ref": "refs/heads/main", "n": 12345678901234567890}`), want: `{"ref":"refs/heads/main","n":12345678901234567890}`},
		{name: "slack form fields", contentType: "application/x-www-form-urlencoded", body: "token=x&team_id=T1&command=%2Fdeploy&text=prod+now", want: `{"command":"/deploy","team_id":"T1","text":"prod now","token":"x"}`},
		{name: "repeated form field is an array", contentType: "application/x-www-form-urlencoded", body: "tag=a&tag=b&one=1", want: `{"one":"1","tag":["a","b"]}`},
		{name: "form field with empty value", contentType: "application/x-www-form-urlencoded", body: "a=&b", want: `{"a":"","b":""}`},
		{name: "form field with angle brackets not html-escaped", contentType: "application/x-www-form-urlencoded", body: "a=%3Cb%3E%26", want: `{"a":"<b>&"}`},
		{name: "curl -d json with form type", contentType: "application/x-www-form-urlencoded", body: `{"a": 1, "b": "c=d&e"}`, want: `{"a":1,"b":"c=d&e"}`},
		{name: "curl -d json array with form type", contentType: "application/x-www-form-urlencoded", body: "\n [1, 2]", want: `[1,2]`},
		{name: "form starting with bracket that is not json", contentType: "application/x-www-form-urlencoded", body: "[a]=1", want: `{"[a]":"1"}`},

		{name: "invalid utf-8", contentType: "application/json", body: "{\"a\":\"\xff\"}", wantStatus: 400, wantDetail: "body is not valid UTF-8 at byte 6"},
		{name: "invalid utf-8 in form", contentType: "application/x-www-form-urlencoded", body: "a=\xc3", wantStatus: 400, wantDetail: "body is not valid UTF-8 at byte 2"},
		{name: "percent-encoded invalid utf-8 in form", contentType: "application/x-www-form-urlencoded", body: "a=%ff", wantStatus: 400, wantDetail: `form field "a" is not valid UTF-8`},
		{name: "invalid json", contentType: "application/json", body: `{"a":tru}`, wantStatus: 400, wantDetail: "invalid JSON at byte 5: invalid literal"},
		{name: "missing comma", contentType: "application/json", body: `[1 2]`, wantStatus: 400, wantDetail: "invalid JSON at byte 3: unexpected character '2'"},
		{name: "trailing comma", contentType: "application/json", body: `[1,]`, wantStatus: 400, wantDetail: "invalid JSON at byte 3"},
		{name: "trailing garbage", contentType: "application/json", body: `{"a":1} x`, wantStatus: 400, wantDetail: "invalid JSON at byte 8: unexpected data after the top-level value"},
		{name: "two values", contentType: "application/json", body: `{}{}`, wantStatus: 400, wantDetail: "unexpected data after the top-level value"},
		{name: "truncated", contentType: "application/json", body: `{"a":[1,`, wantStatus: 400, wantDetail: "unexpected end of input"},
		{name: "raw control character in string", contentType: "application/json", body: "{\"a\":\"x\ty\"}", wantStatus: 400, wantDetail: "control character U+0009 in a string"},
		{name: "bad escape", contentType: "application/json", body: `{"a":"\x"}`, wantStatus: 400, wantDetail: "invalid escape character 'x'"},
		{name: "leading zero", contentType: "application/json", body: `[01]`, wantStatus: 400, wantDetail: "invalid JSON at byte 2"},
		{name: "depth 65 rejected", contentType: "application/json", body: strings.Repeat("[", 65) + strings.Repeat("]", 65), wantStatus: 400, wantDetail: "JSON nests deeper than 64 levels"},
		{name: "depth 65 in objects rejected", contentType: "application/json", body: strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65), wantStatus: 400, wantDetail: "JSON nests deeper than 64 levels"},
		{name: "duplicate key", contentType: "application/json", body: `{"a":1,"a":2}`, wantStatus: 400, wantDetail: `duplicate key "a" in the top-level object`},
		{name: "duplicate key via escape", contentType: "application/json", body: `{"x":[0,{"a":1,"\u0061":2}]}`, wantStatus: 400, wantDetail: `duplicate key "a" in object at /x/1`},
		{name: "duplicate key pointer escaped", contentType: "application/json", body: `{"a/b":{"k":1,"k":1}}`, wantStatus: 400, wantDetail: `duplicate key "k" in object at /a~1b`},
		{name: "long duplicate key clipped", contentType: "application/json", body: `{"` + strings.Repeat("k", 5000) + `":1,"` + strings.Repeat("k", 5000) + `":2}`, wantStatus: 400, wantDetail: `duplicate key "` + strings.Repeat("k", 64) + `…" in the top-level object`},
		{name: "duplicate key in curl -d body", contentType: "application/x-www-form-urlencoded", body: `{"a":1,"a":2}`, wantStatus: 400, wantDetail: `duplicate key "a"`},
		{name: "number too long", contentType: "application/json", body: `[` + strings.Repeat("1", 1001) + `]`, wantStatus: 400, wantDetail: "number at byte 1 is out of range"},
		{name: "exponent too large", contentType: "application/json", body: `[1e1001]`, wantStatus: 400, wantDetail: "number at byte 1 is out of range"},
		{name: "exponent far too large", contentType: "application/json", body: `[1e99999999999999999999]`, wantStatus: 400, wantDetail: "out of range"},
		{name: "empty body", contentType: "application/json", body: "", wantStatus: 400, wantDetail: "body is empty"},
		{name: "whitespace body", contentType: "", body: " \n\t", wantStatus: 400, wantDetail: "body is empty"},
		{name: "empty form body", contentType: "application/x-www-form-urlencoded", body: "", wantStatus: 400, wantDetail: "body is empty"},
		{name: "bare string", contentType: "application/json", body: `"hello"`, wantStatus: 400, wantDetail: "must be an object or an array, not a string"},
		{name: "bare number", contentType: "application/json", body: `42`, wantStatus: 400, wantDetail: "not a number"},
		{name: "bare null", contentType: "application/json", body: `null`, wantStatus: 400, wantDetail: "not null"},
		{name: "form payload invalid json", contentType: "application/x-www-form-urlencoded", body: "payload=%7Bnope", wantStatus: 400, wantDetail: "form field payload: invalid JSON at byte 1"},
		{name: "form payload twice", contentType: "application/x-www-form-urlencoded", body: "payload=%7B%7D&payload=%7B%7D", wantStatus: 400, wantDetail: "form field payload appears 2 times"},
		{name: "form payload empty", contentType: "application/x-www-form-urlencoded", body: "payload=", wantStatus: 400, wantDetail: "form field payload is empty"},
		{name: "form payload scalar", contentType: "application/x-www-form-urlencoded", body: "payload=1", wantStatus: 400, wantDetail: "form field payload: the top-level JSON value must be an object"},
		{name: "bad form escape", contentType: "application/x-www-form-urlencoded", body: "a=%zz", wantStatus: 400, wantDetail: "invalid form body"},

		{name: "text/plain", contentType: "text/plain", body: `{"a":1}`, wantStatus: 415, wantDetail: "content type text/plain is not supported; send application/json or application/x-www-form-urlencoded"},
		{name: "multipart", contentType: "multipart/form-data; boundary=x", body: `x`, wantStatus: 415, wantDetail: "content type multipart/form-data is not supported"},
		{name: "xml", contentType: "application/xml", body: `<a/>`, wantStatus: 415, wantDetail: "application/xml is not supported"},
		{name: "latin-1 charset", contentType: "application/json; charset=iso-8859-1", body: `{"a":1}`, wantStatus: 415, wantDetail: `charset "iso-8859-1" is not supported`},
		{name: "unparseable content type", contentType: "application/json; =", body: `{"a":1}`, wantStatus: 415, wantDetail: "content type cannot be parsed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, v, err := Decode(tt.contentType, []byte(tt.body))
			if tt.wantStatus != 0 {
				var perr *Error
				if !errors.As(err, &perr) {
					t.Fatalf("Decode(%q, %q) error = %v, want *Error with status %d", tt.contentType, tt.body, err, tt.wantStatus)
				}
				if perr.Status != tt.wantStatus || !strings.Contains(perr.Detail, tt.wantDetail) {
					t.Errorf("Decode(%q, %q) = %d %q, want %d containing %q", tt.contentType, tt.body, perr.Status, perr.Detail, tt.wantStatus, tt.wantDetail)
				}
				if raw != nil || v != nil {
					t.Errorf("Decode(%q, %q) returned a payload with its error", tt.contentType, tt.body)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%q, %q) error = %v", tt.contentType, tt.body, err)
			}
			if string(raw) != tt.want {
				t.Errorf("Decode(%q, %q) = %s, want %s", tt.contentType, tt.body, raw, tt.want)
			}
			// The decoded value must be what encoding/json makes of the output.
			var want any
			if err := unmarshalNumber(raw, &want); err != nil {
				t.Fatalf("output %s does not unmarshal: %v", raw, err)
			}
			if !reflect.DeepEqual(v, want) {
				t.Errorf("Decode(%q, %q) value = %#v, want %#v", tt.contentType, tt.body, v, want)
			}
		})
	}
}

func unmarshalNumber(data []byte, v any) error {
	d := json.NewDecoder(strings.NewReader(string(data)))
	d.UseNumber()
	return d.Decode(v)
}

func TestDecodeValues(t *testing.T) {
	tests := []struct {
		name string
		body string
		want any
	}{
		{name: "numbers are json.Number", body: `[1, -2.5e3, 0]`, want: []any{json.Number("1"), json.Number("-2.5e3"), json.Number("0")}},
		{name: "escapes decoded", body: `["\"\\\/\b\f\n\r\t\u00e9\u20AC"]`, want: []any{"\"\\/\b\f\n\r\té€"}},
		{name: "surrogate pair", body: `["\ud83d\ude00"]`, want: []any{"😀"}},
		{name: "lone high surrogate", body: `["\ud83dx"]`, want: []any{"\uFFFDx"}},
		{name: "high surrogate then non-surrogate escape", body: `["\ud83d\u0041"]`, want: []any{"\uFFFDA"}},
		{name: "lone low surrogate", body: `["\ude00"]`, want: []any{"\uFFFD"}},
		{name: "nested", body: `{"a":{"b":[{"c":null}]}}`, want: map[string]any{"a": map[string]any{"b": []any{map[string]any{"c": nil}}}}},
		{name: "literals", body: `[true,false,null]`, want: []any{true, false, nil}},
		{
			name: "objects inside arrays inside objects",
			body: `{"k":1,"c":[{"id":"a"},[{"x":[]}],{}],"z":{"y":[1,{"w":2}]}}`,
			want: map[string]any{
				"k": json.Number("1"),
				"c": []any{map[string]any{"id": "a"}, []any{map[string]any{"x": []any{}}}, map[string]any{}},
				"z": map[string]any{"y": []any{json.Number("1"), map[string]any{"w": json.Number("2")}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got, err := Decode("application/json", []byte(tt.body))
			if err != nil {
				t.Fatalf("Decode(%q) error = %v", tt.body, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode(%q) = %#v, want %#v", tt.body, got, tt.want)
			}
		})
	}
}

func TestDecodeDeepBodyIsFast(t *testing.T) {
	body := []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000))
	start := time.Now()
	_, _, err := Decode("application/json", body)
	elapsed := time.Since(start)
	var perr *Error
	if !errors.As(err, &perr) || perr.Status != 400 || !strings.Contains(perr.Detail, "deeper than 64") {
		t.Fatalf("Decode(10000 nested arrays) error = %v, want 400 too deep", err)
	}
	// The parser stops at bracket 65; anything near a millisecond means it
	// looked at the rest.
	if elapsed > 50*time.Millisecond {
		t.Errorf("Decode(10000 nested arrays) took %v, want well under 50ms", elapsed)
	}
}

func TestDecodeDoesNotRetainBody(t *testing.T) {
	body := []byte(`{"a":"b","n":1}`)
	raw, v, err := Decode("application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'x'
	}
	if string(raw) != `{"a":"b","n":1}` {
		t.Errorf("after changing the body, raw = %s", raw)
	}
	if got := v.(map[string]any)["a"]; got != "b" {
		t.Errorf("after changing the body, value a = %v, want b", got)
	}
}

func TestErrorMessage(t *testing.T) {
	err := error(&Error{Status: 400, Detail: "body is empty"})
	if got, want := err.Error(), "body is empty"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		name string
		s    string
		n    int
		want string
	}{
		{name: "short", s: "abc", n: 5, want: "abc"},
		{name: "exact", s: "abcde", n: 5, want: "abcde"},
		{name: "cut", s: "abcdef", n: 5, want: "abcde…"},
		{name: "cut before a multibyte character", s: "abcd€", n: 5, want: "abcd…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clip(tt.s, tt.n); got != tt.want {
				t.Errorf("clip(%q, %d) = %q, want %q", tt.s, tt.n, got, tt.want)
			}
		})
	}
}
