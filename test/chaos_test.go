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
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/pkg/config"
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
	// sink receives every event of both triggers through a destination.
	sink *sink
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
		// The sink listens on loopback.
		"INLET_DESTINATION_ALLOW_CIDRS": "127.0.0.0/8",
	})
	p.start()
	r := &chaosRig{p: p, stream: ns.Stream, token: token, leaks: newLeakFinder(), sink: newSink(t)}
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
	for _, ref := range []string{"myapp.deployment_complete", "github.push"} {
		// A short timeout keeps the lease of an attempt cut by a kill
		// short: its delivery is taken over sooner.
		st, b, _ := relCall(t, p.base(), token, "POST", "/api/v1/triggers/"+ref+"/destinations",
			map[string]any{"name": "sink", "url": r.sink.srv.URL, "timeout_seconds": 2, "retry_schedule_seconds": []int{1, 1, 1}})
		if st != http.StatusCreated {
			t.Fatalf("create destination: %d %s", st, b)
		}
	}
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
// unanswered, waits until every event is published, stops inlet with SIGTERM and
// accounts for every request.
func (r *chaosRig) finish(t *testing.T, mode accountMode) relFigures {
	t.Helper()
	r.load.resolve(t, 60*time.Second)
	eventually(t, 60*time.Second, "every event published", func() bool {
		var n int
		return r.db.Get(&n, `SELECT count(*) FROM events e, publish_position p WHERE (e.xid, e.seq) > (p.xid, p.seq)`) == nil && n == 0
	})
	var events int
	if err := r.db.Get(&events, `SELECT count(*) FROM events`); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "every delivery made", func() bool {
		var n int
		return r.db.Get(&n, `SELECT count(*) FROM deliveries WHERE status <> 'succeeded'`) == nil && n == 0
	})
	repeats := r.checkDeliveries(t, events)
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
	f.forwarded, f.deliveryRepeats = true, repeats
	return f
}

