package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/pkg/embednats"
	"github.com/inlet-dev/inlet/pkg/embednats/natstest"
	"github.com/inlet-dev/inlet/pkg/embedpg"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// chaosRig is a real inlet process on its own database and stream, with
// two signed triggers and a load aimed at them.
type chaosRig struct {
	p      *inletProc
	db     *sqlx.DB
	js     jetstream.JetStream
	stream string
	token  string
	load   *relLoad
	leaks  *leakFinder
}

func newChaosRig(t *testing.T, bin string) *chaosRig {
	t.Helper()
	dsn := storetest.NewURL(t)
	ns := natstest.New(t)
	token := "rel-admin-" + trigger.RandomString(32)
	p := newInletProc(t, bin, map[string]string{
		"DATABASE_URL":           dsn,
		"NATS_URL":               ns.URL,
		"INLET_STREAM":           ns.Stream,
		"INLET_SUBJECT_PREFIX":   ns.SubjectPrefix,
		"INLET_ADMIN_TOKEN":      token,
		"INLET_PACKS_DIR":        "../packs",
		"INLET_DATA_DIR":         t.TempDir(),
		"INLET_SHUTDOWN_TIMEOUT": "30s",
	})
	p.start()
	r := &chaosRig{p: p, stream: ns.Stream, token: token, leaks: newLeakFinder()}
	r.db = sqlx.MustConnect("postgres", dsn)
	t.Cleanup(func() { r.db.Close() })
	nc, err := nats.Connect(ns.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	r.js, _ = jetstream.New(nc)

	dk, ds := relSignedTrigger(t, p.base(), token, "myapp.deployment_complete", "")
	gk, gs := relSignedTrigger(t, p.base(), token, "github.push", "github")
	r.load = newRelLoad(p.base(), relDeploymentSender(dk, ds), relGitHubSender(gk, gs))
	r.leaks.add("admin token", token, 0)
	r.leaks.add("deployment key", dk, trigger.KeyPrefixLen)
	r.leaks.add("github key", gk, trigger.KeyPrefixLen)
	r.leaks.add("deployment secret", ds, 0)
	r.leaks.add("github secret", gs, 0)
	return r
}

// waitAccepted waits until n more requests have been answered 200.
func (r *chaosRig) waitAccepted(t *testing.T, n int64) {
	t.Helper()
	waitAccepted(t, r.load, n)
}

// finish stops nothing but checks everything: it retries what the load left
// unanswered, waits for the outbox to drain, stops inlet with SIGTERM and
// accounts for every request.
func (r *chaosRig) finish(t *testing.T, mode accountMode) relFigures {
	t.Helper()
	r.load.resolve(t, 60*time.Second)
	eventually(t, 60*time.Second, "the outbox to drain", func() bool {
		var n int
		return r.db.Get(&n, `SELECT count(*) FROM outbox`) == nil && n == 0
	})
	var events int
	if err := r.db.Get(&events, `SELECT count(*) FROM events`); err != nil {
		t.Fatal(err)
	}
	r.p.sigterm()
	if code := r.p.wait(40 * time.Second); code != 0 {
		t.Errorf("inlet exited with %d after SIGTERM, want 0", code)
	}
	ids, order := relStreamIDs(t, r.js, r.stream, events, 30*time.Second)
	f := r.load.accountFor(t, r.db, ids, mode)
	r.load.checkOrder(t, order)
	// Signatures must not show anywhere either; a sample is enough.
	r.load.mu.Lock()
	for i, a := range r.load.attempts {
		if a.sig != "" && i%10 == 0 {
			r.leaks.add("signature sent by "+a.ua, a.sig, 0)
		}
	}
	r.load.mu.Unlock()
	r.leaks.check(t, "inlet's output", r.p.logs.String())
	return f
}

// TestChaos drives signed webhooks at a real inlet process, built once, and
// stops it abruptly (SIGKILL) or gracefully (SIGTERM) under load.
func TestChaos(t *testing.T) {
	bin := buildInlet(t)
	t.Run("SIGKILL", func(t *testing.T) { testCrash(t, bin) })
	t.Run("SIGTERM", func(t *testing.T) { testDrain(t, bin) })
}

// testCrash kills inlet with SIGKILL at random moments, restarting it each
// time. Senders retry what was cut, with the same delivery id. Nothing
// answered 200 may be lost or doubled, in the database or on the stream,
// and nothing refused may have left an event behind.
func testCrash(t *testing.T, bin string) {
	r := newChaosRig(t, bin)
	kills := relForm(3, 25)
	workers := relForm(8, 16)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	begin := time.Now()
	wait := r.load.run(ctx, workers)
	for range kills {
		r.waitAccepted(t, int64(100+rand.IntN(relForm(300, 3000))))
		r.p.kill()
		r.p.start()
	}
	r.waitAccepted(t, 50)
	stop()
	wait()
	f := r.finish(t, modeKilled)
	t.Logf("figures (SIGKILL, %d workers, %v): %v; kills survived %d", workers, time.Since(begin).Round(time.Second), f, kills)
}

// testDrain stops inlet with SIGTERM under load, several times. Requests in flight when the signal arrives must be answered and
// stored: some are held open mid-body (the server has asked for the body
// with 100 Continue) and sent only once inlet refuses new connections.
// No request without an answer may have been processed, and the outbox is
// empty when the process exits 0.
func testDrain(t *testing.T, bin string) {
	r := newChaosRig(t, bin)
	cycles := relForm(2, 10)
	workers := relForm(8, 16)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	begin := time.Now()
	wait := r.load.run(ctx, workers)
	held := 0
	for i := range cycles {
		r.waitAccepted(t, int64(100+rand.IntN(relForm(300, 3000))))
		var hs []*heldRequest
		for j := range 3 {
			hs = append(hs, r.load.hold(t, r.p.addr, relDelivery{id: fmt.Sprintf("held-%d-%d", i, j), s: r.load.senders[j%2]}))
		}
		r.p.sigterm()
		eventually(t, 10*time.Second, "inlet to stop accepting connections", r.p.refusing)
		for _, h := range hs {
			if a := h.finish(); a.status != http.StatusOK {
				t.Errorf("request in flight at SIGTERM: %d %s %s, want 200", a.status, a.problem, a.err)
			}
		}
		held += len(hs)
		if code := r.p.wait(40 * time.Second); code != 0 {
			t.Fatalf("inlet exited with %d after SIGTERM, want 0:\n%s", code, relTail(r.p.logs.String(), 4000))
		}
		var n int
		if err := r.db.Get(&n, `SELECT count(*) FROM outbox`); err != nil || n != 0 {
			t.Errorf("outbox after a graceful stop holds %d events (%v), want 0", n, err)
		}
		r.p.start()
	}
	r.waitAccepted(t, 50)
	stop()
	wait()
	f := r.finish(t, modeGraceful)
	t.Logf("figures (SIGTERM, %d workers, %v): %v; graceful stops %d, requests held open across SIGTERM %d", workers, time.Since(begin).Round(time.Second), f, cycles, held)
}

// heldRequest is a request whose headers inlet has read and whose body it
// has asked for, not yet sent.
type heldRequest struct {
	a    *relAttempt
	l    *relLoad
	conn net.Conn
	br   *bufio.Reader
	body []byte
}

// hold sends d's headers with Expect: 100-continue and returns once inlet
// answers 100 Continue, which it does only when the receiver starts reading
// the body: the request is then in flight in the handler.
func (l *relLoad) hold(t *testing.T, addr string, d relDelivery) *heldRequest {
	t.Helper()
	body, hdr := d.s.build(d.id)
	a := &relAttempt{delivery: d.id, ref: d.s.ref, ua: "rel/" + strconv.FormatInt(l.ua.Add(1), 10)}

	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "POST /api/v1/webhooks/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nUser-Agent: %s\r\n", d.s.key, addr, a.ua)
	for k, v := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(body))
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("held request: %v", err)
	}
	if res.StatusCode != http.StatusContinue {
		t.Fatalf("held request: got %d before sending the body, want 100 Continue", res.StatusCode)
	}
	return &heldRequest{a: a, l: l, conn: conn, br: br, body: body}
}

