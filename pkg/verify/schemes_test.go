package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// This file signs requests the way each sender does, written from the
// senders' documentation independently of the package code, and builds the
// table cases every scheme shares.

// testNow is the clock of every table case.
var testNow = time.Unix(1700000000, 0)

// mac returns HMAC-h(key, concatenation of msg).
func mac(h func() hash.Hash, key []byte, msg ...string) []byte {
	m := hmac.New(h, key)
	for _, s := range msg {
		m.Write([]byte(s))
	}
	return m.Sum(nil)
}

// standardTestKey decodes a whsec_ secret as the Standard Webhooks spec says.
func standardTestKey(secret []byte) []byte {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(string(secret), "whsec_"))
	if err != nil {
		panic(fmt.Sprintf("test secret %q is not whsec_<base64>", secret))
	}
	return key
}

// twilioTestPayload returns what Twilio signs for a form body posted to
// rawURL: the URL, then every name+value sorted by name and value.
func twilioTestPayload(rawURL string, body []byte) (string, error) {
	q, err := url.ParseQuery(string(body))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(rawURL)
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		values := slices.Clone(q[name])
		slices.Sort(values)
		for _, v := range slices.Compact(values) {
			b.WriteString(name)
			b.WriteString(v)
		}
	}
	return b.String(), nil
}

// schemeTest describes one scheme for the shared cases.
type schemeTest struct {
	// cfg is the configuration without secrets.
	cfg Config
	// secrets are the current, previous and a wrong secret.
	secrets [3][]byte
	url     string
	body    []byte
	// sign returns the headers a sender would send and the raw MACs in
	// them (nil for a plain token).
	sign func(secret, body []byte, ts int64) (http.Header, [][]byte)
	// sigHeaders are every header carrying a signature.
	sigHeaders []string
	// malformed is an unparseable signature header value, "" when the
	// scheme has none.
	malformed string
	// timestamped says whether the scheme signs a timestamp.
	timestamped bool
	// bodyUnsigned says the signature does not cover the body (a token).
	bodyUnsigned bool
}

var (
	secretCurrent  = []byte("current-secret-8f742231b10e8888")
	secretPrevious = []byte("previous-secret-2f5a6b7c8d9e0a1b")
	secretWrong    = []byte("wrong-secret-000000000000000000")

	whsecCurrent  = []byte("whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xa1}, 32)))
	whsecPrevious = []byte("whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xb2}, 32)))
	whsecWrong    = []byte("whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xc3}, 32)))

	plainSecrets = [3][]byte{secretCurrent, secretPrevious, secretWrong}
	whsecSecrets = [3][]byte{whsecCurrent, whsecPrevious, whsecWrong}
)

const jsonBody = `{"id":"evt_1","event_id":"Ev1","type":"test","data":{"n":1}}`

func defaultScheme() schemeTest {
	return schemeTest{
		secrets: plainSecrets,
		body:    []byte(jsonBody),
		sign: func(secret, body []byte, _ int64) (http.Header, [][]byte) {
			m := mac(sha256.New, secret, string(body))
			h := http.Header{}
			h.Set("X-Webhook-Signature", "sha256="+hex.EncodeToString(m))
			return h, [][]byte{m}
		},
		sigHeaders: []string{"X-Webhook-Signature"},
		malformed:  "sha256=not-hex",
	}
}

func githubScheme() schemeTest {
	return schemeTest{
		cfg:     Config{Preset: "github"},
		secrets: plainSecrets,
		body:    []byte(jsonBody),
		sign: func(secret, body []byte, _ int64) (http.Header, [][]byte) {
			m256 := mac(sha256.New, secret, string(body))
			m1 := mac(sha1.New, secret, string(body))
			h := http.Header{}
			h.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m256))
			h.Set("X-Hub-Signature", "sha1="+hex.EncodeToString(m1))
			return h, [][]byte{m256, m1}
		},
		sigHeaders: []string{"X-Hub-Signature-256", "X-Hub-Signature"},
		malformed:  "sha256=abc",
	}
}

func stripeScheme() schemeTest {
	return schemeTest{
		cfg:     Config{Preset: "stripe"},
		secrets: [3][]byte{[]byte("whsec_test_secret"), []byte("whsec_previous_secret"), []byte("whsec_wrong_secret")},
		body:    []byte(jsonBody),
		sign: func(secret, body []byte, ts int64) (http.Header, [][]byte) {
			t := strconv.FormatInt(ts, 10)
			m := mac(sha256.New, secret, t, ".", string(body))
			h := http.Header{}
			h.Set("Stripe-Signature", "t="+t+",v1="+hex.EncodeToString(m))
			return h, [][]byte{m}
		},
		sigHeaders:  []string{"Stripe-Signature"},
		malformed:   "t=1700000000;v1=abc",
		timestamped: true,
	}
}

func slackScheme() schemeTest {
	return schemeTest{
		cfg:     Config{Preset: "slack"},
		secrets: plainSecrets,
		body:    []byte("token=xyz&team_id=T1&command=%2Fdeploy&text=now"),
		sign: func(secret, body []byte, ts int64) (http.Header, [][]byte) {
			t := strconv.FormatInt(ts, 10)
			m := mac(sha256.New, secret, "v0:", t, ":", string(body))
			h := http.Header{}
			h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(m))
			h.Set("X-Slack-Request-Timestamp", t)
			return h, [][]byte{m}
		},
		sigHeaders:  []string{"X-Slack-Signature"},
		malformed:   "v0:abc",
		timestamped: true,
	}
}

