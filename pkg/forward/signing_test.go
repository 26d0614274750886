package forward_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/inlet-dev/inlet/pkg/sign"
)

const (
	whsecNew = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	whsecOld = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
)

// The official Standard Webhooks library verifies what a destination
// gets, with the secret, the id and the timestamp as sent.
func TestStandardWebhooksVerifiedByTheLibrary(t *testing.T) {
	h, ev := signed(t, sign.StandardWebhooks, whsecNew)
	if h.header.Get("Webhook-Id") != ev.ID {
		t.Errorf("webhook-id = %q, want the event id %s", h.header.Get("Webhook-Id"), ev.ID)
	}
	ts, err := strconv.ParseInt(h.header.Get("Webhook-Timestamp"), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
		t.Errorf("webhook-timestamp = %q, want the attempt's Unix time", h.header.Get("Webhook-Timestamp"))
	}
	wh, err := standardwebhooks.NewWebhook(whsecNew)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(h.body, h.header); err != nil {
		t.Errorf("standardwebhooks Verify = %v", err)
	}
	other, _ := standardwebhooks.NewWebhook(whsecOld)
	if other.Verify(h.body, h.header) == nil {
		t.Error("the request also verifies with another secret")
	}
}

// During a rotation's grace period both secrets sign: a receiver holding
// either verifies the request.
func TestRotatedSecretSignsBoth(t *testing.T) {
	h, _ := signed(t, sign.StandardWebhooks, whsecOld, whsecNew)
	if n := len(strings.Fields(h.header.Get("Webhook-Signature"))); n != 2 {
		t.Errorf("webhook-signature has %d signatures, want 2", n)
	}
	for _, s := range []string{whsecOld, whsecNew} {
		wh, _ := standardwebhooks.NewWebhook(s)
		if err := wh.Verify(h.body, h.header); err != nil {
			t.Errorf("verify with one of the two secrets = %v", err)
		}
	}
}

func TestHMACSHA256VerifiedIndependently(t *testing.T) {
	const key = "a-shared-secret-of-some-length"
	h, ev := signed(t, sign.HMACSHA256, key)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(h.body)
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); h.header.Get("X-Webhook-Signature") != want {
		t.Errorf("X-Webhook-Signature = %q, want %q", h.header.Get("X-Webhook-Signature"), want)
	}
	if h.header.Get("X-Webhook-ID") != ev.ID || h.header.Get("X-Webhook-Timestamp") == "" {
		t.Errorf("X-Webhook-ID %q, X-Webhook-Timestamp %q", h.header.Get("X-Webhook-ID"), h.header.Get("X-Webhook-Timestamp"))
	}
	if h.header.Get("Webhook-Signature") != "" {
		t.Error("an hmac-sha256 request carries a Standard Webhooks signature too")
	}
}

func TestHMACSHA1VerifiedIndependently(t *testing.T) {
	const key = "another-shared-secret"
	h, _ := signed(t, sign.HMACSHA1, key)
	mac := hmac.New(sha1.New, []byte(key))
	mac.Write(h.body)
	if want := "sha1=" + hex.EncodeToString(mac.Sum(nil)); h.header.Get("X-Signature") != want {
		t.Errorf("X-Signature = %q, want %q", h.header.Get("X-Signature"), want)
	}
}

func TestUnsignedScheme(t *testing.T) {
	h, _ := signed(t, sign.None, "")
	for _, name := range []string{"Webhook-Signature", "X-Webhook-Signature", "X-Signature", "Webhook-Id"} {
		if v := h.header.Get(name); v != "" {
			t.Errorf("scheme none sent %s: %q", name, v)
		}
	}
	if h.header.Get("Content-Type") != "application/json" {
		t.Error(http.StatusText(0))
	}
}
