package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/lib/pq" // counting rows in inlet's database
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// inlet is the gateway under test, run as `inlet serve` in a child process
// on a temporary data directory (or DATABASE_URL and NATS_URL when set),
// with a database connection and a NATS connection to check its work.
type inlet struct {
	o       benchOptions
	ch      *child
	dataDir string
	logPath string
	logFile *os.File

	base, pprofAddr string
	token, secret   string
	webhookURL      string
	triggerID       int64
	destinationID   string // the sink's destination, if created

	db        *sql.DB
	dsn       string // of inlet's database
	pgVersion string
	nc        *nats.Conn
	js        jetstream.JetStream
	stream    string
	ownStream bool // created for this run on an external NATS: deleted at the end

	profile []byte
	client  *http.Client
}

func startInlet(ctx context.Context, o benchOptions, tmp string, logf func(string, ...any)) (*inlet, error) {
	in := &inlet{
		o: o, dataDir: filepath.Join(tmp, "data"), logPath: filepath.Join(tmp, "inlet.log"),
		token: "bench_" + randomHex(16), secret: "whsec_" + randomHex(20),
		stream: "INLET_EVENTS", client: &http.Client{Timeout: time.Minute},
	}
	packs, err := filepath.Abs(o.packs)
	if err != nil {
		return nil, err
	}
	env := append(filteredEnv(),
		"INLET_HTTP_ADDR=127.0.0.1:0",
		"INLET_PPROF_ADDR=127.0.0.1:0",
		"INLET_DATA_DIR="+in.dataDir,
		"INLET_PACKS_DIR="+packs,
		"INLET_ADMIN_TOKEN="+in.token,
		"INLET_LOG_FORMAT=json",
		"INLET_LOG_LEVEL=info",
		// The destination's sink listens on 127.0.0.1.
		"INLET_DESTINATION_ALLOW_CIDRS=127.0.0.0/8",
	)
	env = append(env, o.inletEnv...)
	if os.Getenv("NATS_URL") != "" {
		// A stream of its own keeps the count of messages exact on a
		// shared server.
		id := strings.ToUpper(randomHex(4))
		in.stream, in.ownStream = "INLET_BENCH_"+id, true
		env = append(env, "INLET_STREAM="+in.stream, "INLET_SUBJECT_PREFIX=inletbench."+strings.ToLower(id))
	}
	if in.logFile, err = os.Create(in.logPath); err != nil {
		return nil, err
	}
	in.ch, _, err = startChild(o.inletBin, []string{"serve"}, env, "", in.logFile)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", o.inletBin, err)
	}
	started, err := in.waitStarted(ctx, 3*time.Minute)
	if err != nil {
		return in, err
	}
	in.base, in.pprofAddr = "http://"+started["listening"], started["profiler listening"]
	if err := in.waitReady(ctx, time.Minute); err != nil {
		return in, err
	}

	dsn := os.Getenv("DATABASE_URL")
	if dsn == "" {
		sock := started["postgres started"]
		if sock == "" {
			return in, errors.New("inlet did not log where its embedded PostgreSQL listens")
		}
		dsn = (&url.URL{Scheme: "postgres", User: url.User("inlet"), Path: "/inlet",
			RawQuery: "host=" + sock + "&port=5432&sslmode=disable"}).String()
	}
	in.dsn = dsn
	if in.db, err = sql.Open("postgres", dsn); err != nil {
		return in, err
	}
	in.db.SetMaxOpenConns(2)
	if err := in.db.QueryRowContext(ctx, `SHOW server_version`).Scan(&in.pgVersion); err != nil {
		return in, fmt.Errorf("connect to inlet's database: %w", err)
	}

	natsURL := os.Getenv("NATS_URL")
	natsOpts := []nats.Option{nats.Name("inlet-bench")}
	if natsURL == "" {
		// The embedded server requires the token inlet keeps beside its
		// URL in the data directory.
		b, err := os.ReadFile(filepath.Join(in.dataDir, "nats.url"))
		if err != nil {
			return in, fmt.Errorf("embedded NATS: %w", err)
		}
		natsURL = strings.TrimSpace(string(b))
		tok, err := os.ReadFile(filepath.Join(in.dataDir, "nats.token"))
		if err != nil {
			return in, fmt.Errorf("embedded NATS: %w", err)
		}
		natsOpts = append(natsOpts, nats.Token(strings.TrimSpace(string(tok))))
	}
	if in.nc, err = nats.Connect(natsURL, natsOpts...); err != nil {
		return in, fmt.Errorf("connect to %s: %w", natsURL, err)
	}
	if in.js, err = jetstream.New(in.nc); err != nil {
		return in, err
	}
	logf("inlet is up at %s (PostgreSQL %s, stream %s)", in.base, in.pgVersion, in.stream)
	return in, nil
}