// finish sends the body and records the answer.
func (h *heldRequest) finish() *relAttempt {
	a := h.a
	defer h.l.record(a)
	start := time.Now()
	if _, err := h.conn.Write(h.body); err != nil {
		a.err = err.Error()
		h.l.cut.Add(1)
		return a
	}
	res, err := http.ReadResponse(h.br, nil)
	if err != nil {
		a.err = err.Error()
		h.l.cut.Add(1)
		return a
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	h.l.answer(a, res, b)
	a.took = time.Since(start)
	return a
}

// TestNATSOutageUnderLoad stops NATS while signed webhooks keep coming:
// every request is still answered 200, /readyz reports NATS down, events
// queue in the outbox, and when NATS returns each is published exactly
// once, in order per trigger.
func TestNATSOutageUnderLoad(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	ns, err := embednats.Start(ctx, filepath.Join(dir, "nats"), nil, embednats.Options{Port: freePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	port := mustPort(t, ns.ClientURL())
	e := startEnv(t, storetest.NewURL(t), ns.ClientURL(), "RELOUTAGE", "reloutage.events")
	dk, ds := relSignedTrigger(t, e.base, e.token, "myapp.deployment_complete", "")
	gk, gs := relSignedTrigger(t, e.base, e.token, "github.push", "github")
	l := newRelLoad(e.base, relDeploymentSender(dk, ds), relGitHubSender(gk, gs))
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	wait := l.run(lctx, relForm(8, 16))
	waitAccepted(t, l, 100)

	ns.Shutdown()
	down := time.Now()
	first := l.mark()
	eventually(t, 10*time.Second, "/readyz to report NATS down", func() bool {
		r := e.do("GET", "/readyz", nil, nil)
		checks, _ := r.json["checks"].(map[string]any)
		return r.status == http.StatusServiceUnavailable && checks["nats"] != "ok" && checks["database"] == "ok"
	})
	during := l.accepted.Load()
	outage := relForm(3*time.Second, 60*time.Second)
	waitAccepted(t, l, int64(relForm(300, 3000)))
	for time.Since(down) < outage {
		waitAccepted(t, l, 50)
	}
	during = l.accepted.Load() - during
	if n := e.count(`SELECT count(*) FROM outbox`); n < int(during)/2 {
		t.Errorf("outbox holds %d events after %d were accepted with NATS down", n, during)
	}

	ns, err = embednats.Start(ctx, filepath.Join(dir, "nats"), nil, embednats.Options{Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	outageFor := time.Since(down)
	took := l.latencies(first, l.mark())
	waitAccepted(t, l, 100)
	stop()
	wait()
	eventually(t, 60*time.Second, "an empty outbox", func() bool { return e.count(`SELECT count(*) FROM outbox`) == 0 })
	eventually(t, 10*time.Second, "/readyz to recover", func() bool { return e.do("GET", "/readyz", nil, nil).status == 200 })
	ids, order := relStreamIDs(t, e.js, e.cfg.Stream, e.count(`SELECT count(*) FROM events`), 30*time.Second)
	f := l.accountFor(t, e.db, ids, modeGraceful)
	l.checkOrder(t, order)
	if f.cut != 0 || f.otherStatus != 0 {
		t.Errorf("%d requests got no answer and %d an answer other than 200; want every one answered 200", f.cut, f.otherStatus)
	}
	e.stop() // before the NATS server it uses
	t.Logf("figures (NATS outage of %v): %v; accepted while NATS was down %d (latency p50 %v, p99 %v)",
		outageFor.Round(100*time.Millisecond), f, during, relPercentile(took, .5).Round(time.Millisecond), relPercentile(took, .99).Round(time.Millisecond))
}

// waitAccepted waits until l has had n more requests answered 200.
func waitAccepted(t *testing.T, l *relLoad, n int64) {
	t.Helper()
	target := l.accepted.Load() + n
	eventually(t, 90*time.Second, fmt.Sprintf("%d accepted requests", target), func() bool {
		return l.accepted.Load() >= target
	})
}

// TestPostgresOutageUnderLoad stops PostgreSQL (a private server) while
// signed webhooks keep coming. Every request is answered quickly, 200 or
// 503 with Retry-After; goroutines and open files stay bounded; and when
// PostgreSQL returns on the same data directory, inlet accepts again by
// itself, without a restart, having lost nothing it acknowledged.
func TestPostgresOutageUnderLoad(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	// The server runs as an unprivileged user when the tests run as root;
	// it must be able to reach its data directory.
	for _, d := range []string{base, filepath.Dir(base)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pgDir := filepath.Join(base, "pg")
	var pg *embedpg.Server
	startPG := func() {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		var err error
		if pg, err = embedpg.Start(sctx, pgDir, nil); err != nil {
			t.Fatalf("start PostgreSQL: %v", err)
		}
	}
	startPG()
	t.Cleanup(func() { _ = pg.Stop(context.Background()) }) // after the gateway's cleanup

	// Each start of the private server listens in a fresh socket directory;
	// inlet gets a fixed one whose socket is a link to the current server's.
	link, err := os.MkdirTemp("", "inlet-rel-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(link) })
	relink := func() {
		t.Helper()
		u, err := url.Parse(pg.URL())
		if err != nil {
			t.Fatal(err)
		}
		sock := filepath.Join(link, ".s.PGSQL.5432")
		_ = os.Remove(sock)
		if err := os.Symlink(filepath.Join(u.Query().Get("host"), ".s.PGSQL.5432"), sock); err != nil {
			t.Fatal(err)
		}
	}
	relink()
	dsn := "postgres://inlet@/inlet?host=" + link + "&port=5432&sslmode=disable"

	ns := natstest.New(t)
	e := startEnv(t, dsn, ns.URL, ns.Stream, ns.SubjectPrefix)
	dk, ds := relSignedTrigger(t, e.base, e.token, "myapp.deployment_complete", "")
	gk, gs := relSignedTrigger(t, e.base, e.token, "github.push", "github")
	l := newRelLoad(e.base, relDeploymentSender(dk, ds), relGitHubSender(gk, gs))
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	workers := relForm(8, 16)
	wait := l.run(lctx, workers)
	waitAccepted(t, l, 100)
	before := relScrape(t, e.base)
	baseGoroutines := relMetric(before, "go_goroutines")
	baseFDs := relMetric(before, "process_open_fds")

	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := pg.Stop(sctx); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
	cancel()
	down := time.Now()
	first := l.mark()
	outage := relForm(5*time.Second, 60*time.Second)
	var maxGoroutines, maxFDs float64
	for time.Since(down) < outage {
		m := relScrape(t, e.base)
		maxGoroutines = max(maxGoroutines, relMetric(m, "go_goroutines"))
		maxFDs = max(maxFDs, relMetric(m, "process_open_fds"))
		time.Sleep(100 * time.Millisecond) // sampling interval, not synchronisation
	}
	last := l.mark()
	startPG()
	relink()
	up := time.Now()
	outageFor := up.Sub(down)
	waitAccepted(t, l, 200)
	recovered := time.Since(up)
	stop()
	wait()

	l.mu.Lock()
	var unavailable, ok int
	for _, a := range l.attempts[first:last] {
		switch {
		case a.status == http.StatusOK:
			ok++
		case a.status == http.StatusServiceUnavailable:
			unavailable++
			if ra, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || ra < 1 {
				t.Errorf("503 with Retry-After %q, want a positive number of seconds", a.header.Get("Retry-After"))
			}
		default:
			t.Errorf("request %s during the outage: %d %s %s, want 200 or 503", a.ua, a.status, a.problem, a.err)
		}
		if a.took > 6*time.Second {
			t.Errorf("request %s during the outage took %v, want under 6s", a.ua, a.took)
		}
	}
	l.mu.Unlock()
	if unavailable == 0 {
		t.Errorf("no request was answered 503 during a %v outage", outageFor)
	}
	if limit := baseGoroutines + 100 + 4*float64(workers); maxGoroutines > limit {
		t.Errorf("goroutines grew from %v to %v during the outage, want at most %v", baseGoroutines, maxGoroutines, limit)
	}
	if limit := baseFDs + 50 + 2*float64(workers); maxFDs > limit {
		t.Errorf("open files grew from %v to %v during the outage, want at most %v", baseFDs, maxFDs, limit)
	}

	l.resolve(t, 60*time.Second)
	eventually(t, 60*time.Second, "an empty outbox", func() bool { return e.count(`SELECT count(*) FROM outbox`) == 0 })
	ids, order := relStreamIDs(t, e.js, e.cfg.Stream, e.count(`SELECT count(*) FROM events`), 30*time.Second)
	f := l.accountFor(t, e.db, ids, modeDBOutage)
	l.checkOrder(t, order)
	took := l.latencies(first, last)
	t.Logf("figures (PostgreSQL outage of %v): %v; during the outage %d answered 503 and %d 200 (latency p50 %v, max %v), goroutines %v -> at most %v; accepting again %v after PostgreSQL returned",
		outageFor.Round(100*time.Millisecond), f, unavailable, ok, relPercentile(took, .5).Round(time.Millisecond), relPercentile(took, 1).Round(time.Millisecond),
		baseGoroutines, maxGoroutines, recovered.Round(100*time.Millisecond))
}
