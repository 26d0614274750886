package test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/embednats/natstest"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

// allowLoopback lets destinations reach the test's receivers.
func allowLoopback(c *config.Config) { c.DestinationAllowCIDRs = []string{"127.0.0.0/8"} }

// sink is an HTTP receiver on loopback that counts what it gets per
// webhook id and notes an id attempted twice at the same time.
type sink struct {
	srv      *httptest.Server
	mu       sync.Mutex
	seen     map[string]int
	inFlight map[string]int
	overlaps int
	headers  []http.Header
}

func newSink(t *testing.T) *sink {
	s := &sink{seen: map[string]int{}, inFlight: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		id := r.Header.Get("Webhook-Id")
		s.mu.Lock()
		s.seen[id]++
		s.inFlight[id]++
		if s.inFlight[id] > 1 {
			s.overlaps++
		}
		if len(s.headers) < 10 {
			s.headers = append(s.headers, r.Header.Clone())
		}
		s.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		s.mu.Lock()
		s.inFlight[id]--
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) counts() (distinct, total, overlaps int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.seen {
		total += n
	}
	return len(s.seen), total, s.overlaps
}

// TestForwardingThroughInlet forwards one trigger's events to another
// trigger of the same inlet, the README's walkthrough: the hmac-sha256
// scheme is what the receiver's default scheme verifies, and X-Webhook-ID
// is a delivery id it de-duplicates on, so a repeated delivery stores
// nothing new.
func TestForwardingThroughInlet(t *testing.T) {
	e := newEnv(t, allowLoopback)
	keyA := e.enable("myapp.deployment_complete")
	e.mustAdmin(201, "POST", "/api/v1/triggers", map[string]any{"ref": "relay.sink"})
	keyB, secretB := relSignedTrigger(t, e.base, e.token, "relay.sink", "")
	const headerValue = "relay-header-value-kept-secret"
	dst := e.mustAdmin(201, "POST", "/api/v1/triggers/myapp.deployment_complete/destinations", map[string]any{
		"name": "sink", "url": e.base + "/api/v1/webhooks/" + keyB,
		"signing": map[string]any{"scheme": "hmac-sha256", "secret": secretB},
		"headers": map[string]any{"X-Relay-Token": headerValue},
	})["data"].(map[string]any)
	dstID := dst["id"].(string)

	r := e.post(keyA, deployment("1.2.3"), nil)
	if r.status != 200 {
		t.Fatalf("webhook = %d %s", r.status, r.body)
	}
	evID := r.json["data"].(map[string]any)["event_id"].(string)
	eventually(t, 10*time.Second, "the event to arrive at relay.sink", func() bool {
		return e.count(`SELECT count(*) FROM events WHERE trigger_ref = 'relay.sink' AND delivery_id = $1`, evID) == 1
	})
	// relay.sink's payload is the forwarded event, as on NATS.
	orig := e.mustAdmin(200, "GET", "/api/v1/events/"+evID, nil)["data"]
	var relayed json.RawMessage
	if err := e.db.Get(&relayed, `SELECT payload FROM events WHERE trigger_ref = 'relay.sink'`); err != nil {
		t.Fatal(err)
	}
	var got any
	_ = json.Unmarshal(relayed, &got)
	if a, b := mustJSON(t, orig), mustJSON(t, got); a != b {
		t.Errorf("relayed payload = %s\nwant the event %s", b, a)
	}

	dlvs := e.mustAdmin(200, "GET", "/api/v1/events/"+evID+"/deliveries", nil)["data"].([]any)
	if len(dlvs) != 1 {
		t.Fatalf("event deliveries = %v", dlvs)
	}
	dlvID := dlvs[0].(map[string]any)["id"].(string)
	eventually(t, 5*time.Second, "the delivery to succeed", func() bool {
		d := e.mustAdmin(200, "GET", "/api/v1/deliveries/"+dlvID, nil)["data"].(map[string]any)
		return d["status"] == "succeeded"
	})

	// Again, by hand: inlet's receiver answers 200 duplicate.
	e.mustAdmin(202, "POST", "/api/v1/deliveries/"+dlvID+"/retry", nil)
	eventually(t, 5*time.Second, "the second attempt", func() bool {
		d := e.mustAdmin(200, "GET", "/api/v1/deliveries/"+dlvID, nil)["data"].(map[string]any)
		return d["status"] == "succeeded" && d["attempts"].(float64) == 2
	})
	if n := e.count(`SELECT count(*) FROM events WHERE trigger_ref = 'relay.sink'`); n != 1 {
		t.Errorf("relay.sink holds %d events after a repeated delivery, want 1", n)
	}
	d := e.mustAdmin(200, "GET", "/api/v1/deliveries/"+dlvID, nil)["data"].(map[string]any)
	log := d["attempt_log"].([]any)
	if ex := log[1].(map[string]any)["response_excerpt"].(string); !strings.Contains(ex, `"duplicate":true`) {
		t.Errorf("second attempt's answer = %s, want inlet's duplicate answer", ex)
	}

	// A destination that is down does not make inlet unready.
	e.mustAdmin(201, "POST", "/api/v1/triggers/myapp.deployment_complete/destinations", map[string]any{
		"name": "down", "url": "http://127.0.0.1:" + strconv.Itoa(freePort(t)) + "/", "retry_schedule_seconds": []int{1},
	})
	e.post(keyA, deployment("1.2.4"), nil)
	eventually(t, 10*time.Second, "the dead destination to fail", func() bool {
		return e.count(`SELECT count(*) FROM deliveries WHERE status = 'failed'`) == 1
	})
	if r := e.do("GET", "/readyz", nil, nil); r.status != 200 {
		t.Errorf("/readyz with a dead destination = %d %s", r.status, r.body)
	}
	metrics := string(e.do("GET", "/metrics", nil, nil).body)
	if !strings.Contains(metrics, `inlet_delivery_attempts_total{destination="`+dstID+`",result="success"} 3`) {
		t.Errorf("metrics lack the successful attempts:\n%s", grepLines(metrics, "inlet_delivery"))
	}

	// Neither the header's value nor the secret shows in any answer or log.
	answer := e.admin("GET", "/api/v1/destinations/"+dstID, nil).body
	for _, s := range []string{headerValue, secretB} {
		if strings.Contains(string(answer), s) || strings.Contains(e.logs.String(), s) {
			t.Errorf("a secret shows in an answer or the log")
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestTwoInstancesShareDeliveries: two gateways on one database deliver
// every event once, and no delivery is attempted by both at the same
// time.
func TestTwoInstancesShareDeliveries(t *testing.T) {
	dsn := storetest.NewURL(t)
	ns := natstest.New(t)
	a := startEnv(t, dsn, ns.URL, ns.Stream, ns.SubjectPrefix, allowLoopback)
	b := startEnv(t, dsn, ns.URL, ns.Stream, ns.SubjectPrefix, allowLoopback)
	b.token = a.token
	s := newSink(t)
	const ref = "myapp.deployment_complete"
	key := a.enable(ref)
	a.mustAdmin(201, "POST", "/api/v1/triggers/"+ref+"/destinations", map[string]any{"name": "sink", "url": s.srv.URL, "max_in_flight": 4})
	const n = 200
	for i := 0; i < n; i++ {
		inst := a
		if i%2 == 1 {
			inst = b
		}
		if r := inst.post(key, deployment(strconv.Itoa(i)), nil); r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	eventually(t, 30*time.Second, "every delivery to succeed", func() bool {
		return a.count(`SELECT count(*) FROM deliveries WHERE status = 'succeeded'`) == n
	})
	distinct, total, overlaps := s.counts()
	if distinct != n || total != n || overlaps != 0 {
		t.Errorf("sink got %d requests for %d events, %d at once for one id; want %d, %d, 0", total, distinct, overlaps, n, n)
	}
	// Both instances did some of the work.
	for _, inst := range []*env{a, b} {
		if !strings.Contains(string(inst.do("GET", "/metrics", nil, nil).body), `inlet_delivery_attempts_total{destination=`) {
			t.Errorf("instance %s made no attempt", inst.base)
		}
	}
}
