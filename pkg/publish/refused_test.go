package publish_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/pkg/embednats"
	"github.com/inlet-dev/inlet/pkg/embednats/natstest"
	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/metrics"
	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/publish"
	"github.com/inlet-dev/inlet/pkg/store"
)

// TestEventSizes publishes events whose messages are 0.9, 1, 1.1 and 30
// times a server's max_payload: those that fit go as they are, the others
// with a null payload and Inlet-Payload-Omitted, and nothing waits behind
// them.
func TestEventSizes(t *testing.T) {
	const limit = 32 << 10
	ns := startNATS(t, embednats.Options{MaxPayload: limit})
	env := natstest.Env{URL: ns.ClientURL(), Stream: "SIZES", SubjectPrefix: "sizes.events"}
	js := connect(t, env.URL)
	if got := js.Conn().MaxPayload(); got != limit {
		t.Fatalf("server max_payload = %d, want %d", got, limit)
	}
	ensureStream(t, js, env)
	st := newStore(t)
	m := metrics.New(func() float64 { return 0 })
	p := publish.New(st, js, publish.Options{Stream: env.Stream, SubjectPrefix: env.SubjectPrefix, Metrics: m}, testLogger(t))
	start(t, p)
	eventually(t, 10*time.Second, p.Leader)

	var want []*event.Event
	omitted := map[string]bool{}
	for _, ratio := range []float64{0.9, 1, 1.1, 30} {
		e := sizedEvent(t, env.SubjectPrefix, "github.push", int(ratio*limit))
		want = append(want, e)
		omitted[e.ID] = ratio > 1
	}
	want = append(want, sizedEvent(t, env.SubjectPrefix, "github.push", 1000))
	storeEvents(t, st, want...)
	p.Kick()
	eventually(t, 30*time.Second, func() bool { return backlog(t, st) == 0 })
	checkStreamOmitted(t, js, env, want, omitted)
	if got := counter(t, m, "inlet_events_payload_omitted_total"); got != 2 {
		t.Errorf("inlet_events_payload_omitted_total = %v, want 2", got)
	}
	if n := setAside(t, st); len(n) != 0 {
		t.Errorf("set aside: %+v, want none", n)
	}
}

// TestSetAside: a message the stream refuses even without its payload is
// set aside, the events after it are published, and an operator's retry
// publishes it once the stream takes it.
func TestSetAside(t *testing.T) {
	env := natstest.New(t)
	js := connect(t, env.URL)
	ctx := context.Background()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: env.Stream, Subjects: []string{env.SubjectPrefix + ".>"}, Storage: jetstream.FileStorage,
		Duplicates: publish.DuplicateWindow, MaxMsgSize: 1024,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	st := newStore(t)
	m := metrics.New(func() float64 { return 0 })
	p := publish.New(st, js, publish.Options{Stream: env.Stream, SubjectPrefix: env.SubjectPrefix, Metrics: m}, testLogger(t))
	start(t, p)
	eventually(t, 10*time.Second, p.Leader)

	small := sizedEvent(t, env.SubjectPrefix, "github.push", 700)
	bigPayload := sizedEvent(t, env.SubjectPrefix, "github.push", 4000) // fits without its payload
	bigMetadata := sizedEvent(t, env.SubjectPrefix, "stripe.charge", 700)
	bigMetadata.Metadata = fmt.Appendf(nil, `{"source":"webhook","user_agent":%q}`, strings.Repeat("u", 2000))
	after := sizedEvent(t, env.SubjectPrefix, "github.push", 700)
	storeEvents(t, st, small, bigPayload, bigMetadata, after)
	p.Kick()
	eventually(t, 30*time.Second, func() bool { return backlog(t, st) == 0 })
	checkStreamOmitted(t, js, env, []*event.Event{small, bigPayload, after}, map[string]bool{bigPayload.ID: true})
	aside := setAside(t, st)
	if len(aside) != 1 || aside[0].EventID != bigMetadata.ID || aside[0].TriggerRef != "stripe.charge" ||
		!strings.Contains(aside[0].Reason, "too large") {
		t.Fatalf("set aside = %+v, want event %s, too large", aside, bigMetadata.ID)
	}
	if got := counter(t, m, "inlet_publish_set_aside_total"); got != 1 {
		t.Errorf("inlet_publish_set_aside_total = %v, want 1", got)
	}

	// The operator fixes the stream and asks for another attempt.
	cfg := s.CachedInfo().Config
	cfg.MaxMsgSize = -1
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("update stream: %v", err)
	}
	if _, err := st.RequestRetry(ctx, bigMetadata.ID); err != nil {
		t.Fatalf("RequestRetry: %v", err)
	}
	p.Kick()
	eventually(t, 30*time.Second, func() bool { return len(setAside(t, st)) == 0 })
	checkStreamOmitted(t, js, env, []*event.Event{small, bigPayload, after, bigMetadata}, map[string]bool{bigPayload.ID: true})
	if _, err := st.RequestRetry(ctx, bigMetadata.ID); err == nil {
		t.Errorf("RequestRetry of a published event: no error")
	}
}

