package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// sinkCountPath is where the sink answers a GET with the number of
// deliveries it has been sent.
const sinkCountPath = "/count"

// sink is the receiving end of the benchmark's destination: it reads and
// discards each POST's body and answers 204 at once, counting the POSTs and
// those of them carrying a webhook-signature header (the default
// standard-webhooks scheme's).
type sink struct {
	posts, signed atomic.Int64
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost:
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("Webhook-Signature") != "" {
			s.signed.Add(1)
		}
		s.posts.Add(1)
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet && r.URL.Path == sinkCountPath:
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%d %d\n", s.posts.Load(), s.signed.Load())
	default:
		w.Header().Set("Allow", http.MethodPost)
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// serveSink runs the destination's receiver on a port of 127.0.0.1 until
// ctx is done, printing its address on the first line of stdout. It is a
// process of its own so that its CPU time is not inlet's or the
// benchmark's.
func serveSink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	return serveOn(ctx, ln, &sink{}, stdout)
}

// sinkCount is what the sink has counted so far.
type sinkCount struct {
	posts, signed int
}

// parseSinkCount reads the sink's answer to GET /count.
func parseSinkCount(s string) (sinkCount, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return sinkCount{}, fmt.Errorf("sink count %q: want two numbers", s)
	}
	posts, err := strconv.Atoi(f[0])
	if err != nil {
		return sinkCount{}, fmt.Errorf("sink count %q: %w", s, err)
	}
	signed, err := strconv.Atoi(f[1])
	if err != nil {
		return sinkCount{}, fmt.Errorf("sink count %q: %w", s, err)
	}
	return sinkCount{posts: posts, signed: signed}, nil
}

// count asks the sink what it has counted so far.
func (s sinkProc) count(ctx context.Context) (sinkCount, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+sinkCountPath, nil)
	if err != nil {
		return sinkCount{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sinkCount{}, fmt.Errorf("sink count: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if err != nil {
		return sinkCount{}, fmt.Errorf("sink count: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return sinkCount{}, fmt.Errorf("sink count: %s", resp.Status)
	}
	return parseSinkCount(string(b))
}

// sinkProc is the sink as the benchmark sees it: its process and address.
type sinkProc struct {
	ch   *child
	base string // http://127.0.0.1:<port>
}

func (s sinkProc) pid() int { return s.ch.cmd.Process.Pid }

// startSink starts `inlet-bench sink` and reads its address.
func startSink(self string) (sinkProc, error) {
	ch, out, err := startChild(self, []string{"sink"}, nil, "", nil)
	if err != nil {
		return sinkProc{}, fmt.Errorf("start the sink: %w", err)
	}
	s := sinkProc{ch: ch}
	line, err := readLine(out, 10*time.Second)
	if err != nil {
		ch.stop(5 * time.Second)
		return sinkProc{}, fmt.Errorf("sink: %w", err)
	}
	s.base = "http://" + line
	return s, nil
}
