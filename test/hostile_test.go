package test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/ratelimit"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// rawExchange writes raw to a fresh connection to addr and reads one
// answer. A connection closed without an answer gives status 0.
func rawExchange(t *testing.T, addr, raw string, timeout time.Duration) (int, http.Header, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatalf("write request: %v", err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, nil, nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

// auditOf returns the audit rows of the requests sent with user agent ua.
func (e *env) auditOf(ua string) []auditRow {
	e.t.Helper()
	var rows []auditRow
	if err := e.db.Select(&rows, `SELECT status, outcome, key_prefix, body_size, trigger_ref FROM audit_log WHERE user_agent = $1`, ua); err != nil {
		e.t.Fatal(err)
	}
	return rows
}

type auditRow struct {
	Status     int     `db:"status"`
	Outcome    string  `db:"outcome"`
	KeyPrefix  string  `db:"key_prefix"`
	BodySize   int64   `db:"body_size"`
	TriggerRef *string `db:"trigger_ref"`
}

// expectAudit checks that exactly one audit row carries ua, with status
// and outcome, and returns it.
func (e *env) expectAudit(t *testing.T, ua string, status int, outcome string) auditRow {
	t.Helper()
	var rows []auditRow
	eventually(t, 5*time.Second, "the audit row of "+ua, func() bool { rows = e.auditOf(ua); return len(rows) > 0 })
	if len(rows) != 1 {
		t.Fatalf("%d audit rows for %s, want 1", len(rows), ua)
	}
	if r := rows[0]; r.Status != status || r.Outcome != outcome {
		t.Errorf("audit row for %s = %d %s, want %d %s", ua, r.Status, r.Outcome, status, outcome)
	}
	return rows[0]
}

// TestSlowClients: a client that sends its headers or its body a byte at a
// time is cut off by the read-header and read timeouts, and holds nothing
// for longer.
func TestSlowClients(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.ReadHeaderTimeout = 500 * time.Millisecond
		c.ReadTimeout = time.Second
		c.WriteTimeout = 2 * time.Second
	})
	key := e.enable("myapp.deployment_complete")
	addr := strings.TrimPrefix(e.base, "http://")

	// drip writes head, then one more piece every 100ms until the server
	// closes the connection or answers; it returns the answer's status (0
	// for none) and how long the connection lasted.
	drip := func(t *testing.T, head string, piece func(i int) string) (int, time.Duration) {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
		start := time.Now()
		type answer struct {
			status int
			took   time.Duration
		}
		done := make(chan answer, 1)
		go func() { // ends when the server answers or closes; the deadline bounds it
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				done <- answer{0, time.Since(start)}
				return
			}
			res.Body.Close()
			done <- answer{res.StatusCode, time.Since(start)}
		}()
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case a := <-done:
				return a.status, a.took
			case <-tick.C:
				_, _ = io.WriteString(conn, piece(i)) // fails once the server has closed
			}
			if time.Since(start) > 12*time.Second {
				t.Fatal("a slow client is still connected after 12s")
			}
		}
	}

	t.Run("headers", func(t *testing.T) {
		const ua = "rel-slowloris-headers"
		head := "POST /api/v1/webhooks/" + key + " HTTP/1.1\r\nHost: x\r\nUser-Agent: " + ua + "\r\n"
		status, took := drip(t, head, func(i int) string { return fmt.Sprintf("X-Slow-%d: x\r\n", i) })
		if took > 2*time.Second {
			t.Errorf("slow headers held the connection for %v, want about the 500ms read-header timeout", took)
		}
		if status != 0 && status != http.StatusRequestTimeout {
			t.Errorf("slow headers answered %d, want the connection closed or 408", status)
		}
		if n := len(e.auditOf(ua)); n != 0 {
			t.Errorf("%d audit rows for a request whose headers never arrived, want 0", n)
		}
	})
	t.Run("body", func(t *testing.T) {
		const ua = "rel-slowloris-body"
		head := "POST /api/v1/webhooks/" + key + " HTTP/1.1\r\nHost: x\r\nUser-Agent: " + ua +
			"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
		status, took := drip(t, head, func(int) string { return " " })
		if took > 3*time.Second {
			t.Errorf("a slow body held the connection for %v, want about the 1s read timeout", took)
		}
		if status != http.StatusBadRequest {
			t.Errorf("slow body answered %d, want 400", status)
		}
		eventually(t, 5*time.Second, "the slow body's audit row", func() bool { return len(e.auditOf(ua)) > 0 })
		e.expectAudit(t, ua, http.StatusBadRequest, "invalid_payload")
	})
	if n := e.count(`SELECT count(*) FROM events`); n != 0 {
		t.Errorf("slow clients created %d events", n)
	}
}

