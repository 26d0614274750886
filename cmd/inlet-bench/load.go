package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// secretEnv carries the HMAC secret to the load generator, so that it
// never shows in ps.
const secretEnv = "INLET_BENCH_SECRET"

// BodySize is the size of every webhook body the load generator sends.
const BodySize = 1024

// LoadResult is what one load phase measured, by either load generator.
// Counts cover the whole phase, warm-up included, so that they can be
// checked against the rows stored; rates and latencies cover the measured
// window only.
type LoadResult struct {
	Conns     int            `json:"conns"`
	Window    float64        `json:"window_s"`
	Measured  int            `json:"measured"`
	RPS       float64        `json:"rps"`
	P50       float64        `json:"p50_ms"`
	P90       float64        `json:"p90_ms"`
	P99       float64        `json:"p99_ms"`
	P999      float64        `json:"p999_ms,omitempty"` // wrk only
	Max       float64        `json:"max_ms"`
	Total     int            `json:"total"`
	OK        int            `json:"ok"`
	Status    map[string]int `json:"status"`
	NetErrors int            `json:"net_errors"`
	FirstErr  string         `json:"first_error,omitempty"`
	// Timeouts counts the answers wrk read later than its --timeout.
	Timeouts int `json:"timeouts,omitempty"`
	// Unanswered counts the requests wrk wrote but whose answer it did
	// not read: wrk stops with a request in flight on every busy
	// connection. The server may still have accepted them.
	Unanswered int `json:"unanswered,omitempty"`
	// Filled in by run: CPU seconds of the server under test (for inlet
	// its own process, without PostgreSQL) and of the load generator, over
	// the whole phase.
	ServerCPU float64 `json:"server_cpu_s"`
	LoadCPU   float64 `json:"load_generator_cpu_s"`
}

// Errors counts the requests that did not get a 200, and the answers wrk
// read too late.
func (r LoadResult) Errors() int { return r.Total - r.OK + r.Timeouts }

type loadOptions struct {
	target   *url.URL
	conns    int
	warmup   time.Duration
	duration time.Duration
	idPrefix string
	secret   []byte
	rate     float64 // requests per second over all connections; 0 for closed loop
}

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "", "webhook URL to POST to (http only)")
	conns := fs.Int("c", 64, "concurrent keep-alive connections")
	warmup := fs.Duration("warmup", time.Second, "load before the measured window")
	duration := fs.Duration("d", 5*time.Second, "measured window")
	prefix := fs.String("id-prefix", "bench", "prefix of the X-Webhook-ID of every request, each of which is unique")
	rate := fs.Float64("rate", 0, "requests per second over all connections, each connection on a fixed schedule (open loop); 0 sends the next request as soon as the last is answered")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("-url %q: want an http:// URL", *target)
	}
	if *conns < 1 {
		return errors.New("-c must be at least 1")
	}
	if *rate < 0 {
		return errors.New("-rate must not be negative")
	}
	res := load(ctx, loadOptions{
		target: u, conns: *conns, warmup: *warmup, duration: *duration,
		idPrefix: *prefix, secret: []byte(os.Getenv(secretEnv)), rate: *rate,
	})
	return json.NewEncoder(stdout).Encode(res)
}

// load drives opts.conns connections, each sending one request at a time,
// until the window ends. In a closed loop (opts.rate 0) a connection sends
// the next request as soon as the answer is read. In an open loop each
// connection has a schedule of opts.rate/opts.conns requests a second, the
// connections' schedules staggered; a request whose connection is still
// waiting for an answer when it is due is sent as soon as the answer
// comes, and its latency counts from when it was due, so that a slow
// server's queueing shows in the percentiles.
func load(ctx context.Context, opts loadOptions) LoadResult {
	start := time.Now()
	from := start.Add(opts.warmup)
	until := from.Add(opts.duration)
	workers := make([]*worker, opts.conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := newWorker(opts, i)
		workers[i] = w
		wg.Add(1)
		go func() { // owned by load, which waits for it
			defer wg.Done()
			w.run(ctx, start, from, until)
		}()
	}
	wg.Wait()

	res := LoadResult{Conns: opts.conns, Window: opts.duration.Seconds(), Status: map[string]int{}}
	var lat []time.Duration
	for _, w := range workers {
		lat = append(lat, w.lat...)
		res.Total += w.total
		res.NetErrors += w.netErrors
		for code, n := range w.status {
			res.Status[strconv.Itoa(code)] += n
		}
		if res.FirstErr == "" && w.firstErr != nil {
			res.FirstErr = w.firstErr.Error()
		}
	}
	res.OK = res.Status["200"]
	res.Measured = len(lat)
	res.RPS = float64(len(lat)) / opts.duration.Seconds()
	slices.Sort(lat)
	res.P50, res.P90, res.P99 = quantile(lat, 0.50), quantile(lat, 0.90), quantile(lat, 0.99)
	if len(lat) > 0 {
		res.Max = ms(lat[len(lat)-1])
	}
	return res
}

// quantile returns the q-quantile of sorted in milliseconds (nearest rank).
func quantile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return ms(sorted[min(max(i, 0), len(sorted)-1)])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// worker is one keep-alive connection speaking just enough HTTP/1.1 to
// send a request and read its answer, so that the load generator spends
// its one core on the server's behalf as little as it can.
type worker struct {
	opts   loadOptions
	n      int
	conn   net.Conn
	r      *bufio.Reader
	req    []byte
	body   []byte
	id     []byte
	mac    hash.Hash
	sum    []byte
	header []byte // request line and fixed headers

	lat       []time.Duration
	total     int
	status    map[int]int
	netErrors int
	firstErr  error
}

