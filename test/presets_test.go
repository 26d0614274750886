package test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/pkg/config"
)

// publicURL is the base URL the preset tests give their gateway, so that
// Twilio signatures, which cover the URL, can be made before posting.
const publicURL = "https://hooks.example.com"

// withPublicURL sets the gateway's public base URL to publicURL.
func withPublicURL(c *config.Config) { c.PublicURL = publicURL }

// recording is a recorded request of a sender: its raw body and the headers
// the sender sends besides its signature.
type recording struct {
	body   []byte
	header map[string]string
}

// loadRecording reads testdata/deliveries/<name> and the headers beside it,
// <name without extension>.headers.json.
func loadRecording(t testing.TB, name string) recording {
	t.Helper()
	path := filepath.Join("testdata", "deliveries", filepath.FromSlash(name))
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(strings.TrimSuffix(path, filepath.Ext(path)) + ".headers.json")
	if err != nil {
		t.Fatal(err)
	}
	d := recording{body: body}
	if err := json.Unmarshal(raw, &d.header); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

// get returns the header name of d, matched case-insensitively.
func (d recording) get(name string) string {
	for k, v := range d.header {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// replace returns a copy of d with old replaced by new in the body and in
// every header value: a sample's delivery id becomes a fresh one.
func (d recording) replace(old, new string) recording {
	out := recording{body: bytes.ReplaceAll(d.body, []byte(old), []byte(new)), header: map[string]string{}}
	for k, v := range d.header {
		out.header[k] = strings.ReplaceAll(v, old, new)
	}
	return out
}

// signed returns d's headers plus sig.
func (d recording) signed(sig map[string]string) map[string]string {
	h := make(map[string]string, len(d.header)+len(sig))
	for k, v := range d.header {
		h[k] = v
	}
	for k, v := range sig {
		h[k] = v
	}
	return h
}

// tamper changes the body's first digit, as an attacker changing an amount
// or an id would.
func tamper(body []byte) []byte {
	b := slices.Clone(body)
	for i, c := range b {
		if c >= '0' && c <= '9' {
			b[i] = '1' + (c-'0')%9
			if b[i] == c {
				b[i]++
			}
			return b
		}
	}
	return append(b, ' ')
}

// signer makes the signature headers a sender adds to d: with secret, at
// time at, for a delivery posted to rawURL (only Twilio signs the URL).
type signer func(secret string, d recording, at time.Time, rawURL string) map[string]string

func hmacOf(h func() hash.Hash, key []byte, parts ...[]byte) []byte {
	m := hmac.New(h, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func unixString(at time.Time) string { return strconv.FormatInt(at.Unix(), 10) }

// signGitHub sends both of GitHub's headers, as GitHub does when the
// webhook has a secret.
// Source: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
func signGitHub(secret string, d recording, _ time.Time, _ string) map[string]string {
	return map[string]string{
		"X-Hub-Signature-256": "sha256=" + hex.EncodeToString(hmacOf(sha256.New, []byte(secret), d.body)),
		"X-Hub-Signature":     "sha1=" + hex.EncodeToString(hmacOf(sha1.New, []byte(secret), d.body)),
	}
}

// signDefault is inlet's default scheme as a CI script makes it.
func signDefault(secret string, d recording, _ time.Time, _ string) map[string]string {
	return map[string]string{"X-Webhook-Signature": "sha256=" + hex.EncodeToString(hmacOf(sha256.New, []byte(secret), d.body))}
}

// signTimestamped is inlet's timestamped scheme.
func signTimestamped(secret string, d recording, at time.Time, _ string) map[string]string {
	ts := unixString(at)
	return map[string]string{
		"X-Webhook-Timestamp": ts,
		"X-Webhook-Signature": "sha256=" + hex.EncodeToString(hmacOf(sha256.New, []byte(secret), []byte(ts+"."), d.body)),
	}
}

// signStripe: Stripe-Signature t=<unix>,v1=<hex HMAC-SHA256 of "t.body">,
// keyed with the whsec_ secret as it is.
// Source: stripe/stripe-go webhook/client.go (ComputeSignature).
func signStripe(secret string, d recording, at time.Time, _ string) map[string]string {
	ts := unixString(at)
	return map[string]string{"Stripe-Signature": "t=" + ts + ",v1=" + hex.EncodeToString(hmacOf(sha256.New, []byte(secret), []byte(ts+"."), d.body))}
}

// signSlack: X-Slack-Signature v0=<hex HMAC-SHA256 of "v0:ts:body">.
// Source: https://api.slack.com/authentication/verifying-requests-from-slack
func signSlack(secret string, d recording, at time.Time, _ string) map[string]string {
	ts := unixString(at)
	return map[string]string{
		"X-Slack-Request-Timestamp": ts,
		"X-Slack-Signature":         "v0=" + hex.EncodeToString(hmacOf(sha256.New, []byte(secret), []byte("v0:"+ts+":"), d.body)),
	}
}

// signShopify: X-Shopify-Hmac-Sha256, base64 HMAC-SHA256 of the body.
// Source: https://shopify.dev/docs/apps/build/webhooks/verify-deliveries
func signShopify(secret string, d recording, _ time.Time, _ string) map[string]string {
	return map[string]string{"X-Shopify-Hmac-Sha256": base64.StdEncoding.EncodeToString(hmacOf(sha256.New, []byte(secret), d.body))}
}

// signGitLabToken: GitLab sends the secret token itself.
func signGitLabToken(secret string, _ recording, _ time.Time, _ string) map[string]string {
	return map[string]string{"X-Gitlab-Token": secret}
}

// standardSigner makes Standard Webhooks signatures with headers named
// prefix+"id", "timestamp" and "signature"; the id comes from the delivery.
// Source: Standard Webhooks spec/standard-webhooks.md.
func standardSigner(prefix string) signer {
	return func(secret string, d recording, at time.Time, _ string) map[string]string {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if err != nil {
			panic("standard webhooks secret is not whsec_<base64>: " + err.Error())
		}
		ts := unixString(at)
		id := d.get(prefix + "id")
		sig := base64.StdEncoding.EncodeToString(hmacOf(sha256.New, key, []byte(id+"."+ts+"."), d.body))
		return map[string]string{prefix + "timestamp": ts, prefix + "signature": "v1," + sig}
	}
}

// signTwilio: X-Twilio-Signature, base64 HMAC-SHA1 of the URL followed by
// the form fields sorted by name, each as name+value.
// Source: https://www.twilio.com/docs/usage/security
func signTwilio(token string, d recording, _ time.Time, rawURL string) map[string]string {
	return map[string]string{"X-Twilio-Signature": twilioSignature(token, rawURL, d.body)}
}

func twilioSignature(token, rawURL string, form []byte) string {
	values, err := url.ParseQuery(string(form))
	if err != nil {
		panic("twilio delivery is not a form: " + err.Error())
	}
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	s := rawURL
	for _, name := range names {
		vs := slices.Clone(values[name])
		slices.Sort(vs)
		for _, v := range vs {
			s += name + v
		}
	}
	return base64.StdEncoding.EncodeToString(hmacOf(sha1.New, []byte(token), []byte(s)))
}

// randomHex returns n random bytes in hex. It and the functions below make
// secrets in each sender's format.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func plainSecret() string  { return "s3cr3t-" + randomHex(16) }
func stripeSecret() string { return "whsec_" + randomHex(16) }
func standardSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// presetSender is one preset and a recorded delivery of the sender that uses it.
type presetSender struct {
	name string
	ref  string
	// create, when set, is the webhook block of a trigger created with
	// POST /api/v1/triggers; otherwise the trigger comes from packs/.
	create map[string]any
	preset string
	// delivery is the recorded delivery under testdata/deliveries.
	delivery string
	// id is the sample's delivery id, replaced to make fresh deliveries.
	id        string
	secret    func() string
	sign      signer
	signsBody bool
	// timestamped schemes also get the stale, future and tolerance cases.
	timestamped bool
	// missing lists header sets whose absence must fail.
	missing [][]string
}

var presetSenders = []presetSender{
	{
		name: "github", ref: "github.push", preset: "github", delivery: "github/push.json",
		id: "5f0c2b9e-c1a4-11f0-8d2e-3a8b6f4e9c17", secret: plainSecret, sign: signGitHub, signsBody: true,
		missing: [][]string{{"X-Hub-Signature-256", "X-Hub-Signature"}},
	},
	{
		name: "stripe", ref: "stripe.payment_succeeded", preset: "stripe", delivery: "stripe/payment_intent.succeeded.json",
		id: "evt_3QKp7rLk2sVb9XzA1c4dEf6G", secret: stripeSecret, sign: signStripe, signsBody: true, timestamped: true,
		missing: [][]string{{"Stripe-Signature"}},
	},
	{
		name: "slack", ref: "slack.event", preset: "slack", delivery: "slack/event_callback.json",
		id: "Ev07QRST7890", secret: func() string { return randomHex(16) }, sign: signSlack, signsBody: true, timestamped: true,
		missing: [][]string{{"X-Slack-Signature"}, {"X-Slack-Request-Timestamp"}},
	},
	{
		name: "shopify", ref: "shopify.orders_create", preset: "shopify", delivery: "shopify/orders_create.json",
		id: "98880550-7158-44d4-b7cd-2c97c8a091b5", secret: func() string { return "shpss_" + randomHex(16) }, sign: signShopify, signsBody: true,
		missing: [][]string{{"X-Shopify-Hmac-Sha256"}},
	},
	{
		name: "gitlab token", ref: "gitlab.push", preset: "gitlab", delivery: "gitlab/push.json",
		id: "f2b4c6d8-e0a2-4b4c-9d6e-8f0a2b4c6d8e", secret: plainSecret, sign: signGitLabToken,
		missing: [][]string{{"X-Gitlab-Token"}},
	},
	{
		name: "gitlab signing token", ref: "gitlab.signed_push", preset: "gitlab", delivery: "gitlab/push-signed.json",
		create: map[string]any{"hmac": map[string]any{"enabled": false, "preset": "gitlab"}},
		id:     "6e8f0a2c-4e6a-4c8e-a0b2-c4d6e8f0a2b4", secret: standardSecret, sign: standardSigner("webhook-"), signsBody: true, timestamped: true,
		missing: [][]string{{"webhook-signature"}, {"webhook-timestamp"}, {"webhook-id"}},
	},
	{
		name: "standard-webhooks", ref: "standard-webhooks.message", preset: "standard-webhooks", delivery: "standard-webhooks/invoice.paid.json",
		id: "msg_2oZkR4Xb7cN9pQ1sT3vW5yA8dF", secret: standardSecret, sign: standardSigner("webhook-"), signsBody: true, timestamped: true,
		missing: [][]string{{"webhook-signature"}, {"webhook-timestamp"}, {"webhook-id"}},
	},
	{
		name: "svix", ref: "svix.message", preset: "svix", delivery: "standard-webhooks/svix.json",
		create: map[string]any{"hmac": map[string]any{"enabled": false, "preset": "svix"}},
		id:     "msg_2oZkT8Yc1dP3qR5uV7xZ9bC2eG", secret: standardSecret, sign: standardSigner("svix-"), signsBody: true, timestamped: true,
		missing: [][]string{{"svix-signature"}, {"svix-timestamp"}, {"svix-id"}},
	},
	{
		name: "twilio", ref: "twilio.sms_received", preset: "twilio", delivery: "twilio/sms_received.form",
		id: "SM5f8e2a1c9b7d4e6f8a0b2c4d6e8f0a1b", secret: func() string { return randomHex(16) }, sign: signTwilio, signsBody: true,
		missing: [][]string{{"X-Twilio-Signature"}},
	},
	{
		name: "timestamped", ref: "ci.timestamped", preset: "timestamped", delivery: "ci/deployment.json",
		create: map[string]any{"hmac": map[string]any{"enabled": false, "preset": "timestamped"}},
		id:     "pipeline-8812-deploy", secret: plainSecret, sign: signTimestamped, signsBody: true, timestamped: true,
		missing: [][]string{{"X-Webhook-Signature"}, {"X-Webhook-Timestamp"}},
	},
	{
		name: "default hmac", ref: "ci.signed", preset: "", delivery: "ci/deployment.json",
		create: map[string]any{"hmac": map[string]any{"enabled": false}},
		id:     "pipeline-8812-deploy", secret: plainSecret, sign: signDefault, signsBody: true,
		missing: [][]string{{"X-Webhook-Signature"}},
	},
}

// hookCall is one request from a subtest to the shared gateway. Unlike
// env's helpers it fails the subtest, not the test that made the env.
func hookCall(t *testing.T, e *env, method, path string, body []byte, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, body: b}
	_ = json.Unmarshal(b, &r.json)
	return r
}

// manageAPI calls the management API and fails t unless it answers want.
func manageAPI(t *testing.T, e *env, want int, method, path string, body any) map[string]any {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		b = nil
	}
	r := hookCall(t, e, method, path, b, map[string]string{"Authorization": "Bearer " + e.token, "Content-Type": "application/json"})
	if r.status != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, r.status, r.body, want)
	}
	return r.json
}

// hook drives one trigger's webhook from one (sub)test.
type hook struct {
	t    *testing.T
	e    *env
	ref  string
	key  string
	sent time.Time // when the last webhook was sent, for lastAudit
}

// with returns h reporting to t, for use inside a subtest.
func (h *hook) with(t *testing.T) *hook {
	c := *h
	c.t = t
	return &c
}

func newHook(t *testing.T, e *env, ref string) *hook {
	t.Helper()
	data := manageAPI(t, e, 200, "POST", "/api/v1/triggers/"+ref+"/webhooks/enable", nil)["data"].(map[string]any)
	return &hook{t: t, e: e, ref: ref, key: data["webhook_key"].(string)}
}

// url is the public URL a sender posts to.
func (h *hook) url() string { return publicURL + "/api/v1/webhooks/" + h.key }

func (h *hook) post(body []byte, header map[string]string) response {
	h.t.Helper()
	h.sent = time.Now()
	return hookCall(h.t, h.e, "POST", "/api/v1/webhooks/"+h.key, body, header)
}

func (h *hook) patch(body any) map[string]any {
	h.t.Helper()
	return manageAPI(h.t, h.e, 200, "PATCH", "/api/v1/triggers/"+h.ref+"/webhooks", body)["data"].(map[string]any)
}

func (h *hook) settings() map[string]any {
	h.t.Helper()
	data := manageAPI(h.t, h.e, 200, "GET", "/api/v1/triggers/"+h.ref+"/webhooks", nil)["data"].(map[string]any)
	return data["settings"].(map[string]any)
}

// lastAudit returns the audit row of the last request to the trigger.
func (h *hook) lastAudit() (outcome string, status int, detail string) {
	h.t.Helper()
	var row struct {
		Outcome string `db:"outcome"`
		Status  int    `db:"status"`
		Detail  string `db:"detail"`
	}
	h.e.waitAudit(h.t, h.sent, &row, `SELECT outcome, status, detail FROM audit_log WHERE received_at >= $1 AND trigger_ref = $2
		ORDER BY received_at DESC, id DESC LIMIT 1`, h.ref)
	return row.Outcome, row.Status, row.Detail
}

func (h *hook) events() int {
	h.t.Helper()
	var n int
	if err := h.e.db.Get(&n, `SELECT count(*) FROM events WHERE trigger_ref = $1`, h.ref); err != nil {
		h.t.Fatal(err)
	}
	return n
}

// messages counts the stream's messages on the trigger's subject.
func (h *hook) messages() int {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	subject := h.e.cfg.SubjectPrefix + "." + h.ref
	s, err := h.e.js.Stream(ctx, h.e.cfg.Stream)
	if err != nil {
		return 0 // not created yet: nothing published
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		h.t.Fatalf("stream info: %v", err)
	}
	return int(info.State.Subjects[subject])
}

// settled waits until every event of the trigger is published, then
// checks that the stream holds exactly one message per stored event.
func (h *hook) settled(wantEvents int) {
	h.t.Helper()
	eventually(h.t, 10*time.Second, "every event of "+h.ref+" published", func() bool {
		var n int
		h.e.db.Get(&n, `SELECT count(*) FROM events e, publish_position p WHERE (e.xid, e.seq) > (p.xid, p.seq) AND e.trigger_ref = $1`, h.ref)
		return n == 0
	})
	if got := h.events(); got != wantEvents {
		h.t.Errorf("%s has %d events, want %d", h.ref, got, wantEvents)
	}
	var got int
	eventually(h.t, 5*time.Second, "one message per event", func() bool { got = h.messages(); return got >= wantEvents })
	if got != wantEvents {
		h.t.Errorf("stream has %d messages for %s, want %d (one per event)", got, h.ref, wantEvents)
	}
}

// expect checks an answer's status and the audit row it left.
func (h *hook) expect(r response, status int, outcome string) {
	h.t.Helper()
	if r.status != status {
		h.t.Fatalf("status = %d %s, want %d (%s)", r.status, r.body, status, outcome)
	}
	if got, st, _ := h.lastAudit(); got != outcome || st != status {
		h.t.Errorf("audit = %s/%d, want %s/%d", got, st, outcome, status)
	}
	if status >= 400 {
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			h.t.Errorf("Content-Type = %q, want application/problem+json", ct)
		}
		if r.json["code"] != outcome {
			h.t.Errorf("problem code = %v, want %s: %s", r.json["code"], outcome, r.body)
		}
	}
}