// TestBodyLimit: a body over the trigger's limit is refused having read at
// most limit+1 bytes of it, whether Content-Length announces it, lies
// about it or is absent (chunked).
func TestBodyLimit(t *testing.T) {
	e := newEnv(t)
	const ref = "myapp.deployment_complete"
	key := e.enable(ref)
	e.mustAdmin(200, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"payload_size_limit_kb": 1})
	const limit = 1024
	addr := strings.TrimPrefix(e.base, "http://")
	head := func(ua string, extra string) string {
		return "POST /api/v1/webhooks/" + key + " HTTP/1.1\r\nHost: x\r\nUser-Agent: " + ua + "\r\nContent-Type: application/json\r\n" + extra + "\r\n"
	}

	t.Run("exactly the limit", func(t *testing.T) {
		body := func(n int) []byte {
			b := []byte(`{"service":"api","version":"1","environment":"production","status":"succeeded","url":"`)
			b = append(b, strings.Repeat("u", n-len(b)-2)...)
			return append(b, `"}`...)
		}
		if r := e.post(key, body(limit), map[string]string{"User-Agent": "rel-limit-exact"}); r.status != 200 {
			t.Errorf("body of exactly %d bytes: %d %s, want 200", limit, r.status, r.body)
		}
		if r := e.post(key, body(limit+1), map[string]string{"User-Agent": "rel-limit-over"}); r.status != 413 {
			t.Errorf("body of %d bytes: %d %s, want 413", limit+1, r.status, r.body)
		}
		e.expectAudit(t, "rel-limit-over", 413, "too_large")
	})
	t.Run("announced", func(t *testing.T) {
		// Only the headers are sent: the answer must not wait for the body.
		status, _, _ := rawExchange(t, addr, head("rel-limit-announced", "Content-Length: 1048576\r\n"), 5*time.Second)
		if status != 413 {
			t.Errorf("Content-Length over the limit, body not sent: %d, want 413 at once", status)
		}
		e.expectAudit(t, "rel-limit-announced", 413, "too_large")
	})
	t.Run("chunked", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(conn, head("rel-limit-chunked", "Transfer-Encoding: chunked\r\n")); err != nil {
			t.Fatal(err)
		}
		const total = 64 << 20
		var sent atomic.Int64
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // stops when the server closes the connection, or after total
			defer wg.Done()
			chunk := fmt.Sprintf("%x\r\n%s\r\n", 32<<10, strings.Repeat("[", 32<<10))
			for sent.Load() < total {
				if _, err := io.WriteString(conn, chunk); err != nil {
					return
				}
				sent.Add(32 << 10)
			}
		}()
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("chunked oversized body: no answer: %v", err)
		}
		res.Body.Close()
		if res.StatusCode != 413 {
			t.Errorf("chunked oversized body: %d, want 413", res.StatusCode)
		}
		wg.Wait()
		if n := sent.Load(); n >= total/2 {
			t.Errorf("the server let the client send %d MB of a refused body", n>>20)
		}
		a := e.expectAudit(t, "rel-limit-chunked", 413, "too_large")
		if a.BodySize > limit+1 {
			t.Errorf("the receiver read %d bytes of a body over the %d-byte limit, want at most %d", a.BodySize, limit, limit+1)
		}
	})
	t.Run("content length lies", func(t *testing.T) {
		// Content-Length says 100 and 2 MB follow: the body is the first
		// 100 bytes, the rest is not a request.
		raw := head("rel-limit-lie", "Content-Length: 100\r\n") + strings.Repeat("x", 2<<20)
		status, _, _ := rawExchange(t, addr, raw, 10*time.Second)
		if status != 400 {
			t.Errorf("Content-Length 100 followed by 2 MB: %d, want 400", status)
		}
		a := e.expectAudit(t, "rel-limit-lie", 400, "invalid_payload")
		if a.BodySize != 100 {
			t.Errorf("body size %d read, want the announced 100", a.BodySize)
		}
	})
	if n := e.count(`SELECT count(*) FROM events`); n != 1 {
		t.Errorf("%d events, want only the one of the body at the limit", n)
	}
}

