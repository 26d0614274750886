package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/embednats"
	"github.com/inlet-dev/inlet/pkg/embednats/natstest"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

// TestKeyLifecycle: regenerate revokes the old key at once, or after a
// grace period; disable stops the key.
func TestKeyLifecycle(t *testing.T) {
	e := newEnv(t)
	const ref = "myapp.deployment_complete"
	old := e.enable(ref)
	if r := e.post(old, deployment("1"), nil); r.status != 200 {
		t.Fatalf("first key: %d %s", r.status, r.body)
	}
	regen := e.mustAdmin(200, "POST", "/api/v1/triggers/"+ref+"/webhooks/regenerate", nil)["data"].(map[string]any)
	fresh := regen["webhook_key"].(string)
	if fresh == old || regen["previous_key_revoked"] != true {
		t.Fatalf("regenerate = %v", regen)
	}
	if want := e.cfg.PublicBaseURL() + "/api/v1/webhooks/" + fresh; regen["webhook_url"] != want {
		t.Errorf("webhook_url = %v, want %s", regen["webhook_url"], want)
	}
	if r := e.post(old, deployment("2"), nil); r.status != 404 {
		t.Errorf("old key after regenerate: %d, want 404", r.status)
	}
	if r := e.post(fresh, deployment("3"), nil); r.status != 200 {
		t.Errorf("new key: %d %s, want 200", r.status, r.body)
	}

	graced := e.mustAdmin(200, "POST", "/api/v1/triggers/"+ref+"/webhooks/regenerate", map[string]any{"grace_seconds": 3600})["data"].(map[string]any)
	if graced["previous_key_revoked"] != false || graced["previous_key_expires_at"] == nil {
		t.Errorf("regenerate with grace = %v, want previous_key_revoked false and an expiry", graced)
	}
	newest := graced["webhook_key"].(string)
	for _, k := range []string{fresh, newest} {
		if r := e.post(k, deployment("4"), nil); r.status != 200 {
			t.Errorf("key %s… during the grace period: %d, want 200", k[:8], r.status)
		}
	}
	// The grace period ends on every instance when it ends in the database.
	e.db.MustExec(`UPDATE webhook_keys SET expires_at = now() - interval '1 second' WHERE hash = sha256(convert_to($1, 'UTF8'))`, fresh)
	eventually(t, 5*time.Second, "the expired key to stop working", func() bool {
		return e.post(fresh, deployment("5"), nil).status == 404
	})

	e.mustAdmin(200, "POST", "/api/v1/triggers/"+ref+"/webhooks/disable", nil)
	if r := e.post(newest, deployment("6"), nil); r.status != 403 {
		t.Errorf("key of a disabled webhook: %d, want 403", r.status)
	}
}

