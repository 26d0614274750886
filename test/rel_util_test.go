package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/embednats/natstest"
	"github.com/inlet-dev/inlet/pkg/gateway"
	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// relCall makes one request to base+path with an optional bearer token and
// JSON body, and returns the status, the body and the body decoded.
func relCall(t testing.TB, base, token, method, path string, body any) (int, []byte, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return res.StatusCode, b, m
}

// relMustCall is relCall that fails the test unless the answer is 200, and
// returns its "data".
func relMustCall(t testing.TB, base, token, method, path string, body any) map[string]any {
	t.Helper()
	st, b, m := relCall(t, base, token, method, path, body)
	if st != http.StatusOK {
		t.Fatalf("%s %s = %d %s, want 200", method, path, st, b)
	}
	d, _ := m["data"].(map[string]any)
	return d
}

// relSignedTrigger enables ref's webhook with HMAC on (preset may be empty)
// and returns its key and a fresh secret.
func relSignedTrigger(t testing.TB, base, token, ref, preset string) (key, secret string) {
	t.Helper()
	key = relMustCall(t, base, token, "POST", "/api/v1/triggers/"+ref+"/webhooks/enable", nil)["webhook_key"].(string)
	secret = "rel-secret-" + trigger.RandomString(32)
	h := map[string]any{"enabled": true, "secret": secret}
	if preset != "" {
		h["preset"] = preset
	}
	relMustCall(t, base, token, "PATCH", "/api/v1/triggers/"+ref+"/webhooks", map[string]any{"hmac": h})
	return key, secret
}

// relMetric returns the value of an unlabelled metric from a Prometheus text
// exposition, or -1 if it is absent.
func relMetric(exposition, name string) float64 {
	sc := bufio.NewScanner(strings.NewReader(exposition))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err == nil {
			return v
		}
	}
	return -1
}

// relScrape returns base's /metrics.
func relScrape(t testing.TB, base string) string {
	t.Helper()
	st, b, _ := relCall(t, base, "", "GET", "/metrics", nil)
	if st != http.StatusOK {
		t.Fatalf("GET /metrics = %d", st)
	}
	return string(b)
}

// leakWindow is the length of the pieces of a secret searched for: any
// run of this many characters of a secret found anywhere is a leak.
const leakWindow = 12

// leakFinder looks for secrets, or any leakWindow-long piece of one, in
// text that inlet wrote.
type leakFinder struct {
	windows map[string]string // piece -> name of its secret
}

func newLeakFinder() *leakFinder { return &leakFinder{windows: map[string]string{}} }

// add registers a secret. Its first public characters (a webhook key's
// 8-character prefix) may appear; every window that goes beyond them may
// not.
func (f *leakFinder) add(name, secret string, public int) {
	if len(secret) < leakWindow {
		panic(fmt.Sprintf("secret %s is shorter than %d characters", name, leakWindow))
	}
	for i := 0; i+leakWindow <= len(secret); i++ {
		if i+leakWindow <= public {
			continue
		}
		f.windows[secret[i:i+leakWindow]] = name
	}
}

// find returns the names of the secrets text leaks, with where.
func (f *leakFinder) find(text string) []string {
	var out []string
	seen := map[string]bool{}
	for i := 0; i+leakWindow <= len(text); i++ {
		name, ok := f.windows[text[i:i+leakWindow]]
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		lo, hi := max(0, i-60), min(len(text), i+leakWindow+60)
		out = append(out, fmt.Sprintf("%s at %q", name, text[lo:hi]))
	}
	return out
}

// check fails the test for every secret found in text, naming what the
// text was.
func (f *leakFinder) check(t testing.TB, what, text string) {
	t.Helper()
	for _, leak := range f.find(text) {
		t.Errorf("%s leaks %s", what, leak)
	}
}

// relGateway starts an in-process gateway on a fresh database and stream
// for any testing.TB (fuzz targets included) and returns its base URL and
// admin token. It is shut down in tb.Cleanup.
func relGateway(tb testing.TB, opts ...option) (base, token string) {
	tb.Helper()
	ns := natstest.New(tb)
	cfg := config.Default()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DatabaseURL = storetest.NewURL(tb)
	cfg.NATSURL = ns.URL
	cfg.Stream = ns.Stream
	cfg.SubjectPrefix = ns.SubjectPrefix
	cfg.PacksDir = "../packs"
	cfg.DataDir = tb.TempDir()
	cfg.AdminToken = secret.Value("rel-admin-" + trigger.RandomString(32))
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g, err := gateway.Start(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("start gateway: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
	})
	return "http://" + g.Addr(), string(cfg.AdminToken)
}
