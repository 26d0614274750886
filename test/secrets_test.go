package test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// TestNoSecretsLeak runs a gateway through accepted, refused and forged
// requests and management calls, then searches everything it wrote for
// every secret involved: the logs (at debug level), every row of every
// table (secrets and webhook keys are stored sealed, so that a copy of the
// database alone reveals none of them), every stream message, /metrics and
// every response body. Webhook keys may appear by their 8-character prefix only;
// HMAC secrets, signatures, bearer tokens and Authorization, Cookie or
// other credential header values may not appear at all. The management API
// shows a webhook key to an authenticated operator and a generated secret
// in the one answer that generated it; those answers are searched for
// everything else.
func TestNoSecretsLeak(t *testing.T) {
	e := newEnv(t, allowLoopback)
	all := newLeakFinder()    // everything secret
	noKeys := newLeakFinder() // the same, without webhook keys
	secret := func(name, s string) {
		all.add(name, s, 0)
		noKeys.add(name, s, 0)
	}
	key := func(name, k string) { all.add(name, k, trigger.KeyPrefixLen) }
	var bodies []string // answers that may show nothing secret
	var keyBodies []string
	keep := func(r response) { bodies = append(bodies, string(r.body)) }

	secret("admin token", e.token)
	const deploy, push = "myapp.deployment_complete", "github.push"
	k1 := e.enable(deploy)
	key("deployment key", k1)
	s1 := "rel-leak-" + trigger.RandomString(32)
	secret("deployment secret", s1)
	r := e.admin("PATCH", "/api/v1/triggers/"+deploy+"/webhooks", map[string]any{"hmac": map[string]any{"enabled": true, "secret": s1}})
	keyBodies = append(keyBodies, string(r.body))

	k2 := e.enable(push)
	key("github key", k2)
	// A secret inlet generates is shown once, in this answer.
	gen := e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+push+"/webhooks", map[string]any{"hmac": map[string]any{"enabled": true, "preset": "github"}})
	s2, _ := gen["data"].(map[string]any)["settings"].(map[string]any)["hmac"].(map[string]any)["secret"].(string)
	if s2 == "" {
		t.Fatalf("no generated secret in %v", gen)
	}
	secret("generated github secret", s2)

	// Rotate the deployment secret: the old one stays valid for a while.
	s1b := "rel-leak-" + trigger.RandomString(32)
	secret("rotated deployment secret", s1b)
	r = e.admin("PATCH", "/api/v1/triggers/"+deploy+"/webhooks", map[string]any{"hmac": map[string]any{"secret": s1b}})
	keyBodies = append(keyBodies, string(r.body))
	// Regenerate the key with a grace period: both keys are secrets.
	regen := e.mustAdmin(200, "POST", "/api/v1/triggers/"+deploy+"/webhooks/regenerate", map[string]any{"grace_seconds": 600})
	k1b := regen["data"].(map[string]any)["webhook_key"].(string)
	key("regenerated deployment key", k1b)

	// A destination whose secret and header value are secrets; its secret
	// rotated, the new one shown once.
	sink := newSink(t)
	dsecret := "rel-leak-dst-" + trigger.RandomString(32)
	dheader := "Bearer rel-leak-hdr-" + trigger.RandomString(32)
	secret("destination secret", dsecret)
	secret("destination header value", dheader)
	dst := e.mustAdmin(201, "POST", "/api/v1/triggers/"+deploy+"/destinations", map[string]any{
		"name": "leak", "url": sink.srv.URL, "signing": map[string]any{"scheme": "hmac-sha256", "secret": dsecret},
		"headers": map[string]any{"Authorization": dheader},
	})["data"].(map[string]any)
	dstID := dst["id"].(string)
	rot := e.mustAdmin(200, "POST", "/api/v1/destinations/"+dstID+"/rotate-secret", map[string]any{"grace_seconds": 600})
	secret("rotated destination secret", rot["data"].(map[string]any)["secret"].(string))

	credHeaders := func(i int) map[string]string {
		auth := "rel-sender-" + trigger.RandomString(24)
		cookie := "rel-cookie-" + trigger.RandomString(24)
		basic := base64.StdEncoding.EncodeToString([]byte("user:rel-basic-" + trigger.RandomString(24)))
		apiKey := "rel-apikey-" + trigger.RandomString(24)
		secret("sender bearer token", auth)
		secret("sender cookie", cookie)
		secret("sender basic credentials", basic)
		secret("sender X-Api-Key", apiKey)
		h := map[string]string{"Cookie": "session=" + cookie, "X-Api-Key": apiKey, "X-Auth-Token": apiKey}
		if i%2 == 0 {
			h["Authorization"] = "Bearer " + auth
		} else {
			h["Authorization"] = "Basic " + basic
		}
		return h
	}
	signed := func(s string, body []byte) string {
		m := hmac.New(sha256.New, []byte(s))
		m.Write(body)
		return hex.EncodeToString(m.Sum(nil))
	}
	post := func(k string, body []byte, h map[string]string, want int) {
		t.Helper()
		r := e.post(k, body, h)
		if r.status != want {
			t.Errorf("POST %s…: %d %s, want %d", k[:min(8, len(k))], r.status, r.body, want)
		}
		keep(r)
	}

	for i := range 6 {
		body := deployment("leak-" + trigger.RandomString(8))
		for _, s := range []string{s1, s1b} {
			sig := signed(s, body)
			secret("signature", sig)
			h := credHeaders(i)
			h["X-Webhook-Signature"] = "sha256=" + sig
			h["X-Webhook-ID"] = "leak-" + trigger.RandomString(12)
			post(k1, body, h, 200)
			h["X-Webhook-ID"] = "leak-" + trigger.RandomString(12)
			post(k1b, body, h, 200)
		}
		// Forged: signed with a wrong secret. The signature inlet expects
		// must not be revealed either.
		wrong := signed("rel-wrong-"+trigger.RandomString(24), body)
		secret("forged signature", wrong)
		secret("expected signature", signed(s1b, body))
		h := credHeaders(i)
		h["X-Webhook-Signature"] = "sha256=" + wrong
		post(k1b, body, h, 401)
		// A valid signature of another body.
		h["X-Webhook-Signature"] = "sha256=" + signed(s1b, []byte(`{"other":true}`))
		post(k1b, body, h, 401)

		gb := []byte(`{"ref":"refs/heads/main","repository":{"full_name":"inlet-dev/leak"},"after":"` + trigger.RandomString(8) + `"}`)
		gsig := signed(s2, gb)
		secret("github signature", gsig)
		h = credHeaders(i)
		h["X-Hub-Signature-256"] = "sha256=" + gsig
		h["X-GitHub-Delivery"] = "leak-" + trigger.RandomString(12)
		h["X-GitHub-Event"] = "push"
		post(k2, gb, h, 200)
		// The same body as a form, as GitHub can send it.
		form := []byte("payload=" + url.QueryEscape(string(gb)))
		fsig := signed(s2, form)
		secret("github form signature", fsig)
		h["X-Hub-Signature-256"] = "sha256=" + fsig
		h["X-GitHub-Delivery"] = "leak-" + trigger.RandomString(12)
		h["Content-Type"] = "application/x-www-form-urlencoded"
		post(k2, form, h, 200)

		// Unknown keys, a key one character off, a key in the wrong case.
		unknown := "wh_" + trigger.RandomString(32)
		key("unknown key", unknown)
		post(unknown, body, credHeaders(i), 404)
		near := k1b[:len(k1b)-1] + map[bool]string{true: "A", false: "B"}[k1b[len(k1b)-1] != 'A']
		key("near key", near)
		post(near, body, credHeaders(i), 404)
		post(strings.ToUpper(k1b), body, credHeaders(i), 404)
	}
	// Once the grace period is over, the old key is unknown like any other.
	e.db.MustExec(`UPDATE webhook_keys SET expires_at = now() - interval '1 second' WHERE hash = sha256(convert_to($1, 'UTF8'))`, k1)
	eventually(t, 5*time.Second, "the old key to stop working", func() bool {
		return e.post(k1, deployment("x"), nil).status == 404
	})

	// Management calls with bad credentials, and a revoked token.
	st := store.New(e.db, storetest.Keyring())
	tok, plain, err := st.CreateToken(context.Background(), "leak", store.OriginCLI)
	if err != nil {
		t.Fatal(err)
	}
	secret("created token", string(plain))
	if r := e.do("GET", "/api/v1/triggers", nil, map[string]string{"Authorization": "Bearer " + string(plain)}); r.status != 200 {
		t.Fatalf("fresh token: %d", r.status)
	}
	if _, err := st.RevokeToken(context.Background(), tok.ID); err != nil {
		t.Fatal(err)
	}
	wrongToken := "inlet_" + trigger.RandomString(40)
	secret("wrong token", wrongToken)
	for _, h := range []string{"Bearer " + string(plain), "Bearer " + wrongToken, "bearer " + wrongToken, "Token " + wrongToken, wrongToken, "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+wrongToken))} {
		for _, path := range []string{"/api/v1/triggers", "/api/v1/events", "/api/v1/triggers/" + deploy + "/webhooks", "/api/v1/nothing-here"} {
			r := e.do("GET", path, nil, map[string]string{"Authorization": h})
			if r.status != 401 && !(path == "/api/v1/nothing-here" && r.status == 404) {
				t.Errorf("GET %s with a bad token: %d, want 401", path, r.status)
			}
			keep(r)
		}
	}

	// Every event reaches the destination (signed with both secrets,
	// which must show nowhere), and one is replayed.
	eventually(t, 15*time.Second, "every delivery made", func() bool {
		return e.count(`SELECT count(*) FROM deliveries WHERE status <> 'succeeded'`) == 0 &&
			e.count(`SELECT count(*) FROM deliveries`) == 24
	})
	var first string
	if err := e.db.Get(&first, `SELECT id FROM events WHERE trigger_ref = $1 ORDER BY received_at LIMIT 1`, deploy); err != nil {
		t.Fatal(err)
	}
	e.mustAdmin(201, "POST", "/api/v1/events/"+first+"/replay", nil)
	for _, path := range []string{"/api/v1/triggers/" + deploy + "/destinations", "/api/v1/destinations/" + dstID,
		"/api/v1/destinations/" + dstID + "/deliveries", "/api/v1/activity?limit=1000"} {
		bodies = append(bodies, string(e.admin("GET", path, nil).body))
	}

	// What the management API shows an operator: the key is fine, the rest
	// is not.
	for _, path := range []string{"/api/v1/triggers", "/api/v1/triggers/" + deploy, "/api/v1/triggers/" + deploy + "/webhooks", "/api/v1/triggers/" + push + "/webhooks"} {
		keyBodies = append(keyBodies, string(e.admin("GET", path, nil).body))
	}
	for _, path := range []string{"/api/v1/events?limit=1000", "/api/v1/triggers/" + deploy + "/webhooks/log?limit=1000", "/api/v1/triggers/" + push + "/webhooks/log?limit=1000"} {
		bodies = append(bodies, string(e.admin("GET", path, nil).body))
	}
	for _, path := range []string{"/metrics", "/readyz", "/healthz", "/api/v1/openapi.json"} {
		bodies = append(bodies, string(e.do("GET", path, nil, nil).body))
	}

	// Everything stored and published.
	var rows []string
	for _, q := range []string{
		`SELECT t::text FROM audit_log t`,
		`SELECT t::text FROM events t`,
		`SELECT t::text FROM publish_set_aside t`,
		`SELECT t::text FROM api_tokens t`,
		`SELECT t::text FROM triggers t`,
		`SELECT t::text FROM webhook_keys t`,
		`SELECT t::text FROM activity t`,
		`SELECT t::text FROM usage t`,
		`SELECT t::text FROM destinations t`,
		`SELECT t::text FROM deliveries t`,
		`SELECT t::text FROM delivery_attempts t`,
	} {
		var got []string
		if err := e.db.Select(&got, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		rows = append(rows, got...)
	}
	var nEvents int
	if err := e.db.Get(&nEvents, `SELECT count(*) FROM events`); err != nil {
		t.Fatal(err)
	}
	var msgs strings.Builder
	for _, m := range e.streamMessages(nEvents, 10*time.Second) {
		msgs.Write(m.Data)
		for k, v := range m.Header {
			msgs.WriteString(k + ": " + strings.Join(v, ",") + "\n")
		}
	}
	if nEvents != 37 {
		t.Errorf("%d events, want 36 and a replay", nEvents)
	}

	all.check(t, "the log", e.logs.String())
	all.check(t, "the database", strings.Join(rows, "\n"))
	all.check(t, "the stream", msgs.String())
	all.check(t, "the answers", strings.Join(bodies, "\n"))
	noKeys.check(t, "the management answers", strings.Join(keyBodies, "\n"))
	checkTokensHashed(t, e, []string{e.token, string(plain)})
}

// checkTokensHashed checks that api_tokens holds no token, in any
// encoding, only hashes.
func checkTokensHashed(t *testing.T, e *env, tokens []string) {
	t.Helper()
	var hashes [][]byte
	if err := e.db.Select(&hashes, `SELECT hash FROM api_tokens`); err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		sum := sha256.Sum256([]byte(tok))
		found := false
		for _, h := range hashes {
			if bytes.Contains(h, []byte(tok)) || strings.Contains(hex.EncodeToString(h), hex.EncodeToString([]byte(tok))) {
				t.Errorf("api_tokens holds a token in plain text")
			}
			found = found || bytes.Equal(h, sum[:])
		}
		if !found {
			t.Errorf("no SHA-256 hash of a live or revoked token in api_tokens")
		}
	}
}
