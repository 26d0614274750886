// Package test runs whole inlet gateways in-process against real PostgreSQL
// and NATS and checks what users see: HTTP answers, stored rows, audit
// records and stream messages.
package test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/embednats"
	"github.com/inlet-dev/inlet/pkg/embednats/natstest"
	"github.com/inlet-dev/inlet/pkg/gateway"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m, closeBrowser) }

// syncBuffer collects everything a gateway logs, for the secret checks.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is one gateway with its database, stream and admin token.
type env struct {
	t      *testing.T
	cfg    config.Config
	g      *gateway.Gateway
	base   string
	token  string
	db     *sqlx.DB
	js     jetstream.JetStream
	logs   *syncBuffer
	stopMu sync.Mutex
	done   bool
	// sent is when the last request through do was sent: its audit row,
	// written by then or soon after, is the first received after it.
	sentMu sync.Mutex
	sent   time.Time
}

type option func(*config.Config)

// testSecretKey seals the secrets of every test gateway.
const testSecretKey = "S2V5IG9mIHRoZSB0ZXN0cywgMzIgYnl0ZXMgbG9uZyE"

// newEnv starts a gateway on a fresh database and its own stream.
func newEnv(t *testing.T, opts ...option) *env {
	t.Helper()
	dsn := storetest.NewURL(t)
	ns := natstest.New(t)
	return startEnv(t, dsn, ns.URL, ns.Stream, ns.SubjectPrefix, opts...)
}

func startEnv(t *testing.T, dsn, natsURL, stream, prefix string, opts ...option) *env {
	t.Helper()
	cfg := config.Default()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DatabaseURL = dsn
	cfg.NATSURL = natsURL
	cfg.Stream = stream
	cfg.SubjectPrefix = prefix
	cfg.PacksDir = "../packs"
	cfg.DataDir = t.TempDir()
	cfg.ShutdownTimeout = 20 * time.Second
	// Instances on one database share their keys, as in production.
	cfg.SecretKey = testSecretKey
	// Tests check the audit row of each request; the flood test lowers it.
	cfg.AuditFloodRate = 100_000
	for _, o := range opts {
		o(&cfg)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g, err := gateway.Start(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	if cfg.PublicURL == "" {
		cfg.HTTPAddr = g.Addr() // as the gateway does: URLs name the bound port
	}
	e := &env{t: t, cfg: cfg, g: g, base: "http://" + g.Addr(), token: string(g.Token), logs: logs}
	if e.token == "" {
		e.token = string(cfg.AdminToken)
	}
	e.db = sqlx.MustConnect("postgres", dsn)
	var natsOpts []nats.Option
	if natsURL == "" { // the gateway's embedded server, and its token
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, embednats.URLFile))
		if err != nil {
			t.Fatal(err)
		}
		natsURL = strings.TrimSpace(string(b))
		if b, err = os.ReadFile(filepath.Join(cfg.DataDir, embednats.TokenFile)); err != nil {
			t.Fatal(err)
		}
		natsOpts = append(natsOpts, nats.Token(strings.TrimSpace(string(b))))
	}
	nc, err := nats.Connect(natsURL, natsOpts...)
	if err != nil {
		t.Fatal(err)
	}
	e.js, _ = jetstream.New(nc)
	t.Cleanup(func() {
		e.stop()
		nc.Close()
		e.db.Close()
	})
	return e
}

// stop shuts the gateway down gracefully, once.
func (e *env) stop() {
	e.stopMu.Lock()
	defer e.stopMu.Unlock()
	if e.done {
		return
	}
	e.done = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.g.Shutdown(ctx); err != nil {
		e.t.Errorf("shutdown: %v", err)
	}
}

// testWriter sends log lines to t.Log only when a test fails verbosely.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() && os.Getenv("INLET_TEST_LOGS") != "" {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (e *env) do(method, path string, body []byte, header map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.base+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body == nil {
		req.Body = nil
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if strings.HasPrefix(path, "/api/v1/webhooks/") {
		e.sending()
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := response{status: res.StatusCode, header: res.Header, body: b}
	_ = json.Unmarshal(b, &r.json)
	return r
}