// TestHostileBodies sends bodies, headers and URLs built to break parsers
// or storage. Each gets a 4xx (or, where it is harmless, a 200) quickly,
// and the audit row says what the answer said. Requests refused by the HTTP
// server itself, before inlet's handler (malformed or oversized headers),
// never reach the receiver and have no audit row.
func TestHostileBodies(t *testing.T) {
	e := newEnv(t)
	e.mustAdmin(201, "POST", "/api/v1/triggers", map[string]any{"ref": "rel.open", "description": "no schema"})
	key := e.enable("rel.open")
	addr := strings.TrimPrefix(e.base, "http://")
	deep := func(open, close string, n int) []byte {
		return []byte(strings.Repeat(open, n) + "1" + strings.Repeat(close, n))
	}
	tests := []struct {
		name    string
		ct      string
		body    []byte
		header  map[string]string
		status  int
		outcome string
	}{
		{"nested 64 deep", "application/json", deep("[", "]", 64), nil, 200, "accepted"},
		{"nested 65 deep", "application/json", deep("[", "]", 65), nil, 400, "invalid_payload"},
		{"a million brackets", "application/json", []byte(strings.Repeat("[", 1_000_000)), nil, 400, "invalid_payload"},
		{"nested objects", "application/json", deep(`{"a":`, "}", 100_000), nil, 400, "invalid_payload"},
		{"huge exponent", "application/json", []byte(`{"n":1e999999999}`), nil, 400, "invalid_payload"},
		{"long number", "application/json", []byte(`{"n":` + strings.Repeat("9", 900_000) + `}`), nil, 400, "invalid_payload"},
		{"invalid UTF-8", "application/json", []byte("{\"s\":\"\xff\xfe\"}"), nil, 400, "invalid_payload"},
		{"raw NUL", "application/json", []byte("{\"s\":\"a\x00b\"}"), nil, 400, "invalid_payload"},
		{"escaped NUL", "application/json", []byte(`{"s":"a\u0000b"}`), nil, 200, "accepted"},
		{"lone surrogate", "application/json", []byte(`{"s":"\ud800x"}`), nil, 200, "accepted"},
		{"duplicate key", "application/json", []byte(`{"a":1,"a":2}`), nil, 400, "invalid_payload"},
		{"bare scalar", "application/json", []byte(`1`), nil, 400, "invalid_payload"},
		{"empty", "application/json", nil, nil, 400, "invalid_payload"},
		{"xml", "application/xml", []byte(`<a/>`), nil, 415, "invalid_payload"},
		{"form payload", "application/x-www-form-urlencoded", []byte("payload=" + url.QueryEscape(`{"a":1}`)), nil, 200, "accepted"},
		{"invalid UTF-8 header", "application/json", []byte(`{"a":1}`), map[string]string{"X-GitHub-Event": "\xff\xfe", "X-Webhook-Event": "\xc0"}, 200, "accepted"},
	}
	floodHeaders := map[string]string{}
	for i := range 1000 {
		floodHeaders[fmt.Sprintf("X-Flood-%04d", i)] = strings.Repeat("f", 30)
	}
	tests = append(tests, struct {
		name    string
		ct      string
		body    []byte
		header  map[string]string
		status  int
		outcome string
	}{"1000 headers", "application/json", []byte(`{"a":1}`), floodHeaders, 200, "accepted"})

	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ua := "rel-hostile-" + strconv.Itoa(i)
			h := map[string]string{"Content-Type": tt.ct, "User-Agent": ua}
			for k, v := range tt.header {
				h[k] = v
			}
			start := time.Now()
			r := e.do("POST", "/api/v1/webhooks/"+key, tt.body, h)
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("answered after %v", took)
			}
			if r.status != tt.status {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.status)
			}
			if tt.status >= 400 && r.json["code"] != tt.outcome {
				t.Errorf("problem code %v, want %s", r.json["code"], tt.outcome)
			}
			e.expectAudit(t, ua, tt.status, tt.outcome)
			events := e.count(`SELECT count(*) FROM events WHERE metadata->>'user_agent' = $1`, ua)
			if want := map[bool]int{true: 1, false: 0}[tt.status == 200]; events != want {
				t.Errorf("%d events, want %d", events, want)
			}
			if tt.status == 200 {
				var md string
				if err := e.db.Get(&md, `SELECT metadata::text FROM events WHERE metadata->>'user_agent' = $1`, ua); err != nil {
					t.Fatal(err)
				}
				if strings.Contains(md, "X-Flood") || len(md) > 4096 {
					t.Errorf("metadata keeps headers it should not: %.300s", md)
				}
			}
		})
	}

	t.Run("invalid UTF-8 user agent", func(t *testing.T) {
		r := e.do("POST", "/api/v1/webhooks/"+key, []byte(`{"a":1}`), map[string]string{"Content-Type": "application/json", "User-Agent": "rel-\xff-ua"})
		if r.status != 200 {
			t.Fatalf("status %d %s, want 200", r.status, r.body)
		}
		e.expectAudit(t, "rel-\uFFFD-ua", 200, "accepted")
	})
	t.Run("NUL in a header", func(t *testing.T) {
		raw := "POST /api/v1/webhooks/" + key + " HTTP/1.1\r\nHost: x\r\nUser-Agent: rel-nul-header\r\nX-Evil: a\x00b\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
		if status, _, _ := rawExchange(t, addr, raw, 5*time.Second); status != 400 {
			t.Errorf("NUL in a header value: %d, want 400 from the HTTP server", status)
		}
		if n := len(e.auditOf("rel-nul-header")); n != 0 {
			t.Errorf("%d audit rows for a request the HTTP server refused", n)
		}
	})
	t.Run("headers over 64 KB", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("POST /api/v1/webhooks/" + key + " HTTP/1.1\r\nHost: x\r\nUser-Agent: rel-header-flood\r\n")
		for i := range 3000 {
			fmt.Fprintf(&b, "X-Flood-%d: %s\r\n", i, strings.Repeat("f", 30))
		}
		b.WriteString("Content-Length: 7\r\n\r\n{\"a\":1}")
		if status, _, _ := rawExchange(t, addr, b.String(), 5*time.Second); status != 431 {
			t.Errorf("100 KB of headers: %d, want 431", status)
		}
		if n := len(e.auditOf("rel-header-flood")); n != 0 {
			t.Errorf("%d audit rows for a request the HTTP server refused", n)
		}
	})
	t.Run("long URLs", func(t *testing.T) {
		long := "wh_" + strings.Repeat("A", 8000)
		r := e.do("POST", "/api/v1/webhooks/"+long, []byte(`{"a":1}`), map[string]string{"Content-Type": "application/json", "User-Agent": "rel-long-url"})
		if r.status != 404 {
			t.Errorf("8 KB key: %d, want 404", r.status)
		}
		if a := e.expectAudit(t, "rel-long-url", 404, "not_found"); a.KeyPrefix != long[:8] {
			t.Errorf("audit key prefix %q, want the first 8 characters", a.KeyPrefix)
		}
		raw := "POST /api/v1/webhooks/wh_" + strings.Repeat("B", 100_000) + " HTTP/1.1\r\nHost: x\r\nUser-Agent: rel-huge-url\r\nContent-Length: 7\r\n\r\n{\"a\":1}"
		if status, _, _ := rawExchange(t, addr, raw, 5*time.Second); status != 431 && status != 414 {
			t.Errorf("100 KB URL: %d, want 414 or 431", status)
		}
		if n := len(e.auditOf("rel-huge-url")); n != 0 {
			t.Errorf("%d audit rows for a request the HTTP server refused", n)
		}
	})
	t.Run("strange keys", func(t *testing.T) {
		for i, k := range []string{"%ff%fe%fd%fc%fb%fa%f9", "wh_%00%00%00%00%00%00%00%00", "..%2f..%2fetc%2fpasswd", "wh_" + strings.Repeat("%C3%A9", 32)} {
			ua := "rel-strange-key-" + strconv.Itoa(i)
			r := e.do("POST", "/api/v1/webhooks/"+k, []byte(`{"a":1}`), map[string]string{"Content-Type": "application/json", "User-Agent": ua})
			if r.status != 404 {
				t.Errorf("key %q: %d %s, want 404", k, r.status, r.body)
				continue
			}
			e.expectAudit(t, ua, 404, "not_found")
		}
	})
	// Everything accepted is published as stored.
	n := e.count(`SELECT count(*) FROM events`)
	if got := e.streamMessages(n, 10*time.Second); len(got) != n {
		t.Errorf("stream has %d messages for %d events", len(got), n)
	}
}

