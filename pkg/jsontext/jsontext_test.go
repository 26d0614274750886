package jsontext

import (
	"bytes"
	"encoding/json"
	"testing"
)

// stdString is what encoding/json writes for s with HTML escaping off.
func stdString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err)
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}

func TestAppendString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "hello", `"hello"`},
		{"html stays as sent", `<a href="x">&</a>`, `"<a href=\"x\">&</a>"`},
		{"short escapes", "\b\f\n\r\t", `"\b\f\n\r\t"`},
		{"other controls", "\x00\x1f", `"\u0000\u001f"`},
		{"backslash", `a\b`, `"a\\b"`},
		{"invalid utf-8", "a\xffb", `"a\ufffdb"`},
		{"line separators", "\u2028\u2029", `"\u2028\u2029"`},
		{"multibyte", "héllo ✓ 🚀", `"héllo ✓ 🚀"`},
		{"empty", "", `""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(AppendString(nil, tt.in)); got != tt.want {
				t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
			}
			if std := stdString(tt.in); std != tt.want {
				t.Errorf("encoding/json gives %s for %q, the test expects %s", std, tt.in, tt.want)
			}
		})
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "<>&", "\x00\x7f\x80", "\u2028", "a\"b\\c", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := string(AppendString([]byte("x"), s))
		if want := "x" + stdString(s); got != want {
			t.Fatalf("AppendString(%q) = %s, encoding/json gives %s", s, got, want)
		}
	})
}

func TestValidNumber(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"0", true}, {"-0", true}, {"12", true}, {"1.5", true}, {"-1.5e10", true}, {"1E+2", true}, {"1e-2", true},
		{"", false}, {"-", false}, {"01", false}, {"1.", false}, {".5", false}, {"1e", false}, {"1e+", false},
		{"+1", false}, {"0x10", false}, {"1 ", false}, {"NaN", false}, {"Infinity", false},
	}
	for _, tt := range tests {
		if got := ValidNumber(tt.in); got != tt.want {
			t.Errorf("ValidNumber(%q) = %v, want %v", tt.in, got, tt.want)
		}
		var v json.Number
		err := json.Unmarshal([]byte(tt.in), &v)
		if (err == nil) != tt.want && tt.in != "" && tt.in != "1 " { // Unmarshal allows surrounding space
			t.Errorf("encoding/json accepts %q: %v, ValidNumber says %v", tt.in, err == nil, tt.want)
		}
	}
}
