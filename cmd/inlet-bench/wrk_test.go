package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/payload"
	"github.com/inlet-dev/inlet/pkg/trigger"
	"github.com/inlet-dev/inlet/pkg/verify"
)

// benchTrigger is the trigger `make bench` sends to, as packs/ declares it.
func benchTrigger(t *testing.T) trigger.Declaration {
	t.Helper()
	packs, err := trigger.LoadPacks(filepath.Join("..", "..", "packs"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packs {
		for _, d := range p.Triggers {
			if d.Ref == "myapp.deployment_complete" {
				return d
			}
		}
	}
	t.Fatal("packs/ declares no myapp.deployment_complete")
	return trigger.Declaration{}
}

// TestBenchTriggerHasNoDeliveryID pins what lets the wrk bodies repeat: the
// trigger takes delivery ids from headers only (none from the body), and
// signed.lua sends none, so a body sent twice is two events.
func TestBenchTriggerHasNoDeliveryID(t *testing.T) {
	d := benchTrigger(t)
	if got := d.Settings.DeliveryID; got != "" {
		t.Errorf("delivery_id of the trigger = %q, want none", got)
	}
	if got := verify.DefaultDeliveryID(d.Settings.HMAC.Preset); got != "" {
		t.Errorf("delivery id of preset %q = %q, want none", d.Settings.HMAC.Preset, got)
	}
}

func readBodies(t *testing.T, path string) (sigs, bodies []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		sig, body, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("line %q is not <hex> <body>", sc.Text())
		}
		sigs, bodies = append(sigs, sig), append(bodies, body)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sigs, bodies
}

func TestWriteBodies(t *testing.T) {
	schema, err := payload.CompileSchema(benchTrigger(t).PayloadSchema)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("whsec_test")
	path := filepath.Join(t.TempDir(), "bodies")
	const n = 50
	if err := writeBodies(path, secret, "run-r1c16", n); err != nil {
		t.Fatal(err)
	}
	sigs, bodies := readBodies(t, path)
	if len(bodies) != n {
		t.Fatalf("got %d bodies, want %d", len(bodies), n)
	}
	seen := map[string]bool{}
	for i, body := range bodies {
		if seen[body] {
			t.Errorf("body %d repeats an earlier one", i+1)
		}
		seen[body] = true
		if len(body) != BodySize {
			t.Errorf("body %d is %d bytes, want %d", i+1, len(body), BodySize)
		}
		if want := fmt.Sprintf("run-r1c16-%05d", i+1); !strings.Contains(body, want) {
			t.Errorf("body %d does not hold its id %s", i+1, want)
		}
		h := http.Header{}
		h.Set("X-Hub-Signature-256", "sha256="+sigs[i])
		c := verify.Config{Header: "X-Hub-Signature-256", Secrets: [][]byte{secret}}
		if err := verify.Verify(c, verify.Request{Header: h, Body: []byte(body)}); err != nil {
			t.Errorf("body %d: signature does not verify: %v", i+1, err)
		}
		_, v, err := payload.Decode("application/json", []byte(body))
		if err != nil {
			t.Fatalf("body %d: %v", i+1, err)
		}
		if err := schema.Validate(v); err != nil {
			t.Errorf("body %d does not match the trigger's schema: %v", i+1, err)
		}
	}
}

func TestParseWrk(t *testing.T) {
	const summary = `inlet-bench-wrk {"duration_us":2000000,"requests":900,"bytes":1,"sent":904,` +
		`"errors":{"connect":0,"read":1,"write":0,"status":3,"timeout":2},` +
		`"latency_us":{"mean":1.5,"stdev":1,"max":9000,"p50":1200,"p90":2000,"p99":5000,"p999":8000},` +
		`"status":{"200":897,"503":3}}`
	tests := []struct {
		name    string
		out     string
		wantErr bool
	}{
		{"after wrk's report", "Running 2s test @ http://127.0.0.1:1/\n  900 requests in 2.00s\n" + summary + "\n", false},
		{"no trailing newline", summary, false},
		{"no summary", "Running 2s test @ http://127.0.0.1:1/\nPANIC: unprotected error in call to Lua API\n", true},
		{"broken summary", "inlet-bench-wrk {\"requests\":\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseWrk([]byte(tt.out))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseWrk: got no error, want one")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Requests != 900 || s.Sent != 904 || s.Status["200"] != 897 || s.Errors.Timeout != 2 || s.Latency.P99 != 5000 {
				t.Errorf("parseWrk = %+v, want the summary's figures", s)
			}
		})
	}
}