// admin calls the management API with the admin token.
func (e *env) admin(method, path string, body any) response {
	e.t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			e.t.Fatal(err)
		}
	}
	return e.do(method, path, b, map[string]string{"Authorization": "Bearer " + e.token, "Content-Type": "application/json"})
}

// mustAdmin is admin that fails the test on a status other than want.
func (e *env) mustAdmin(want int, method, path string, body any) map[string]any {
	e.t.Helper()
	r := e.admin(method, path, body)
	if r.status != want {
		e.t.Fatalf("%s %s = %d %s, want %d", method, path, r.status, r.body, want)
	}
	return r.json
}

// enable turns a trigger's webhook on and returns its key.
func (e *env) enable(ref string) string {
	e.t.Helper()
	data := e.mustAdmin(200, "POST", "/api/v1/triggers/"+ref+"/webhooks/enable", nil)["data"].(map[string]any)
	return data["webhook_key"].(string)
}

// post sends a webhook.
func (e *env) post(key string, body []byte, header map[string]string) response {
	e.t.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	for k, v := range header {
		h[k] = v
	}
	return e.do("POST", "/api/v1/webhooks/"+key, body, h)
}

// count runs a counting query.
func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.Get(&n, q, args...); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// lastAudit returns the outcome and status of the audit row of the last
// request sent through do, waiting for it: rejections are recorded
// within a second of their answer.
func (e *env) lastAudit() (outcome string, status int) {
	e.t.Helper()
	var row struct {
		Outcome string `db:"outcome"`
		Status  int    `db:"status"`
	}
	e.sentMu.Lock()
	sent := e.sent
	e.sentMu.Unlock()
	e.waitAudit(e.t, sent, &row, `SELECT outcome, status FROM audit_log WHERE received_at >= $1 ORDER BY received_at DESC, id DESC LIMIT 1`)
	return row.Outcome, row.Status
}

// sending notes that a webhook is about to be sent.
func (e *env) sending() {
	e.sentMu.Lock()
	e.sent = time.Now()
	e.sentMu.Unlock()
}

// waitAudit polls query, whose $1 is sent, the time a request was sent,
// and whose other arguments are args, until it returns a row, into dst.
func (e *env) waitAudit(t *testing.T, sent time.Time, dst any, query string, args ...any) {
	t.Helper()
	args = append([]any{sent}, args...)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := e.db.Get(dst, query, args...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			var last []struct {
				At      time.Time `db:"received_at"`
				Outcome string    `db:"outcome"`
				Ref     *string   `db:"trigger_ref"`
			}
			_ = e.db.Select(&last, `SELECT received_at, outcome, trigger_ref FROM audit_log ORDER BY id DESC LIMIT 3`)
			t.Fatalf("no audit row of the request sent at %v (%v); the newest are %+v", sent, err, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// streamMessages returns every message in the gateway's stream, waiting up
// to wait for the count to reach want.
func (e *env) streamMessages(want int, wait time.Duration) []jetstream.RawStreamMsg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait+5*time.Second)
	defer cancel()
	deadline := time.Now().Add(wait)
	var n uint64
	for {
		s, err := e.js.Stream(ctx, e.cfg.Stream)
		if err == nil {
			info, err := s.Info(ctx)
			if err == nil {
				n = info.State.Msgs
			}
		}
		if int(n) >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s, err := e.js.Stream(ctx, e.cfg.Stream)
	if err != nil {
		if want == 0 {
			return nil
		}
		e.t.Fatalf("stream %s: %v", e.cfg.Stream, err)
	}
	var out []jetstream.RawStreamMsg
	for seq := uint64(1); len(out) < int(n); seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			if seq > n*2+10 {
				break
			}
			continue
		}
		out = append(out, *m)
	}
	return out
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// deployment is a payload that matches myapp.deployment_complete's schema.
func deployment(version string) []byte {
	return []byte(`{"service":"api","version":"` + version + `","environment":"production","status":"succeeded"}`)
}