func shopifyScheme() schemeTest {
	return schemeTest{
		cfg:     Config{Preset: "shopify"},
		secrets: plainSecrets,
		body:    []byte(jsonBody),
		sign: func(secret, body []byte, _ int64) (http.Header, [][]byte) {
			m := mac(sha256.New, secret, string(body))
			h := http.Header{}
			h.Set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(m))
			return h, [][]byte{m}
		},
		sigHeaders: []string{"X-Shopify-Hmac-Sha256"},
		malformed:  "sha256=" + strings.Repeat("ab", 32),
	}
}

func gitlabTokenScheme() schemeTest {
	return schemeTest{
		cfg:     Config{Preset: "gitlab"},
		secrets: plainSecrets,
		body:    []byte(`{"object_kind":"push"}`),
		sign: func(secret, _ []byte, ts int64) (http.Header, [][]byte) {
			h := http.Header{}
			h.Set("X-Gitlab-Token", string(secret))
			// GitLab sends these on every delivery, signed or not.
			h.Set("webhook-id", "2b5d6a1e-2f53-4c6e-9d0a-7c1f3c2b1a00")
			h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
			return h, nil
		},
		sigHeaders:   []string{"X-Gitlab-Token"},
		bodyUnsigned: true,
	}
}

// standardSign signs like Standard Webhooks with the given header names.
func standardSign(names headerNames) func(secret, body []byte, ts int64) (http.Header, [][]byte) {
	return func(secret, body []byte, ts int64) (http.Header, [][]byte) {
		id := "msg_2b5d6a1e2f534c6e"
		t := strconv.FormatInt(ts, 10)
		m := mac(sha256.New, standardTestKey(secret), id, ".", t, ".", string(body))
		h := http.Header{}
		h.Set(names.id, id)
		h.Set(names.timestamp, t)
		h.Set(names.signature, "v1,"+base64.StdEncoding.EncodeToString(m))
		return h, [][]byte{m}
	}
}

func gitlabSignedScheme() schemeTest {
	return schemeTest{
		cfg:         Config{Preset: "gitlab"},
		secrets:     whsecSecrets,
		body:        []byte(`{"object_kind":"push"}`),
		sign:        standardSign(standardNames),
		sigHeaders:  []string{"webhook-signature"},
		malformed:   "v1;abc",
		timestamped: true,
	}
}