// accepted checks a 200 for a new event and returns its id.
func (h *hook) accepted(r response) string {
	h.t.Helper()
	h.expect(r, 200, "accepted")
	data, _ := r.json["data"].(map[string]any)
	id, _ := data["event_id"].(string)
	if !strings.HasPrefix(id, "evt_") || data["duplicate"] != false || data["trigger_ref"] != h.ref {
		h.t.Errorf("answer = %s, want a new evt_ event of %s with duplicate false", r.body, h.ref)
	}
	return id
}

// duplicate checks a 200 that names the event first stored as id.
func (h *hook) duplicate(r response, id string) {
	h.t.Helper()
	h.expect(r, 200, "duplicate")
	data, _ := r.json["data"].(map[string]any)
	if data["event_id"] != id || data["duplicate"] != true {
		h.t.Errorf("answer = %s, want event %s with duplicate true", r.body, id)
	}
}

// rejected checks a 401 whose detail contains want and no secret.
func (h *hook) rejected(r response, want string, secrets ...string) {
	h.t.Helper()
	h.expect(r, 401, "bad_signature")
	detail, _ := r.json["detail"].(string)
	if !strings.Contains(detail, want) {
		h.t.Errorf("detail = %q, want it to say %q", detail, want)
	}
	if _, _, audited := h.lastAudit(); audited != detail {
		h.t.Errorf("audit detail = %q, want the answer's %q", audited, detail)
	}
	for _, s := range secrets {
		if strings.Contains(string(r.body), s) {
			h.t.Errorf("answer reveals a secret: %s", r.body)
		}
	}
}

