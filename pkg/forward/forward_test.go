package forward_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/destination"
	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/forward"
	"github.com/inlet-dev/inlet/pkg/metrics"
	"github.com/inlet-dev/inlet/pkg/netguard"
	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/sign"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// loopback allows the test receivers, which listen on 127.0.0.1.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// hit is one request a receiver got.
type hit struct {
	at     time.Time
	header http.Header
	body   []byte
}

// receiver is an HTTP endpoint on loopback that records what it gets and
// answers as respond says (200 when nil). respond gets the 1-based number
// of the request.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	hits    []hit
	respond func(n int, w http.ResponseWriter, r *http.Request)
	// inFlight counts the requests being answered per webhook id;
	// overlap records an id that was in flight twice at once.
	inFlight map[string]int
	overlap  []string
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{t: t, respond: respond, inFlight: map[string]int{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get("Webhook-Id")
	rc.mu.Lock()
	rc.hits = append(rc.hits, hit{at: time.Now(), header: r.Header.Clone(), body: body})
	n := len(rc.hits)
	rc.inFlight[id]++
	if rc.inFlight[id] > 1 {
		rc.overlap = append(rc.overlap, id)
	}
	respond := rc.respond
	rc.mu.Unlock()
	defer func() {
		rc.mu.Lock()
		rc.inFlight[id]--
		rc.mu.Unlock()
	}()
	if respond == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	respond(n, w, r)
}

func (rc *receiver) setRespond(fn func(n int, w http.ResponseWriter, r *http.Request)) {
	rc.mu.Lock()
	rc.respond = fn
	rc.mu.Unlock()
}

func (rc *receiver) got() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

// fixture is a database with a trigger, and forwarders on it.
type fixture struct {
	t       *testing.T
	st      *store.Store
	trig    trigger.Trigger
	metrics *metrics.Metrics
	logs    *bytes.Buffer
	logMu   sync.Mutex
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st := store.New(storetest.New(t), storetest.Keyring())
	tr, err := st.CreateTrigger(context.Background(), store.NewTrigger{Ref: "ci.build", Settings: trigger.DefaultSettings()})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, st: st, trig: tr, metrics: metrics.New(func() float64 { return 0 }), logs: &bytes.Buffer{}}
}

func (f *fixture) Write(p []byte) (int, error) {
	f.logMu.Lock()
	defer f.logMu.Unlock()
	return f.logs.Write(p)
}

func (f *fixture) logText() string {
	f.logMu.Lock()
	defer f.logMu.Unlock()
	return f.logs.String()
}

