package publish_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/lib/pq"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/pkg/embednats"
	"github.com/inlet-dev/inlet/pkg/embednats/natstest"
	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/metrics"
	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/publish"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

var triggers = []string{"github.push", "stripe.charge", "slack.command"}

func TestPublish(t *testing.T) {
	st := newStore(t)
	env := natstest.New(t)
	js := connect(t, env.URL)
	ensureStream(t, js, env)

	m := metrics.New(func() float64 { return 0 })
	p := publish.New(st, js, publish.Options{
		Stream: env.Stream, SubjectPrefix: env.SubjectPrefix,
		// Small batches and window: several full rounds, and sends that
		// wait for acks to free the window.
		Batch: 100, Window: 16, Metrics: m,
	}, testLogger(t))
	start(t, p)
	eventually(t, 10*time.Second, p.Leader)

	var want []*event.Event
	for range 5 {
		want = append(want, seed(t, st, 70)...)
		p.Kick()
	}
	eventually(t, 30*time.Second, func() bool { return backlog(t, st) == 0 })
	checkStream(t, js, env, want)
	if got := counter(t, m, "inlet_events_published_total"); got != float64(len(want)) {
		t.Errorf("inlet_events_published_total = %v, want %d", got, len(want))
	}
}

func TestNATSDownThenUp(t *testing.T) {
	st := newStore(t)
	dir := t.TempDir()
	ctx := context.Background()
	ns, err := embednats.Start(ctx, dir, nil, embednats.Options{})
	if err != nil {
		t.Fatalf("embednats.Start: %v", err)
	}
	t.Cleanup(func() { ns.Shutdown() })
	clientURL := ns.ClientURL()
	u, err := url.Parse(clientURL)
	if err != nil {
		t.Fatalf("parse %s: %v", clientURL, err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("port of %s: %v", clientURL, err)
	}
	env := natstest.Env{URL: clientURL, Stream: "DOWNUP", SubjectPrefix: "downup.events"}
	js := connect(t, env.URL)
	ensureStream(t, js, env)

	p := publish.New(st, js, publish.Options{
		Stream: env.Stream, SubjectPrefix: env.SubjectPrefix, Batch: 50, Window: 8,
	}, testLogger(t))
	start(t, p)
	eventually(t, 10*time.Second, p.Leader)

	want := seed(t, st, 30)
	eventually(t, 10*time.Second, func() bool { return backlog(t, st) == 0 })

	ns.Shutdown()
	eventually(t, 10*time.Second, func() bool { return !js.Conn().IsConnected() })
	for range 4 {
		want = append(want, seed(t, st, 40)...)
		p.Kick()
	}
	if n := backlog(t, st); n == 0 {
		t.Fatalf("backlog emptied while NATS was down")
	}

	ns, err = embednats.Start(ctx, dir, nil, embednats.Options{Port: port})
	if err != nil {
		t.Fatalf("restart embednats on port %d: %v", port, err)
	}
	t.Cleanup(func() { ns.Shutdown() })
	want = append(want, seed(t, st, 40)...)
	eventually(t, 30*time.Second, func() bool { return backlog(t, st) == 0 })
	checkStream(t, js, env, want)
}

func TestTwoPublishers(t *testing.T) {
	st := newStore(t)
	env := natstest.New(t)
	jsA, jsB := connect(t, env.URL), connect(t, env.URL)
	ensureStream(t, jsA, env)
	opts := publish.Options{Stream: env.Stream, SubjectPrefix: env.SubjectPrefix, Batch: 100, Window: 32}
	a := publish.New(st, jsA, opts, testLogger(t).With("instance", "a"))
	b := publish.New(st, jsB, opts, testLogger(t).With("instance", "b"))
	stopA := start(t, a)
	stopB := start(t, b)
	eventually(t, 10*time.Second, func() bool { return a.Leader() || b.Leader() })
	if a.Leader() && b.Leader() {
		t.Fatalf("both publishers lead")
	}

	want := seed(t, st, 300)
	eventually(t, 30*time.Second, func() bool { return backlog(t, st) == 0 })
	if a.Leader() == b.Leader() {
		t.Fatalf("a.Leader() = %v, b.Leader() = %v, want exactly one", a.Leader(), b.Leader())
	}

	// Stop the leader in the middle of its work, while events keep
	// arriving; the other takes over.
	leader, stopLeader, other := a, stopA, b
	if b.Leader() {
		leader, stopLeader, other = b, stopB, a
	}
	var more []*event.Event
	var werr error
	var written atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 30 {
			evs, err := write(st, 20)
			if err != nil {
				werr = err
				return
			}
			more = append(more, evs...)
			written.Add(1)
			a.Kick()
			b.Kick()
		}
	})
	// The leader drains faster than a poll can catch a backlog; what
	// matters is that it stops while events keep arriving.
	eventually(t, 10*time.Second, func() bool { return written.Load() >= 3 })
	stopLeader()
	if leader.Leader() {
		t.Errorf("stopped publisher still leads")
	}
	wg.Wait()
	if werr != nil {
		t.Fatal(werr)
	}
	want = append(want, more...)
	eventually(t, 10*time.Second, other.Leader)
	eventually(t, 30*time.Second, func() bool { return backlog(t, st) == 0 })
	checkStream(t, jsA, env, want)
}

