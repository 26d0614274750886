package payload

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"
)

// benchBody is a 1 KB push-like delivery, indented as most senders send it.
var benchBody = []byte(`{
  "ref": "refs/heads/main",
  "before": "9049f1265b7d61be4a8904a9a27120d2064dab3b",
  "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "created": false,
  "deleted": false,
  "forced": false,
  "repository": {
    "id": 1296269,
    "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
    "name": "hello-world",
    "full_name": "octocat/hello-world",
    "private": false,
    "owner": {"login": "octocat", "id": 1, "type": "User", "site_admin": false},
    "html_url": "https://github.com/octocat/hello-world",
    "description": "This your first repo!",
    "fork": false,
    "stargazers_count": 80,
    "watchers_count": 80,
    "default_branch": "main",
    "topics": ["octocat", "atom", "electron", "api"]
  },
  "pusher": {"name": "octocat", "email": "octocat@github.com"},
  "sender": {"login": "octocat", "id": 1, "type": "User"},
  "commits": [
    {
      "id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
      "message": "Fix all the bugs\n\nAnd write \"tests\"",
      "timestamp": "2026-11-22T12:00:00Z",
      "author": {"name": "Monalisa Octocat", "email": "mona@github.com"},
      "added": ["src/main.go"],
      "removed": [],
      "modified": ["README.md", "go.mod"],
      "stats": {"additions": 12, "deletions": 3}
    }
  ],
  "head_commit": {"id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "distinct": true}
}`)

func BenchmarkDecode(b *testing.B) {
	form := []byte("payload=" + url.QueryEscape(string(benchBody)))
	var compact bytes.Buffer
	if err := json.Compact(&compact, benchBody); err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		ct   string
		body []byte
	}{
		{name: "json_1KB_indented", ct: "application/json", body: benchBody},
		{name: "json_1KB_compact", ct: "application/json; charset=utf-8", body: compact.Bytes()},
		{name: "form_payload_1KB", ct: formType, body: form},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				if _, _, err := Decode(c.ct, c.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// For comparison: what the same work costs with encoding/json (decode
	// with UseNumber, then compact), without the depth, duplicate-key and
	// UTF-8 checks.
	b.Run("stdlib_baseline_1KB_indented", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchBody)))
		for b.Loop() {
			var v any
			d := json.NewDecoder(bytes.NewReader(benchBody))
			d.UseNumber()
			if err := d.Decode(&v); err != nil {
				b.Fatal(err)
			}
			var buf bytes.Buffer
			if err := json.Compact(&buf, benchBody); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkMappingApply(b *testing.B) {
	m := mustCompileMapping(b, map[string]string{
		"repo":     "$.repository.full_name",
		"ref":      "$.ref",
		"owner":    "$.repository.owner.login",
		"commit":   "$.commits[0].id",
		"messages": "$.commits[*].message",
		"big":      "$.commits[?(@.stats.additions > 10)].id",
		"missing":  "$.repository.license.key",
	})
	v := mustDecode(b, string(benchBody))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Apply(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSchemaValidate(b *testing.B) {
	s := mustCompileSchema(b, `{
		"type": "object",
		"required": ["ref", "repository", "commits"],
		"properties": {
			"ref": {"type": "string", "pattern": "^refs/"},
			"repository": {
				"type": "object",
				"required": ["id", "full_name"],
				"properties": {
					"id": {"type": "integer", "minimum": 1},
					"full_name": {"type": "string", "minLength": 3},
					"topics": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}
				}
			},
			"commits": {"type": "array", "items": {"$ref": "#/$defs/commit"}}
		},
		"$defs": {
			"commit": {
				"type": "object",
				"required": ["id", "message"],
				"properties": {"id": {"type": "string"}, "stats": {"type": "object", "additionalProperties": {"type": "integer"}}}
			}
		}
	}`)
	v := mustDecode(b, string(benchBody))
	b.Run("valid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Validate(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	bad := mustDecode(b, `{"ref":"main","repository":{"id":0,"full_name":"x"},"commits":[{"id":1}]}`)
	b.Run("invalid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Validate(bad); err == nil {
				b.Fatal("want an error")
			}
		}
	})
}
