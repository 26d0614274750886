package console

import (
	"encoding/json"
	"testing"
)

func TestExampleBody(t *testing.T) {
	schema := `{"type":"object","required":["id","n","tags","kind","when","nested"],"properties":{
		"id":{"type":"string"},"n":{"type":"integer","minimum":3},"tags":{"type":"array","items":{"type":"string"},"minItems":1},
		"kind":{"enum":["push","tag"]},"when":{"type":"string","format":"email"},
		"nested":{"type":"object","required":["ok"],"properties":{"ok":{"type":"boolean"}}},
		"optional":{"type":"string"}}}`
	var s map[string]any
	if err := json.Unmarshal([]byte(schema), &s); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, split, want string
	}{
		{"object", "", `{"id":"string","kind":"push","n":3,"nested":{"ok":false},"tags":["string"],"when":"someone@example.com"}`},
		{"top-level batch", "$[*]", `[{"id":"string","kind":"push","n":3,"nested":{"ok":false},"tags":["string"],"when":"someone@example.com"}]`},
		{"nested batch", "$.data.events[*]", `{"data":{"events":[{"id":"string","kind":"push","n":3,"nested":{"ok":false},"tags":["string"],"when":"someone@example.com"}]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := json.Marshal(inBatch(exampleOf(s, 0), tt.split))
			if string(b) != tt.want {
				t.Errorf("example = %s, want %s", b, tt.want)
			}
		})
	}
}

func TestParseHeaders(t *testing.T) {
	h, err := parseHeaders("X-GitHub-Event: push\r\n\n  webhook-id:  msg_1  \nX-Multi: a\nX-Multi: b")
	if err != nil {
		t.Fatal(err)
	}
	if h.Get("X-Github-Event") != "push" || h.Get("Webhook-Id") != "msg_1" || len(h.Values("X-Multi")) != 2 {
		t.Errorf("parseHeaders = %v", h)
	}
	for _, bad := range []string{"no colon", ": empty name", "Two Words: x", "Host: evil.example", "content-length: 3"} {
		if _, err := parseHeaders(bad); err == nil {
			t.Errorf("parseHeaders(%q) = nil error", bad)
		}
	}
}