// TestTwoInstances: two gateways on one database and one stream publish
// every event exactly once, and a key regenerated through one instance is
// refused by the other on its next request.
func TestTwoInstances(t *testing.T) {
	dsn := storetest.NewURL(t)
	ns := natstest.New(t)
	a := startEnv(t, dsn, ns.URL, ns.Stream, ns.SubjectPrefix)
	b := startEnv(t, dsn, ns.URL, ns.Stream, ns.SubjectPrefix)
	b.token = a.token // the first instance generated the only token
	const ref = "myapp.deployment_complete"
	key := a.enable(ref)
	const n = 100
	for i := 0; i < n; i++ {
		inst := a
		if i%2 == 1 {
			inst = b
		}
		if r := inst.post(key, deployment(strconv.Itoa(i)), nil); r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	a.streamMessages(n, 15*time.Second)
	time.Sleep(300 * time.Millisecond) // time for a double publish to show
	msgs := a.streamMessages(n, 0)
	seen := map[string]int{}
	for _, m := range msgs {
		seen[m.Header.Get("Nats-Msg-Id")]++
	}
	if len(msgs) != n || len(seen) != n {
		t.Errorf("stream has %d messages for %d distinct events, want %d and %d", len(msgs), len(seen), n, n)
	}
	if c := a.count(`SELECT count(*) FROM events`); c != n {
		t.Errorf("events = %d, want %d", c, n)
	}

	regen := b.mustAdmin(200, "POST", "/api/v1/triggers/"+ref+"/webhooks/regenerate", nil)["data"].(map[string]any)
	eventually(t, 5*time.Second, "instance A to refuse the revoked key", func() bool {
		return a.post(key, deployment("x"), nil).status == 404
	})
	if r := a.post(regen["webhook_key"].(string), deployment("y"), nil); r.status != 200 {
		t.Errorf("new key on instance A: %d %s, want 200", r.status, r.body)
	}
	// Two keys of one trigger work on both instances; one revoked
	// through A is refused by B at once, the other keeps working.
	extra := b.mustAdmin(201, "POST", "/api/v1/triggers/"+ref+"/webhooks/keys", map[string]any{"label": "ci"})["data"].(map[string]any)
	ci := extra["key"].(string)
	for _, inst := range []*env{a, b} {
		eventually(t, 5*time.Second, "both keys to work on both instances", func() bool {
			return inst.post(ci, deployment("k1"), nil).status == 200 &&
				inst.post(regen["webhook_key"].(string), deployment("k2"), nil).status == 200
		})
	}
	// The instance that revoked it refuses it from the next request; the
	// other learns of it through NOTIFY, within milliseconds.
	a.mustAdmin(204, "DELETE", fmt.Sprintf("/api/v1/triggers/%s/webhooks/keys/%d", ref, int64(extra["id"].(float64))), nil)
	if r := a.post(ci, deployment("k3"), nil); r.status != 404 {
		t.Errorf("revoked key on the instance that revoked it: %d, want 404", r.status)
	}
	eventually(t, time.Second, "the other instance to refuse the revoked key", func() bool {
		return b.post(ci, deployment("k3"), nil).status == 404
	})
	for _, inst := range []*env{a, b} {
		if r := inst.post(regen["webhook_key"].(string), deployment("k4"), nil); r.status != 200 {
			t.Errorf("the other key on %s: %d, want 200", inst.base, r.status)
		}
	}
	// A settings change through B reaches A's cache too.
	b.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"ip_allowlist": map[string]any{"enabled": true, "cidrs": []string{"192.0.2.0/24"}}})
	eventually(t, 5*time.Second, "instance A to apply B's allowlist", func() bool {
		return a.post(regen["webhook_key"].(string), deployment("z"), nil).status == 403
	})
}

// TestNATSOutage: with NATS down, webhooks are still accepted; when it
// returns, every stored event is published exactly once, in order.
func TestNATSOutage(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ns, err := embednats.Start(ctx, filepath.Join(dir, "nats"), nil, embednats.Options{Port: freePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	port := mustPort(t, ns.ClientURL())
	e := startEnv(t, storetest.NewURL(t), ns.ClientURL(), "OUTAGE", "outage.events")
	const ref = "myapp.deployment_complete"
	key := e.enable(ref)
	if r := e.post(key, deployment("0"), nil); r.status != 200 {
		t.Fatal(r.status)
	}
	e.streamMessages(1, 5*time.Second)

	ns.Shutdown()
	const n = 30
	for i := 1; i <= n; i++ {
		if r := e.post(key, deployment(strconv.Itoa(i)), nil); r.status != 200 {
			t.Fatalf("request %d with NATS down: %d %s, want 200", i, r.status, r.body)
		}
	}
	if r := e.do("GET", "/readyz", nil, nil); r.status != 503 {
		t.Errorf("/readyz with NATS down = %d %s, want 503", r.status, r.body)
	}
	if c := e.count(`SELECT count(*) FROM events e, publish_position p WHERE (e.xid, e.seq) > (p.xid, p.seq)`); c != n {
		t.Errorf("%d events wait to be published with NATS down, want %d", c, n)
	}

	ns, err = embednats.Start(ctx, filepath.Join(dir, "nats"), nil, embednats.Options{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	msgs := e.streamMessages(n+1, 30*time.Second)
	if len(msgs) != n+1 {
		t.Fatalf("stream has %d messages after NATS returned, want %d", len(msgs), n+1)
	}
	for i, m := range msgs {
		var ev struct {
			Payload struct{ Version string } `json:"payload"`
		}
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Payload.Version != strconv.Itoa(i) {
			t.Errorf("message %d carries version %q, want %d (in order)", i, ev.Payload.Version, i)
		}
	}
	eventually(t, 10*time.Second, "every event published", func() bool {
		return e.count(`SELECT count(*) FROM events e, publish_position p WHERE (e.xid, e.seq) > (p.xid, p.seq)`) == 0
	})
	eventually(t, 10*time.Second, "/readyz to recover", func() bool { return e.do("GET", "/readyz", nil, nil).status == 200 })
	e.stop() // before the NATS server it uses
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func mustPort(t *testing.T, url string) int {
	t.Helper()
	i := strings.LastIndex(url, ":")
	p, err := strconv.Atoi(url[i+1:])
	if err != nil {
		t.Fatalf("port of %s: %v", url, err)
	}
	return p
}
