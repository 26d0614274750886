package verify

import (
	"crypto/elliptic"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// fuzzSecret signs nothing the fuzzer sees, so no fuzzed signature can be
// valid under it.
var fuzzSecret = [][]byte{[]byte("fuzz-secret-never-in-the-corpus")}

func FuzzStripeHeader(f *testing.F) {
	f.Add("t=1492774577,v1=d7fa6c5474642565ac0b906bdbee5c71876b3a8ba5d29ef0897d5a933b476a5e", []byte("Hello, World!"))
	f.Add("t=1,v1=ab,v0=cd,,", []byte(""))
	f.Add("v1="+strings.Repeat("00", 32)+",t=1700000000", []byte("{}"))
	f.Add("t==,=,", []byte(nil))
	f.Fuzz(func(t *testing.T, value string, body []byte) {
		h, err := parseStripeHeader(value)
		if err == nil {
			if h.n < 1 || h.n > maxSignatures {
				t.Fatalf("parseStripeHeader(%q) kept %d signatures, want 1..%d", value, h.n, maxSignatures)
			}
			if _, ok := parseUnix(h.ts); !ok {
				t.Fatalf("parseStripeHeader(%q) accepted timestamp %q", value, h.ts)
			}
		}
		r := Request{Header: http.Header{"Stripe-Signature": {value}}, Body: body, Now: time.Unix(1700000000, 0)}
		if err := Verify(Config{Preset: "stripe", Secrets: fuzzSecret}, r); err == nil {
			t.Fatalf("Verify(stripe, %q) = nil for a random signature", value)
		}
	})
}

func FuzzStandardWebhooksHeader(f *testing.F) {
	f.Add("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", []byte(`{"test": 2432232314}`))
	f.Add("msg_1", "1700000000", "v1a,abc v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,x", []byte(""))
	f.Add("a.b", "-1", "v1,,,, ,v1", []byte("x"))
	f.Add("id", "1700000000", "v1,"+strings.Repeat("A", 43)+"= v1,"+strings.Repeat("/", 43)+"=", []byte("{}"))
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		l := parseStandardSignatures(sig)
		if l.n < 0 || l.n > maxSignatures {
			t.Fatalf("parseStandardSignatures(%q) kept %d signatures, want 0..%d", sig, l.n, maxSignatures)
		}
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sig)
		r := Request{Header: h, Body: body, Now: time.Unix(1700000000, 0)}
		for _, preset := range []string{"standard-webhooks", "svix", "gitlab"} {
			if err := Verify(Config{Preset: preset, Secrets: fuzzSecret}, r); err == nil {
				t.Fatalf("Verify(%s, %q) = nil for a random signature", preset, sig)
			}
		}
	})
}