// start runs a forwarder until the test ends, with allow as its guard's
// allow list.
func (f *fixture) start(allow []netip.Prefix) *forward.Forwarder {
	f.t.Helper()
	fw := forward.New(forward.Options{
		Store: f.st, Guard: netguard.New(allow), UserAgent: "inlet/test", Poll: 20 * time.Millisecond,
		ObserveEvery: 100 * time.Millisecond, Metrics: f.metrics,
		Logger: slog.New(slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fw.Run(ctx); err != nil {
			f.t.Errorf("Run = %v", err)
		}
	}()
	f.t.Cleanup(func() {
		cancel()
		<-done
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		_ = fw.Close(cctx)
	})
	return fw
}

// destination creates a destination of the fixture's trigger for url,
// changed by edit.
func (f *fixture) destination(url string, edit func(*destination.Destination)) destination.Destination {
	f.t.Helper()
	d := destination.Destination{
		ID: event.NewPrefixedID("dst_", time.Now()), TriggerID: f.trig.ID, TriggerRef: f.trig.Ref,
		Name: "test", URL: url, Enabled: true, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	}
	d.Defaults()
	d.RetrySchedule = []int{1, 1}
	if edit != nil {
		edit(&d)
	}
	if err := d.Validate(); err != nil {
		f.t.Fatal(err)
	}
	d, err := f.st.CreateDestination(context.Background(), d)
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// events stores one event per payload, as the writer does (with their
// deliveries), and returns them.
func (f *fixture) events(payloads ...string) []event.Event {
	f.t.Helper()
	var recs []*store.Record
	var out []event.Event
	for _, p := range payloads {
		at := event.Time(time.Now())
		ev := event.Event{ID: event.MustNewID(at), TriggerID: f.trig.ID, TriggerRef: f.trig.Ref, Source: event.Source,
			Payload: json.RawMessage(p), Metadata: json.RawMessage(`{"source":"webhook"}`), ReceivedAt: at}
		id, ref := f.trig.ID, f.trig.Ref
		recs = append(recs, &store.Record{Event: &ev,
			Audit: store.Audit{ReceivedAt: at, TriggerID: &id, TriggerRef: &ref, Status: http.StatusOK, Outcome: outcome.Accepted}})
		out = append(out, ev)
	}
	if _, err := f.st.WriteBatch(context.Background(), recs); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// deliveryOf returns the one delivery of ev, with its attempts.
func (f *fixture) deliveryOf(ev event.Event) (store.Delivery, []store.Attempt) {
	f.t.Helper()
	ds, err := f.st.EventDeliveries(context.Background(), ev.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(ds) != 1 {
		f.t.Fatalf("event %s has %d deliveries, want 1", ev.ID, len(ds))
	}
	d, attempts, err := f.st.GetDelivery(context.Background(), ds[0].ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return d, attempts
}

// await waits up to timeout for ev's delivery to reach status with at
// least attempts attempts.
func (f *fixture) await(ev event.Event, status string, attempts int, timeout time.Duration) (store.Delivery, []store.Attempt) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d, as := f.deliveryOf(ev)
		if d.Status == status && d.Attempts >= attempts {
			return d, as
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("delivery of %s: status %s after %d attempts (last error %q), want %s after %d\nlog:\n%s",
				ev.ID, d.Status, d.Attempts, d.LastError, status, attempts, f.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func status(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

func TestRetriesUntilSuccess(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "busy")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	f.destination(rc.srv.URL, func(d *destination.Destination) { d.RetrySchedule = []int{1, 2, 1} })
	f.start(loopback)
	ev := f.events(`{"build":1}`)[0]

	d, attempts := f.await(ev, destination.Succeeded, 3, 15*time.Second)
	if d.Attempts != 3 || len(attempts) != 3 {
		t.Fatalf("attempts = %d (%d logged), want 3", d.Attempts, len(attempts))
	}
	for i, want := range []int{503, 503, 204} {
		if a := attempts[i]; a.Attempt != i+1 || a.StatusCode == nil || *a.StatusCode != want {
			t.Errorf("attempt %d = %+v, want #%d with status %d", i, a, i+1, want)
		}
	}
	if attempts[0].ResponseExcerpt != "busy" || attempts[0].Error != "HTTP 503" {
		t.Errorf("first attempt: excerpt %q, error %q", attempts[0].ResponseExcerpt, attempts[0].Error)
	}
	if d.LastError != "" || d.NextAttemptAt != nil {
		t.Errorf("succeeded delivery: last_error %q, next_attempt_at %v", d.LastError, d.NextAttemptAt)
	}
	// The requests are spaced by the schedule, 1 s then 2 s, each spread
	// by at most 10%, plus the forwarder's poll.
	hits := rc.got()
	for i, base := range []time.Duration{time.Second, 2 * time.Second} {
		gap := hits[i+1].at.Sub(hits[i].at)
		if gap < base*9/10-50*time.Millisecond || gap > base*11/10+500*time.Millisecond {
			t.Errorf("gap before attempt %d = %v, want %v ±10%%", i+2, gap, base)
		}
	}
	// The same id and the same body every time, so that the receiver can
	// drop repeats.
	for _, h := range hits {
		if h.header.Get("Webhook-Id") != ev.ID || !bytes.Equal(h.body, ev.Marshal()) {
			t.Errorf("attempt carried id %q and body %s, want %s and the event as published", h.header.Get("Webhook-Id"), h.body, ev.ID)
		}
	}
	st, err := f.st.DestinationStats(context.Background(), d.DestinationID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Succeeded != 1 || st.Pending != 0 || st.LastSuccessAt == nil {
		t.Errorf("stats = %+v, want 1 succeeded", st)
	}
}

func TestFailsAfterLastRetryThenRetryAndRecover(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, status(http.StatusInternalServerError))
	dst := f.destination(rc.srv.URL, func(d *destination.Destination) { d.RetrySchedule = []int{1} })
	fw := f.start(loopback)
	start := time.Now()
	evs := f.events(`{"n":1}`, `{"n":2}`)

	for _, ev := range evs {
		d, attempts := f.await(ev, destination.Failed, 2, 15*time.Second)
		if d.Attempts != 2 || len(attempts) != 2 || d.LastStatusCode == nil || *d.LastStatusCode != 500 {
			t.Fatalf("failed delivery = %+v, %d attempts logged", d, len(attempts))
		}
	}
	// Failed for good: no more attempts.
	time.Sleep(1500 * time.Millisecond)
	if n := len(rc.got()); n != 4 {
		t.Errorf("receiver got %d requests, want 2 per delivery", n)
	}
	st, _ := f.st.DestinationStats(context.Background(), dst.ID)
	if st.Failed != 2 || st.LastFailureAt == nil {
		t.Errorf("stats = %+v, want 2 failed", st)
	}

	rc.setRespond(nil) // the receiver recovers
	first, _ := f.deliveryOf(evs[0])
	if _, err := f.st.RetryDelivery(context.Background(), first.ID); err != nil {
		t.Fatal(err)
	}
	fw.Wake()
	if d, _ := f.await(evs[0], destination.Succeeded, 3, 5*time.Second); d.Attempts != 3 {
		t.Errorf("retried delivery: %d attempts, want 3", d.Attempts)
	}
	if d, _ := f.deliveryOf(evs[1]); d.Status != destination.Failed {
		t.Errorf("the other delivery is %s, want still failed", d.Status)
	}
	n, err := f.st.RecoverDeliveries(context.Background(), dst.ID, start.Add(-time.Second))
	if err != nil || n != 1 {
		t.Fatalf("RecoverDeliveries = %d, %v; want 1 requeued", n, err)
	}
	fw.Wake()
	f.await(evs[1], destination.Succeeded, 3, 5*time.Second)
	// Recover only takes failed deliveries created since the time given.
	if n, err := f.st.RecoverDeliveries(context.Background(), dst.ID, start.Add(-time.Second)); err != nil || n != 0 {
		t.Errorf("RecoverDeliveries again = %d, %v; want 0", n, err)
	}
}

func TestTimeout(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) { <-release })
	t.Cleanup(func() { close(release) })
	f.destination(rc.srv.URL, func(d *destination.Destination) {
		d.TimeoutSeconds = 1
		d.RetrySchedule = []int{}
	})
	f.start(loopback)
	ev := f.events(`{}`)[0]
	d, attempts := f.await(ev, destination.Failed, 1, 10*time.Second)
	if d.LastError != "timed out after 1s" || d.LastStatusCode != nil {
		t.Errorf("last_error %q, status %v; want a timeout and no status", d.LastError, d.LastStatusCode)
	}
	if ms := attempts[0].DurationMS; ms < 950 || ms > 3000 {
		t.Errorf("attempt took %.0f ms, want about the 1 s timeout", ms)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	f := newFixture(t)
	target := newReceiver(t, nil)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.srv.URL+"/elsewhere", http.StatusFound)
	})
	f.destination(rc.srv.URL, func(d *destination.Destination) { d.RetrySchedule = []int{} })
	f.start(loopback)
	ev := f.events(`{}`)[0]
	d, _ := f.await(ev, destination.Failed, 1, 10*time.Second)
	if d.LastStatusCode == nil || *d.LastStatusCode != http.StatusFound || d.LastError != "HTTP 302: redirects are not followed" {
		t.Errorf("delivery = status %v, error %q; want the 302 as a failure", d.LastStatusCode, d.LastError)
	}
	if n := len(target.got()); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}

func TestAddressGuard(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, nil)
	f.destination(rc.srv.URL, func(d *destination.Destination) { d.RetrySchedule = []int{} })
	f.start(nil) // no allow list: loopback is refused
	ev := f.events(`{}`)[0]
	d, attempts := f.await(ev, destination.Failed, 1, 10*time.Second)
	if want := "address 127.0.0.1 is refused"; !bytes.Contains([]byte(d.LastError), []byte(want)) ||
		!bytes.Contains([]byte(d.LastError), []byte("loopback")) || !bytes.Contains([]byte(d.LastError), []byte(netguard.AllowEnv)) {
		t.Errorf("last_error = %q, want the refused address, the rule and the setting", d.LastError)
	}
	if attempts[0].StatusCode != nil {
		t.Errorf("a refused attempt has status %d", *attempts[0].StatusCode)
	}
	if n := len(rc.got()); n != 0 {
		t.Fatalf("the receiver got %d requests despite the guard", n)
	}
	if got := counter(t, f.metrics, "inlet_delivery_attempts_total", "refused"); got != 1 {
		t.Errorf("refused attempts counted = %v, want 1", got)
	}
}

func TestDisabledDestinationWaits(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, nil)
	dst := f.destination(rc.srv.URL, nil)
	fw := f.start(loopback)
	ev1 := f.events(`{"n":1}`)[0]
	f.await(ev1, destination.Succeeded, 1, 5*time.Second)

	// Disabled after events are stored: their deliveries wait.
	dst, err := f.st.UpdateDestination(context.Background(), dst.ID, "destination.update", func(d *destination.Destination) error {
		d.Enabled = false
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Stored while it is disabled: no delivery at all.
	ev2 := f.events(`{"n":2}`)[0]
	if ds, _ := f.st.EventDeliveries(context.Background(), ev2.ID); len(ds) != 0 {
		t.Errorf("an event stored while the destination is disabled has %d deliveries", len(ds))
	}
	// A delivery pending when it was disabled (made due by a retry)
	// waits.
	first, _ := f.deliveryOf(ev1)
	if _, err := f.st.RetryDelivery(context.Background(), first.ID); err != nil {
		t.Fatal(err)
	}
	fw.Wake()
	time.Sleep(500 * time.Millisecond)
	if d, _ := f.deliveryOf(ev1); d.Status != destination.Pending || d.Attempts != 1 {
		t.Fatalf("while disabled: %s after %d attempts, want pending after 1", d.Status, d.Attempts)
	}
	if _, err := f.st.UpdateDestination(context.Background(), dst.ID, "destination.update", func(d *destination.Destination) error {
		d.Enabled = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.await(ev1, destination.Succeeded, 2, 5*time.Second)
	if n := len(rc.got()); n != 2 {
		t.Errorf("receiver got %d requests, want 2", n)
	}
}

func TestDeletedDestinationCancelsPending(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, status(http.StatusBadGateway))
	dst := f.destination(rc.srv.URL, func(d *destination.Destination) { d.RetrySchedule = []int{3600} })
	f.start(loopback)
	ev := f.events(`{}`)[0]
	f.await(ev, destination.Pending, 1, 5*time.Second)
	if err := f.st.DeleteDestination(context.Background(), dst.ID); err != nil {
		t.Fatal(err)
	}
	d, attempts := f.deliveryOf(ev)
	if d.Status != destination.Failed || d.LastError != "canceled: the destination was deleted" || len(attempts) != 1 {
		t.Errorf("after delete: %s %q with %d attempts", d.Status, d.LastError, len(attempts))
	}
	if _, err := f.st.RetryDelivery(context.Background(), d.ID); err == nil {
		t.Error("a delivery of a deleted destination was retried")
	}
}

func TestCircuitBreakerHoldsAttempts(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, status(http.StatusServiceUnavailable))
	dst := f.destination(rc.srv.URL, func(d *destination.Destination) {
		d.RetrySchedule = []int{1, 1, 1, 1, 1, 1}
		d.MaxInFlight = 1
	})
	f.start(loopback)
	evs := f.events(`{"n":1}`, `{"n":2}`, `{"n":3}`)
	// Three deliveries failing every second: the fifth failure in a row
	// opens the circuit for 30 s.
	deadline := time.Now().Add(15 * time.Second)
	var got destination.Destination
	for {
		var err error
		if got, err = f.st.GetDestination(context.Background(), dst.ID); err != nil {
			t.Fatal(err)
		}
		if got.Circuit.State(time.Now()) == "open" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("circuit still %s after %d failures", got.Circuit.State(time.Now()), got.Circuit.ConsecutiveFailures)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Results are recorded in batches: a failure may be counted after the
	// next attempt started, so the circuit may open at the sixth, for
	// twice as long.
	if n := got.Circuit.ConsecutiveFailures; n < destination.CircuitThreshold || n > destination.CircuitThreshold+1 {
		t.Errorf("opened after %d failures, want %d", n, destination.CircuitThreshold)
	}
	if until := time.Until(*got.Circuit.OpenUntil); until < 25*time.Second || until > 61*time.Second {
		t.Errorf("open for %v, want 30 s (60 s after a sixth failure)", until)
	}
	seen := len(rc.got())
	time.Sleep(2 * time.Second) // three retries fall due meanwhile
	if n := len(rc.got()); n != seen {
		t.Errorf("the receiver got %d requests while the circuit was open", n-seen)
	}
	for _, ev := range evs {
		if d, _ := f.deliveryOf(ev); d.Status != destination.Pending {
			t.Errorf("delivery %s while held: %s, want pending", d.ID, d.Status)
		}
	}
	time.Sleep(200 * time.Millisecond) // the metrics' next look
	if v := gauge(t, f.metrics, "inlet_destination_circuit_open", dst.ID); v != 1 {
		t.Errorf("inlet_destination_circuit_open = %v, want 1", v)
	}
}

func TestHalfOpenCircuitLetsOneProbe(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	var once sync.Once
	rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) { <-release })
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	dst := f.destination(rc.srv.URL, func(d *destination.Destination) { d.MaxInFlight = 5 })
	// Open, with its time over: the next attempt probes.
	if _, err := f.st.DB().Exec(`UPDATE destinations SET consecutive_failures = 5, circuit_open_until = now() - interval '1 second' WHERE id = $1`, dst.ID); err != nil {
		t.Fatal(err)
	}
	f.events(`{"n":1}`, `{"n":2}`, `{"n":3}`)
	f.start(loopback)
	time.Sleep(time.Second)
	if n := len(rc.got()); n != 1 {
		t.Errorf("a half-open circuit let %d requests through, want the one probe", n)
	}
	once.Do(func() { close(release) }) // the probe succeeds
	deadline := time.Now().Add(5 * time.Second)
	for len(rc.got()) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("after a successful probe only %d requests", len(rc.got()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, _ := f.st.GetDestination(context.Background(), dst.ID)
	if got.Circuit.State(time.Now()) != "closed" || got.Circuit.ConsecutiveFailures != 0 {
		t.Errorf("after a successful probe: %s with %d failures", got.Circuit.State(time.Now()), got.Circuit.ConsecutiveFailures)
	}
}

// A slow destination holds only its own deliveries.
func TestSlowDestinationDoesNotStarveOthers(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	slow := newReceiver(t, func(int, http.ResponseWriter, *http.Request) { <-release })
	t.Cleanup(func() { close(release) })
	fast := newReceiver(t, nil)
	f.destination(slow.srv.URL, func(d *destination.Destination) {
		d.MaxInFlight = 2
		d.TimeoutSeconds = 30
	})
	f.destination(fast.srv.URL, nil)
	f.start(loopback)
	payloads := make([]string, 20)
	for i := range payloads {
		payloads[i] = `{}`
	}
	f.events(payloads...)
	deadline := time.Now().Add(5 * time.Second)
	for len(fast.got()) < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("the fast destination got %d of 20 while the slow one hangs", len(fast.got()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(slow.got()); n != 2 {
		t.Errorf("the slow destination has %d requests in flight, want max_in_flight 2", n)
	}
}

func TestCustomHeadersAndUserAgent(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, nil)
	const token = "Bearer s3cr3t-header-value"
	f.destination(rc.srv.URL, func(d *destination.Destination) {
		d.Headers = map[string]secret.Value{"Authorization": token, "X-Team": "builds"}
		d.RetrySchedule = []int{}
	})
	f.start(loopback)
	ev := f.events(`{}`)[0]
	f.await(ev, destination.Succeeded, 1, 5*time.Second)
	h := rc.got()[0].header
	if h.Get("Authorization") != token || h.Get("X-Team") != "builds" {
		t.Errorf("custom headers = %q, %q", h.Get("Authorization"), h.Get("X-Team"))
	}
	if h.Get("User-Agent") != "inlet/test" || h.Get("Content-Type") != "application/json" {
		t.Errorf("User-Agent %q, Content-Type %q", h.Get("User-Agent"), h.Get("Content-Type"))
	}
	// The stored destination shows no value.
	raw, err := f.st.DB().Query(`SELECT headers::text FROM destinations`)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for raw.Next() {
		var s string
		_ = raw.Scan(&s)
		if bytes.Contains([]byte(s), []byte("s3cr3t")) {
			t.Errorf("a header value is stored in the clear: %s", s)
		}
	}
}

func TestTestRequest(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, "thanks")
	})
	dst := f.destination(rc.srv.URL, nil)
	fw := f.start(loopback)
	res := fw.Test(context.Background(), dst, json.RawMessage(`{"hello":"world"}`))
	if !res.Success || res.StatusCode == nil || *res.StatusCode != 202 || res.ResponseExcerpt != "thanks" || res.Error != nil {
		t.Fatalf("Test = %+v", res)
	}
	h := rc.got()[0]
	var body event.Event
	if err := json.Unmarshal(h.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Source != forward.TestSource || string(body.Payload) != `{"hello":"world"}` || body.TriggerRef != "ci.build" {
		t.Errorf("test body = %s", h.body)
	}
	if h.header.Get("Webhook-Signature") == "" {
		t.Error("the test request is not signed")
	}
	// Not stored, not counted.
	if n, err := f.st.DestinationStats(context.Background(), dst.ID); err != nil || n.Succeeded != 0 {
		t.Errorf("stats after a test = %+v, %v", n, err)
	}
	// A failing test says why.
	rc.setRespond(status(http.StatusTeapot))
	res = fw.Test(context.Background(), dst, nil)
	if res.Success || res.Error == nil || *res.Error != "HTTP 418" {
		t.Errorf("failing Test = %+v", res)
	}
}

// Close waits for attempts in flight; when they outlast its context they
// are abandoned and their deliveries released, not counted as attempts.
func TestCloseReleasesAbandonedAttempts(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) { <-release })
	t.Cleanup(func() { close(release) })
	f.destination(rc.srv.URL, func(d *destination.Destination) { d.TimeoutSeconds = 30 })
	fw := forward.New(forward.Options{Store: f.st, Guard: netguard.New(loopback), Poll: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = fw.Run(ctx)
	}()
	ev := f.events(`{}`)[0]
	deadline := time.Now().Add(5 * time.Second)
	for len(rc.got()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no attempt started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer ccancel()
	if err := fw.Close(cctx); err == nil {
		t.Error("Close with an attempt outlasting it = nil, want an error saying it was abandoned")
	}
	cancel()
	<-done
	d, attempts := f.deliveryOf(ev)
	if d.Status != destination.Pending || d.Attempts != 0 || len(attempts) != 0 {
		t.Errorf("abandoned delivery: %s after %d attempts, want pending after 0", d.Status, d.Attempts)
	}
	var locked *time.Time
	if err := f.st.DB().Get(&locked, `SELECT locked_until FROM deliveries WHERE id = $1`, d.ID); err != nil {
		t.Fatal(err)
	}
	if locked != nil {
		t.Errorf("abandoned delivery still claimed until %v", locked)
	}
}

// Two forwarders on one database share the deliveries: each is attempted
// once, and never by both at once.
func TestTwoForwardersShareDeliveries(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, func(int, http.ResponseWriter, *http.Request) { time.Sleep(5 * time.Millisecond) })
	f.destination(rc.srv.URL, func(d *destination.Destination) { d.MaxInFlight = 4 })
	f.start(loopback)
	f.start(loopback)
	const n = 200
	payloads := make([]string, n)
	for i := range payloads {
		payloads[i] = `{}`
	}
	evs := f.events(payloads...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var done int
		if err := f.st.DB().Get(&done, `SELECT count(*) FROM deliveries WHERE status = 'succeeded'`); err != nil {
			t.Fatal(err)
		}
		if done == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries succeeded", done, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	hits := rc.got()
	seen := map[string]int{}
	for _, h := range hits {
		seen[h.header.Get("Webhook-Id")]++
	}
	for _, ev := range evs {
		if seen[ev.ID] != 1 {
			t.Errorf("event %s was sent %d times, want once", ev.ID, seen[ev.ID])
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.overlap) > 0 {
		t.Errorf("%d deliveries were attempted by both forwarders at once", len(rc.overlap))
	}
}

// The lease: a claim whose instance died is taken over once it lapses.
func TestLapsedClaimIsTakenOver(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, nil)
	dst := f.destination(rc.srv.URL, nil)
	ev := f.events(`{}`)[0]
	// An instance claims it for a second and dies.
	claimed, err := f.st.ClaimDeliveries(context.Background(), dst.ID, 10, time.Second, false)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("ClaimDeliveries = %d, %v", len(claimed), err)
	}
	if again, _ := f.st.ClaimDeliveries(context.Background(), dst.ID, 10, time.Second, false); len(again) != 0 {
		t.Fatal("a claimed delivery was claimed twice")
	}
	f.start(loopback)
	time.Sleep(500 * time.Millisecond)
	if n := len(rc.got()); n != 0 {
		t.Fatalf("a claimed delivery was attempted before its lease lapsed")
	}
	f.await(ev, destination.Succeeded, 1, 5*time.Second)
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, status(http.StatusInternalServerError))
	dst := f.destination(rc.srv.URL, func(d *destination.Destination) { d.RetrySchedule = []int{3600} })
	f.start(loopback)
	ev := f.events(`{}`)[0]
	f.await(ev, destination.Pending, 1, 5*time.Second)
	time.Sleep(300 * time.Millisecond)
	if got := counter(t, f.metrics, "inlet_delivery_attempts_total", "failure"); got != 1 {
		t.Errorf("failed attempts = %v, want 1", got)
	}
	if got := gauge(t, f.metrics, "inlet_deliveries_pending", dst.ID); got != 1 {
		t.Errorf("inlet_deliveries_pending = %v, want 1", got)
	}
	if got := gauge(t, f.metrics, "inlet_delivery_oldest_pending_age_seconds", dst.ID); got <= 0 {
		t.Errorf("oldest pending age = %v, want > 0", got)
	}
}

// Nothing secret reaches the log: not the signing secret, not a header's
// value, not the URL's query.
func TestLogsCarryNoSecret(t *testing.T) {
	f := newFixture(t)
	rc := newReceiver(t, status(http.StatusForbidden))
	f.destination(rc.srv.URL+"/hook?token=query-credential", func(d *destination.Destination) {
		d.Headers = map[string]secret.Value{"Authorization": "Bearer header-credential"}
		d.RetrySchedule = []int{1}
	})
	f.start(loopback)
	ev := f.events(`{}`)[0]
	d, attempts := f.await(ev, destination.Failed, 2, 10*time.Second)
	logs := f.logText()
	if !bytes.Contains([]byte(logs), []byte("delivery attempt failed")) {
		t.Fatalf("the failure was not logged: %s", logs)
	}
	for _, s := range []string{"whsec_", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "header-credential", "query-credential"} {
		if bytes.Contains([]byte(logs), []byte(s)) {
			t.Errorf("the log holds %q", s)
		}
		for _, a := range attempts {
			if bytes.Contains([]byte(a.Error), []byte(s)) || bytes.Contains([]byte(d.LastError), []byte(s)) {
				t.Errorf("an attempt's error holds %q", s)
			}
		}
	}
}

// signed delivers one event to a destination of scheme with secret and
// returns the request.
func signed(t *testing.T, scheme sign.Scheme, secrets ...string) (hit, event.Event) {
	f := newFixture(t)
	rc := newReceiver(t, nil)
	dst := f.destination(rc.srv.URL, func(d *destination.Destination) {
		d.Scheme, d.Secret = scheme, secret.Value(secrets[0])
	})
	if len(secrets) > 1 {
		exp := time.Now().Add(time.Hour)
		if _, err := f.st.UpdateDestination(context.Background(), dst.ID, "destination.rotate_secret", func(d *destination.Destination) error {
			d.PreviousSecret, d.PreviousSecretExpiresAt = d.Secret, &exp
			d.Secret = secret.Value(secrets[1])
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	f.start(loopback)
	ev := f.events(`{"ref":"refs/heads/main","n":[1,2.5,"x"]}`)[0]
	f.await(ev, destination.Succeeded, 1, 5*time.Second)
	return rc.got()[0], ev
}

func counter(t *testing.T, m *metrics.Metrics, name, result string) float64 {
	t.Helper()
	return metricValue(t, m, name, "result", result)
}

func gauge(t *testing.T, m *metrics.Metrics, name, dest string) float64 {
	t.Helper()
	return metricValue(t, m, name, "destination", dest)
}

func metricValue(t *testing.T, m *metrics.Metrics, name, label, value string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mm := range mf.GetMetric() {
			for _, l := range mm.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					sum += mm.GetCounter().GetValue() + mm.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}