// TestAcksFail keeps NATS connected while JetStream refuses to acknowledge:
// every event stays waiting, and each is published exactly once when acks
// work again.
func TestAcksFail(t *testing.T) {
	t.Run("no stream captures the subject", func(t *testing.T) {
		env := natstest.New(t)
		js := connect(t, env.URL)
		st, p, m := newPublisher(t, js, env)
		want := seed(t, st, 20)
		p.Kick()
		stillWaiting(t, st, m, 20)
		ensureStream(t, js, env)
		p.Kick()
		eventually(t, 30*time.Second, func() bool { return backlog(t, st) == 0 })
		checkStream(t, js, env, want)
	})
	for _, limit := range []struct {
		name  string
		apply func(*jetstream.StreamConfig)
		undo  func(*jetstream.StreamConfig)
	}{
		{"stream at its message limit", func(c *jetstream.StreamConfig) { c.MaxMsgs = 5 }, func(c *jetstream.StreamConfig) { c.MaxMsgs = -1 }},
		{"stream at its byte limit", func(c *jetstream.StreamConfig) { c.MaxBytes = 1500 }, func(c *jetstream.StreamConfig) { c.MaxBytes = -1 }},
	} {
		t.Run(limit.name, func(t *testing.T) {
			env := natstest.New(t)
			js := connect(t, env.URL)
			ctx := context.Background()
			cfg := jetstream.StreamConfig{
				Name: env.Stream, Subjects: []string{env.SubjectPrefix + ".>"}, Storage: jetstream.FileStorage,
				Duplicates: publish.DuplicateWindow, Discard: jetstream.DiscardNew,
			}
			limit.apply(&cfg)
			s, err := js.CreateStream(ctx, cfg)
			if err != nil {
				t.Fatalf("create stream: %v", err)
			}
			st, p, m := newPublisher(t, js, env)
			want := seed(t, st, 12)
			p.Kick()
			eventually(t, 10*time.Second, func() bool {
				info, err := s.Info(ctx)
				return err == nil && info.State.Msgs > 0 && counter(t, m, "inlet_publish_errors_total") > 0
			})
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			stored := int(info.State.Msgs)
			if stored >= len(want) {
				t.Fatalf("the limited stream took all %d messages", stored)
			}
			stillWaiting(t, st, m, int64(len(want)-stored))
			limit.undo(&cfg)
			if _, err := js.UpdateStream(ctx, cfg); err != nil {
				t.Fatalf("lift the limit: %v", err)
			}
			p.Kick()
			eventually(t, 30*time.Second, func() bool { return backlog(t, st) == 0 })
			checkStream(t, js, env, want)
		})
	}
	// NATS stops between a publish and its ack: the publisher's messages
	// went out on a connection that then died, with the messages or only
	// their acks lost on the way.
	for _, lost := range []string{"messages", "acks"} {
		t.Run("nats stops before the "+lost+" arrive", func(t *testing.T) {
			env := natstest.New(t)
			ensureStream(t, connect(t, env.URL), env)
			px := newProxy(t, env.URL)
			js := connect(t, px.URL())
			st, p, m := newPublisher(t, js, env)
			want := seed(t, st, 10)
			p.Kick()
			eventually(t, 30*time.Second, func() bool { return backlog(t, st) == 0 })

			px.drop(lost)
			want = append(want, seed(t, st, 10)...)
			p.Kick()
			stillWaiting(t, st, m, 10)
			px.restore() // the connection dies; the client reconnects
			p.Kick()
			eventually(t, 30*time.Second, func() bool { return backlog(t, st) == 0 })
			checkStream(t, connect(t, env.URL), env, want)
		})
	}
}