// TestKeyGuessing: once a source has named its budget of unknown keys, its
// lookups of keys inlet does not know are refused with 429 without a
// lookup, while its requests with a key inlet knows still go through, so
// that a scanner behind the same NAT or proxy cannot lock real senders
// out. The lookups are proven skipped by locking the keys table: a lookup
// would wait for the lock, the 429 does not, and neither does the known
// key. IPv6 sources share a budget per /64.
func TestKeyGuessing(t *testing.T) {
	const budget = 6 // per minute: the test is over long before one refills
	e := newEnv(t, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1/32"}
		c.UnknownKeyLimit = budget
	})
	const ref = "myapp.deployment_complete"
	known := e.enable(ref)
	send := func(key, ip string, timeout time.Duration) (int, http.Header, error) {
		req, _ := http.NewRequest("POST", e.base+"/api/v1/webhooks/"+key, bytes.NewReader(deployment("1.0.0")))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", ip)
		req.Header.Set("User-Agent", "rel-guess")
		res, err := (&http.Client{Timeout: timeout}).Do(req)
		if err != nil {
			return 0, nil, err
		}
		res.Body.Close()
		return res.StatusCode, res.Header, nil
	}
	guess := func() string { return "wh_" + trigger.RandomString(32) }
	exhaust := func(ip string) {
		t.Helper()
		for i := range budget {
			if st, _, err := send(guess(), ip, 5*time.Second); err != nil || st != 404 {
				t.Fatalf("unknown key %d from %s: %d %v, want 404", i+1, ip, st, err)
			}
		}
	}

	// The enabled key reaches this instance's cache in the background (its
	// trigger's change is announced): wait until it is served from there,
	// with the keys table locked, before the check below relies on it.
	eventually(t, 10*time.Second, "the enabled key served from the cache", func() bool {
		tx := e.db.MustBegin()
		defer tx.Rollback()
		tx.MustExec(`LOCK TABLE webhook_keys IN ACCESS EXCLUSIVE MODE`)
		st, _, err := send(known, "192.0.2.10", 300*time.Millisecond)
		return err == nil && st == 200
	})

	const scanner = "198.51.100.7"
	exhaust(scanner)
	tx := e.db.MustBegin()
	tx.MustExec(`LOCK TABLE webhook_keys IN ACCESS EXCLUSIVE MODE`)
	st, hdr, err := send(guess(), scanner, 2*time.Second)
	knownSt, _, knownErr := send(known, scanner, 5*time.Second)
	// A fresh source is looked up, and so waits for the lock.
	_, _, ctlErr := send(guess(), "203.0.113.7", 300*time.Millisecond)
	_ = tx.Rollback()
	if err != nil {
		t.Fatalf("unknown key over the budget: %v (it waited for the keys table, so it was looked up)", err)
	}
	if st != 429 {
		t.Fatalf("unknown key over the budget: %d, want 429", st)
	}
	if ra, _ := strconv.Atoi(hdr.Get("Retry-After")); ra < 1 {
		t.Errorf("Retry-After %q, want a positive number of seconds", hdr.Get("Retry-After"))
	}
	if knownErr != nil || knownSt != 200 {
		t.Errorf("a known key from the address that spent its budget: %d %v, want 200", knownSt, knownErr)
	}
	if ctlErr == nil {
		t.Error("control: a lookup did not wait for the locked keys table, so the test proves nothing")
	}

	// A key made since, on this instance or another, becomes known as soon
	// as its trigger's change is announced: it goes through as well.
	extra := e.mustAdmin(201, "POST", "/api/v1/triggers/"+ref+"/webhooks/keys", map[string]any{"label": "ci"})["data"].(map[string]any)["key"].(string)
	eventually(t, 5*time.Second, "the new key accepted from the spent address", func() bool {
		st, _, _ := send(extra, scanner, 5*time.Second)
		return st == 200
	})

	// IPv6: rotating through a /64 does not buy a new budget; another /64
	// has its own.
	exhaust("2001:db8:1:2::1")
	if st, _, err := send(guess(), "2001:db8:1:2:ffff:ffff:ffff:fffe", 5*time.Second); err != nil || st != 429 {
		t.Errorf("unknown key from the same /64: %d %v, want 429", st, err)
	}
	if st, _, err := send(guess(), "2001:db8:1:3::1", 5*time.Second); err != nil || st != 404 {
		t.Errorf("unknown key from another /64: %d %v, want 404", st, err)
	}
	eventually(t, 5*time.Second, "the 429's audit row", func() bool {
		return e.count(`SELECT count(*) FROM audit_log WHERE outcome = 'rate_limited' AND status = 429 AND trigger_ref IS NULL`) >= 1
	})
}

