package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/embednats"
	"github.com/inlet-dev/inlet/pkg/publish"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

// TestEventSizesThroughInlet: webhooks whose events are 0.9, 1.1 and 30
// times NATS's max_payload, on the embedded server (its max_payload set
// small) and on an external one with a small max_payload. All are
// accepted and published, in order; those too large go with a null
// payload and Inlet-Payload-Omitted, and GET /api/v1/events/:id still has
// them whole. Nothing waits behind them.
func TestEventSizesThroughInlet(t *testing.T) {
	const limit = 64 << 10
	for _, where := range []string{"embedded", "external"} {
		t.Run(where, func(t *testing.T) {
			var e *env
			if where == "embedded" {
				e = startEnv(t, storetest.NewURL(t), "", "SIZES", "sizes.events", func(c *config.Config) { c.NATSMaxPayload = limit })
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				ns, err := embednats.Start(ctx, t.TempDir(), nil, embednats.Options{MaxPayload: limit})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(ns.Shutdown)
				e = startEnv(t, storetest.NewURL(t), ns.ClientURL(), "SIZES", "sizes.events")
			}
			if got := e.js.Conn().MaxPayload(); got != limit {
				t.Fatalf("server max_payload = %d, want %d", got, limit)
			}
			const ref = "myapp.deployment_complete"
			key := e.enable(ref)
			e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"payload_size_limit_kb": 4096})
			var ids []string
			omitted := map[string]bool{}
			for i, ratio := range []float64{0.9, 1.1, 30, 0.01} {
				// The body is most of the message; headers and metadata
				// add a few hundred bytes.
				fill := int(ratio*limit) - 700
				body := fmt.Sprintf(`{"service":"api","version":"1.0.%d","environment":"production","status":"succeeded","notes":"%s"}`,
					i, strings.Repeat("<", max(fill, 1)))
				r := e.post(key, []byte(body), nil)
				if r.status != 200 {
					t.Fatalf("%.2fx body: %d %s", ratio, r.status, r.body)
				}
				id := r.json["data"].(map[string]any)["event_id"].(string)
				ids = append(ids, id)
				omitted[id] = ratio > 1
			}
			msgs := e.streamMessages(len(ids), 30*time.Second)
			if len(msgs) != len(ids) {
				t.Fatalf("stream holds %d messages, want %d", len(msgs), len(ids))
			}
			for i, m := range msgs {
				id := m.Header.Get("Nats-Msg-Id")
				if id != ids[i] {
					t.Errorf("message %d is event %s, want %s (in the order accepted)", i, id, ids[i])
				}
				got := e.admin("GET", "/api/v1/events/"+id, nil)
				whole := got.body[len(`{"data":`) : len(got.body)-2]
				if omitted[id] {
					if m.Header.Get(publish.OmittedHeader) == "" || !strings.Contains(string(m.Data), `"payload":null`) {
						t.Errorf("event %s, too large for NATS: headers %v, body %.200s; want a null payload and %s", id, m.Header, m.Data, publish.OmittedHeader)
					}
					if !strings.Contains(string(whole), `"notes":"<<<`) {
						t.Errorf("GET /api/v1/events/%s lacks the payload the bus left out", id)
					}
				} else {
					if m.Header.Get(publish.OmittedHeader) != "" || string(m.Data) != string(whole) {
						t.Errorf("event %s, within the limit: the message differs from GET /api/v1/events/:id", id)
					}
					if strings.Contains(string(m.Data), `\u003c`) {
						t.Errorf("event %s: '<' escaped on the bus", id)
					}
				}
			}
			if n := e.count(`SELECT count(*) FROM publish_set_aside`); n != 0 {
				t.Errorf("%d events set aside, want none", n)
			}
		})
	}
}

// TestDependencyGauges: inlet_dependency_up says, without anyone asking
// /readyz, that the database and NATS answer.
func TestDependencyGauges(t *testing.T) {
	e := newEnv(t)
	for _, dep := range []string{"database", "nats"} {
		name := `inlet_dependency_up{dependency="` + dep + `"}`
		eventually(t, 15*time.Second, name+" = 1", func() bool { return relMetric(relScrape(t, e.base), name) == 1 })
	}
}
