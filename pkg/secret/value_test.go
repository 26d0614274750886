package secret

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// clearText is the secret every test here hides; it is long and odd enough that
// finding it in an output can only mean a leak.
const clearText = "whsec_Th1sMustNeverPrint"

// Holder is how callers keep a Value: an exported field of a struct that is
// printed, logged and encoded whole.
type Holder struct {
	Name  string `json:"name" yaml:"name" xml:"name,attr"`
	Token Value  `json:"token" yaml:"token" xml:"token"`
}

func TestValueFormatVerbs(t *testing.T) {
	v := Value(clearText)
	tests := []struct {
		format string
		arg    any
		want   string
	}{
		{"%v", v, "REDACTED"},
		{"%+v", v, "REDACTED"},
		{"%#v", v, "REDACTED"},
		{"%s", v, "REDACTED"},
		{"%q", v, `"REDACTED"`},
		{"%#q", v, `"REDACTED"`},
		{"%x", v, "REDACTED"},
		{"%X", v, "REDACTED"},
		{"% x", v, "REDACTED"},
		{"%d", v, "REDACTED"},
		{"%t", v, "REDACTED"},
		{"%.3s", v, "REDACTED"},
		{"%12s", v, "    REDACTED"},
		{"%-12s|", v, "REDACTED    |"},
		{"%12q", v, "  \"REDACTED\""},
		{"%v", &v, "REDACTED"},
		{"%s", []Value{v, ""}, "[REDACTED ]"},
		{"%v", map[string]Value{"k": v}, "map[k:REDACTED]"},
		{"%v", Holder{"a", v}, "{a REDACTED}"},
		{"%+v", Holder{"a", v}, "{Name:a Token:REDACTED}"},
		{"%#v", Holder{"a", v}, `secret.Holder{Name:"a", Token:REDACTED}`},
		{"%x", Holder{"a", v}, "{61 REDACTED}"},
		{"%v", &Holder{"a", v}, "&{a REDACTED}"},
		{"%v", Value(""), ""},
		{"%q", Value(""), `""`},
		{"%#v", Value(""), ""},
		{"%T", v, "secret.Value"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			got := fmt.Sprintf(tt.format, tt.arg)
			if got != tt.want {
				t.Errorf("Sprintf(%q) = %q, want %q", tt.format, got, tt.want)
			}
		})
	}
	// A variable format lets the extra argument through go vet.
	oneVerb := "%s"
	other := map[string]string{
		"Sprint":   fmt.Sprint(v, Holder{"a", v}),
		"Sprintln": fmt.Sprintln(v, &Holder{"a", v}),
		"String":   v.String(),
		"GoString": v.GoString(),
		"Errorf":   fmt.Errorf("bad token %v: %w", v, fmt.Errorf("%s", v)).Error(),
		"extra":    fmt.Sprintf(oneVerb, "x", v),
	}
	for name, out := range other {
		if strings.Contains(out, clearText) {
			t.Errorf("%s = %q, shows the secret", name, out)
		}
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("%s = %q, want REDACTED in it", name, out)
		}
	}
	if got := string(v); got != clearText {
		t.Errorf("string(v) = %q, want the secret", got)
	}
}

func TestValueSlog(t *testing.T) {
	v := Value(clearText)
	var text, js bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&text, nil), slog.NewJSONHandler(&js, nil)} {
		l := slog.New(h)
		l.Info("m", "token", v)
		l.Info("m", slog.Any("token", &v))
		l.Info("m", slog.Group("g", "token", v))
		l.With("token", v).Info("m")
		l.Info("m", "holder", Holder{"a", v})
		l.Info("m", "empty", Value(""))
	}
	for name, out := range map[string]string{"text": text.String(), "json": js.String()} {
		if strings.Contains(out, clearText) {
			t.Errorf("slog %s handler wrote %s, shows the secret", name, out)
		}
	}
	for _, want := range []string{`token=REDACTED`, `g.token=REDACTED`, `holder="{Name:a Token:REDACTED}"`, `empty=""`} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("slog text handler wrote %s, want %s in it", text.String(), want)
		}
	}
	for _, want := range []string{`"token":"REDACTED"`, `"g":{"token":"REDACTED"}`, `"holder":{"name":"a","token":"REDACTED"}`, `"empty":""`} {
		if !strings.Contains(js.String(), want) {
			t.Errorf("slog JSON handler wrote %s, want %s in it", js.String(), want)
		}
	}
}

func TestValueEncoders(t *testing.T) {
	v := Value(clearText)
	h := Holder{"a", v}
	mustJSON := func(x any) string {
		t.Helper()
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", x, err)
		}
		return string(b)
	}
	mustYAML := func(x any) string {
		t.Helper()
		b, err := yaml.Marshal(x)
		if err != nil {
			t.Fatalf("yaml.Marshal(%T): %v", x, err)
		}
		return string(b)
	}
	mustXML := func(x any) string {
		t.Helper()
		b, err := xml.Marshal(x)
		if err != nil {
			t.Fatalf("xml.Marshal(%T): %v", x, err)
		}
		return string(b)
	}
	mt, _ := v.MarshalText()
	tests := []struct {
		name, got, want string
	}{
		{"json value", mustJSON(v), `"REDACTED"`},
		{"json empty", mustJSON(Value("")), `""`},
		{"json struct", mustJSON(h), `{"name":"a","token":"REDACTED"}`},
		{"json pointer", mustJSON(&h), `{"name":"a","token":"REDACTED"}`},
		{"json map value", mustJSON(map[string]Value{"k": v}), `{"k":"REDACTED"}`},
		{"json slice", mustJSON([]Value{v}), `["REDACTED"]`},
		{"yaml struct", mustYAML(h), "name: a\ntoken: REDACTED\n"},
		{"yaml map", mustYAML(map[string]Value{"k": v}), "k: REDACTED\n"},
		{"xml struct", mustXML(h), `<Holder name="a"><token>REDACTED</token></Holder>`},
		{"MarshalText", string(mt), "REDACTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%s = %s, want %s", tt.name, tt.got, tt.want)
			}
		})
	}
}

// TestValueDecodes pins that decoding keeps the value: a secret arrives in
// a request body or a configuration file as a plain string.
func TestValueDecodes(t *testing.T) {
	var j Holder
	if err := json.Unmarshal([]byte(`{"name":"a","token":"`+clearText+`"}`), &j); err != nil {
		t.Fatal(err)
	}
	if string(j.Token) != clearText {
		t.Errorf("json.Unmarshal token = %q, want the secret", string(j.Token))
	}
	var y Holder
	if err := yaml.Unmarshal([]byte("token: "+clearText+"\n"), &y); err != nil {
		t.Fatal(err)
	}
	if string(y.Token) != clearText {
		t.Errorf("yaml.Unmarshal token = %q, want the secret", string(y.Token))
	}
}
