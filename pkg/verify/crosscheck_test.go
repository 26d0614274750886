package verify

import (
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sendgrid/sendgrid-go/helpers/eventwebhook"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stripe/stripe-go/v84/webhook"
)

// These tests check the schemes against the senders' own Go libraries.

func TestStripeGoSignedPayload(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	tests := []struct {
		name    string
		payload string
		secret  string
		scheme  string
		now     time.Time
		want    Reason
	}{
		{name: "event", payload: `{"id":"evt_1","object":"event"}`, secret: "whsec_test_secret", now: ts},
		{name: "empty body", payload: "", secret: "whsec_x", now: ts},
		{name: "secret that is valid base64", payload: `{}`, secret: "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef")), now: ts},
		{name: "within tolerance", payload: `{}`, secret: "whsec_a", now: ts.Add(299 * time.Second)},
		{name: "too old", payload: `{}`, secret: "whsec_a", now: ts.Add(301 * time.Second), want: ReasonStale},
		{name: "in the future", payload: `{}`, secret: "whsec_a", now: ts.Add(-301 * time.Second), want: ReasonFuture},
		{name: "v0 scheme only", payload: `{}`, secret: "whsec_a", scheme: "v0", now: ts, want: ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{
				Payload:   []byte(tt.payload),
				Secret:    tt.secret,
				Timestamp: ts,
				Scheme:    tt.scheme,
			})
			h := http.Header{}
			h.Set("Stripe-Signature", sp.Header)
			err := Verify(Config{Preset: "stripe", Secrets: [][]byte{[]byte(tt.secret)}}, Request{Header: h, Body: []byte(tt.payload), Now: tt.now})
			if got := reasonOf(t, err); got != tt.want {
				t.Errorf("Verify(%q) = %v (reason %q), want reason %q", sp.Header, err, got, tt.want)
			}
		})
	}
}

func TestStripeGoRolledSecret(t *testing.T) {
	// While an endpoint secret is rolled, Stripe signs with both and sends
	// two v1 values (stripe-go webhook/client.go, validatePayload).
	ts := time.Unix(1700000000, 0)
	payload := []byte(`{"id":"evt_2","object":"event"}`)
	oldSig := hex.EncodeToString(webhook.ComputeSignature(ts, payload, "whsec_old"))
	newSig := hex.EncodeToString(webhook.ComputeSignature(ts, payload, "whsec_new"))
	header := "t=" + strconv.FormatInt(ts.Unix(), 10) + ",v1=" + newSig + ",v1=" + oldSig
	tests := []struct {
		name    string
		secrets []string
		want    Reason
	}{
		{name: "new secret only", secrets: []string{"whsec_new"}},
		{name: "old secret only", secrets: []string{"whsec_old"}},
		{name: "unrelated secret", secrets: []string{"whsec_other"}, want: ReasonMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var secrets [][]byte
			for _, s := range tt.secrets {
				secrets = append(secrets, []byte(s))
			}
			h := http.Header{"Stripe-Signature": {header}}
			err := Verify(Config{Preset: "stripe", Secrets: secrets}, Request{Header: h, Body: payload, Now: ts})
			if got := reasonOf(t, err); got != tt.want {
				t.Errorf("Verify() = %v (reason %q), want reason %q", err, got, tt.want)
			}
		})
	}
}

func TestStandardWebhooksLibrarySignsWeVerify(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	tests := []struct {
		name    string
		secret  string
		raw     bool
		id      string
		payload string
	}{
		{name: "whsec secret", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id: "msg_1", payload: `{"type":"user.created"}`},
		{name: "secret without prefix", secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id: "msg_2", payload: `{}`},
		{name: "raw secret", secret: "not base64, used as bytes!", raw: true, id: "msg_3", payload: "plain text"},
		{name: "empty payload", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id: "msg_4", payload: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var wh *standardwebhooks.Webhook
			var err error
			if tt.raw {
				wh, err = standardwebhooks.NewWebhookRaw([]byte(tt.secret))
			} else {
				wh, err = standardwebhooks.NewWebhook(tt.secret)
			}
			if err != nil {
				t.Fatalf("standardwebhooks.NewWebhook(%q) = %v", tt.secret, err)
			}
			sig, err := wh.Sign(tt.id, ts, []byte(tt.payload))
			if err != nil {
				t.Fatalf("Sign() = %v", err)
			}
			h := http.Header{}
			h.Set("webhook-id", tt.id)
			h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
			h.Set("webhook-signature", sig)
			cfg := Config{Preset: "standard-webhooks", Secrets: [][]byte{[]byte(tt.secret)}}
			if err := Verify(cfg, Request{Header: h, Body: []byte(tt.payload), Now: ts}); err != nil {
				t.Errorf("Verify() = %v, want nil", err)
			}
			if err := Verify(cfg, Request{Header: h, Body: []byte(tt.payload + " "), Now: ts}); !isMismatch(err) {
				t.Errorf("Verify() with a changed body = %v, want a mismatch", err)
			}
		})
	}
}