// TestForwardedFromUntrustedPeer: X-Forwarded-For from a peer that is not
// a trusted proxy is ignored, and said once in the log, since it usually
// means a proxy missing from INLET_TRUSTED_PROXIES.
func TestForwardedFromUntrustedPeer(t *testing.T) {
	e := newEnv(t)
	key := e.enable("myapp.deployment_complete")
	for i := range 3 {
		r := e.post(key, deployment(fmt.Sprintf("1.0.%d", i)), map[string]string{"X-Forwarded-For": "192.0.2.10"})
		if r.status != 200 {
			t.Fatalf("webhook: %d %s", r.status, r.body)
		}
	}
	var ip string
	if err := e.db.Get(&ip, `SELECT metadata->>'source_ip' FROM events LIMIT 1`); err != nil || ip != "127.0.0.1" {
		t.Errorf("source_ip = %q (%v), want the peer, 127.0.0.1", ip, err)
	}
	if n := strings.Count(e.logs.String(), "X-Forwarded-For from a peer that is not a trusted proxy"); n != 1 {
		t.Errorf("the untrusted X-Forwarded-For is logged %d times, want once", n)
	}
}

// TestScannerMemory sprays random keys from random source addresses, as a
// scanner behind a proxy would: memory and goroutines stay bounded, since
// the per-address limiters are capped and evicted once refilled.
func TestScannerMemory(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1/32"}
		c.IPRateLimit = 600 // turns on the per-address limiter too
	})
	total := relForm(6_000, 0)
	duration := relForm(time.Duration(0), 4*time.Minute)
	var sent, other atomic.Int64
	spray := func(n int, until time.Time) {
		var wg sync.WaitGroup
		tr := &http.Transport{MaxIdleConnsPerHost: 32}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		var next atomic.Int64
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) || time.Now().Before(until) {
					var ip string
					if rand.IntN(2) == 0 {
						ip = fmt.Sprintf("10.%d.%d.%d", rand.IntN(256), rand.IntN(256), rand.IntN(256))
					} else {
						ip = fmt.Sprintf("2001:db8:%x:%x::%x", rand.IntN(1<<16), rand.IntN(1<<16), rand.IntN(1<<16))
					}
					req, _ := http.NewRequest("POST", e.base+"/api/v1/webhooks/wh_"+trigger.RandomString(32), strings.NewReader(`{}`))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("X-Forwarded-For", ip)
					res, err := client.Do(req)
					if err != nil {
						other.Add(1)
						continue
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != 404 {
						other.Add(1)
					}
					sent.Add(1)
				}
			}()
		}
		wg.Wait()
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	spray(1000, time.Time{}) // warm up: pools, caches, buffers
	warm := sent.Load()
	base := heap()
	baseGoroutines := runtime.NumGoroutine()
	start := time.Now()
	var samples []uint64
	if duration == 0 {
		spray(total, time.Time{})
	} else {
		for until := start.Add(duration); time.Now().Before(until); {
			spray(0, time.Now().Add(30*time.Second))
			samples = append(samples, heap())
			t.Logf("after %v: %d requests, heap in use %d MB", time.Since(start).Round(time.Second), sent.Load(), samples[len(samples)-1]>>20)
		}
	}
	end := heap()
	// A limiter costs about 200 bytes and two sets hold one per address:
	// 2 * 100,000 at their cap. The bound leaves room for the runtime.
	const bound = 96 << 20
	if end > base+bound {
		t.Errorf("heap in use grew from %d MB to %d MB after %d requests from random addresses, want at most %d MB more", base>>20, end>>20, sent.Load()-warm, bound>>20)
	}
	if len(samples) >= 4 {
		// Past the first minutes, refilled limiters are swept: no growth.
		if late, early := samples[len(samples)-1], samples[2]; late > early+early/2 {
			t.Errorf("heap in use still grows: %d MB at minute 1.5, %d MB at the end", early>>20, late>>20)
		}
	}
	if g := runtime.NumGoroutine(); g > baseGoroutines+100 {
		t.Errorf("goroutines grew from %d to %d", baseGoroutines, g)
	}
	if n := other.Load(); n > 0 {
		t.Errorf("%d of %d random keys were not answered 404", n, sent.Load())
	}
	t.Logf("figures (scanner): %d requests from random addresses with random keys in %v; heap in use %d MB -> %d MB",
		sent.Load()-warm, time.Since(start).Round(time.Second), base>>20, end>>20)
}

