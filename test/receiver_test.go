package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// TestReceiverContract walks every row of the contract's receiver table on
// one trigger, checking the answer, the audit row, the stored events and
// the stream.
func TestReceiverContract(t *testing.T) {
	e := newEnv(t)
	const ref = "myapp.deployment_complete"
	events := func() int { return e.count(`SELECT count(*) FROM events`) }
	expect := func(t *testing.T, r response, status int, outcome string) {
		t.Helper()
		if r.status != status {
			t.Fatalf("status = %d %s, want %d", r.status, r.body, status)
		}
		if got, st := e.lastAudit(); got != outcome || st != status {
			t.Errorf("audit = %s/%d, want %s/%d", got, st, outcome, status)
		}
		if status >= 400 {
			if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q, want application/problem+json", ct)
			}
			if r.json["code"] != outcome || r.json["status"] != float64(status) {
				t.Errorf("problem = %s, want code %s and status %d", r.body, outcome, status)
			}
		}
	}

	t.Run("unknown key", func(t *testing.T) {
		r := e.post("wh_"+strings.Repeat("x", 32), deployment("1"), nil)
		expect(t, r, 404, "not_found")
		if n := e.count(`SELECT count(*) FROM audit_log WHERE trigger_ref IS NULL AND key_prefix = 'wh_xxxxx'`); n != 1 {
			t.Errorf("audit rows for the unknown key = %d, want 1 with only the key prefix", n)
		}
	})
	key := e.enable(ref)
	if !regexp.MustCompile(`^wh_[A-Za-z0-9]{32}$`).MatchString(key) {
		t.Fatalf("key %q does not match ^wh_[A-Za-z0-9]{32}$", key)
	}
	var firstID string
	t.Run("accepted", func(t *testing.T) {
		r := e.post(key, deployment("1"), map[string]string{"User-Agent": "ci/1", "X-GitHub-Event": "deployment"})
		expect(t, r, 200, "accepted")
		data := r.json["data"].(map[string]any)
		firstID = data["event_id"].(string)
		if data["trigger_ref"] != ref || data["duplicate"] != false || data["received_at"] == nil {
			t.Errorf("data = %v", data)
		}
		msgs := e.streamMessages(1, 5*time.Second)
		if len(msgs) != 1 {
			t.Fatalf("stream has %d messages, want 1", len(msgs))
		}
		m := msgs[0]
		if m.Subject != e.cfg.SubjectPrefix+"."+ref {
			t.Errorf("subject = %q, want %q", m.Subject, e.cfg.SubjectPrefix+"."+ref)
		}
		for h, want := range map[string]string{"Nats-Msg-Id": firstID, "ce-id": firstID, "ce-specversion": "1.0", "ce-type": ref} {
			if got := m.Header.Get(h); got != want {
				t.Errorf("header %s = %q, want %q", h, got, want)
			}
		}
		if m.Header.Get("ce-source") == "" || m.Header.Get("ce-time") == "" {
			t.Errorf("ce-source/ce-time missing: %v", m.Header)
		}
		got := e.admin("GET", "/api/v1/events/"+firstID, nil)
		var env struct {
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(got.body, &env); err != nil {
			t.Fatal(err)
		}
		if string(env.Data) != string(m.Data) {
			t.Errorf("NATS body differs from GET /events/:id data:\nnats: %s\napi:  %s", m.Data, env.Data)
		}
		var ev struct {
			Payload  map[string]any `json:"payload"`
			Metadata map[string]any `json:"metadata"`
		}
		json.Unmarshal(m.Data, &ev)
		if ev.Payload["version"] != "1" || ev.Metadata["webhook_key_prefix"] != key[:8] || ev.Metadata["user_agent"] != "ci/1" {
			t.Errorf("event = %s", m.Data)
		}
		if hs, _ := ev.Metadata["headers"].(map[string]any); hs["X-GitHub-Event"] != "deployment" {
			t.Errorf("metadata headers = %v, want X-GitHub-Event kept", ev.Metadata["headers"])
		}
	})
	t.Run("too large", func(t *testing.T) {
		e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"payload_size_limit_kb": 1})
		big := []byte(`{"service":"api","version":"` + strings.Repeat("9", 2000) + `","environment":"production","status":"succeeded"}`)
		before := events()
		expect(t, e.post(key, big, nil), 413, "too_large")
		// Without Content-Length (chunked), the limit still holds.
		req, _ := http.NewRequest("POST", e.base+"/api/v1/webhooks/"+key, io.MultiReader(strings.NewReader(string(big))))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 413 || req.ContentLength != 0 {
			t.Errorf("chunked oversized body: status %d (content length %d), want 413", res.StatusCode, req.ContentLength)
		}
		if events() != before {
			t.Error("an oversized body created an event")
		}
		e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"payload_size_limit_kb": 1024})
	})
	t.Run("ip allowlist", func(t *testing.T) {
		e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"ip_allowlist": map[string]any{"enabled": true, "cidrs": []string{"10.0.0.0/8", "2001:db8::/32"}}})
		expect(t, e.post(key, deployment("2"), nil), 403, "ip_denied")
		e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"ip_allowlist": map[string]any{"enabled": true, "cidrs": []string{"127.0.0.0/8", "::1/128"}}})
		expect(t, e.post(key, deployment("2"), nil), 200, "accepted")
		e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"ip_allowlist": map[string]any{"enabled": false}})
	})
	t.Run("rate limited", func(t *testing.T) {
		e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"rate_limit": map[string]any{"enabled": true, "requests": 2, "window_seconds": 3600}})
		expect(t, e.post(key, deployment("3"), nil), 200, "accepted")
		expect(t, e.post(key, deployment("4"), nil), 200, "accepted")
		r := e.post(key, deployment("5"), nil)
		expect(t, r, 429, "rate_limited")
		if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
			t.Errorf("Retry-After = %q, want a positive number of seconds", ra)
		}
		e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"rate_limit": map[string]any{"enabled": false}})
	})
	const secret = "a-shared-secret-of-reasonable-length"
	t.Run("signature", func(t *testing.T) {
		e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"hmac": map[string]any{"enabled": true, "secret": secret}})
		body := deployment("6")
		before := events()
		expect(t, e.post(key, body, nil), 401, "bad_signature")
		expect(t, e.post(key, body, map[string]string{"X-Webhook-Signature": sign("wrong", body)}), 401, "bad_signature")
		expect(t, e.post(key, deployment("7"), map[string]string{"X-Webhook-Signature": sign(secret, body)}), 401, "bad_signature")
		if events() != before {
			t.Error("a badly signed request created an event")
		}
		expect(t, e.post(key, body, map[string]string{"X-Webhook-Signature": sign(secret, body)}), 200, "accepted")
		bare := strings.TrimPrefix(sign(secret, body), "sha256=")
		expect(t, e.post(key, deployment("6"), map[string]string{"X-Hub-Signature-256": bare}), 200, "accepted")
		if strings.Contains(e.logs.String(), secret) {
			t.Error("the HMAC secret appears in the log")
		}
		e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"hmac": map[string]any{"enabled": false}})
	})
	t.Run("invalid payload", func(t *testing.T) {
		before := events()
		expect(t, e.post(key, []byte(`{"service": "api",`), nil), 400, "invalid_payload")
		expect(t, e.post(key, []byte("\xff\xfe"), nil), 400, "invalid_payload")
		if events() != before {
			t.Error("an invalid body created an event")
		}
	})
	t.Run("schema mismatch", func(t *testing.T) {
		r := e.post(key, []byte(`{"service":"api","environment":"moon"}`), nil)
		expect(t, r, 422, "schema_mismatch")
		v, _ := r.json["violations"].([]any)
		if len(v) < 2 {
			t.Errorf("violations = %v, want one for the enum and one for the missing fields", r.json["violations"])
		}
	})
	t.Run("mapping", func(t *testing.T) {
		e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"payload_mapping": map[string]string{"svc": "$.service", "nothing": "$.not.there"}})
		r := e.post(key, deployment("8"), nil)
		expect(t, r, 200, "accepted")
		id := r.json["data"].(map[string]any)["event_id"].(string)
		var p string
		if err := e.db.Get(&p, `SELECT payload::text FROM events WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		if p != `{"nothing":null,"svc":"api"}` {
			t.Errorf("mapped payload = %s, want {\"nothing\":null,\"svc\":\"api\"}", p)
		}
		e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"payload_mapping": nil})
	})
	t.Run("duplicate", func(t *testing.T) {
		h := map[string]string{"X-Webhook-ID": "delivery-42"}
		first := e.post(key, deployment("9"), h)
		expect(t, first, 200, "accepted")
		before := events()
		msgs := len(e.streamMessages(before, 5*time.Second)) // the first delivery's message is out
		second := e.post(key, deployment("9"), h)
		expect(t, second, 200, "duplicate")
		d1, d2 := first.json["data"].(map[string]any), second.json["data"].(map[string]any)
		if d2["event_id"] != d1["event_id"] || d2["duplicate"] != true {
			t.Errorf("duplicate answer = %v, want event %v and duplicate true", d2, d1["event_id"])
		}
		if d2["received_at"] != d1["received_at"] {
			t.Errorf("duplicate answer's received_at = %v, want the first delivery's %v", d2["received_at"], d1["received_at"])
		}
		if events() != before {
			t.Error("a duplicate delivery stored a second event")
		}
		time.Sleep(200 * time.Millisecond) // let a wrongly published message arrive
		if n := len(e.streamMessages(0, 0)); n != msgs {
			t.Errorf("stream has %d messages after a duplicate, want %d", n, msgs)
		}
	})
	t.Run("concurrent duplicates", func(t *testing.T) {
		before := events()
		var wg sync.WaitGroup
		ids := make([]string, 20)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.post(key, deployment("10"), map[string]string{"Idempotency-Key": "burst-1"})
				if r.status == 200 {
					ids[i] = r.json["data"].(map[string]any)["event_id"].(string)
				}
			}()
		}
		wg.Wait()
		for _, id := range ids {
			if id == "" || id != ids[0] {
				t.Fatalf("20 concurrent copies answered event ids %v, want one id for all", ids)
			}
		}
		if got := events() - before; got != 1 {
			t.Errorf("20 concurrent copies stored %d events, want 1", got)
		}
		if n := e.count(`SELECT count(*) FROM audit_log WHERE event_id = $1 AND outcome = 'duplicate'`, ids[0]); n != 19 {
			t.Errorf("duplicate audit rows = %d, want 19", n)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		e.mustAdmin(200, "POST", "/api/v1/triggers/"+ref+"/webhooks/disable", nil)
		expect(t, e.post(key, deployment("11"), nil), 403, "disabled")
		e.mustAdmin(200, "POST", "/api/v1/triggers/"+ref+"/webhooks/enable", nil)
		expect(t, e.post(key, deployment("11"), nil), 200, "accepted")
	})
	t.Run("database unavailable", func(t *testing.T) {
		// Refuse new connections and cut the gateway's: its cached settings
		// still answer the lookup, but nothing can be committed.
		var dbname string
		e.db.Get(&dbname, `SELECT current_database()`)
		adm := sqlx.MustConnect("postgres", otherDatabase(t, e.cfg.DatabaseURL, "postgres"))
		defer adm.Close()
		adm.MustExec(fmt.Sprintf(`ALTER DATABASE %q ALLOW_CONNECTIONS false`, dbname))
		adm.MustExec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, dbname)
		r := e.post(key, deployment("12"), nil)
		adm.MustExec(fmt.Sprintf(`ALTER DATABASE %q ALLOW_CONNECTIONS true`, dbname))
		before := events()
		if r.status != 503 || r.header.Get("Retry-After") == "" || r.json["code"] != "error" {
			t.Errorf("with the database gone: %d %v %s, want 503 with Retry-After and code error", r.status, r.header, r.body)
		}
		if n := e.count(`SELECT count(*) FROM events WHERE payload->>'version' = '12'`); n != 0 {
			t.Errorf("%d events stored while the database refused connections, want 0", n)
		}
		_ = before
		// Recovers by itself.
		eventually(t, 10*time.Second, "a 200 after the database returns", func() bool {
			return e.post(key, deployment("13"), nil).status == 200
		})
	})
	t.Run("every accepted event is published once", func(t *testing.T) {
		n := events()
		msgs := e.streamMessages(n, 10*time.Second)
		seen := map[string]bool{}
		for _, m := range msgs {
			id := m.Header.Get("Nats-Msg-Id")
			if seen[id] {
				t.Errorf("event %s published twice", id)
			}
			seen[id] = true
		}
		if len(msgs) != n {
			t.Errorf("stream has %d messages, want %d (one per event)", len(msgs), n)
		}
		eventually(t, 10*time.Second, "every event published", func() bool {
			return e.count(`SELECT count(*) FROM events e, publish_position p WHERE (e.xid, e.seq) > (p.xid, p.seq)`) == 0
		})
	})
	_ = firstID
}

// otherDatabase returns dsn with its database name replaced by name.
func otherDatabase(t *testing.T, dsn, name string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