// stillWaiting checks that after the publisher tried, and failed, for a
// while, n events still wait to be published.
func stillWaiting(t *testing.T, st *store.Store, m *metrics.Metrics, n int64) {
	t.Helper()
	eventually(t, 10*time.Second, func() bool { return counter(t, m, "inlet_publish_errors_total") >= 2 })
	if got := backlog(t, st); got != n {
		t.Fatalf("%d events wait to be published, want %d", got, n)
	}
}

// newPublisher runs a publisher with short waits on a fresh database.
func newPublisher(t *testing.T, js jetstream.JetStream, env natstest.Env) (*store.Store, *publish.Publisher, *metrics.Metrics) {
	t.Helper()
	st := newStore(t)
	m := metrics.New(func() float64 { return 0 })
	p := publish.New(st, js, publish.Options{
		Stream: env.Stream, SubjectPrefix: env.SubjectPrefix, Metrics: m, AckTimeout: time.Second,
	}, testLogger(t))
	start(t, p)
	eventually(t, 10*time.Second, p.Leader)
	return st, p, m
}

func startNATS(t *testing.T, opts embednats.Options) *embednats.Server {
	t.Helper()
	ns, err := embednats.Start(context.Background(), t.TempDir(), nil, opts)
	if err != nil {
		t.Fatalf("embednats.Start: %v", err)
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

var sized atomic.Int64

// sizedEvent returns an event whose message, with its payload, is exactly
// size bytes.
func sizedEvent(t *testing.T, prefix, ref string, size int) *event.Event {
	t.Helper()
	now := event.Time(time.Now())
	e := &event.Event{
		ID: event.MustNewID(now), TriggerID: int64(len(ref)), TriggerRef: ref, Source: event.Source,
		Metadata: []byte(`{"source":"webhook","headers":{}}`), ReceivedAt: now,
	}
	n := sized.Add(1)
	fill := func(k int) []byte { return fmt.Appendf(nil, `{"n":%d,"fill":"%s"}`, n, strings.Repeat("x", k)) }
	e.Payload = fill(0)
	m, err := publish.Message(prefix, e, false)
	if err != nil {
		t.Fatal(err)
	}
	if extra := size - int(publish.Size(m)); extra > 0 {
		e.Payload = fill(extra)
	}
	if m, _ = publish.Message(prefix, e, false); publish.Size(m) != int64(size) {
		t.Fatalf("sized event of %d bytes, want %d", publish.Size(m), size)
	}
	return e
}

// storeEvents writes evs, in order, as accepted webhooks.
func storeEvents(t *testing.T, st *store.Store, evs ...*event.Event) {
	t.Helper()
	recs := make([]*store.Record, len(evs))
	for i, e := range evs {
		ref := e.TriggerRef
		recs[i] = &store.Record{Event: e, Audit: store.Audit{ReceivedAt: e.ReceivedAt, TriggerRef: &ref, Status: 200, Outcome: outcome.Accepted}}
	}
	if _, err := st.WriteBatch(context.Background(), recs); err != nil {
		t.Fatalf("WriteBatch: %v", err)
	}
}

func setAside(t *testing.T, st *store.Store) []store.SetAside {
	t.Helper()
	a, err := st.ListSetAside(context.Background(), 100)
	if err != nil {
		t.Fatalf("ListSetAside: %v", err)
	}
	return a
}

// proxy relays NATS connections and can lose what crosses it: the
// publisher's messages ("messages": client to server) or the server's
// answers ("acks": server to client), as when NATS dies between a publish
// and its ack.
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	lose   atomic.Value // "", "messages" or "acks"
	mu     sync.Mutex
	conns  []net.Conn
}

func newProxy(t *testing.T, natsURL string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: strings.TrimPrefix(natsURL, "nats://")}
	p.lose.Store("")
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
	})
	return p
}

func (p *proxy) URL() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go p.pipe(up, c, "messages")
		go p.pipe(c, up, "acks")
	}
}

// pipe copies src to dst, dropping the bytes while the proxy loses what.
func (p *proxy) pipe(dst, src net.Conn, what string) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.lose.Load() != what {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

func (p *proxy) drop(what string) { p.lose.Store(what) }

// restore cuts every connection, losing whatever was dropped on them, and
// relays faithfully from now on.
func (p *proxy) restore() {
	p.closeAll()
	p.lose.Store("")
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