// TestLimiterSetsBounded drives a limiter set like the receiver's with a
// simulated clock: a flood of distinct addresses never holds more than the
// cap, and buckets that have refilled are evicted, so that the set shrinks
// back once a scanner moves on.
func TestLimiterSetsBounded(t *testing.T) {
	r, burst := rate.Limit(1), 60 // the unknown-key budget: 60 a minute
	now := time.Unix(1_700_000_000, 0)

	small := ratelimit.New(3200)
	for i := range 10_000 {
		small.Allow("10.0."+strconv.Itoa(i), r, burst, now)
	}
	if n := small.Len(); n > 3200 {
		t.Errorf("after 10,000 distinct addresses at once the set holds %d buckets, want at most its cap of 3,200", n)
	}

	const cap = 100_000 // what the receiver gives each of its sets
	s := ratelimit.New(cap)
	rps := relForm(300, 1000)
	peak := 0
	for sec := range 300 { // a scanner at rps new addresses a second for five minutes
		now = now.Add(time.Second)
		for i := range rps {
			s.Allow(fmt.Sprintf("s%d-%d", sec, i), r, burst, now)
		}
		peak = max(peak, s.Len())
	}
	// Only about a minute's worth is kept: refilled buckets are swept
	// once a minute.
	if limit := 2*60*rps + shardsHint; peak > limit {
		t.Errorf("set peaked at %d buckets under %d new addresses a second, want at most %d (two minutes' worth)", peak, rps, limit)
	}
	// The scanner stops; two minutes later a few requests sweep every shard.
	now = now.Add(2 * time.Minute)
	for i := range shardsHint {
		s.Allow("late-"+strconv.Itoa(i), r, burst, now)
	}
	if n := s.Len(); n > 2*shardsHint {
		t.Errorf("two minutes after the scanner left the set holds %d buckets, want the refilled ones evicted", n)
	}
	t.Logf("limiter set: peak %d buckets under %d new addresses a second for 5 minutes (cap %d), %d after the scanner left", peak, rps, cap, s.Len())
}

