package test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

// TestReplay replays one event and a range of events through a running
// gateway: each replay is a new event, on NATS with its own id, naming
// the original in replay_of, and delivered to the trigger's destinations.
func TestReplay(t *testing.T) {
	e := newEnv(t, allowLoopback)
	s := newSink(t)
	const ref = "myapp.deployment_complete"
	key := e.enable(ref)
	start := time.Now().Add(-time.Second)
	var ids []string
	for i := range 4 {
		r := e.post(key, deployment("1.0."+strconv.Itoa(i)), nil)
		if r.status != 200 {
			t.Fatalf("webhook: %d %s", r.status, r.body)
		}
		ids = append(ids, r.json["data"].(map[string]any)["event_id"].(string))
	}
	e.streamMessages(4, 10*time.Second)
	// Destinations see replays too.
	e.mustAdmin(201, "POST", "/api/v1/triggers/"+ref+"/destinations", map[string]any{"name": "sink", "url": s.srv.URL})

	one := e.mustAdmin(201, "POST", "/api/v1/events/"+ids[0]+"/replay", nil)["data"].(map[string]any)
	rng := e.mustAdmin(200, "POST", "/api/v1/events/replay", map[string]any{
		"trigger": ref, "since": start.UTC().Format(time.RFC3339Nano), "limit": 3,
	})["data"].(map[string]any)
	if rng["replayed"].(float64) != 3 {
		t.Fatalf("range replay = %v", rng)
	}
	newIDs := []string{one["id"].(string)}
	for _, id := range rng["event_ids"].([]any) {
		newIDs = append(newIDs, id.(string))
	}
	wantOf := []string{ids[0], ids[0], ids[1], ids[2]}

	msgs := e.streamMessages(8, 10*time.Second)
	if len(msgs) != 8 {
		t.Fatalf("stream has %d messages, want 4 events and 4 replays", len(msgs))
	}
	for i, m := range msgs[4:] {
		var ev struct {
			ID       string `json:"id"`
			Source   string `json:"source"`
			Metadata struct {
				ReplayOf string `json:"replay_of"`
				Source   string `json:"source"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.ID != newIDs[i] || m.Header.Get("Nats-Msg-Id") != newIDs[i] || ev.Source != "replay" ||
			ev.Metadata.Source != "replay" || ev.Metadata.ReplayOf != wantOf[i] {
			t.Errorf("message %d: id %s (msg id %s), source %s, replay_of %s; want %s replaying %s",
				i, ev.ID, m.Header.Get("Nats-Msg-Id"), ev.Source, ev.Metadata.ReplayOf, newIDs[i], wantOf[i])
		}
	}
	eventually(t, 10*time.Second, "the replays to reach the destination", func() bool {
		n, _, _ := s.counts()
		return n == 4
	})
	s.mu.Lock()
	for _, id := range newIDs {
		if s.seen[id] != 1 {
			t.Errorf("destination got replay %s %d times", id, s.seen[id])
		}
	}
	s.mu.Unlock()
	act := e.mustAdmin(200, "GET", "/api/v1/activity", nil)["data"].([]any)
	if a := act[0].(map[string]any); a["action"] != "event.replay" || a["token_name"] == "" {
		t.Errorf("latest activity = %v, want the range replay", a)
	}
}