func FuzzPrefixedHex(f *testing.F) {
	f.Add("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	f.Add("SHA1=01DC10D0C83E72ED246219CDD91669667FE2CA59")
	f.Add("=")
	f.Add("sha512=" + strings.Repeat("f", 130))
	f.Add("md5=abc=def")
	f.Fuzz(func(t *testing.T, value string) {
		prefix, digest, ok := parsePrefixedHex(value)
		if ok {
			if len(digest) == 0 || len(digest) > maxHexDigest/2 {
				t.Fatalf("parsePrefixedHex(%q) digest has %d bytes", value, len(digest))
			}
			if strings.Contains(prefix, "=") {
				t.Fatalf("parsePrefixedHex(%q) prefix %q contains =", value, prefix)
			}
		}
		for _, alg := range []string{"sha1", "sha256", "sha512"} {
			cfg := Config{Algorithm: alg, Secrets: fuzzSecret}
			r := Request{Header: http.Header{"X-Webhook-Signature": {value}}, Body: []byte("{}")}
			if err := Verify(cfg, r); err == nil {
				t.Fatalf("Verify(%s, %q) = nil for a random signature", alg, value)
			}
		}
	})
}

func FuzzTwilioForm(f *testing.F) {
	f.Add([]byte("CallSid=CA1234567890ABCDE&Caller=%2B14158675310&Digits=1234"), "https://example.com/myapp.php?foo=1&bar=2", "L/OH5YylLD5NRKLltdqwSvS0BnU=")
	f.Add([]byte("a=%zz&&=&b"), "http://[::1]:80/x?bodySHA256=00&bodySHA256=11", "")
	f.Add([]byte("x=1&x=1&x=0"), "https://u@h:443#f", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	f.Add([]byte(""), "https://", "")
	f.Fuzz(func(t *testing.T, body []byte, rawURL, sig string) {
		params, err := parseTwilioForm(body)
		if err == nil {
			if len(params) > maxFormParams {
				t.Fatalf("parseTwilioForm kept %d parameters, want at most %d", len(params), maxFormParams)
			}
			if !slices.IsSortedFunc(params, func(a, b formParam) int {
				if c := strings.Compare(a.name, b.name); c != 0 {
					return c
				}
				return strings.Compare(a.value, b.value)
			}) {
				t.Fatalf("parseTwilioForm(%q) = %q, not sorted", body, params)
			}
		}
		urls, n := twilioURLs(rawURL)
		if n < 1 || n > 2 || urls[0] != rawURL {
			t.Fatalf("twilioURLs(%q) = %q, %d", rawURL, urls, n)
		}
		if n == 2 {
			a, b := urls[0], urls[1]
			if len(a) < len(b) {
				a, b = b, a
			}
			if d := len(a) - len(b); d != 3 && d != 4 {
				t.Fatalf("twilioURLs(%q) variant %q differs by more than a port", rawURL, urls[1])
			}
		}
		_, _, _ = queryParam(rawURL, "bodySHA256")
		r := Request{Header: http.Header{"X-Twilio-Signature": {sig}}, Body: body, URL: rawURL}
		if err := Verify(Config{Preset: "twilio", Secrets: fuzzSecret}, r); err == nil {
			t.Fatalf("Verify(twilio, %q, %q) = nil for a random signature", rawURL, sig)
		}
	})
}

func FuzzSendGridHeader(f *testing.F) {
	f.Add("MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=", "1600112502", []byte("[]\r\n"))
	f.Add("MEQCIE1+XV7G7/iUAW9af+Z0VHmbDx2SyZRrw82ZQ6twhfWfAiBvo+jPNlhuUeKQw4PmrTi77RvINA3Kx/Cxz4dULCytkw==", "1700000000", []byte(sendgridTestBody))
	f.Add("MAYCAQECAQE=", "1700000000", []byte("{}"))
	f.Add("MAYCAQACAQE=", "-1", []byte(nil))
	f.Add("MIIBAQ==", "17000000000000000000", []byte("x"))
	_, pub := sendgridTestKeys()
	keys := [][]byte{pub[0]}
	f.Fuzz(func(t *testing.T, sig, ts string, body []byte) {
		if der, ok := sendgridSignature(sig); ok {
			if len(der) > maxP256SignatureDER {
				t.Fatalf("sendgridSignature(%q) kept %d bytes, more than %d", sig, len(der), maxP256SignatureDER)
			}
			// Strict base64 has one spelling per byte string.
			if got := base64.StdEncoding.EncodeToString(der); got != sig {
				t.Fatalf("sendgridSignature(%q) accepted a non-canonical spelling of %q", sig, got)
			}
		}
		h := http.Header{}
		h.Set("X-Twilio-Email-Event-Webhook-Signature", sig)
		h.Set("X-Twilio-Email-Event-Webhook-Timestamp", ts)
		r := Request{Header: h, Body: body, Now: time.Unix(1700000000, 0)}
		if err := Verify(Config{Preset: "sendgrid", Secrets: keys}, r); err == nil {
			t.Fatalf("Verify(sendgrid, %q, %q) = nil for a random signature", sig, ts)
		}
	})
}

func FuzzSendGridKey(f *testing.F) {
	priv, pub := sendgridTestKeys()
	der, _ := base64.StdEncoding.DecodeString(string(pub[0]))
	f.Add(pub[0])
	f.Add(pub[1])
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	f.Add([]byte("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="))
	f.Add([]byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))
	const ts = "1700000000"
	body := []byte(sendgridTestBody)
	h := http.Header{}
	h.Set("X-Twilio-Email-Event-Webhook-Signature", base64.StdEncoding.EncodeToString(sendgridTestSign(priv[0], ts, body)))
	h.Set("X-Twilio-Email-Event-Webhook-Timestamp", ts)
	r := Request{Header: h, Body: body, Now: time.Unix(1700000000, 0)}
	f.Fuzz(func(t *testing.T, secret []byte) {
		key, ok := sendgridKey(secret)
		if ok && key.Curve != elliptic.P256() {
			t.Fatalf("sendgridKey(%q) accepted a key on %s", secret, key.Curve.Params().Name)
		}
		err := Verify(Config{Preset: "sendgrid", Secrets: [][]byte{secret}}, r)
		want := ok && key.Equal(&priv[0].PublicKey)
		if got := err == nil; got != want {
			t.Fatalf("Verify(sendgrid) with secret %q = %v, want valid %v", secret, err, want)
		}
		if !ok && reasonOf(t, err) != ReasonNoSecret {
			t.Fatalf("Verify(sendgrid) with unusable secret %q = %v, want reason %q", secret, err, ReasonNoSecret)
		}
	})
}

// fuzzSchemes are the schemes FuzzVerify signs with, one per preset.
var fuzzSchemes = []schemeTest{
	defaultScheme(),
	githubScheme(),
	stripeScheme(),
	slackScheme(),
	shopifyScheme(),
	gitlabTokenScheme(),
	gitlabSignedScheme(),
	standardScheme("standard-webhooks", standardNames),
	standardScheme("svix", svixNames),
	twilioScheme(),
	timestampedScheme(),
	sendgridScheme(),
}

// fuzzHeaders are every header any scheme reads.
var fuzzHeaders = []string{
	"X-Webhook-Signature", "X-Hub-Signature-256", "X-Hub-Signature", "X-Signature",
	"Stripe-Signature", "X-Slack-Signature", "X-Shopify-Hmac-Sha256", "Shopify-Hmac-Sha256",
	"X-Gitlab-Token", "webhook-signature", "svix-signature", "X-Twilio-Signature",
	"X-Twilio-Email-Event-Webhook-Signature",
}

func FuzzVerify(f *testing.F) {
	f.Add(uint8(0), "sha256=00", "1700000000", "msg_1", []byte(`{"a":1}`))
	f.Add(uint8(2), "t=1700000000,v1=00", "1700000000", "", []byte(""))
	f.Add(uint8(7), "v1,AAAA v1a,BBBB", "1700000000", "msg.1", []byte("a=b"))
	f.Add(uint8(9), "L/OH5YylLD5NRKLltdqwSvS0BnU=", "", "", []byte("To=%2B1&From=x"))
	f.Add(uint8(11), "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=", "1600112502", "", []byte("[]\r\n"))
	f.Fuzz(func(t *testing.T, which uint8, sig, ts, id string, body []byte) {
		st := fuzzSchemes[int(which)%len(fuzzSchemes)]
		now := time.Unix(1700000000, 0)

		// Random headers never verify.
		h := http.Header{}
		for _, name := range fuzzHeaders {
			h.Set(name, sig)
		}
		for _, name := range []string{"X-Slack-Request-Timestamp", "X-Webhook-Timestamp", "webhook-timestamp", "svix-timestamp", "X-Twilio-Email-Event-Webhook-Timestamp"} {
			h.Set(name, ts)
		}
		h.Set("webhook-id", id)
		h.Set("svix-id", id)
		cfg := st.cfg
		cfg.Secrets = fuzzSecret
		r := Request{Header: h, Body: body, URL: twilioTestURL, Now: now}
		if err := Verify(cfg, r); err == nil {
			t.Fatalf("Verify(%q) = nil for random headers %v", cfg.Preset, h)
		}

		// A delivery signed the way the sender signs verifies, and stops
		// verifying when its body changes.
		if st.cfg.Preset == "twilio" {
			if _, err := twilioTestPayload(twilioTestURL, body); err != nil || strings.Count(string(body), "&") >= maxFormParams || strings.Contains(string(body), ";") {
				return
			}
		}
		secret := st.secrets[0]
		cfg.Secrets = [][]byte{secret}
		signed, _ := st.sign(secret, body, now.Unix())
		if err := Verify(cfg, Request{Header: signed, Body: body, URL: twilioTestURL, Now: now}); err != nil {
			t.Fatalf("Verify(%q) of a signed body %q = %v, want nil", cfg.Preset, body, err)
		}
		if st.bodyUnsigned {
			return
		}
		changed := append(slices.Clone(body), '!')
		if st.cfg.Preset == "twilio" {
			// Twilio signs the set of parameters: "a=1&a=1" and "a=1"
			// sign alike, so only a change to that set must fail.
			before, _ := twilioTestPayload(twilioTestURL, body)
			after, err := twilioTestPayload(twilioTestURL, changed)
			if err != nil || before == after {
				return
			}
		}
		if err := Verify(cfg, Request{Header: signed, Body: changed, URL: twilioTestURL, Now: now}); err == nil {
			t.Fatalf("Verify(%q) of a changed body %q = nil, want an error", cfg.Preset, changed)
		}
	})
}