func standardScheme(preset string, names headerNames) schemeTest {
	return schemeTest{
		cfg:         Config{Preset: preset},
		secrets:     whsecSecrets,
		body:        []byte(jsonBody),
		sign:        standardSign(names),
		sigHeaders:  []string{names.signature},
		malformed:   "v1 " + strings.Repeat("A", 44),
		timestamped: true,
	}
}

const twilioTestURL = "https://inlet.example.com/api/v1/webhooks/whk_abc?source=sms"

func twilioScheme() schemeTest {
	return schemeTest{
		cfg:     Config{Preset: "twilio"},
		secrets: [3][]byte{[]byte("12345abcdef"), []byte("67890abcdef"), []byte("00000abcdef")},
		url:     twilioTestURL,
		body:    []byte("To=%2B18005551212&From=%2B14158675310&Body=Hello+world%21&CallSid=CA1234567890ABCDE&MediaUrl=b&MediaUrl=a"),
		sign: func(secret, body []byte, _ int64) (http.Header, [][]byte) {
			payload, err := twilioTestPayload(twilioTestURL, body)
			if err != nil {
				panic(err)
			}
			m := mac(sha1.New, secret, payload)
			h := http.Header{}
			h.Set("X-Twilio-Signature", base64.StdEncoding.EncodeToString(m))
			h.Set("Content-Type", "application/x-www-form-urlencoded")
			return h, [][]byte{m}
		},
		sigHeaders: []string{"X-Twilio-Signature"},
		malformed:  "not base64 at all",
	}
}

func timestampedScheme() schemeTest {
	return schemeTest{
		cfg:     Config{Preset: "timestamped"},
		secrets: plainSecrets,
		body:    []byte(jsonBody),
		sign: func(secret, body []byte, ts int64) (http.Header, [][]byte) {
			t := strconv.FormatInt(ts, 10)
			m := mac(sha256.New, secret, t, ".", string(body))
			h := http.Header{}
			h.Set("X-Webhook-Signature", "sha256="+hex.EncodeToString(m))
			h.Set("X-Webhook-Timestamp", t)
			h.Set("X-Webhook-ID", "dlv_1")
			return h, [][]byte{m}
		},
		sigHeaders:  []string{"X-Webhook-Signature"},
		malformed:   "sha256=" + strings.Repeat("zz", 32),
		timestamped: true,
	}
}

// sendgridTestKeys returns three P-256 keys made from fixed scalars, and
// their verification keys as SendGrid shows them: the base64 of the DER
// SubjectPublicKeyInfo.
func sendgridTestKeys() (priv [3]*ecdsa.PrivateKey, pub [3][]byte) {
	for i, d := range []byte{0x1a, 0x2b, 0x3c} {
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), bytes.Repeat([]byte{d}, 32))
		if err != nil {
			panic(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			panic(err)
		}
		priv[i], pub[i] = k, []byte(base64.StdEncoding.EncodeToString(der))
	}
	return priv, pub
}