// TestLimiterSetAtCapCost: once a set is at its cap, a new key should cost
// about what it costs below the cap.
func TestLimiterSetAtCapCost(t *testing.T) {
	const cap = 100_000
	s := ratelimit.New(cap)
	now := time.Unix(1_700_000_000, 0)
	// insert adds up to n new keys, for at most a second, and returns the
	// mean cost of one; many keys amortise a pause of the machine.
	insert := func(prefix string, n int) time.Duration {
		start := time.Now()
		i := 0
		for ; i < n && (i%1000 != 0 || time.Since(start) < time.Second); i++ {
			s.Allow(prefix+strconv.Itoa(i), rate.Limit(1), 60, now)
		}
		return time.Since(start) / time.Duration(i)
	}
	under := insert("a", cap/2)
	for i := range cap * 3 / 4 { // past the cap, in every shard
		s.Allow("fill"+strconv.Itoa(i), rate.Limit(1), 60, now)
	}
	at := insert("b", 50_000)
	if at > 20*under {
		t.Errorf("a new key costs %v at the cap and %v below it, want about the same", at, under)
	}
}

// shardsHint is well above the number of shards of a ratelimit.Set: that
// many requests with distinct keys reach, and so sweep, every shard.
const shardsHint = 1024

// FuzzWebhookKeyPath posts arbitrary key path segments to a gateway, both
// escaped and as sent: every answer is a 4xx (404 for a key that does not
// exist), never a 5xx, and the gateway never panics.
func FuzzWebhookKeyPath(f *testing.F) {
	for _, s := range []string{
		"", "wh_", "wh_" + strings.Repeat("A", 32), "wh_" + strings.Repeat("A", 33), "%", "%zz", "..", "../../triggers",
		"\x00", "\xff\xfe", "é", " ", "wh_abc?x=1", "wh_abc#frag", "wh_abc/extra", strings.Repeat("a", 5000),
		"wh_%00%00", "*", ";", "wh_" + strings.Repeat("\u00e9", 16),
	} {
		f.Add(s)
	}
	// Every key reaches the lookup: no per-address budget for unknown keys.
	base, _ := relGateway(f, func(c *config.Config) { c.UnknownKeyLimit = 0 })
	client := &http.Client{Timeout: 10 * time.Second}
	f.Fuzz(func(t *testing.T, seg string) {
		for i, p := range []string{url.PathEscape(seg), seg} {
			req, err := http.NewRequest("POST", base+"/api/v1/webhooks/"+p, strings.NewReader(`{"a":1}`))
			if err != nil {
				continue // not a URL a client can send
			}
			req.Header.Set("Content-Type", "application/json")
			res, err := client.Do(req)
			if err != nil {
				if i == 0 {
					t.Fatalf("POST /api/v1/webhooks/%s: %v", p, err)
				}
				continue // the client refused to send it (control characters)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode < 400 || res.StatusCode >= 500 {
				t.Fatalf("POST /api/v1/webhooks/%q = %d, want a 4xx", p, res.StatusCode)
			}
		}
	})
}

