package verify

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Every scheme Sign knows signs what Verify accepts, with the same secret,
// and what Verify refuses with another secret.
func TestSignRoundTrip(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	secret := []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	jsonBody := []byte(`{"id":"evt_1","type":"test","n":1}`)
	formBody := []byte("To=%2B15550100&From=%2B15550199&Body=Hello+there&Body=again")
	const base = "https://inlet.example.com/api/v1/webhooks/wh_x"

	type tc struct {
		name string
		cfg  Config
		body []byte
		url  string
		hdr  http.Header
	}
	var cases []tc
	for _, p := range append([]string{""}, Presets()...) {
		if p == "sendgrid" {
			continue
		}
		cases = append(cases, tc{name: "preset " + p, cfg: Config{Preset: p}, body: jsonBody, url: base + "?bodySHA256=" + BodySHA256(jsonBody)})
	}
	for _, alg := range []string{"sha1", "sha256", "sha512", "SHA512"} {
		cases = append(cases,
			tc{name: "default " + alg, cfg: Config{Algorithm: alg}, body: jsonBody},
			tc{name: "default " + alg + " own header", cfg: Config{Algorithm: alg, Header: "X-Acme-Signature"}, body: jsonBody},
			tc{name: "timestamped " + alg, cfg: Config{Preset: "timestamped", Algorithm: alg}, body: jsonBody,
				hdr: http.Header{"X-Webhook-Id": {"dlv_1"}}},
		)
	}
	cases = append(cases,
		tc{name: "twilio form", cfg: Config{Preset: "twilio"}, body: formBody, url: base + "?a=1"},
		tc{name: "twilio default port", cfg: Config{Preset: "twilio"}, body: formBody, url: "https://inlet.example.com:443/api/v1/webhooks/wh_x"},
		tc{name: "standard webhooks given id", cfg: Config{Preset: "standard-webhooks"}, body: jsonBody, hdr: http.Header{"Webhook-Id": {"msg_given"}}},
		tc{name: "raw standard secret", cfg: Config{Preset: "standard-webhooks"}, body: jsonBody},
		tc{name: "empty body", cfg: Config{Preset: "github"}, body: nil},
	)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, vs := range tt.hdr {
				h[k] = vs
			}
			r := Request{Header: h, Body: tt.body, URL: tt.url, Now: now}
			for _, key := range [][]byte{secret, []byte("not base64 at all!")} {
				signed, err := Sign(tt.cfg, key, r)
				if err != nil {
					t.Fatalf("Sign = %v", err)
				}
				for k, v := range signed {
					h.Set(k, v)
				}
				c := tt.cfg
				c.Secrets = [][]byte{key}
				if err := Verify(c, r); err != nil {
					t.Errorf("Verify(Sign(x)) = %v, want nil", err)
				}
				c.Secrets = [][]byte{[]byte("another secret")}
				if err := Verify(c, r); err == nil {
					t.Errorf("Verify with another secret = nil, want an error")
				}
				if id := tt.hdr.Get("Webhook-Id"); id != "" && h.Get("Webhook-Id") != id {
					t.Errorf("webhook-id = %q, want the given %q kept", h.Get("Webhook-Id"), id)
				}
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	if _, err := Sign(Config{Preset: "sendgrid"}, []byte("MFkw..."), Request{}); !errors.Is(err, ErrCannotSign) {
		t.Errorf("Sign(sendgrid) = %v, want ErrCannotSign", err)
	}
	for name, c := range map[string]Config{
		"unknown preset":    {Preset: "nope"},
		"unknown algorithm": {Algorithm: "md5"},
	} {
		if _, err := Sign(c, []byte("s"), Request{Body: []byte("{}")}); err == nil {
			t.Errorf("%s: Sign = nil error", name)
		}
	}
	if _, err := Sign(Config{}, nil, Request{}); err == nil {
		t.Errorf("Sign with no secret = nil error")
	}
	if _, err := Sign(Config{Preset: "twilio"}, []byte("s"), Request{Body: []byte("a=1")}); err == nil || !strings.Contains(err.Error(), "URL") {
		t.Errorf("Sign(twilio) without a URL = %v, want an error about the URL", err)
	}
}