func newWorker(opts loadOptions, n int) *worker {
	w := &worker{opts: opts, n: n, status: map[int]int{}}
	if len(opts.secret) > 0 {
		w.mac = hmac.New(sha256.New, opts.secret)
	}
	w.header = fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: inlet-bench/1\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n", opts.target.RequestURI(), opts.target.Host, BodySize)
	return w
}

func (w *worker) run(ctx context.Context, start, from, until time.Time) {
	defer w.close()
	var interval time.Duration
	var due time.Time
	if w.opts.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(w.opts.conns) / w.opts.rate)
		due = start.Add(interval * time.Duration(w.n) / time.Duration(w.opts.conns))
	}
	for seq := 0; ctx.Err() == nil; seq++ {
		t0 := time.Now()
		if !t0.Before(until) {
			return
		}
		if interval > 0 {
			if !due.Before(until) {
				return
			}
			if wait := due.Sub(t0); wait > 0 && sleep(ctx, wait) != nil {
				return
			}
			t0, due = due, due.Add(interval)
		}
		code, err := w.do(seq)
		t1 := time.Now()
		w.total++
		if err != nil {
			w.netErrors++
			if w.firstErr == nil {
				w.firstErr = err
			}
			w.close()
			time.Sleep(10 * time.Millisecond) // a server that is gone is not hammered
			continue
		}
		w.status[code]++
		if !t1.Before(from) && !t1.After(until) {
			w.lat = append(w.lat, t1.Sub(t0))
		}
	}
}

// do sends request seq and reads the answer's status, discarding its body.
func (w *worker) do(seq int) (int, error) {
	if w.conn == nil {
		c, err := net.DialTimeout("tcp", w.opts.target.Host, 5*time.Second)
		if err != nil {
			return 0, err
		}
		w.conn, w.r = c, bufio.NewReaderSize(c, 4096)
	}
	w.id = fmt.Appendf(w.id[:0], "%s-%03d-%09d", w.opts.idPrefix, w.n, seq)
	w.body = appendBody(w.body[:0], w.id)
	w.req = append(w.req[:0], w.header...)
	w.req = append(w.req, "X-Webhook-ID: "...)
	w.req = append(w.req, w.id...)
	w.req = append(w.req, "\r\n"...)
	if w.mac != nil {
		w.mac.Reset()
		w.mac.Write(w.body)
		w.sum = w.mac.Sum(w.sum[:0])
		w.req = append(w.req, "X-Webhook-Signature: sha256="...)
		w.req = hex.AppendEncode(w.req, w.sum)
		w.req = append(w.req, "\r\n"...)
	}
	w.req = append(w.req, "\r\n"...)
	w.req = append(w.req, w.body...)
	deadline := time.Now().Add(30 * time.Second)
	w.conn.SetDeadline(deadline)
	if _, err := w.conn.Write(w.req); err != nil {
		return 0, err
	}
	return w.readResponse()
}

func (w *worker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

var errBadResponse = errors.New("malformed HTTP response")

// readResponse reads one answer: status line, headers, and a body framed
// by Content-Length or chunked encoding.
func (w *worker) readResponse() (int, error) {
	line, err := w.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, errBadResponse
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, errBadResponse
	}
	length, chunked, closing := -1, false, false
	for {
		line, err := w.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, errBadResponse
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, errBadResponse
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		err = w.discardChunked()
	case length >= 0:
		_, err = w.r.Discard(length)
	default:
		closing = true // the body runs to the end of the connection
	}
	if err != nil {
		return 0, err
	}
	if closing {
		w.close()
	}
	return code, nil
}

func (w *worker) discardChunked() error {
	for {
		line, err := w.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		sz, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(sz), 16, 64)
		if err != nil {
			return errBadResponse
		}
		if n == 0 {
			for { // trailers, then the blank line
				line, err := w.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := w.r.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}

// The body is a deployment_complete delivery that satisfies the trigger's
// schema, carries the delivery id, and is padded to exactly BodySize bytes.
const (
	bodyHead = `{"service":"checkout","version":"2.14.0","environment":"production","status":"succeeded",` +
		`"url":"https://ci.example.com/pipelines/`
	bodyMid = `","commit":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","branch":"main","deployed_by":"deploy-bot",` +
		`"region":"eu-west-1","duration_seconds":184,"replicas":{"desired":6,"ready":6},` +
		`"changes":[{"id":"6113728f","message":"Fix the retry budget of the payment client","author":"mona@example.com"},` +
		`{"id":"9049f126","message":"Bump the base image","author":"hubot@example.com"}],"notes":"`
	bodyTail = `"}`
	padding  = "Deployed by the pipeline after all checks passed; canary and smoke tests were green. "
)

func appendBody(dst, id []byte) []byte {
	start := len(dst)
	dst = append(dst, bodyHead...)
	dst = append(dst, id...)
	dst = append(dst, bodyMid...)
	for pad := BodySize - (len(dst) - start) - len(bodyTail); pad > 0; {
		n := min(pad, len(padding))
		dst = append(dst, padding[:n]...)
		pad -= n
	}
	return append(dst, bodyTail...)
}
