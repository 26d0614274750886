package test

import (
	"strings"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/config"
)

// TestRetention: a running gateway prunes on its own, every
// retention_interval: old audit records and old published events go,
// what the receiver just stored stays, and /metrics counts the deletes.
func TestRetention(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.RetentionInterval = 100 * time.Millisecond
		c.EventRetention = config.Retention(7 * config.Day)
		c.AuditRetention = config.Retention(config.Day)
	})
	const ref = "myapp.deployment_complete"
	key, secret := relSignedTrigger(t, e.base, e.token, ref, "")
	body := deployment("1")
	r := e.post(key, body, map[string]string{"X-Webhook-Signature": sign(secret, body)})
	if r.status != 200 {
		t.Fatalf("signed webhook = %d %s", r.status, r.body)
	}
	eventID, _ := r.json["data"].(map[string]any)["event_id"].(string)
	if eventID == "" {
		t.Fatalf("no event id in %s", r.body)
	}
	// Received long ago, and published: the new event's publication
	// moves the position past them.
	if _, err := e.db.Exec(`INSERT INTO audit_log (received_at, status, outcome)
		SELECT now() - interval '2 days', 200, 'accepted' FROM generate_series(1, 50)`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(`INSERT INTO events (id, trigger_id, trigger_ref, payload, metadata, received_at)
		VALUES ('evt_01JA000000000000000000OLD0', 1, $1, '{}', '{}', now() - interval '8 days')`, ref); err != nil {
		t.Fatal(err)
	}
	e.streamMessages(1, 10*time.Second) // the new event
	r = e.post(key, deployment("2"), map[string]string{"X-Webhook-Signature": sign(secret, deployment("2"))})
	if r.status != 200 {
		t.Fatalf("second webhook = %d %s", r.status, r.body)
	}
	e.streamMessages(2, 10*time.Second)

	eventually(t, 10*time.Second, "old audit records and the old event to be pruned", func() bool {
		return e.count(`SELECT count(*) FROM audit_log WHERE received_at < now() - interval '1 day'`) == 0 &&
			e.count(`SELECT count(*) FROM events WHERE id = 'evt_01JA000000000000000000OLD0'`) == 0
	})
	if n := e.count(`SELECT count(*) FROM events WHERE id = $1`, eventID); n != 1 {
		t.Errorf("the event just received was pruned")
	}
	if n := e.count(`SELECT count(*) FROM audit_log`); n < 2 {
		t.Errorf("audit records left = %d, want the 2 recent ones", n)
	}
	eventually(t, 5*time.Second, "the deletes in /metrics", func() bool {
		m := string(e.do("GET", "/metrics", nil, nil).body)
		return strings.Contains(m, `inlet_retention_deleted_total{table="audit_log"} 50`) &&
			strings.Contains(m, `inlet_retention_deleted_total{table="events"} 1`)
	})
}