// checkDeliveries checks that every event has exactly one delivery, to
// the one destination of its trigger, and that the sink got every event
// at least once; it returns how many requests repeated an event (at
// least once means some may, when a kill cut an attempt whose success
// was not yet recorded).
func (r *chaosRig) checkDeliveries(t *testing.T, events int) int {
	t.Helper()
	var bad int
	if err := r.db.Get(&bad, `SELECT count(*) FROM events e
		WHERE (SELECT count(*) FROM deliveries d WHERE d.event_id = e.id) <> 1`); err != nil {
		t.Fatal(err)
	}
	if bad != 0 {
		t.Errorf("%d events do not have exactly one delivery", bad)
	}
	var ids []string
	if err := r.db.Select(&ids, `SELECT id FROM events`); err != nil {
		t.Fatal(err)
	}
	r.sink.mu.Lock()
	defer r.sink.mu.Unlock()
	missing, repeats := 0, 0
	for _, id := range ids {
		switch n := r.sink.seen[id]; {
		case n == 0:
			missing++
		case n > 1:
			repeats += n - 1
		}
	}
	if missing > 0 || len(ids) != events {
		t.Errorf("the sink never got %d of %d events", missing, len(ids))
	}
	return repeats
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
// No request without an answer may have been processed, and every event is
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
		if err := r.db.Get(&n, `SELECT count(*) FROM events e, publish_position p WHERE (e.xid, e.seq) > (p.xid, p.seq)`); err != nil || n != 0 {
			t.Errorf("%d events unpublished after a graceful stop (%v), want 0", n, err)
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
// wait in the database, and when NATS returns each is published exactly
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
	if n := e.count(`SELECT count(*) FROM events e, publish_position p WHERE (e.xid, e.seq) > (p.xid, p.seq)`); n < int(during)/2 {
		t.Errorf("%d events wait to be published after %d were accepted with NATS down", n, during)
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
	eventually(t, 60*time.Second, "every event published", func() bool {
		return e.count(`SELECT count(*) FROM events e, publish_position p WHERE (e.xid, e.seq) > (p.xid, p.seq)`) == 0
	})
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

// TestPostgresOutageUnderLoad takes a private PostgreSQL away while signed
// webhooks keep coming, and unknown keys too (each needs a lookup). Every
// request is answered quickly, 200 or 503 with Retry-After (404 for an
// unknown key); goroutines and open files stay bounded; and when
// PostgreSQL is back, inlet accepts again by itself, without a restart,
// having lost nothing it acknowledged.
//
// "stopped" shuts PostgreSQL down and starts it again on the same data
// directory: connections fail at once. "frozen" stops every PostgreSQL
// process (SIGSTOP) and lets them go on (SIGCONT): connections hang, as
// they do when the database host or the network to it fails.
func TestPostgresOutageUnderLoad(t *testing.T) {
	t.Run("stopped", func(t *testing.T) { testPostgresOutage(t, false) })
	t.Run("frozen", func(t *testing.T) {
		testPostgresOutage(t, true)
	})
}

func testPostgresOutage(t *testing.T, freeze bool) {
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
	thaw := func() {}
	t.Cleanup(func() { // after the gateway's cleanup
		thaw()
		_ = pg.Stop(context.Background())
	})

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
	// Unknown keys are probed throughout: no budget for them.
	e := startEnv(t, dsn, ns.URL, ns.Stream, ns.SubjectPrefix, func(c *config.Config) { c.UnknownKeyLimit = 0 })
	dk, ds := relSignedTrigger(t, e.base, e.token, "myapp.deployment_complete", "")
	gk, gs := relSignedTrigger(t, e.base, e.token, "github.push", "github")
	l := newRelLoad(e.base, relDeploymentSender(dk, ds), relGitHubSender(gk, gs))
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	workers := relForm(8, 16)
	wait := l.run(lctx, workers)
	probes := probeUnknownKeys(lctx, e.base)
	waitAccepted(t, l, 100)
	before := relScrape(t, e.base)
	baseGoroutines := relMetric(before, "go_goroutines")
	baseFDs := relMetric(before, "process_open_fds")

	if freeze {
		procs := freezePostgres(t, postmasterPID(t, pg.Dir()))
		thaw = func() {
			for _, pid := range procs {
				_ = syscall.Kill(pid, syscall.SIGCONT)
			}
		}
	} else {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := pg.Stop(sctx); err != nil {
			t.Fatalf("stop PostgreSQL: %v", err)
		}
		cancel()
	}
	down := time.Now()
	outage := relForm(5*time.Second, 60*time.Second)
	var maxGoroutines, maxFDs float64
	for time.Since(down) < outage {
		m := relScrape(t, e.base)
		maxGoroutines = max(maxGoroutines, relMetric(m, "go_goroutines"))
		maxFDs = max(maxFDs, relMetric(m, "process_open_fds"))
		time.Sleep(100 * time.Millisecond) // sampling interval, not synchronisation
	}
	if freeze {
		thaw()
		thaw = func() {}
	} else {
		startPG()
		relink()
	}
	up := time.Now()
	outageFor := up.Sub(down)
	waitAccepted(t, l, 200)
	recovered := time.Since(up)
	stop()
	wait()
	unknown := <-probes

	// Every request that was in flight at some time during the outage.
	during := func(start time.Time, took time.Duration) bool {
		return start.Before(up) && start.Add(took).After(down)
	}
	var unavailable, ok int
	var took []time.Duration
	slow := 0
	check := func(what string, start time.Time, d time.Duration, status int, header http.Header, want ...int) {
		if !during(start, d) {
			return
		}
		took = append(took, d)
		if d > 6*time.Second && slow < 10 {
			slow++
			t.Errorf("%s during the outage took %v (answer %d), want under 6s", what, d.Round(time.Millisecond), status)
		}
		switch {
		case status == http.StatusServiceUnavailable:
			unavailable++
			if ra, err := strconv.Atoi(header.Get("Retry-After")); err != nil || ra < 1 {
				t.Errorf("%s: 503 with Retry-After %q, want a positive number of seconds", what, header.Get("Retry-After"))
			}
		case slices.Contains(want, status):
			ok++
		default:
			t.Errorf("%s during the outage: answer %d, want %v or 503", what, status, want)
		}
	}
	l.mu.Lock()
	for _, a := range l.attempts {
		check("request "+a.ua, a.start, a.took, a.status, a.header, http.StatusOK)
	}
	l.mu.Unlock()
	for _, p := range unknown {
		check("unknown key", p.start, p.took, p.status, p.header, http.StatusNotFound)
	}
	if unavailable == 0 {
		t.Errorf("no request was answered 503 during a %v outage", outageFor)
	}
	// A frozen database holds each connection and each lookup it was
	// given until the receiver's deadline, the pool's worth at most.
	slack := map[bool]float64{false: 1, true: 4}[freeze]
	if limit := baseGoroutines + slack*(100+4*float64(workers)); maxGoroutines > limit {
		t.Errorf("goroutines grew from %v to %v during the outage, want at most %v", baseGoroutines, maxGoroutines, limit)
	}
	if limit := baseFDs + slack*(50+2*float64(workers)); maxFDs > limit {
		t.Errorf("open files grew from %v to %v during the outage, want at most %v", baseFDs, maxFDs, limit)
	}

	l.resolve(t, 60*time.Second)
	eventually(t, 60*time.Second, "every event published", func() bool {
		return e.count(`SELECT count(*) FROM events e, publish_position p WHERE (e.xid, e.seq) > (p.xid, p.seq)`) == 0
	})
	// Requests answered 503 are recorded once the database answers: those
	// whose commit's outcome was unknown after a settling delay.
	answered := 0
	l.mu.Lock()
	for _, a := range l.attempts {
		if a.status != 0 {
			answered++
		}
	}
	l.mu.Unlock()
	eventually(t, 40*time.Second, "an audit record of every answered request", func() bool {
		return e.count(`SELECT COALESCE(sum(count), 0) FROM audit_log WHERE user_agent LIKE 'rel/%'`) >= answered
	})
	ids, order := relStreamIDs(t, e.js, e.cfg.Stream, e.count(`SELECT count(*) FROM events`), 30*time.Second)
	f := l.accountFor(t, e.db, ids, modeDBOutage)
	l.checkOrder(t, order)
	t.Logf("figures (PostgreSQL %s for %v): %v; during the outage %d answered 503 and %d 200 or 404 (latency p50 %v, max %v), goroutines %v -> at most %v; accepting again %v after PostgreSQL returned",
		map[bool]string{false: "stopped", true: "frozen"}[freeze], outageFor.Round(100*time.Millisecond), f, unavailable, ok,
		relPercentile(took, .5).Round(time.Millisecond), relPercentile(took, 1).Round(time.Millisecond),
		baseGoroutines, maxGoroutines, recovered.Round(100*time.Millisecond))
}

// probe is one request with an unknown key and its answer.
type probe struct {
	start  time.Time
	took   time.Duration
	status int
	header http.Header
}

// probeUnknownKeys posts a random unknown key every 50ms until ctx is done,
// then sends what it saw. Its requests have the user agent "probe".
func probeUnknownKeys(ctx context.Context, base string) <-chan []probe {
	out := make(chan []probe, 1)
	go func() { // owned by the caller, which receives from out
		var ps []probe
		var mu sync.Mutex
		var wg sync.WaitGroup
		client := &http.Client{Timeout: 30 * time.Second}
		for i := 0; ctx.Err() == nil; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", base+"/api/v1/webhooks/wh_"+trigger.RandomString(32), strings.NewReader(`{}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("User-Agent", "probe")
				p := probe{start: time.Now()}
				res, err := client.Do(req)
				p.took = time.Since(p.start)
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					p.status, p.header = res.StatusCode, res.Header
				}
				mu.Lock()
				ps = append(ps, p)
				mu.Unlock()
			}()
			relSleep(ctx, 50*time.Millisecond)
		}
		wg.Wait()
		out <- ps
	}()
	return out
}

// freezePostgres stops the postmaster, so that it starts no more
// processes, then every process it started (each backend runs in a
// session of its own, so a process group signal would miss them), and
// returns them all.
func freezePostgres(t *testing.T, postmaster int) []int {
	t.Helper()
	if err := syscall.Kill(postmaster, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	procs := []int{postmaster}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := strings.LastIndexByte(string(b), ')')
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == postmaster {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			if syscall.Kill(pid, syscall.SIGSTOP) == nil {
				procs = append(procs, pid)
			}
		}
	}
	return procs
}

// postmasterPID reads the pid of the postmaster serving the cluster in dir.
func postmasterPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	return pid
}