// TestRejectionFlood: rejections never wait for a database write, a flood
// of identical ones from one source costs a few rows (each standing for
// many requests, so that the sum of counts is every request), and events
// keep being accepted meanwhile.
func TestRejectionFlood(t *testing.T) {
	e := newEnv(t, func(c *config.Config) {
		c.TrustedProxies = []string{"127.0.0.1/32"}
		c.UnknownKeyLimit = 0 // every guess is a lookup answered 404
		c.AuditFloodRate = 10
	})
	key := e.enable("myapp.deployment_complete")
	unknown := func(ip string, timeout time.Duration) (int, error) {
		req, _ := http.NewRequest("POST", e.base+"/api/v1/webhooks/wh_"+trigger.RandomString(32), strings.NewReader(`{}`))
		req.Header.Set("X-Forwarded-For", ip)
		req.Header.Set("User-Agent", "flood")
		res, err := (&http.Client{Timeout: timeout}).Do(req)
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}

	// A rejection is answered while the audit table is locked: its row
	// does not hold the answer back.
	if st, err := unknown("192.0.2.200", 5*time.Second); err != nil || st != 404 {
		t.Fatalf("warm-up guess: %d %v", st, err)
	}
	tx := e.db.MustBegin()
	tx.MustExec(`LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE`)
	st, err := unknown("192.0.2.201", time.Second)
	_ = tx.Rollback()
	if err != nil || st != 404 {
		t.Fatalf("unknown key while audit_log is locked: %d %v, want a 404 at once", st, err)
	}

	const flood = 3000
	const src = "198.51.100.66"
	var wg sync.WaitGroup
	var answered atomic.Int64
	for range 16 {
		wg.Go(func() {
			for range flood / 16 {
				if st, err := unknown(src, 10*time.Second); err == nil && st == 404 {
					answered.Add(1)
				}
			}
		})
	}
	accepted := 0
	for i := range 20 {
		if r := e.post(key, deployment(fmt.Sprintf("9.9.%d", i)), nil); r.status == 200 {
			accepted++
		}
	}
	wg.Wait()
	if accepted != 20 {
		t.Errorf("%d of 20 webhooks accepted during the flood, want all", accepted)
	}
	total := int(answered.Load())
	if total != flood/16*16 {
		t.Fatalf("%d of %d flood requests answered 404", total, flood/16*16)
	}
	var rows, sum int
	eventually(t, 10*time.Second, "every flood request counted in the audit log", func() bool {
		sum = e.count(`SELECT COALESCE(sum(count), 0) FROM audit_log WHERE source_ip = $1`, src)
		return sum >= total
	})
	rows = e.count(`SELECT count(*) FROM audit_log WHERE source_ip = $1`, src)
	t.Logf("%d requests of one source answered 404 while 20 webhooks were accepted, recorded in %d audit rows", total, rows)
	if sum != total {
		t.Errorf("audit rows of the flood count %d requests, want %d", sum, total)
	}
	if rows > total/5 {
		t.Errorf("the flood of %d requests cost %d audit rows, want far fewer", total, rows)
	}
	if e.count(`SELECT count(*) FROM audit_log WHERE source_ip = $1 AND count > 1 AND outcome = 'not_found' AND status = 404`, src) == 0 {
		t.Error("no audit row stands for several requests")
	}
	if got := relMetric(relScrape(t, e.base), "inlet_audit_aggregated_total"); got < float64(total-rows) {
		t.Errorf("inlet_audit_aggregated_total = %v, want at least %d", got, total-rows)
	}
}

// TestSchemaViolationsCapped: a body that breaks a schema in many places
// gets a 422 listing the first 50 violations and their total, not an
// answer as large as the body.
func TestSchemaViolationsCapped(t *testing.T) {
	e := newEnv(t)
	e.mustAdmin(201, "POST", "/api/v1/triggers", map[string]any{
		"ref": "custom.counts", "payload_schema": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "integer"}},
		"webhook": map[string]any{"enabled": true},
	})
	key := e.mustAdmin(200, "GET", "/api/v1/triggers/custom.counts", nil)["data"].(map[string]any)["webhook_key"].(string)
	var b strings.Builder
	b.WriteString("{")
	for i := range 80 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"f%d":"not a number"`, i)
	}
	b.WriteString("}")
	r := e.post(key, []byte(b.String()), nil)
	if r.status != 422 {
		t.Fatalf("80 violations: %d %s", r.status, r.body)
	}
	vs, _ := r.json["violations"].([]any)
	if len(vs) != 50 || r.json["violations_total"] != float64(80) {
		t.Errorf("422 lists %d violations, total %v; want 50 and 80", len(vs), r.json["violations_total"])
	}
	if !strings.Contains(r.json["detail"].(string), "80 violation(s)") {
		t.Errorf("detail %q does not give the total", r.json["detail"])
	}
}
