package sign

import (
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/inlet-dev/inlet/pkg/verify"
)

// These tests check that what inlet sends verifies with inlet's own receiver
// (package verify) and with the Standard Webhooks reference library.

// verifyConfig is the receiver configuration that matches each scheme.
var verifyConfig = map[Scheme]verify.Config{
	StandardWebhooks: {Preset: "standard-webhooks"},
	HMACSHA256:       {Algorithm: "sha256", Header: "X-Webhook-Signature"},
	HMACSHA1:         {Algorithm: "sha1", Header: "X-Signature"},
}

// signatureHeader is the header each scheme puts its signature in.
var signatureHeader = map[Scheme]string{
	StandardWebhooks: "webhook-signature",
	HMACSHA256:       "X-Webhook-Signature",
	HMACSHA1:         "X-Signature",
}

func TestVerifyAcceptsWhatWeSign(t *testing.T) {
	body := []byte(`{"id":"evt_01HZX3J8Q7T9V2W4Y6A8C0E2G4","trigger":"orders"}`)
	tests := []struct {
		scheme Scheme
		secret string
		other  string
	}{
		{StandardWebhooks, whsecNew, whsecOld},
		{HMACSHA256, hmacNew, hmacOld},
		{HMACSHA1, hmacNew, hmacOld},
	}
	for _, tt := range tests {
		t.Run(string(tt.scheme), func(t *testing.T) {
			hs, err := Sign(tt.scheme, "evt_01HZX3J8Q7T9V2W4Y6A8C0E2G4", testTime, body, []string{tt.secret})
			if err != nil {
				t.Fatalf("Sign() = %v", err)
			}
			cfg := verifyConfig[tt.scheme]
			cfg.Secrets = [][]byte{[]byte(tt.secret)}
			r := verify.Request{Header: httpHeader(hs), Body: body, Now: testTime.Add(time.Minute)}
			if err := verify.Verify(cfg, r); err != nil {
				t.Errorf("verify.Verify(%+v) = %v, want nil", hs, err)
			}
			// The receiver must tell a wrong secret and a changed body.
			cfg.Secrets = [][]byte{[]byte(tt.other)}
			if err := verify.Verify(cfg, r); err == nil {
				t.Errorf("verify.Verify() with another secret = nil, want an error")
			}
			cfg.Secrets = [][]byte{[]byte(tt.secret)}
			r.Body = append([]byte(nil), body...)
			r.Body[len(r.Body)-2] = 'x'
			if err := verify.Verify(cfg, r); err == nil {
				t.Errorf("verify.Verify() with a changed body = nil, want an error")
			}
		})
	}
}

func TestVerifyAcceptsEachRotationSignature(t *testing.T) {
	body := []byte(`{"n":1}`)
	tests := []struct {
		scheme   Scheme
		new, old string
	}{
		{StandardWebhooks, whsecNew, whsecOld},
		{HMACSHA256, hmacNew, hmacOld},
		{HMACSHA1, hmacNew, hmacOld},
	}
	for _, tt := range tests {
		t.Run(string(tt.scheme), func(t *testing.T) {
			hs, err := Sign(tt.scheme, "evt_2", testTime, body, []string{tt.new, tt.old})
			if err != nil {
				t.Fatalf("Sign() = %v", err)
			}
			cfg := verifyConfig[tt.scheme]
			h := httpHeader(hs)
			if tt.scheme == StandardWebhooks {
				// The header is a list by specification: it verifies
				// under either secret as sent.
				for _, s := range []string{tt.new, tt.old} {
					cfg.Secrets = [][]byte{[]byte(s)}
					if err := verify.Verify(cfg, verify.Request{Header: h, Body: body, Now: testTime}); err != nil {
						t.Errorf("verify.Verify(%q) = %v, want nil", h.Get("webhook-signature"), err)
					}
				}
				return
			}
			// The hmac schemes join one value per secret with ", ",
			// newest first; each value verifies under its own secret.
			name := signatureHeader[tt.scheme]
			values := strings.Split(h.Get(name), ", ")
			if len(values) != 2 {
				t.Fatalf("%s = %q, want two values joined by \", \"", name, h.Get(name))
			}
			for i, s := range []string{tt.new, tt.old} {
				h.Set(name, values[i])
				cfg.Secrets = [][]byte{[]byte(s)}
				if err := verify.Verify(cfg, verify.Request{Header: h, Body: body, Now: testTime}); err != nil {
					t.Errorf("value %d %q: verify.Verify() = %v, want nil", i, values[i], err)
				}
			}
		})
	}
}

func TestStandardWebhooksLibraryVerifies(t *testing.T) {
	// The library checks the timestamp against time.Now, so sign now.
	now := time.Now()
	body := []byte(`{"type":"event.created","data":{"n":1}}`)
	hs, err := Sign(StandardWebhooks, "evt_3", now, body, []string{whsecNew, whsecOld})
	if err != nil {
		t.Fatalf("Sign() = %v", err)
	}
	h := httpHeader(hs)
	tests := []struct {
		name   string
		secret string
		body   []byte
		valid  bool
	}{
		{name: "newest secret", secret: whsecNew, body: body, valid: true},
		{name: "older secret", secret: whsecOld, body: body, valid: true},
		{name: "unrelated secret", secret: "whsec_" + strings.Repeat("A", 43) + "=", body: body},
		{name: "changed body", secret: whsecNew, body: []byte(`{"type":"event.created","data":{"n":2}}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wh, err := standardwebhooks.NewWebhook(tt.secret)
			if err != nil {
				t.Fatalf("standardwebhooks.NewWebhook() = %v", err)
			}
			err = wh.Verify(tt.body, h)
			if got := err == nil; got != tt.valid {
				t.Errorf("standardwebhooks Verify(%q) = %v, want valid %v", h.Get("webhook-signature"), err, tt.valid)
			}
		})
	}
}

func TestStandardWebhooksLibraryAgreesOnSecrets(t *testing.T) {
	// A fresh secret is one the reference library accepts and signs with
	// exactly as Sign does.
	secret, err := NewSecret(StandardWebhooks)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("standardwebhooks.NewWebhook(NewSecret()) = %v", err)
	}
	body := []byte(`{"k":"v"}`)
	want, err := wh.Sign("evt_4", testTime, body)
	if err != nil {
		t.Fatalf("standardwebhooks Sign() = %v", err)
	}
	hs, err := Sign(StandardWebhooks, "evt_4", testTime, body, []string{secret})
	if err != nil {
		t.Fatalf("Sign() = %v", err)
	}
	if got, _ := header(hs, "webhook-signature"); got != want {
		t.Errorf("Sign() signature = %q, want the library's %q", got, want)
	}
}
