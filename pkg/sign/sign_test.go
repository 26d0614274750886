package sign

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Test secrets, valid for their schemes.
const (
	whsecNew = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	// whsecOld is the base64 of 32 bytes "0123456789abcdef0123456789abcdef".
	whsecOld = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	hmacNew  = "k3yNewXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
	hmacOld  = "k3yOldXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
)

var testTime = time.Unix(1700000000, 0)

// header returns the value of the header called name in hs, matched
// case-insensitively, and whether it is there.
func header(hs []Header, name string) (string, bool) {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

// httpHeader turns hs into an http.Header, as a sender would set them.
func httpHeader(hs []Header) http.Header {
	h := http.Header{}
	for _, f := range hs {
		h.Set(f.Name, f.Value)
	}
	return h
}

func TestStandardWebhooksVector(t *testing.T) {
	// Standard Webhooks: libraries/go/webhook_test.go, TestWebhookSign, a
	// vector shared by the reference libraries
	// (https://github.com/standard-webhooks/standard-webhooks).
	got, err := Sign(StandardWebhooks, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0),
		[]byte(`{"test": 2432232314}`), []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
	if err != nil {
		t.Fatalf("Sign() = %v", err)
	}
	want := []Header{
		{Name: "webhook-id", Value: "msg_p5jXN8AQM9LWM0D4loKWxJek"},
		{Name: "webhook-timestamp", Value: "1614265330"},
		{Name: "webhook-signature", Value: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Sign() = %q, want %q", got, want)
	}
}

// hmacOf computes HMAC with crypto/hmac directly, for the expectations.
func hmacOf(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// whsecKey decodes a test whsec_ secret independently of the package.
func whsecKey(t *testing.T, secret string) []byte {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatalf("decode %s: %v", secret, err)
	}
	return key
}

func TestSignIndependently(t *testing.T) {
	const id = "evt_01HZX3J8Q7T9V2W4Y6A8C0E2G4"
	body := []byte(`{"id":"evt_01HZX3J8Q7T9V2W4Y6A8C0E2G4","payload":{"n":1}}`)
	ts := strconv.FormatInt(testTime.Unix(), 10)
	swSig := func(secret string) string {
		return "v1," + base64.StdEncoding.EncodeToString(hmacOf(sha256.New, whsecKey(t, secret), []byte(id+"."+ts+"."+string(body))))
	}
	sha256Sig := func(secret string) string {
		return "sha256=" + hex.EncodeToString(hmacOf(sha256.New, []byte(secret), body))
	}
	sha1Sig := func(secret string) string {
		return "sha1=" + hex.EncodeToString(hmacOf(sha1.New, []byte(secret), body))
	}
	tests := []struct {
		name    string
		scheme  Scheme
		secrets []string
		want    []Header
	}{
		{
			name: "standard-webhooks", scheme: StandardWebhooks, secrets: []string{whsecNew},
			want: []Header{{"webhook-id", id}, {"webhook-timestamp", ts}, {"webhook-signature", swSig(whsecNew)}},
		},
		{
			name: "standard-webhooks rotation", scheme: StandardWebhooks, secrets: []string{whsecNew, whsecOld},
			want: []Header{{"webhook-id", id}, {"webhook-timestamp", ts}, {"webhook-signature", swSig(whsecNew) + " " + swSig(whsecOld)}},
		},
		{
			name: "hmac-sha256", scheme: HMACSHA256, secrets: []string{hmacNew},
			want: []Header{{"X-Webhook-ID", id}, {"X-Webhook-Timestamp", ts}, {"X-Webhook-Signature", sha256Sig(hmacNew)}},
		},
		{
			name: "hmac-sha256 rotation", scheme: HMACSHA256, secrets: []string{hmacNew, hmacOld},
			want: []Header{{"X-Webhook-ID", id}, {"X-Webhook-Timestamp", ts}, {"X-Webhook-Signature", sha256Sig(hmacNew) + ", " + sha256Sig(hmacOld)}},
		},
		{
			name: "hmac-sha1", scheme: HMACSHA1, secrets: []string{hmacNew},
			want: []Header{{"X-Signature", sha1Sig(hmacNew)}},
		},
		{
			name: "hmac-sha1 rotation", scheme: HMACSHA1, secrets: []string{hmacNew, hmacOld},
			want: []Header{{"X-Signature", sha1Sig(hmacNew) + ", " + sha1Sig(hmacOld)}},
		},
		{name: "none", scheme: None, secrets: []string{hmacNew}, want: nil},
		{name: "none without secrets", scheme: None, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Sign(tt.scheme, id, testTime, body, tt.secrets)
			if err != nil {
				t.Fatalf("Sign(%s) = %v", tt.scheme, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Sign(%s) = %q, want %q", tt.scheme, got, tt.want)
			}
		})
	}
}

func TestSignEmptyBody(t *testing.T) {
	got, err := Sign(HMACSHA256, "evt_1", testTime, nil, []string{hmacNew})
	if err != nil {
		t.Fatalf("Sign() = %v", err)
	}
	want := "sha256=" + hex.EncodeToString(hmacOf(sha256.New, []byte(hmacNew), nil))
	if v, _ := header(got, "X-Webhook-Signature"); v != want {
		t.Errorf("Sign(empty body) signature = %q, want %q", v, want)
	}
}

func TestSignErrors(t *testing.T) {
	const secretText = "s3cr3tValueThatMustNotLeak"
	tests := []struct {
		name    string
		scheme  Scheme
		id      string
		at      time.Time
		secrets []string
		is      error
	}{
		{name: "unknown scheme", scheme: "hmac-md5", id: "evt_1", at: testTime, secrets: []string{secretText}},
		{name: "empty scheme", scheme: "", id: "evt_1", at: testTime, secrets: []string{secretText}},
		{name: "no secrets", scheme: HMACSHA256, id: "evt_1", at: testTime, is: ErrNoSecret},
		{name: "no secrets standard", scheme: StandardWebhooks, id: "evt_1", at: testTime, secrets: []string{}, is: ErrNoSecret},
		{name: "no secrets sha1", scheme: HMACSHA1, id: "evt_1", at: testTime, is: ErrNoSecret},
		{name: "empty secret", scheme: HMACSHA1, id: "evt_1", at: testTime, secrets: []string{secretText, ""}},
		{name: "too many secrets", scheme: HMACSHA256, id: "evt_1", at: testTime, secrets: slices.Repeat([]string{secretText}, MaxSecrets+1)},
		{name: "whsec without prefix", scheme: StandardWebhooks, id: "evt_1", at: testTime, secrets: []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
		{name: "whsec not base64", scheme: StandardWebhooks, id: "evt_1", at: testTime, secrets: []string{"whsec_" + secretText + "!"}},
		{name: "whsec empty key", scheme: StandardWebhooks, id: "evt_1", at: testTime, secrets: []string{"whsec_"}},
		{name: "second whsec bad", scheme: StandardWebhooks, id: "evt_1", at: testTime, secrets: []string{whsecNew, secretText}},
		{name: "id with a dot", scheme: StandardWebhooks, id: "evt.1", at: testTime, secrets: []string{whsecNew}},
		{name: "empty id", scheme: StandardWebhooks, id: "", at: testTime, secrets: []string{whsecNew}},
		{name: "empty id hmac-sha256", scheme: HMACSHA256, id: "", at: testTime, secrets: []string{secretText}},
		{name: "id with CRLF", scheme: HMACSHA256, id: "evt_1\r\nX-Evil: 1", at: testTime, secrets: []string{secretText}},
		{name: "id with a space", scheme: StandardWebhooks, id: "evt 1", at: testTime, secrets: []string{whsecNew}},
		{name: "zero time", scheme: HMACSHA256, id: "evt_1", secrets: []string{secretText}},
		{name: "before 1970", scheme: StandardWebhooks, id: "evt_1", at: time.Unix(-1, 0), secrets: []string{whsecNew}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Sign(tt.scheme, tt.id, tt.at, []byte("{}"), tt.secrets)
			if err == nil {
				t.Fatalf("Sign() = %q, nil, want an error", got)
			}
			if got != nil {
				t.Errorf("Sign() headers = %q, want none with an error", got)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Sign() = %v, want %v", err, tt.is)
			}
			if strings.Contains(err.Error(), secretText) || strings.Contains(err.Error(), whsecNew) {
				t.Errorf("Sign() = %q, which reveals a secret", err)
			}
		})
	}
}

func TestSignHMACSHA1IgnoresID(t *testing.T) {
	// hmac-sha1 sends no id, so any id, even none, signs.
	for _, id := range []string{"", "evt.1"} {
		if _, err := Sign(HMACSHA1, id, testTime, []byte("{}"), []string{hmacNew}); err != nil {
			t.Errorf("Sign(hmac-sha1, id %q) = %v, want nil", id, err)
		}
	}
}

func TestParseScheme(t *testing.T) {
	tests := []struct {
		in      string
		want    Scheme
		wantErr bool
	}{
		{in: "standard-webhooks", want: StandardWebhooks},
		{in: "hmac-sha256", want: HMACSHA256},
		{in: "hmac-sha1", want: HMACSHA1},
		{in: "none", want: None},
		{in: "", wantErr: true},
		{in: "Standard-Webhooks", wantErr: true},
		{in: "svix", wantErr: true},
		{in: "hmac", wantErr: true},
		{in: " none", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseScheme(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseScheme(%q) = %q, %v, want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
	for _, s := range Schemes() {
		if got, err := ParseScheme(string(s)); err != nil || got != s {
			t.Errorf("ParseScheme(%q) = %q, %v, want it back", s, got, err)
		}
	}
	if Schemes()[0] != DefaultScheme {
		t.Errorf("Schemes()[0] = %q, want the default %q", Schemes()[0], DefaultScheme)
	}
}

func TestNewSecret(t *testing.T) {
	tests := []struct {
		scheme Scheme
		re     *regexp.Regexp
	}{
		// 32 bytes are 44 base64 characters, the last one "=".
		{StandardWebhooks, regexp.MustCompile(`^whsec_[A-Za-z0-9+/]{43}=$`)},
		{HMACSHA256, regexp.MustCompile(`^[A-Za-z0-9]{40}$`)},
		{HMACSHA1, regexp.MustCompile(`^[A-Za-z0-9]{40}$`)},
		{None, regexp.MustCompile(`^$`)},
	}
	for _, tt := range tests {
		t.Run(string(tt.scheme), func(t *testing.T) {
			a, err := NewSecret(tt.scheme)
			if err != nil {
				t.Fatalf("NewSecret(%s) = %v", tt.scheme, err)
			}
			if !tt.re.MatchString(a) {
				t.Errorf("NewSecret(%s) has the form %q, want %s", tt.scheme, a, tt.re)
			}
			if err := ValidSecret(tt.scheme, a); err != nil {
				t.Errorf("ValidSecret(%s, NewSecret()) = %v, want nil", tt.scheme, err)
			}
			if tt.scheme == None {
				return
			}
			b, _ := NewSecret(tt.scheme)
			if a == b {
				t.Errorf("NewSecret(%s) returned the same secret twice", tt.scheme)
			}
			if _, err := Sign(tt.scheme, "evt_1", testTime, []byte("{}"), []string{a}); err != nil {
				t.Errorf("Sign with NewSecret(%s) = %v", tt.scheme, err)
			}
		})
	}
	if s, err := NewSecret("bogus"); err == nil {
		t.Errorf("NewSecret(bogus) = %q, nil, want an error", s)
	}
}

func TestRandomStringUsesTheWholeAlphabet(t *testing.T) {
	// 62 characters drawn 6,200 times: each is missing with probability
	// (61/62)^6200, about 1e-44.
	seen := map[rune]bool{}
	for _, c := range randomString(6200) {
		seen[c] = true
	}
	if len(seen) != len(alphabet) {
		t.Errorf("randomString drew %d distinct characters, want all %d", len(seen), len(alphabet))
	}
}

func TestValidSecret(t *testing.T) {
	whsec := func(n int) string {
		return "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, n))
	}
	tests := []struct {
		name   string
		scheme Scheme
		secret string
		ok     bool
	}{
		{name: "whsec 24 bytes", scheme: StandardWebhooks, secret: whsec(24), ok: true},
		{name: "whsec 23 bytes", scheme: StandardWebhooks, secret: whsec(23)},
		{name: "whsec 64 bytes", scheme: StandardWebhooks, secret: whsec(64), ok: true},
		{name: "whsec 65 bytes", scheme: StandardWebhooks, secret: whsec(65)},
		{name: "whsec vector", scheme: StandardWebhooks, secret: whsecNew, ok: true},
		{name: "whsec without prefix", scheme: StandardWebhooks, secret: strings.TrimPrefix(whsec(32), "whsec_")},
		{name: "whsec unpadded", scheme: StandardWebhooks, secret: strings.TrimRight(whsec(32), "=")},
		{name: "whsec URL alphabet", scheme: StandardWebhooks, secret: "whsec_" + base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe})},
		{name: "whsec with a newline", scheme: StandardWebhooks, secret: whsec(16) + "\n" + strings.TrimPrefix(whsec(16), "whsec_")},
		{name: "whsec empty", scheme: StandardWebhooks, secret: ""},
		{name: "hmac 16 bytes", scheme: HMACSHA256, secret: strings.Repeat("a", 16), ok: true},
		{name: "hmac 15 bytes", scheme: HMACSHA256, secret: strings.Repeat("a", 15)},
		{name: "sha1 16 bytes", scheme: HMACSHA1, secret: strings.Repeat("a", 16), ok: true},
		{name: "sha1 15 bytes", scheme: HMACSHA1, secret: strings.Repeat("a", 15)},
		{name: "hmac empty", scheme: HMACSHA256, secret: ""},
		{name: "none empty", scheme: None, secret: "", ok: true},
		{name: "none with a secret", scheme: None, secret: "whatever-secret-1"},
		{name: "unknown scheme", scheme: "hmac-md5", secret: strings.Repeat("a", 40)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidSecret(tt.scheme, tt.secret)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidSecret(%s, %q) = %v, want ok %v", tt.scheme, tt.secret, err, tt.ok)
			}
			if err != nil && len(tt.secret) >= 8 && strings.Contains(err.Error(), tt.secret) {
				t.Errorf("ValidSecret() = %q, which reveals the secret", err)
			}
		})
	}
}