// sendgridTestSign signs the way SendGrid's Event Webhook does: ECDSA over
// the SHA-256 of the timestamp followed by the body, DER-encoded.
func sendgridTestSign(k *ecdsa.PrivateKey, ts string, body []byte) []byte {
	digest := sha256.Sum256(append([]byte(ts), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
	if err != nil {
		panic(err)
	}
	return sig
}

// sendgridTestBody is an Event Webhook body: a JSON array of events, with
// the CRLF SendGrid ends it with.
const sendgridTestBody = `[{"email":"alex@example.com","event":"delivered","sg_event_id":"ZGVsaXZlcmVkLTAtMQ","sg_message_id":"7YqXNsfnRdKwA_3J8kVm2A.0","timestamp":1700000000}]` + "\r\n"

func sendgridScheme() schemeTest {
	priv, pub := sendgridTestKeys()
	keys := make(map[string]*ecdsa.PrivateKey, len(pub))
	for i := range pub {
		keys[string(pub[i])] = priv[i]
	}
	return schemeTest{
		cfg:     Config{Preset: "sendgrid"},
		secrets: pub,
		body:    []byte(sendgridTestBody),
		sign: func(secret, body []byte, ts int64) (http.Header, [][]byte) {
			t := strconv.FormatInt(ts, 10)
			sig := sendgridTestSign(keys[string(secret)], t, body)
			h := http.Header{}
			h.Set("X-Twilio-Email-Event-Webhook-Signature", base64.StdEncoding.EncodeToString(sig))
			h.Set("X-Twilio-Email-Event-Webhook-Timestamp", t)
			return h, [][]byte{sig}
		},
		sigHeaders:  []string{"X-Twilio-Email-Event-Webhook-Signature"},
		malformed:   "MEUCIQ is not base64",
		timestamped: true,
	}
}

// verifyCase is one row of a scheme's table.
type verifyCase struct {
	name string
	cfg  Config
	req  Request
	// want is the expected reason, "" for success.
	want Reason
	// forbid lists strings the error text must not contain: secrets and
	// signatures.
	forbid []string
}

// builder makes a scheme's cases and remembers every secret and signature
// they involve.
type builder struct {
	st     schemeTest
	forbid []string
}

func newBuilder(st schemeTest) *builder {
	b := &builder{st: st}
	for _, s := range st.secrets {
		b.forbid = append(b.forbid, string(s), strings.TrimPrefix(string(s), "whsec_"))
	}
	return b
}

// sign signs body at ts with secret and records the signatures.
func (b *builder) sign(secret, body []byte, ts int64) http.Header {
	h, macs := b.st.sign(secret, body, ts)
	for _, m := range macs {
		b.record(m)
	}
	return h
}

// record adds the encodings of a MAC to the forbidden strings.
func (b *builder) record(m []byte) {
	b.forbid = append(b.forbid,
		hex.EncodeToString(m),
		strings.ToUpper(hex.EncodeToString(m)),
		base64.StdEncoding.EncodeToString(m),
		base64.RawURLEncoding.EncodeToString(m),
	)
}

func (b *builder) cfg(secrets ...[]byte) Config {
	c := b.st.cfg
	c.Secrets = secrets
	return c
}

func (b *builder) req(h http.Header, body []byte) Request {
	return Request{Header: h, Body: body, URL: b.st.url, Now: testNow}
}

// valid returns a request signed with the current secret now.
func (b *builder) valid() Request {
	return b.req(b.sign(b.st.secrets[0], b.st.body, testNow.Unix()), b.st.body)
}

// with returns a valid request with header name set to value.
func (b *builder) with(name, value string) Request {
	r := b.valid()
	r.Header.(http.Header).Set(name, value)
	return r
}

// without returns a valid request without the named headers.
func (b *builder) without(names ...string) Request {
	r := b.valid()
	for _, name := range names {
		r.Header.(http.Header).Del(name)
	}
	return r
}

// common returns the cases every scheme shares.
func (b *builder) common() []verifyCase {
	st := b.st
	cur, prev, wrong := st.secrets[0], st.secrets[1], st.secrets[2]
	now := testNow.Unix()
	tampered := append(slices.Clone(st.body), 'x')
	cases := []verifyCase{
		{name: "valid", cfg: b.cfg(cur), req: b.valid()},
		{name: "previous secret during rotation", cfg: b.cfg(cur, prev), req: b.req(b.sign(prev, st.body, now), st.body)},
		{name: "current secret listed second", cfg: b.cfg(prev, cur), req: b.valid()},
		{name: "empty secret skipped", cfg: b.cfg(nil, cur), req: b.valid()},
		{name: "wrong secret", cfg: b.cfg(cur), req: b.req(b.sign(wrong, st.body, now), st.body), want: ReasonMismatch},
		{name: "retired secret", cfg: b.cfg(cur), req: b.req(b.sign(prev, st.body, now), st.body), want: ReasonMismatch},
		{name: "missing header", cfg: b.cfg(cur), req: b.without(st.sigHeaders...), want: ReasonMissing},
		{name: "no headers at all", cfg: b.cfg(cur), req: Request{Body: st.body, URL: st.url, Now: testNow}, want: ReasonMissing},
		{name: "no secrets fails closed", cfg: b.cfg(), req: b.valid(), want: ReasonNoSecret},
		{name: "only empty secrets fail closed", cfg: b.cfg([]byte{}, nil), req: b.valid(), want: ReasonNoSecret},
		{name: "unknown preset fails closed", cfg: Config{Preset: st.cfg.Preset + "-nope", Secrets: [][]byte{cur}}, req: b.valid(), want: ReasonUnknownPreset},
	}
	if !st.bodyUnsigned {
		b.sign(cur, tampered, now) // the signature the tampered body would need
		cases = append(cases, verifyCase{name: "tampered body", cfg: b.cfg(cur), req: b.req(b.sign(cur, st.body, now), tampered), want: ReasonMismatch})
		cases = append(cases, verifyCase{name: "empty body", cfg: b.cfg(cur), req: b.req(b.sign(cur, st.body, now), nil), want: ReasonMismatch})
	}
	if st.malformed != "" {
		r := b.without(st.sigHeaders[1:]...)
		r.Header.(http.Header).Set(st.sigHeaders[0], st.malformed)
		cases = append(cases, verifyCase{name: "malformed header", cfg: b.cfg(cur), req: r, want: ReasonMalformed})
	}
	if st.timestamped {
		tol := int64(defaultTolerance / time.Second)
		at := func(ts int64) Request { return b.req(b.sign(cur, st.body, ts), st.body) }
		short := b.cfg(cur)
		short.Tolerance = 10 * time.Second
		cases = append(cases,
			verifyCase{name: "stale timestamp", cfg: b.cfg(cur), req: at(now - tol - 10), want: ReasonStale},
			verifyCase{name: "future timestamp", cfg: b.cfg(cur), req: at(now + tol + 10), want: ReasonFuture},
			verifyCase{name: "old but within tolerance", cfg: b.cfg(cur), req: at(now - tol)},
			verifyCase{name: "ahead but within tolerance", cfg: b.cfg(cur), req: at(now + tol)},
			verifyCase{name: "stale under a shorter tolerance", cfg: short, req: at(now - 30), want: ReasonStale},
			verifyCase{name: "fresh under a shorter tolerance", cfg: short, req: at(now - 5)},
			verifyCase{name: "stale with the wrong secret is a mismatch", cfg: b.cfg(cur), req: b.req(b.sign(wrong, st.body, now-3600), st.body), want: ReasonMismatch},
		)
	}
	return cases
}

// finish gives every case the forbidden strings gathered so far.
func (b *builder) finish(cases []verifyCase) []verifyCase {
	for i := range cases {
		cases[i].forbid = b.forbid
	}
	return cases
}

// reasonOf returns err's reason, "" for nil.
func reasonOf(t *testing.T, err error) Reason {
	t.Helper()
	if err == nil {
		return ""
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Verify() error %v is a %T, want *verify.Error", err, err)
	}
	return e.Reason
}

// runCases runs a scheme's table.
func runCases(t *testing.T, cases []verifyCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.cfg, tt.req)
			if got := reasonOf(t, err); got != tt.want {
				t.Errorf("Verify() = %v (reason %q), want reason %q", err, got, tt.want)
			}
			if err != nil && err.Error() == "" {
				t.Errorf("Verify() error has an empty detail")
			}
		})
	}
}
