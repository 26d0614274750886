package test

import (
	"strings"
	"testing"
	"time"
)

// TestTriggerHealth walks a trigger through the health states of the
// webhook info, and checks that /metrics reports them.
func TestTriggerHealth(t *testing.T) {
	e := newEnv(t)
	// At start every trigger's health is exported; the packs' webhooks are
	// disabled.
	eventually(t, 5*time.Second, "the health of github.push in /metrics", func() bool {
		m := string(e.do("GET", "/metrics", nil, nil).body)
		return strings.Contains(m, `inlet_trigger_health{status="disabled",trigger="github.push"} 1`) &&
			strings.Contains(m, `inlet_trigger_health{status="ok",trigger="github.push"} 0`)
	})
	const ref = "myapp.deployment_complete"
	health := func() map[string]any {
		t.Helper()
		return e.mustAdmin(200, "GET", "/api/v1/triggers/"+ref+"/webhooks", nil)["data"].(map[string]any)["health"].(map[string]any)
	}
	if h := health(); h["status"] != "disabled" {
		t.Errorf("health of a disabled webhook = %v", h)
	}
	key, secret := relSignedTrigger(t, e.base, e.token, ref, "")
	if h := health(); h["status"] != "ok" || h["last_accepted_at"] != nil || h["accepted_1h"].(float64) != 0 {
		t.Errorf("health of a fresh webhook = %v", h)
	}
	body := deployment("1")
	for i := 0; i < 3; i++ {
		if r := e.post(key, deployment(string(rune('a'+i))), map[string]string{"X-Webhook-Signature": sign(secret, deployment(string(rune('a'+i))))}); r.status != 200 {
			t.Fatalf("signed webhook = %d %s", r.status, r.body)
		}
	}
	if h := health(); h["status"] != "ok" || h["last_accepted_at"] == nil || h["accepted_1h"].(float64) != 3 {
		t.Errorf("health after 3 accepted = %v", h)
	}
	// A rotated secret on the sender's side: rejections pile up, and are
	// counted within a second.
	for i := 0; i < 8; i++ {
		e.post(key, body, map[string]string{"X-Webhook-Signature": sign("the-wrong-secret", body)})
	}
	eventually(t, 5*time.Second, "the trigger to be failing", func() bool {
		h := health()
		return h["status"] == "failing" && h["rejected_1h"].(float64) == 8 && h["last_rejected_at"] != nil
	})
	// A sender expected every minute, silent for two: idle. (The hour's
	// counts are moved back too, as if the hour had passed.)
	e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"expected_interval_seconds": 60})
	if _, err := e.db.Exec(`UPDATE usage SET last_at = now() - interval '2 minutes'`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec(`DELETE FROM usage_minutes`); err != nil {
		t.Fatal(err)
	}
	if h := health(); h["status"] != "idle" {
		t.Errorf("health of a silent trigger expected every minute = %v", h)
	}
	for _, bad := range []int{30, 30*86400 + 1, -1} {
		if r := e.admin("PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"expected_interval_seconds": bad}); r.status != 422 {
			t.Errorf("expected_interval_seconds %d = %d, want 422", bad, r.status)
		}
	}
}