func TestWeSignStandardWebhooksLibraryVerifies(t *testing.T) {
	// The library checks the timestamp against time.Now, so sign now.
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("standardwebhooks.NewWebhook() = %v", err)
	}
	tests := []struct {
		name     string
		payload  string
		verified string
		valid    bool
	}{
		{name: "same payload", payload: `{"test": 2432232314}`, verified: `{"test": 2432232314}`, valid: true},
		{name: "empty payload", payload: "", verified: "", valid: true},
		{name: "changed payload", payload: `{"test": 1}`, verified: `{"test": 2}`, valid: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := standardSignature(standardKey([]byte(secret)), "msg_x", ts, []byte(tt.payload))
			h := http.Header{}
			h.Set("webhook-id", "msg_x")
			h.Set("webhook-timestamp", ts)
			h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(sig))
			err := wh.Verify([]byte(tt.verified), h)
			if got := err == nil; got != tt.valid {
				t.Errorf("standardwebhooks Verify() = %v, want valid %v", err, tt.valid)
			}
		})
	}
}

func TestStripeGoVerifiesOurSignature(t *testing.T) {
	ts := time.Now()
	payload := []byte(`{"id":"evt_3","object":"event"}`)
	const secret = "whsec_test_secret"
	t0 := strconv.FormatInt(ts.Unix(), 10)
	header := "t=" + t0 + ",v1=" + hex.EncodeToString(sum(algSHA256, []byte(secret), []byte(t0), []byte("."), payload))
	if err := webhook.ValidatePayload(payload, header, secret); err != nil {
		t.Errorf("webhook.ValidatePayload() = %v, want nil", err)
	}
	if err := webhook.ValidatePayload(payload, header, "whsec_other_secret"); err == nil {
		t.Errorf("webhook.ValidatePayload() with another secret = nil, want an error")
	}
}

func TestSendGridGoAgrees(t *testing.T) {
	// sendgrid-go's helper and Verify must judge the same deliveries alike,
	// except where Verify is stricter on purpose (strict says so).
	priv, pub := sendgridTestKeys()
	const ts = "1700000000"
	body := []byte(sendgridTestBody)
	sig := sendgridTestSign(priv[0], ts, body)
	tests := []struct {
		name   string
		key    []byte
		sig    []byte
		ts     string
		body   []byte
		valid  bool
		strict bool
	}{
		{name: "signed", key: pub[0], sig: sig, ts: ts, body: body, valid: true},
		{name: "twin with n - s", key: pub[0], sig: negateS(sig), ts: ts, body: body, valid: true},
		{name: "empty body", key: pub[0], sig: sendgridTestSign(priv[0], ts, nil), ts: ts, body: nil, valid: true},
		{name: "body changed", key: pub[0], sig: sig, ts: ts, body: append(slices.Clone(body), ' ')},
		{name: "timestamp changed", key: pub[0], sig: sig, ts: "1700000001", body: body},
		{name: "another key", key: pub[1], sig: sig, ts: ts, body: body},
		{name: "signature of another key", key: pub[0], sig: sendgridTestSign(priv[1], ts, body), ts: ts, body: body},
		{name: "DER cut short", key: pub[0], sig: sig[:len(sig)-1], ts: ts, body: body},
		// encoding/asn1.Unmarshal returns what follows the DER and
		// sendgrid-go ignores it; Verify refuses a signature with a tail.
		{name: "byte after the DER", key: pub[0], sig: append(slices.Clone(sig), 0), ts: ts, body: body, strict: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := eventwebhook.ConvertPublicKeyBase64ToECDSA(string(tt.key))
			if err != nil {
				t.Fatalf("eventwebhook.ConvertPublicKeyBase64ToECDSA() = %v", err)
			}
			sig := base64.StdEncoding.EncodeToString(tt.sig)
			theirs, _ := eventwebhook.VerifySignature(key, tt.body, sig, tt.ts)
			h := http.Header{}
			h.Set(eventwebhook.VerificationHTTPHeader, sig)
			h.Set(eventwebhook.TimestampHTTPHeader, tt.ts)
			ours := Verify(Config{Preset: "sendgrid", Secrets: [][]byte{tt.key}}, Request{Header: h, Body: tt.body, Now: testNow}) == nil
			if ours != tt.valid {
				t.Errorf("Verify() valid = %v, want %v", ours, tt.valid)
			}
			if want := tt.valid || tt.strict; theirs != want {
				t.Errorf("eventwebhook.VerifySignature() = %v, want %v", theirs, want)
			}
		})
	}
}

// isMismatch reports whether err is a *Error with ReasonMismatch.
func isMismatch(err error) bool {
	e, ok := err.(*Error)
	return ok && e.Reason == ReasonMismatch
}
