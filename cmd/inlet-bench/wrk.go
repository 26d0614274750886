package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkMarker starts the line of JSON that bench/wrk/signed.lua prints when
// wrk is done.
const wrkMarker = "inlet-bench-wrk "

// wrkTimeout is wrk's --timeout: an answer slower than this counts as a
// timeout error. wrk sizes its latency histogram by it (8 bytes a
// microsecond), so it is not the 30 s of the Go load generator.
const wrkTimeout = 5 * time.Second

// writeBodies writes n bodies for bench/wrk/signed.lua to path, one line
// each: the hex HMAC-SHA256 of the body under secret, a space, and the
// body. Each body is the load generator's deployment delivery with an id of
// its own (prefix-00001, …) in its pipeline URL, so that no two are alike;
// none carries a delivery id header, so repeats are separate events.
func writeBodies(path string, secret []byte, prefix string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	mac := hmac.New(sha256.New, secret)
	var id, body, sum, line []byte
	for i := 1; i <= n; i++ {
		id = fmt.Appendf(id[:0], "%s-%05d", prefix, i)
		body = appendBody(body[:0], id)
		mac.Reset()
		mac.Write(body)
		sum = mac.Sum(sum[:0])
		line = hex.AppendEncode(line[:0], sum)
		line = append(line, ' ')
		line = append(line, body...)
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// wrkOptions are the settings of one wrk run.
type wrkOptions struct {
	bin     string // the wrk binary
	script  string // bench/wrk/signed.lua
	bodies  string // the file writeBodies wrote
	url     string
	conns   int
	threads int
	d       time.Duration // whole seconds: wrk sleeps for them
}

// wrkSummary is the line of JSON that bench/wrk/signed.lua prints.
type wrkSummary struct {
	DurationUS float64 `json:"duration_us"`
	Requests   int     `json:"requests"` // answers read
	Bytes      int64   `json:"bytes"`
	Sent       int     `json:"sent"` // requests handed to wrk
	Errors     struct {
		Connect int `json:"connect"`
		Read    int `json:"read"`
		Write   int `json:"write"`
		Status  int `json:"status"` // answers above 399
		Timeout int `json:"timeout"`
	} `json:"errors"`
	Latency struct {
		Mean  float64 `json:"mean"`
		Stdev float64 `json:"stdev"`
		Max   float64 `json:"max"`
		P50   float64 `json:"p50"`
		P90   float64 `json:"p90"`
		P99   float64 `json:"p99"`
		P999  float64 `json:"p999"`
	} `json:"latency_us"`
	Status map[string]int `json:"status"`
	CPU    float64        `json:"-"` // wrk's CPU seconds, from the kernel
}

// runWrk runs wrk once and returns what signed.lua reported.
func runWrk(ctx context.Context, o wrkOptions) (wrkSummary, error) {
	var s wrkSummary
	secs := int(o.d / time.Second)
	if secs < 1 || o.d%time.Second != 0 {
		return s, fmt.Errorf("wrk runs for whole seconds, not %v", o.d)
	}
	threads := max(1, min(o.threads, o.conns))
	cmd := exec.CommandContext(ctx, o.bin,
		"-t", strconv.Itoa(threads), "-c", strconv.Itoa(o.conns), "-d", strconv.Itoa(secs)+"s",
		"--timeout", strconv.Itoa(int(wrkTimeout/time.Second))+"s",
		"-s", o.script, o.url, "--", o.bodies)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return s, fmt.Errorf("wrk: %w: %s", err, strings.TrimSpace(errb.String()+"\n"+out.String()))
	}
	s, err := parseWrk(out.Bytes())
	if err != nil {
		return s, fmt.Errorf("wrk: %w; its output:\n%s%s", err, out.String(), errb.String())
	}
	s.CPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return s, nil
}

// parseWrk finds signed.lua's line of JSON in wrk's output.
func parseWrk(out []byte) (wrkSummary, error) {
	var s wrkSummary
	for _, line := range bytes.Split(out, []byte("\n")) {
		if j, ok := bytes.CutPrefix(line, []byte(wrkMarker)); ok {
			if err := json.Unmarshal(j, &s); err != nil {
				return s, fmt.Errorf("signed.lua's summary: %w", err)
			}
			return s, nil
		}
	}
	// A wrk that cannot run the script panics in Lua and prints no summary.
	return s, fmt.Errorf("no %q line in wrk's output", strings.TrimSpace(wrkMarker))
}

// wrkVersion returns what wrk says about itself, such as
// "wrk debian/4.1.0-3+b2 [epoll]", without the copyright.
func wrkVersion(ctx context.Context, bin string) string {
	out, _ := exec.CommandContext(ctx, bin, "-v").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	line, _, _ = strings.Cut(line, " Copyright")
	return strings.TrimSpace(line)
}

// loadResult turns the warm-up run (if any) and the measured run into a
// LoadResult: rates and latencies from the measured run, counts over both.
func (s wrkSummary) loadResult(warm *wrkSummary, conns int) LoadResult {
	window := s.DurationUS / 1e6
	r := LoadResult{
		Conns: conns, Window: window, Measured: s.Requests,
		P50: s.Latency.P50 / 1000, P90: s.Latency.P90 / 1000, P99: s.Latency.P99 / 1000,
		P999: s.Latency.P999 / 1000, Max: s.Latency.Max / 1000,
		Status: map[string]int{},
	}
	if window > 0 {
		r.RPS = float64(s.Requests) / window
	}
	for _, w := range []*wrkSummary{warm, &s} {
		if w == nil {
			continue
		}
		for code, n := range w.Status {
			r.Status[code] += n
		}
		read := w.Requests
		failed := w.Errors.Connect + w.Errors.Read + w.Errors.Write
		r.Total += read + failed
		r.NetErrors += failed
		r.Timeouts += w.Errors.Timeout
		// A written request whose answer was not read: in flight when wrk
		// stopped, or lost with its connection (then also a socket error).
		r.Unanswered += max(0, w.Sent-read)
		r.LoadCPU += w.CPU
	}
	r.OK = r.Status["200"]
	return r
}