func TestWrkLoadResult(t *testing.T) {
	warm := wrkSummary{Requests: 100, Sent: 104, Status: map[string]int{"200": 100}, CPU: 0.5}
	var s wrkSummary
	s.DurationUS, s.Requests, s.Sent = 2e6, 900, 905
	s.Errors.Read, s.Errors.Timeout = 1, 2
	s.Latency.P50, s.Latency.P99 = 1500, 20000
	s.Status = map[string]int{"200": 897, "503": 3}
	s.CPU = 1
	got := s.loadResult(&warm, 4)
	checks := []struct {
		name      string
		got, want float64
	}{
		{"rps over the measured run", got.RPS, 450},
		{"p50 ms", got.P50, 1.5},
		{"p99 ms", got.P99, 20},
		{"ok over both runs", float64(got.OK), 997},
		{"total: answers and socket errors", float64(got.Total), 1001},
		{"unanswered over both runs", float64(got.Unanswered), 9},
		{"errors: not 200, and too late", float64(got.Errors()), 1001 - 997 + 2},
		{"load generator CPU", got.LoadCPU, 1.5},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestCheckJudge(t *testing.T) {
	tests := []struct {
		name            string
		mode            string
		c               Check
		storedPublished bool
		consistent      bool
	}{
		{"go: one event per 200", loadGo,
			Check{OK: 10, Events: 10, DistinctIDs: 10, Messages: 10, AuditAccepted: 10}, true, true},
		{"go: an event too many", loadGo,
			Check{OK: 10, Events: 11, DistinctIDs: 11, Messages: 11, AuditAccepted: 11}, true, false},
		{"go: a duplicate delivery id", loadGo,
			Check{OK: 10, Events: 10, DistinctIDs: 9, Messages: 10, AuditAccepted: 10}, true, false},
		{"go: a message missing", loadGo,
			Check{OK: 10, Events: 10, DistinctIDs: 10, Messages: 9, AuditAccepted: 10}, false, false},
		{"wrk: in-flight requests stored", loadWrk,
			Check{OK: 10, Unanswered: 4, Events: 14, Messages: 14, AuditAccepted: 14}, true, true},
		{"wrk: in-flight requests dropped", loadWrk,
			Check{OK: 10, Unanswered: 4, Events: 10, Messages: 10, AuditAccepted: 10}, true, true},
		{"wrk: a 200 without its event", loadWrk,
			Check{OK: 10, Unanswered: 4, Events: 9, Messages: 9, AuditAccepted: 9}, true, false},
		{"wrk: more events than requests", loadWrk,
			Check{OK: 10, Unanswered: 4, Events: 15, Messages: 15, AuditAccepted: 15}, true, false},
		{"wrk: an event with a delivery id", loadWrk,
			Check{OK: 10, Events: 10, DistinctIDs: 1, Messages: 10, AuditAccepted: 10}, true, false},
		{"wrk: an audit row missing", loadWrk,
			Check{OK: 10, Events: 10, Messages: 10, AuditAccepted: 9}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			c.judge(tt.mode)
			if c.StoredPublished != tt.storedPublished || c.OneEventPer200 != tt.consistent {
				t.Errorf("judge: got stored=published %v, consistent %v; want %v, %v",
					c.StoredPublished, c.OneEventPer200, tt.storedPublished, tt.consistent)
			}
		})
	}
}

// deliveryHeaders are the headers inlet takes a delivery id from when the
// trigger names none (pkg/receiver/headers.go).
var deliveryHeaders = []string{
	"X-GitHub-Delivery", "Webhook-Id", "Svix-Id", "X-Webhook-ID", "Idempotency-Key",
	"X-Shopify-Event-Id", "I-Twilio-Idempotency-Token",
}

// TestSignedLua runs wrk with bench/wrk/signed.lua against a server on
// 127.0.0.1 that checks every request as inlet would and answers 503 to
// every tenth, and compares what the script reports with what the server
// saw.
func TestSignedLua(t *testing.T) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk is not installed (scripts/ensure-wrk.sh)")
	}
	secret := []byte("whsec_lua")
	var mu sync.Mutex
	var served, ok, unavailable int
	var problems []string
	bodies := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := verify.Config{Header: "X-Hub-Signature-256", Secrets: [][]byte{secret}}
		err := verify.Verify(c, verify.Request{Header: r.Header, Body: body})
		mu.Lock()
		defer mu.Unlock()
		served++
		bodies[string(body)] = true
		switch {
		case err != nil:
			problems = append(problems, "signature: "+err.Error())
		case r.Method != http.MethodPost || r.URL.Path != "/api/v1/webhooks/wh_test":
			problems = append(problems, "request: "+r.Method+" "+r.URL.Path)
		case r.Header.Get("Content-Type") != "application/json":
			problems = append(problems, "content type: "+r.Header.Get("Content-Type"))
		}
		for _, h := range deliveryHeaders {
			if r.Header.Get(h) != "" {
				problems = append(problems, "delivery id header "+h)
			}
		}
		if served%10 == 0 {
			unavailable++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		ok++
	}))
	defer srv.Close()

	dir := t.TempDir()
	path := filepath.Join(dir, "bodies")
	const n = 40
	if err := writeBodies(path, secret, "lua", n); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := runWrk(ctx, wrkOptions{
		bin: wrk, script: filepath.Join("..", "..", "bench", "wrk", "signed.lua"), bodies: path,
		url: srv.URL + "/api/v1/webhooks/wh_test", conns: 4, threads: 2, d: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close() // waits for the requests wrk left in flight

	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("the server saw %d bad requests, the first: %s", len(problems), problems[0])
	}
	if s.Requests < 2*n {
		t.Fatalf("wrk read %d answers in 1 s, too few to cycle through %d bodies", s.Requests, n)
	}
	if len(bodies) != n {
		t.Errorf("the server saw %d distinct bodies, want all %d", len(bodies), n)
	}
	if got := s.Status["200"] + s.Status["503"]; got != s.Requests || len(s.Status) != 2 {
		t.Errorf("status tally %v sums to %d, want the %d answers read", s.Status, got, s.Requests)
	}
	if s.Errors.Status != s.Status["503"] {
		t.Errorf("wrk counted %d status errors, the tally %d 503s", s.Errors.Status, s.Status["503"])
	}
	// Every request wrk wrote reached the server; the answers to those in
	// flight when it stopped were never read.
	if served != s.Sent {
		t.Errorf("the server answered %d requests, signed.lua says %d were sent", served, s.Sent)
	}
	if s.Status["200"] > ok || s.Status["200"] < ok-4 {
		t.Errorf("wrk read %d 200s, the server sent %d with 4 connections", s.Status["200"], ok)
	}
	if s.Latency.P50 <= 0 || s.Latency.P99 < s.Latency.P50 {
		t.Errorf("latency p50 %v µs, p99 %v µs: want 0 < p50 <= p99", s.Latency.P50, s.Latency.P99)
	}
}