func TestLeaseLost(t *testing.T) {
	st := newStore(t)
	env := natstest.New(t)
	jsA, jsB := connect(t, env.URL), connect(t, env.URL)
	ensureStream(t, jsA, env)
	opts := publish.Options{Stream: env.Stream, SubjectPrefix: env.SubjectPrefix, Batch: 50}
	a := publish.New(st, jsA, opts, testLogger(t).With("instance", "a"))
	b := publish.New(st, jsB, opts, testLogger(t).With("instance", "b"))
	start(t, a)
	start(t, b)
	eventually(t, 10*time.Second, func() bool { return a.Leader() || b.Leader() })
	leader := a
	if b.Leader() {
		leader = b
	}
	want := seed(t, st, 100)

	// Ending the lease's session ends the advisory lock: the leader must
	// notice and step down.
	if _, err := st.DB().Exec(`SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatalf("terminate lease session: %v", err)
	}
	eventually(t, 10*time.Second, func() bool { return !leader.Leader() })
	want = append(want, seed(t, st, 100)...)
	eventually(t, 10*time.Second, func() bool { return a.Leader() || b.Leader() })
	eventually(t, 30*time.Second, func() bool { return backlog(t, st) == 0 })
	if a.Leader() == b.Leader() {
		t.Errorf("a.Leader() = %v, b.Leader() = %v, want exactly one", a.Leader(), b.Leader())
	}
	checkStream(t, jsA, env, want)
}

func TestFlush(t *testing.T) {
	st := newStore(t)
	env := natstest.New(t)
	js := connect(t, env.URL)
	ensureStream(t, js, env)

	// No Kick and a slow poll: only Flush publishes.
	opts := publish.Options{Stream: env.Stream, SubjectPrefix: env.SubjectPrefix, Batch: 40, Poll: time.Hour}
	p := publish.New(st, js, opts, testLogger(t))
	standby := publish.New(st, connect(t, env.URL), opts, testLogger(t))
	start(t, p)
	eventually(t, 10*time.Second, p.Leader)
	start(t, standby)

	want := seed(t, st, 150)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := standby.Flush(ctx); err != nil {
		t.Errorf("standby Flush() = %v, want nil", err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	if n := backlog(t, st); n != 0 {
		t.Errorf("%d events wait after Flush, want 0", n)
	}
	checkStream(t, js, env, want)
}

func TestFlushNATSDown(t *testing.T) {
	st := newStore(t)
	ns, err := embednats.Start(context.Background(), t.TempDir(), nil, embednats.Options{})
	if err != nil {
		t.Fatalf("embednats.Start: %v", err)
	}
	t.Cleanup(func() { ns.Shutdown() })
	env := natstest.Env{URL: ns.ClientURL(), Stream: "FLUSHDOWN", SubjectPrefix: "flushdown.events"}
	js := connect(t, env.URL)
	ensureStream(t, js, env)
	p := publish.New(st, js, publish.Options{Stream: env.Stream, SubjectPrefix: env.SubjectPrefix}, testLogger(t))
	start(t, p)
	eventually(t, 10*time.Second, p.Leader)

	ns.Shutdown()
	eventually(t, 10*time.Second, func() bool { return !js.Conn().IsConnected() })
	seed(t, st, 5)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = p.Flush(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush() = %v, want an error wrapping context.DeadlineExceeded", err)
	}
	if n := backlog(t, st); n != 5 {
		t.Errorf("%d events wait, want 5", n)
	}
}

func TestMessage(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 30, 45, 123456000, time.FixedZone("CET", 3600))
	e := &event.Event{
		ID: "evt_01JN6Z5X8Q0000000000000000", TriggerID: 7, TriggerRef: "github.push", Source: event.Source,
		Payload: []byte(`{"ref":"main"}`), Metadata: []byte(`{"source":"webhook"}`), ReceivedAt: at,
	}
	m, err := publish.Message("inlet.events", e, false)
	if err != nil {
		t.Fatalf("Message() error = %v", err)
	}
	if m.Subject != "inlet.events.github.push" {
		t.Errorf("Subject = %q, want %q", m.Subject, "inlet.events.github.push")
	}
	if body := e.Marshal(); !bytes.Equal(m.Data, body) {
		t.Errorf("Data = %s, want %s", m.Data, body)
	}
	for _, tt := range []struct{ key, want string }{
		{"Nats-Msg-Id", e.ID},
		{"Content-Type", "application/json"},
		{"ce-specversion", "1.0"},
		{"ce-id", e.ID},
		{"ce-type", "github.push"},
		{"ce-source", "/inlet/triggers/github.push"},
		{"ce-time", "2025-03-01T11:30:45.123456Z"},
	} {
		if got := m.Header.Get(tt.key); got != tt.want {
			t.Errorf("header %s = %q, want %q", tt.key, got, tt.want)
		}
	}

	for _, ref := range []string{"", "a b", "a.*", "a.>", "a..b", ".a"} {
		bad := *e
		bad.TriggerRef = ref
		if _, err := publish.Message("inlet.events", &bad, false); err == nil {
			t.Errorf("Message() with trigger ref %q: no error", ref)
		}
	}
}

func TestEnsureStream(t *testing.T) {
	env := natstest.New(t)
	js := connect(t, env.URL)
	ctx := context.Background()

	// Instances starting together.
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Go(func() { errs[i] = publish.EnsureStream(ctx, js, env.Stream, env.SubjectPrefix, 0) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("EnsureStream() #%d = %v", i, err)
		}
	}
	s, err := js.Stream(ctx, env.Stream)
	if err != nil {
		t.Fatalf("Stream(%s): %v", env.Stream, err)
	}
	cfg := s.CachedInfo().Config
	if len(cfg.Subjects) != 1 || cfg.Subjects[0] != env.SubjectPrefix+".>" || cfg.Storage != jetstream.FileStorage ||
		cfg.Duplicates != publish.DuplicateWindow || cfg.Replicas != 1 {
		t.Errorf("stream config: subjects %q, storage %v, duplicates %v, replicas %d", cfg.Subjects, cfg.Storage, cfg.Duplicates, cfg.Replicas)
	}
	// An existing stream is taken as it is, whatever replicas are asked for.
	if err := publish.EnsureStream(ctx, js, env.Stream, env.SubjectPrefix, 3); err != nil {
		t.Errorf("EnsureStream() again = %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("Info(%s): %v", env.Stream, err)
	}
	if info.Config.Replicas != 1 {
		t.Errorf("replicas after EnsureStream() on the existing stream = %d, want 1 unchanged", info.Config.Replicas)
	}
	if err := publish.EnsureStream(ctx, js, env.Stream, "other.prefix", 1); err == nil {
		t.Errorf("EnsureStream() with a prefix the stream does not capture: no error")
	}
}

// newStore returns a store on a fresh database.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	return store.New(storetest.New(t), storetest.Keyring())
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(publish.DefaultWindow),
		jetstream.WithPublishAsyncTimeout(3*time.Second))
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return js
}

func ensureStream(t *testing.T, js jetstream.JetStream, env natstest.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := publish.EnsureStream(ctx, js, env.Stream, env.SubjectPrefix, 1); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
}

// start runs p until the test ends or stop is called; stop returns once Run
// has.
func start(t *testing.T, p *publish.Publisher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run() = %v, want nil", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

var seeded int // numbers payloads across calls; tests do not run in parallel

// seed stores n events, spread over triggers, in one batch and returns them
// in outbox order.
func seed(t *testing.T, st *store.Store, n int) []*event.Event {
	t.Helper()
	evs, err := write(st, n)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// write is seed for any goroutine.
func write(st *store.Store, n int) ([]*event.Event, error) {
	recs := make([]*store.Record, n)
	evs := make([]*event.Event, n)
	for i := range n {
		seeded++
		now := event.Time(time.Now())
		k := seeded % len(triggers)
		ref := triggers[k]
		evs[i] = &event.Event{
			ID:         event.MustNewID(now),
			TriggerID:  int64(k + 1),
			TriggerRef: ref,
			Source:     event.Source,
			Payload:    fmt.Appendf(nil, `{"n":%d}`, seeded),
			Metadata:   []byte(`{"source":"webhook","headers":{}}`),
			ReceivedAt: now,
		}
		recs[i] = &store.Record{Event: evs[i], Audit: store.Audit{
			ReceivedAt: now, TriggerRef: &ref, Status: 200, Outcome: outcome.Accepted,
		}}
	}
	if _, err := st.WriteBatch(context.Background(), recs); err != nil {
		return nil, fmt.Errorf("WriteBatch: %w", err)
	}
	return evs, nil
}

func backlog(t *testing.T, st *store.Store) int64 {
	t.Helper()
	ctx := context.Background()
	pos, err := st.PublishPosition(ctx)
	if err != nil {
		t.Fatalf("PublishPosition: %v", err)
	}
	n, _, err := st.Backlog(ctx, pos)
	if err != nil {
		t.Fatalf("Backlog: %v", err)
	}
	return n
}

// checkStream verifies that the stream holds each of want exactly once, in
// order per trigger, as Message renders it.
func checkStream(t *testing.T, js jetstream.JetStream, env natstest.Env, want []*event.Event) {
	t.Helper()
	checkStreamOmitted(t, js, env, want, nil)
}

// checkStreamOmitted is checkStream where the events named in omitted were
// published without their payload.
func checkStreamOmitted(t *testing.T, js jetstream.JetStream, env natstest.Env, want []*event.Event, omitted map[string]bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, env.Stream)
	if err != nil {
		t.Fatalf("Stream(%s): %v", env.Stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	if got := info.State.Msgs; got != uint64(len(want)) {
		t.Errorf("stream holds %d messages, want %d", got, len(want))
	}
	byID := make(map[string]*event.Event, len(want))
	wantOrder := make(map[string][]string) // trigger ref -> event ids
	for _, e := range want {
		byID[e.ID] = e
		wantOrder[e.TriggerRef] = append(wantOrder[e.TriggerRef], e.ID)
	}
	seen := make(map[string]bool, len(want))
	gotOrder := make(map[string][]string)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		raw, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("GetMsg(%d): %v", seq, err)
		}
		id := raw.Header.Get("Nats-Msg-Id")
		e, ok := byID[id]
		if !ok {
			t.Errorf("message %d: unexpected Nats-Msg-Id %q", seq, id)
			continue
		}
		if seen[id] {
			t.Errorf("message %d: event %s published again", seq, id)
			continue
		}
		seen[id] = true
		gotOrder[e.TriggerRef] = append(gotOrder[e.TriggerRef], id)
		wantMsg, err := publish.Message(env.SubjectPrefix, e, omitted[id])
		if err != nil {
			t.Fatalf("Message(%s): %v", id, err)
		}
		if raw.Subject != wantMsg.Subject {
			t.Errorf("event %s: subject %q, want %q", id, raw.Subject, wantMsg.Subject)
		}
		if !bytes.Equal(raw.Data, wantMsg.Data) {
			t.Errorf("event %s: body %s, want %s", id, raw.Data, wantMsg.Data)
		}
		for k := range wantMsg.Header {
			if got, want := raw.Header.Get(k), wantMsg.Header.Get(k); got != want {
				t.Errorf("event %s: header %s = %q, want %q", id, k, got, want)
			}
		}
	}
	for ref, ids := range wantOrder {
		got := gotOrder[ref]
		if len(got) != len(ids) {
			t.Errorf("trigger %s: %d events published, want %d", ref, len(got), len(ids))
			continue
		}
		for i := range ids {
			if got[i] != ids[i] {
				t.Errorf("trigger %s: event #%d is %s, want %s", ref, i, got[i], ids[i])
				break
			}
		}
	}
}

func counter(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testLogger sends the publisher's log to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}