// TestPresetSenders runs every signature preset through the same matrix on
// one gateway, each sender on its own trigger and in parallel: missing
// secret, valid, tampered, wrong secret, missing headers, stale and future
// timestamps and the tolerance setting, duplicates (sequential and 20 at
// once), secret rotation inside and after the grace period, and a content
// type that is not accepted. At the end every stored event is on the
// stream exactly once.
func TestPresetSenders(t *testing.T) {
	e := newEnv(t, withPublicURL)
	for _, s := range presetSenders {
		if s.create != nil {
			webhook := map[string]any{"enabled": true}
			for k, v := range s.create {
				webhook[k] = v
			}
			e.mustAdmin(201, "POST", "/api/v1/triggers", map[string]any{"ref": s.ref, "webhook": webhook})
		}
	}
	for _, s := range presetSenders {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			runSender(t, e, s)
		})
	}
}

func runSender(t *testing.T, e *env, s presetSender) {
	h := newHook(t, e, s.ref)
	sample := loadRecording(t, s.delivery)
	n := 0
	// fresh returns the sample as a new delivery, with an id never sent.
	fresh := func() recording {
		n++
		return sample.replace(s.id, fmt.Sprintf("%s-%d", s.id, n))
	}
	// send signs d as the sender would and posts it.
	send := func(h *hook, d recording, secret string, at time.Time) response {
		h.t.Helper()
		return h.post(d.body, d.signed(s.sign(secret, d, at, h.url())))
	}
	stored := 0

	st := h.settings()
	hm := st["hmac"].(map[string]any)
	if hm["preset"] != s.preset {
		t.Errorf("settings.hmac.preset = %v, want %q", hm["preset"], s.preset)
	}
	if s.timestamped && hm["tolerance_seconds"] != float64(300) {
		t.Errorf("settings.hmac.tolerance_seconds = %v, want the default 300", hm["tolerance_seconds"])
	}

	secret := s.secret()
	if s.create == nil {
		// A pack turns HMAC on but cannot hold a secret: until the operator
		// sets one, nothing verifies.
		if hm["enabled"] != true || hm["secret_set"] != false {
			t.Errorf("pack settings.hmac = %v, want enabled without a secret", hm)
		}
		h.rejected(send(h, fresh(), secret, time.Now()), "no signing secret")
	}
	set := h.patch(map[string]any{"hmac": map[string]any{"enabled": true, "secret": secret}})
	if strings.Contains(fmt.Sprint(set), secret) {
		t.Errorf("PATCH answer shows the secret it was given: %v", set)
	}

	t.Run("valid", func(t *testing.T) {
		h := h.with(t)
		d := fresh()
		id := h.accepted(send(h, d, secret, time.Now()))
		stored++
		var did *string
		if err := e.db.Get(&did, `SELECT delivery_id FROM events WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%s-%d", s.id, n); did == nil || *did != want {
			t.Errorf("stored delivery_id = %v, want %q", did, want)
		}
	})
	t.Run("tampered body", func(t *testing.T) {
		h := h.with(t)
		if !s.signsBody {
			t.Skip("the scheme sends a token and signs nothing")
		}
		d := fresh()
		sig := s.sign(secret, d, time.Now(), h.url())
		h.rejected(h.post(tamper(d.body), d.signed(sig)), "does not match", secret)
	})
	t.Run("wrong secret", func(t *testing.T) {
		h := h.with(t)
		h.rejected(send(h, fresh(), s.secret(), time.Now()), "does not match", secret)
	})
	t.Run("missing header", func(t *testing.T) {
		h := h.with(t)
		for _, names := range s.missing {
			d := fresh()
			hdr := d.signed(s.sign(secret, d, time.Now(), h.url()))
			for _, name := range names {
				for k := range hdr {
					if strings.EqualFold(k, name) {
						delete(hdr, k)
					}
				}
			}
			h.rejected(h.post(d.body, hdr), "missing", secret)
		}
	})
	t.Run("timestamps", func(t *testing.T) {
		h := h.with(t)
		if !s.timestamped {
			t.Skip("the scheme signs no timestamp")
		}
		h.rejected(send(h, fresh(), secret, time.Now().Add(-10*time.Minute)), "older than the 300s tolerance")
		h.rejected(send(h, fresh(), secret, time.Now().Add(10*time.Minute)), "in the future")
		// Two minutes late is within the default five minutes...
		h.accepted(send(h, fresh(), secret, time.Now().Add(-2*time.Minute)))
		stored++
		// ...but not within a tolerance of one minute.
		h.patch(map[string]any{"hmac": map[string]any{"tolerance_seconds": 60}})
		h.rejected(send(h, fresh(), secret, time.Now().Add(-2*time.Minute)), "older than the 60s tolerance")
		h.rejected(send(h, fresh(), secret, time.Now().Add(2*time.Minute)), "in the future")
		h.accepted(send(h, fresh(), secret, time.Now()))
		stored++
	})
	t.Run("duplicate", func(t *testing.T) {
		h := h.with(t)
		d := fresh()
		id := h.accepted(send(h, d, secret, time.Now()))
		stored++
		// A retry is signed anew (a new timestamp where the scheme has one).
		h.duplicate(send(h, d, secret, time.Now().Add(time.Second)), id)
		if got := h.events(); got != stored {
			t.Errorf("events = %d after a duplicate, want %d", got, stored)
		}
	})
	t.Run("concurrent duplicates", func(t *testing.T) {
		h := h.with(t)
		d := fresh()
		hdr := d.signed(s.sign(secret, d, time.Now(), h.url()))
		type answer struct {
			status int
			id     string
			dup    any
		}
		answers := make([]answer, 20)
		var wg sync.WaitGroup
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", e.base+"/api/v1/webhooks/"+h.key, bytes.NewReader(d.body))
				for k, v := range hdr {
					req.Header.Set(k, v)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				defer res.Body.Close()
				var body struct {
					Data struct {
						EventID   string `json:"event_id"`
						Duplicate any    `json:"duplicate"`
					} `json:"data"`
				}
				json.NewDecoder(res.Body).Decode(&body)
				answers[i] = answer{res.StatusCode, body.Data.EventID, body.Data.Duplicate}
			}()
		}
		wg.Wait()
		firsts := 0
		for _, a := range answers {
			if a.status != 200 || a.id == "" || a.id != answers[0].id {
				t.Fatalf("20 concurrent copies answered %+v, want 200 and one event id for all", answers)
			}
			if a.dup == false {
				firsts++
			}
		}
		stored++
		if firsts != 1 {
			t.Errorf("%d answers say duplicate false, want exactly 1", firsts)
		}
		if got := h.events(); got != stored {
			t.Errorf("events = %d after 20 concurrent copies, want %d", got, stored)
		}
		if n := e.count(`SELECT count(*) FROM audit_log WHERE event_id = $1 AND outcome = 'duplicate'`, answers[0].id); n != 19 {
			t.Errorf("duplicate audit rows = %d, want 19", n)
		}
	})
	t.Run("rotation", func(t *testing.T) {
		h := h.with(t)
		next := s.secret()
		before := time.Now()
		set := h.patch(map[string]any{"hmac": map[string]any{"secret": next, "rotation_grace_seconds": 3600}})
		exp := previousExpiry(t, set)
		if exp == nil || exp.Before(before.Add(3599*time.Second)) || exp.After(time.Now().Add(3601*time.Second)) {
			t.Fatalf("previous_secret_expires_at = %v, want an hour from now", exp)
		}
		// Inside the grace period both secrets verify.
		old := fresh()
		oldID := h.accepted(send(h, old, secret, time.Now()))
		h.accepted(send(h, fresh(), next, time.Now()))
		stored += 2
		h.rejected(send(h, fresh(), s.secret(), time.Now()), "does not match", secret, next)

		// End the grace period in the database; the gateway hears of it
		// through its change notifications. Until then the old secret's
		// retry is a duplicate, afterwards a 401.
		expired := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
		e.db.MustExec(`UPDATE triggers SET webhook_settings = jsonb_set(webhook_settings, '{hmac,previous_secret_expires_at}', to_jsonb($2::text)) WHERE ref = $1`, s.ref, expired)
		var last response
		eventually(t, 10*time.Second, "the previous secret to stop verifying", func() bool {
			last = send(h, old, secret, time.Now())
			if last.status == 200 {
				h.duplicate(last, oldID)
			}
			return last.status != 200
		})
		h.rejected(last, "does not match", secret, next)
		if exp := previousExpiry(t, h.settings()); exp != nil {
			t.Errorf("previous_secret_expires_at = %v after expiry, want null", exp)
		}
		h.accepted(send(h, fresh(), next, time.Now()))
		stored++
		secret = next
	})
	t.Run("unsupported content type", func(t *testing.T) {
		h := h.with(t)
		d := fresh()
		d.header["Content-Type"] = "text/plain"
		r := send(h, d, secret, time.Now())
		h.expect(r, 415, "invalid_payload")
		if detail, _ := r.json["detail"].(string); !strings.Contains(detail, "text/plain") {
			t.Errorf("detail = %q, want it to name text/plain", detail)
		}
	})
	h.settled(stored)
}

// previousExpiry reads settings.hmac.previous_secret_expires_at from a
// webhook answer's data or from settings themselves.
func previousExpiry(t *testing.T, v map[string]any) *time.Time {
	t.Helper()
	if s, ok := v["settings"].(map[string]any); ok {
		v = s
	}
	raw, _ := v["hmac"].(map[string]any)["previous_secret_expires_at"].(string)
	if raw == "" {
		return nil
	}
	at, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		t.Fatalf("previous_secret_expires_at = %q: %v", raw, err)
	}
	return &at
}

// TestPresetSignersMatchOfficialVectors checks this file's signers against
// the senders' published test vectors, so that the gateway is tested
// against the senders' schemes and not against itself.
func TestPresetSignersMatchOfficialVectors(t *testing.T) {
	at := func(unix int64) time.Time { return time.Unix(unix, 0) }
	tests := []struct {
		name   string
		sign   signer
		secret string
		d      recording
		at     time.Time
		url    string
		header string
		want   string
	}{
		{
			// docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
			name: "github", sign: signGitHub, secret: "It's a Secret to Everybody",
			d:      recording{body: []byte("Hello, World!")},
			header: "X-Hub-Signature-256", want: "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
		},
		{
			// api.slack.com/authentication/verifying-requests-from-slack
			name: "slack", sign: signSlack, secret: "8f742231b10e8888abcd99yyyzzz85a5", at: at(1531420618),
			d:      recording{body: []byte("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")},
			header: "X-Slack-Signature", want: "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
		},
		{
			// standard-webhooks libraries/go/webhook_test.go, TestWebhookSign
			name: "standard webhooks", sign: standardSigner("webhook-"), secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", at: at(1614265330),
			d:      recording{body: []byte(`{"test": 2432232314}`), header: map[string]string{"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek"}},
			header: "webhook-signature", want: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
		},
		{
			// www.twilio.com/docs/usage/security
			name: "twilio", sign: signTwilio, secret: "12345", url: "https://example.com/myapp.php?foo=1&bar=2",
			d:      recording{body: []byte("CallSid=CA1234567890ABCDE&Caller=%2B14158675310&Digits=1234&From=%2B14158675310&To=%2B18005551212")},
			header: "X-Twilio-Signature", want: "L/OH5YylLD5NRKLltdqwSvS0BnU=",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sign(tt.secret, tt.d, tt.at, tt.url)[tt.header]; got != tt.want {
				t.Errorf("%s = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
}

// TestSenderGitHubWebhookPage delivers what GitHub sends once a webhook is
// saved on its settings page with either content type: the ping, then
// pushes as JSON and as a form with a payload field.
func TestSenderGitHubWebhookPage(t *testing.T) {
	e := newEnv(t)
	h := newHook(t, e, "github.push")
	secret := plainSecret()
	h.patch(map[string]any{"hmac": map[string]any{"secret": secret}})
	send := func(name string) (string, recording) {
		d := loadRecording(t, name)
		return h.accepted(h.post(d.body, d.signed(signGitHub(secret, d, time.Now(), "")))), d
	}
	var ev struct {
		Payload  json.RawMessage `json:"payload"`
		Metadata struct {
			DeliveryID string            `json:"delivery_id"`
			Headers    map[string]string `json:"headers"`
			UserAgent  string            `json:"user_agent"`
		} `json:"metadata"`
	}
	get := func(id string) {
		t.Helper()
		r := hookCall(t, e, "GET", "/api/v1/events/"+id, nil, map[string]string{"Authorization": "Bearer " + e.token})
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(r.body, &env); err != nil || json.Unmarshal(env.Data, &ev) != nil {
			t.Fatalf("GET /api/v1/events/%s = %d %s", id, r.status, r.body)
		}
	}

	// The ping is answered 200, audited, and stored as no event.
	ping := loadRecording(t, "github/ping.json")
	r := h.post(ping.body, ping.signed(signGitHub(secret, ping, time.Now(), "")))
	if r.status != 200 || !strings.Contains(string(r.body), `"ping":true`) {
		t.Fatalf("ping answered %d %s, want 200 with ping true", r.status, r.body)
	}
	if n := e.count(`SELECT count(*) FROM events`); n != 0 {
		t.Errorf("the ping stored %d events, want none", n)
	}
	var pings int
	eventually(t, 5*time.Second, "the ping's audit row", func() bool {
		pings = e.count(`SELECT count(*) FROM audit_log WHERE outcome = 'accepted' AND detail = 'answered GitHub ping'`)
		return pings > 0
	})
	if pings != 1 {
		t.Errorf("ping audit rows = %d, want 1", pings)
	}
	unsigned := h.post(ping.body, map[string]string{"X-GitHub-Event": "ping", "Content-Type": "application/json"})
	if unsigned.status != 401 {
		t.Errorf("unsigned ping answered %d, want 401", unsigned.status)
	}

	jsonID, push := send("github/push.json")
	get(jsonID)
	var compact bytes.Buffer
	json.Compact(&compact, push.body)
	if string(ev.Payload) != compact.String() {
		t.Errorf("payload of the JSON push = %s, want the body as sent", ev.Payload)
	}
	for _, name := range []string{"X-GitHub-Event", "X-GitHub-Delivery", "X-GitHub-Hook-ID", "X-GitHub-Hook-Installation-Target-ID"} {
		if ev.Metadata.Headers[name] != push.get(name) {
			t.Errorf("metadata.headers[%s] = %q, want %q", name, ev.Metadata.Headers[name], push.get(name))
		}
	}
	if _, ok := ev.Metadata.Headers["X-Hub-Signature-256"]; ok {
		t.Error("the signature header is stored in the event's metadata")
	}
	if !strings.HasPrefix(ev.Metadata.UserAgent, "GitHub-Hookshot/") {
		t.Errorf("metadata.user_agent = %q", ev.Metadata.UserAgent)
	}

	formID, form := send("github/push-form.form")
	get(formID)
	if string(ev.Payload) != compact.String() {
		t.Errorf("payload of the form push = %s, want the JSON of its payload field", ev.Payload)
	}
	if ev.Metadata.DeliveryID != form.get("X-GitHub-Delivery") || ev.Metadata.Headers["Content-Type"] != "application/x-www-form-urlencoded" {
		t.Errorf("form push metadata = %+v", ev.Metadata)
	}
	// A redelivery from the settings page repeats X-GitHub-Delivery.
	h.duplicate(h.post(form.body, form.signed(signGitHub(secret, form, time.Now(), ""))), formID)
	h.settled(2)
}

// TestSlackURLVerification: saving the Request URL in a Slack app's Event
// Subscriptions makes Slack post a signed url_verification, which must be
// answered with its challenge. It stores no event, and, like every
// request, must be signed.
func TestSlackURLVerification(t *testing.T) {
	e := newEnv(t)
	h := newHook(t, e, "slack.event")
	secret := randomHex(16)
	h.patch(map[string]any{"hmac": map[string]any{"secret": secret}})
	d := loadRecording(t, "slack/url_verification.json")

	h.rejected(h.post(d.body, d.header), "missing X-Slack-Signature")
	h.rejected(h.post(d.body, d.signed(signSlack(randomHex(16), d, time.Now(), ""))), "does not match")
	h.rejected(h.post(d.body, d.signed(signSlack(secret, d, time.Now().Add(-6*time.Minute), ""))), "older than")

	r := h.post(d.body, d.signed(signSlack(secret, d, time.Now(), "")))
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("url_verification = %d %s %s, want 200 application/json", r.status, r.header.Get("Content-Type"), r.body)
	}
	if len(r.json) != 1 || r.json["challenge"] != "kX9vT2pQ7mZ4rW8sY1nB6cD3fG5hJ0lA" {
		t.Errorf("answer = %s, want {\"challenge\": \"kX9vT2pQ7mZ4rW8sY1nB6cD3fG5hJ0lA\"}", r.body)
	}
	if outcome, status, detail := h.lastAudit(); outcome != "accepted" || status != 200 || !strings.Contains(detail, "url_verification") {
		t.Errorf("audit = %s/%d %q, want accepted/200 saying url_verification", outcome, status, detail)
	}
	// The events that follow are stored, and a retry of one is a duplicate.
	ev := loadRecording(t, "slack/event_callback.json")
	id := h.accepted(h.post(ev.body, ev.signed(signSlack(secret, ev, time.Now(), ""))))
	retry := ev.signed(signSlack(secret, ev, time.Now(), ""))
	retry["X-Slack-Retry-Num"], retry["X-Slack-Retry-Reason"] = "1", "http_timeout"
	h.duplicate(h.post(ev.body, retry), id)
	h.settled(1)
}

// TestTwilioSignsPublicURL: Twilio signs the URL it posts to, which is
// inlet's public URL (INLET_PUBLIC_URL), not the address inlet listens on.
func TestTwilioSignsPublicURL(t *testing.T) {
	e := newEnv(t, withPublicURL)
	h := newHook(t, e, "twilio.sms_received")
	token := randomHex(16)
	h.patch(map[string]any{"hmac": map[string]any{"secret": token}})
	d := loadRecording(t, "twilio/sms_received.form")

	h.rejected(h.post(d.body, d.signed(signTwilio(token, d, time.Time{}, e.base+"/api/v1/webhooks/"+h.key))), "does not match")
	// Twilio may sign the URL with or without the default port.
	withPort := strings.Replace(h.url(), "hooks.example.com", "hooks.example.com:443", 1)
	id := h.accepted(h.post(d.body, d.signed(signTwilio(token, d, time.Time{}, withPort))))

	var p map[string]any
	raw, _ := json.Marshal(manageAPI(t, e, 200, "GET", "/api/v1/events/"+id, nil)["data"].(map[string]any)["payload"])
	json.Unmarshal(raw, &p)
	if p["Body"] != "Order 1042: is it shipped? 📦" || p["From"] != "+14155550123" || p["NumMedia"] != "0" {
		t.Errorf("payload = %s, want the decoded form fields", raw)
	}
	h.duplicate(h.post(d.body, d.signed(signTwilio(token, d, time.Time{}, h.url()))), id)
	h.settled(1)
}

// TestSenderBodies: a correctly signed body that cannot be an event is
// refused with a detail that says why.
func TestSenderBodies(t *testing.T) {
	e := newEnv(t)
	gh := newHook(t, e, "github.push")
	secret := plainSecret()
	gh.patch(map[string]any{"hmac": map[string]any{"secret": secret}})
	post := func(h *hook, body []byte, contentType string) response {
		d := recording{body: body, header: map[string]string{"Content-Type": contentType}}
		return h.post(body, d.signed(signGitHub(secret, d, time.Now(), "")))
	}
	deep := `{"ref":"refs/heads/main","repository":{"full_name":"o/r"},"x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`
	tests := []struct {
		name, contentType, body string
		status                  int
		outcome, detail         string
	}{
		{"plain text", "text/plain", `{"ref":"x"}`, 415, "invalid_payload", "content type text/plain is not supported"},
		{"xml", "application/xml", `<push/>`, 415, "invalid_payload", "application/xml"},
		{"latin-1", "application/json; charset=iso-8859-1", `{"ref":"x"}`, 415, "invalid_payload", "charset"},
		{"invalid UTF-8", "application/json", "{\"ref\":\"caf\xe9\"}", 400, "invalid_payload", "not valid UTF-8 at byte 11"},
		{"too deep", "application/json", deep, 400, "invalid_payload", "deeper than 64 levels"},
		{"truncated", "application/json", `{"ref":"refs/heads/main",`, 400, "invalid_payload", ""},
		{"form without JSON", "application/x-www-form-urlencoded", "payload=%7B%22ref%22", 400, "invalid_payload", "form field payload"},
		{"schema", "application/json", `{"ref":7,"repository":{}}`, 422, "schema_mismatch", "violation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := gh.with(t)
			r := post(h, []byte(tt.body), tt.contentType)
			h.expect(r, tt.status, tt.outcome)
			if detail, _ := r.json["detail"].(string); !strings.Contains(detail, tt.detail) {
				t.Errorf("detail = %q, want it to say %q", detail, tt.detail)
			}
		})
	}
	t.Run("violations", func(t *testing.T) {
		h := gh.with(t)
		r := post(h, []byte(`{"ref":7,"repository":{}}`), "application/json")
		h.expect(r, 422, "schema_mismatch")
		vs, _ := r.json["violations"].([]any)
		pointers := map[string]bool{}
		for _, v := range vs {
			m, _ := v.(map[string]any)
			if p, ok := m["pointer"].(string); ok && m["message"] != "" {
				pointers[p] = true
			}
		}
		for _, p := range []string{"/ref", "/repository"} {
			if !pointers[p] {
				t.Errorf("violations = %v, want one at %q with a message", r.json["violations"], p)
			}
		}
	})
	if n := gh.events(); n != 0 {
		t.Errorf("%d events stored from refused bodies, want 0", n)
	}
}

// TestPresetFailsClosed: settings that cannot verify anything refuse every
// request rather than accept it.
func TestPresetFailsClosed(t *testing.T) {
	e := newEnv(t)
	h := newHook(t, e, "github.push")
	d := loadRecording(t, "github/push.json")
	// A pack's preset without a secret.
	h.rejected(h.post(d.body, d.signed(signGitHub("", d, time.Now(), ""))), "no signing secret")
	secret := plainSecret()
	h.patch(map[string]any{"hmac": map[string]any{"secret": secret}})
	h.accepted(h.post(d.body, d.signed(signGitHub(secret, d, time.Now(), ""))))

	// The API refuses an unknown preset...
	r := hookCall(t, e, "PATCH", "/api/v1/triggers/github.push/webhooks", []byte(`{"hmac":{"preset":"bitbucket"}}`),
		map[string]string{"Authorization": "Bearer " + e.token, "Content-Type": "application/json"})
	if r.status != 422 {
		t.Errorf("PATCH preset bitbucket = %d %s, want 422", r.status, r.body)
	}
	// ...and one that reaches the database anyway verifies nothing.
	e.db.MustExec(`UPDATE triggers SET webhook_settings = jsonb_set(webhook_settings, '{hmac,preset}', '"bitbucket"') WHERE ref = 'github.push'`)
	var last response
	eventually(t, 10*time.Second, "the unknown preset to take effect", func() bool {
		last = h.post(d.body, d.signed(signGitHub(secret, d, time.Now(), "")))
		return last.status != 200
	})
	h.rejected(last, "unknown signature preset")
}

// TestPresetRotationGrace: a new secret keeps the old one verifying for 24
// hours unless told otherwise; a grace of 0 drops it at once, and a short
// one ends by the clock alone.
func TestPresetRotationGrace(t *testing.T) {
	e := newEnv(t)
	h := newHook(t, e, "github.push")
	d := loadRecording(t, "github/push.json")
	n := 0
	send := func(secret string) response {
		n++
		f := d.replace("5f0c2b9e", fmt.Sprintf("%08d", n))
		return h.post(f.body, f.signed(signGitHub(secret, f, time.Now(), "")))
	}
	first, second, third, fourth := plainSecret(), plainSecret(), plainSecret(), plainSecret()
	h.patch(map[string]any{"hmac": map[string]any{"secret": first}})

	before := time.Now()
	exp := previousExpiry(t, h.patch(map[string]any{"hmac": map[string]any{"secret": second}}))
	if exp == nil || exp.Before(before.Add(24*time.Hour-time.Second)) || exp.After(time.Now().Add(24*time.Hour+time.Second)) {
		t.Errorf("previous_secret_expires_at = %v, want 24 hours from now by default", exp)
	}
	h.accepted(send(first))

	if exp := previousExpiry(t, h.patch(map[string]any{"hmac": map[string]any{"secret": third, "rotation_grace_seconds": 0}})); exp != nil {
		t.Errorf("previous_secret_expires_at = %v with a grace of 0, want null", exp)
	}
	h.rejected(send(second), "does not match")
	h.rejected(send(first), "does not match")

	exp = previousExpiry(t, h.patch(map[string]any{"hmac": map[string]any{"secret": fourth, "rotation_grace_seconds": 1}}))
	if exp == nil {
		t.Fatal("previous_secret_expires_at = null with a grace of 1 second")
	}
	eventually(t, 5*time.Second, "the grace period to pass", func() bool { return time.Now().After(*exp) })
	h.rejected(send(third), "does not match")
	h.accepted(send(fourth))
}

// TestPresetStandardWebhooksSvixSpelling: the standard-webhooks preset
// verifies deliveries sent with Svix's header spelling (svix-id,
// svix-timestamp, svix-signature), so it should also de-duplicate them on
// svix-id, their delivery id.
func TestPresetStandardWebhooksSvixSpelling(t *testing.T) {
	e := newEnv(t)
	h := newHook(t, e, "standard-webhooks.message")
	secret := standardSecret()
	h.patch(map[string]any{"hmac": map[string]any{"secret": secret}})
	d := loadRecording(t, "standard-webhooks/svix.json")
	sign := standardSigner("svix-")
	id := h.accepted(h.post(d.body, d.signed(sign(secret, d, time.Now(), ""))))
	h.duplicate(h.post(d.body, d.signed(sign(secret, d, time.Now(), ""))), id)
	h.settled(1)
}