// waitStarted reads inlet's JSON log until it says it is listening, and
// returns the addresses it logged on the way: the HTTP server's, the
// profiler's and the embedded PostgreSQL's socket directory.
func (in *inlet) waitStarted(ctx context.Context, timeout time.Duration) (map[string]string, error) {
	found := map[string]string{}
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(in.logPath); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(b))
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var l struct {
					Msg       string `json:"msg"`
					Addr      string `json:"addr"`
					SocketDir string `json:"socket_dir"`
				}
				if json.Unmarshal(sc.Bytes(), &l) != nil {
					continue
				}
				switch l.Msg {
				case "listening", "profiler listening":
					found[l.Msg] = l.Addr
				case "postgres started":
					found[l.Msg] = l.SocketDir
				}
			}
		}
		if found["listening"] != "" && found["profiler listening"] != "" {
			return found, nil
		}
		if in.ch.exited() {
			return nil, fmt.Errorf("inlet exited (%v); its log:\n%s", in.ch.err, in.logTail())
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("inlet not listening after %v; its log:\n%s", timeout, in.logTail())
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func (in *inlet) logTail() string {
	b, _ := os.ReadFile(in.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

func (in *inlet) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := in.client.Get(in.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("inlet not ready after %v; its log:\n%s", timeout, in.logTail())
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// configure enables the trigger's webhook and sets the settings that put
// every stage of the pipeline to work: HMAC, and a payload mapping on top
// of the trigger's schema.
func (in *inlet) configure(ctx context.Context) error {
	ref := url.PathEscape(in.o.trigger)
	var enabled struct {
		Data struct {
			ID         int64  `json:"id"`
			WebhookKey string `json:"webhook_key"`
		} `json:"data"`
	}
	if err := in.api(ctx, http.MethodPost, "/api/v1/triggers/"+ref+"/webhooks/enable", nil, &enabled); err != nil {
		return err
	}
	settings := map[string]any{
		"hmac": map[string]any{"enabled": true, "algorithm": "sha256", "secret": in.secret},
		"payload_mapping": map[string]string{
			"service": "$.service", "version": "$.version", "environment": "$.environment",
			"status": "$.status", "commit": "$.commit", "pipeline": "$.url",
		},
	}
	if err := in.api(ctx, http.MethodPatch, "/api/v1/triggers/"+ref+"/webhooks", settings, nil); err != nil {
		return err
	}
	in.triggerID = enabled.Data.ID
	in.webhookURL = in.base + "/api/v1/webhooks/" + enabled.Data.WebhookKey
	return nil
}

func (in *inlet) api(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, in.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+in.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := in.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &apiError{method: method, path: path, status: resp.StatusCode, body: b}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// apiError is an answer of inlet's API other than a 2xx.
type apiError struct {
	method, path string
	status       int
	body         []byte // a problem document: never a secret
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.method, e.path, e.status, http.StatusText(e.status), e.body)
}

func (in *inlet) pid() int { return in.ch.cmd.Process.Pid }

// snapshot is what is counted before and after a phase.
type snapshot struct {
	auditID  int64
	events   int // the trigger's event rows
	withID   int // those of them with a delivery id
	messages uint64
	metrics  map[string]float64
}

func (in *inlet) snapshot(ctx context.Context) (snapshot, error) {
	var s snapshot
	if err := in.db.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM audit_log`).Scan(&s.auditID); err != nil {
		return s, fmt.Errorf("audit rows: %w", err)
	}
	err := in.db.QueryRowContext(ctx, `SELECT count(*), count(delivery_id) FROM events WHERE trigger_id = $1`,
		in.triggerID).Scan(&s.events, &s.withID)
	if err != nil {
		return s, fmt.Errorf("count events: %w", err)
	}
	st, err := in.js.Stream(ctx, in.stream)
	if err != nil {
		return s, fmt.Errorf("stream %s: %w", in.stream, err)
	}
	s.messages = st.CachedInfo().State.Msgs
	s.metrics, err = in.scrape(ctx)
	return s, err
}

// batchStats returns the mean size and duration of the writer's batches
// between s0 and s.
func (s snapshot) batchStats(s0 snapshot) (size, ms float64) {
	n := s.metrics["inlet_write_batch_size_count"] - s0.metrics["inlet_write_batch_size_count"]
	if n <= 0 {
		return 0, 0
	}
	size = (s.metrics["inlet_write_batch_size_sum"] - s0.metrics["inlet_write_batch_size_sum"]) / n
	ms = 1000 * (s.metrics["inlet_write_batch_duration_seconds_sum"] - s0.metrics["inlet_write_batch_duration_seconds_sum"]) / n
	return size, ms
}

// scrape reads the unlabelled sums and counts of inlet's /metrics.
func (in *inlet) scrape(ctx context.Context) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, in.base+"/metrics", nil)
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			m[name] = v
		}
	}
	return m, sc.Err()
}

// backlog counts the events after the publish position, those not yet acknowledged by
// JetStream.
func (in *inlet) backlog(ctx context.Context) (int64, error) {
	var n int64
	err := in.db.QueryRowContext(ctx, `SELECT count(*) FROM events e, publish_position p WHERE (e.xid, e.seq) > (p.xid, p.seq)`).Scan(&n)
	return n, err
}

// drain waits until every event is published and returns how long that took.
func (in *inlet) drain(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	for {
		n, err := in.backlog(ctx)
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return time.Since(start), nil
		}
		if time.Since(start) > 2*time.Minute {
			return 0, fmt.Errorf("%d events still unpublished after 2 minutes", n)
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// Check compares what the load generator was answered with what inlet
// stored and published during one phase.
type Check struct {
	OK            int `json:"ok_200"`
	Events        int `json:"events"`
	DistinctIDs   int `json:"distinct_delivery_ids"`
	Messages      int `json:"stream_messages"`
	Audit         int `json:"audit_rows"`
	AuditAccepted int `json:"audit_accepted"`
	// Unanswered is the load generator's count of requests written whose
	// answer it never read (wrk's in flight when it stopped): inlet may
	// have accepted them, so they may add to Events.
	Unanswered int `json:"unanswered,omitempty"`
	// StoredPublished: as many stream messages and accepted audit rows as
	// event rows.
	StoredPublished bool `json:"stored_equals_published"`
	// OneEventPer200: StoredPublished, and as many event rows as 200s
	// (plus at most Unanswered), none of them a duplicate.
	OneEventPer200 bool `json:"one_event_and_message_per_200"`
}

// check counts the phase's events, audit rows and stream messages.
//
// The Go load generator gives every request a delivery id of its own
// starting with prefix, so its events are counted by that prefix, and one
// event row per 200 means as many rows as 200s, each with a different
// delivery id.
//
// wrk sends no delivery id (and the trigger takes none from the body), so
// no request can be a duplicate of another, and the phase's events are the
// trigger's new rows, none with a delivery id. wrk stops without reading
// the answers in flight, so the rows number at least the 200s and at most
// the 200s and the unanswered requests.
func (in *inlet) check(ctx context.Context, mode, prefix string, s0, s1 snapshot, res LoadResult) (Check, error) {
	c := Check{OK: res.OK, Messages: int(s1.messages - s0.messages)}
	if mode == loadGo {
		err := in.db.QueryRowContext(ctx, `
			SELECT count(*), count(DISTINCT delivery_id) FROM events
			WHERE trigger_id = $1 AND starts_with(delivery_id, $2)`, in.triggerID, prefix+"-").Scan(&c.Events, &c.DistinctIDs)
		if err != nil {
			return c, fmt.Errorf("count events: %w", err)
		}
	} else {
		c.Events, c.DistinctIDs = s1.events-s0.events, s1.withID-s0.withID
		c.Unanswered = res.Unanswered
	}
	err := in.db.QueryRowContext(ctx, `
		SELECT count(*), count(*) FILTER (WHERE outcome = 'accepted') FROM audit_log
		WHERE id > $1 AND trigger_id = $2`, s0.auditID, in.triggerID).Scan(&c.Audit, &c.AuditAccepted)
	if err != nil {
		return c, fmt.Errorf("count audit rows: %w", err)
	}
	c.judge(mode)
	return c, nil
}

// judge sets StoredPublished and OneEventPer200 from c's counts; mode is
// the load generator's, as check explains.
func (c *Check) judge(mode string) {
	c.StoredPublished = c.Messages == c.Events && c.AuditAccepted == c.Events
	if mode == loadGo {
		c.OneEventPer200 = c.StoredPublished && c.Events == c.OK && c.DistinctIDs == c.OK
	} else {
		c.OneEventPer200 = c.StoredPublished && c.DistinctIDs == 0 && c.Events >= c.OK && c.Events <= c.OK+c.Unanswered
	}
}

// settle waits until inlet has stopped committing events: no new audit
// row for settleQuiet and an empty outbox. wrk leaves requests in flight
// when it stops; inlet finishes them (or drops them, the client being
// gone) within milliseconds, and they must be counted in their phase.
func (in *inlet) settle(ctx context.Context) error {
	const settleQuiet = 500 * time.Millisecond
	start := time.Now()
	var last int64 = -1
	quietSince := time.Now()
	for {
		var id, outbox int64
		err := in.db.QueryRowContext(ctx,
			`SELECT (SELECT coalesce(max(id), 0) FROM audit_log),
				(SELECT count(*) FROM events e, publish_position p WHERE (e.xid, e.seq) > (p.xid, p.seq))`).Scan(&id, &outbox)
		if err != nil {
			return fmt.Errorf("wait for inlet to settle: %w", err)
		}
		if id != last {
			last, quietSince = id, time.Now()
		}
		if outbox == 0 && time.Since(quietSince) >= settleQuiet {
			return nil
		}
		if time.Since(start) > 2*time.Minute {
			return fmt.Errorf("inlet still writing after 2 minutes (outbox %d)", outbox)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// Durability is how durably inlet's PostgreSQL and NATS keep what inlet
// has answered 200 for, read from the servers themselves.
type Durability struct {
	Fsync             string `json:"postgres_fsync"`
	SynchronousCommit string `json:"postgres_synchronous_commit"`
	FullPageWrites    string `json:"postgres_full_page_writes"`
	NATSStorage       string `json:"nats_storage"`
}

// Default reports whether d is PostgreSQL's default durability and a
// JetStream file store.
func (d Durability) Default() bool {
	return d.Fsync == "on" && d.SynchronousCommit == "on" && d.FullPageWrites == "on" && d.NATSStorage == "file"
}

func (in *inlet) durability(ctx context.Context) (Durability, error) {
	var d Durability
	for _, q := range []struct {
		name string
		dst  *string
	}{{"fsync", &d.Fsync}, {"synchronous_commit", &d.SynchronousCommit}, {"full_page_writes", &d.FullPageWrites}} {
		if err := in.db.QueryRowContext(ctx, "SHOW "+q.name).Scan(q.dst); err != nil {
			return d, fmt.Errorf("show %s: %w", q.name, err)
		}
	}
	st, err := in.js.Stream(ctx, in.stream)
	if err != nil {
		return d, fmt.Errorf("stream %s: %w", in.stream, err)
	}
	d.NATSStorage = strings.ToLower(st.CachedInfo().Config.Storage.String())
	return d, nil
}

// rss returns a memory figure of inlet's process from /proc, in MB:
// VmRSS (now) or VmHWM (the peak).
func (in *inlet) rss(field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", in.ch.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/<pid>/status", field)
}

// fetchProfile waits out the warm-up, then records a CPU profile of the
// measured window through inlet's pprof listener.
func (in *inlet) fetchProfile(ctx context.Context, warmup, d time.Duration) error {
	if err := sleep(ctx, warmup); err != nil {
		return err
	}
	secs := max(1, int(d.Seconds()))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", in.pprofAddr, secs), nil)
	resp, err := in.client.Do(req)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile: %s", resp.Status)
	}
	in.profile, err = io.ReadAll(resp.Body)
	return err
}

// stop shuts inlet down gracefully and closes the checking connections.
func (in *inlet) stop() error {
	var errs []error
	if in.ch != nil {
		if err := in.ch.stop(90 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if in.nc != nil {
		if in.ownStream {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := in.js.DeleteStream(ctx, in.stream); err != nil {
				errs = append(errs, fmt.Errorf("delete stream %s: %w", in.stream, err))
			}
			cancel()
		}
		in.nc.Close()
	}
	if in.db != nil {
		in.db.Close()
	}
	if in.logFile != nil {
		in.logFile.Close()
	}
	return errors.Join(errs...)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
