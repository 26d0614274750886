package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/inlet-dev/inlet/pkg/embednats/natstest"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

func TestMain(m *testing.M) {
	if os.Getenv("INLET_TEST_MAIN") == "1" {
		// Started again by TestExitStatusOfTheProcess: be the inlet binary.
		main()
	}
	storetest.Main(m)
}

// lockedBuffer is a bytes.Buffer safe for the serve goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// cli runs inlet's command line with env as the whole environment.
func cli(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = run(ctx, args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

var tokenRe = regexp.MustCompile(`^inlet_[A-Za-z0-9]{40}$`)

func TestTokenCommands(t *testing.T) {
	dsn := storetest.NewURL(t)
	env := map[string]string{"DATABASE_URL": dsn}
	db := sqlx.MustConnect("postgres", dsn)
	defer db.Close()

	out, errOut, err := cli(t, env, "token", "create", "ci")
	if err != nil {
		t.Fatalf("token create: %v (%s)", err, errOut)
	}
	tok := strings.TrimSpace(out)
	if !tokenRe.MatchString(tok) {
		t.Fatalf("token create printed %q, want one token matching %s", out, tokenRe)
	}
	m := regexp.MustCompile(`created token (\d+) \(ci\)`).FindStringSubmatch(errOut)
	if m == nil {
		t.Fatalf("token create said %q, want the token's id", errOut)
	}
	id := m[1]
	if strings.Contains(errOut, tok) {
		t.Error("token create wrote the token to stderr; it belongs on stdout only")
	}

	// Only a hash is stored.
	var rows []struct {
		Name string `db:"name"`
		Hash []byte `db:"hash"`
	}
	if err := db.Select(&rows, `SELECT name, hash FROM api_tokens`); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok))
	if len(rows) != 1 || !bytes.Equal(rows[0].Hash, sum[:]) || bytes.Contains(rows[0].Hash, []byte(tok)) {
		t.Errorf("api_tokens = %+v, want one row holding the SHA-256 of the token", rows)
	}
	var dump string
	if err := db.Get(&dump, `SELECT string_agg(t::text, ' ') FROM api_tokens t`); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dump, tok) || strings.Contains(dump, tok[6:]) {
		t.Error("api_tokens holds the token in plain text")
	}

	out, _, err = cli(t, env, "token", "list")
	if err != nil {
		t.Fatalf("token list: %v", err)
	}
	if !regexp.MustCompile(`(?m)^` + id + `\s+ci\s+\S+\s+-$`).MatchString(out) {
		t.Errorf("token list = %q, want token %s named ci, not revoked", out, id)
	}
	if strings.Contains(out, tok) || strings.Contains(out, tok[6:]) {
		t.Error("token list shows the token")
	}

	if _, errOut, err := cli(t, env, "token", "revoke", id); err != nil || !strings.Contains(errOut, "revoked token "+id) {
		t.Fatalf("token revoke %s: %v (%s)", id, err, errOut)
	}
	out, _, _ = cli(t, env, "token", "list")
	if !regexp.MustCompile(`(?m)^` + id + `\s+ci\s+\S+\s+\d{4}-\d\d-\d\dT`).MatchString(out) {
		t.Errorf("token list after revoke = %q, want a revocation time", out)
	}

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"revoke twice", []string{"token", "revoke", id}, "no live token with id " + id},
		{"revoke unknown", []string{"token", "revoke", "999999"}, "no live token with id 999999"},
		{"revoke not a number", []string{"token", "revoke", "x1"}, `token id "x1" is not a number`},
		{"revoke without id", []string{"token", "revoke"}, "token revoke needs an argument"},
		{"create without name", []string{"token", "create"}, "token create needs an argument"},
		{"no subcommand", []string{"token"}, "token needs a subcommand"},
		{"unknown subcommand", []string{"token", "frob", "x"}, `unknown token subcommand "frob"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := cli(t, env, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("inlet %s: err = %v, want %q", strings.Join(tt.args, " "), err, tt.want)
			}
		})
	}
}

func TestMigrateAndHelp(t *testing.T) {
	env := map[string]string{"DATABASE_URL": storetest.NewURL(t)}
	if _, errOut, err := cli(t, env, "migrate"); err != nil || !strings.Contains(errOut, "migrations applied") {
		t.Errorf("migrate: %v (%s)", err, errOut)
	}
	if out, _, err := cli(t, env, "help"); err != nil || !strings.Contains(out, "token create NAME") {
		t.Errorf("help: %v (%s)", err, out)
	}
	if _, _, err := cli(t, env, "frobnicate"); err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: err = %v", err)
	}
}

// TestServeAndRevoke runs `inlet serve` and, beside it, `inlet token`: a
// token created with the CLI works on the management API, and once
// revoked with the CLI it is refused on the very next request, like a
// missing, malformed or wrong one, with a 401 that tells nothing apart.
// Cancelling serve's context (what SIGTERM does) stops it cleanly.
func TestServeAndRevoke(t *testing.T) {
	ns := natstest.New(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	const admin = "cli-test-admin-token-0123456789abcdef"
	env := map[string]string{
		"DATABASE_URL":         storetest.NewURL(t),
		"NATS_URL":             ns.URL,
		"INLET_STREAM":         ns.Stream,
		"INLET_SUBJECT_PREFIX": ns.SubjectPrefix,
		"INLET_HTTP_ADDR":      addr,
		"INLET_ADMIN_TOKEN":    admin,
		"INLET_PACKS_DIR":      "../../packs",
		"INLET_DATA_DIR":       t.TempDir(),
		"INLET_LOG_LEVEL":      "debug",
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var out, logs lockedBuffer
	served := make(chan error, 1)
	go func() { served <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, &out, &logs) }()
	base := "http://" + addr
	get := func(path, auth string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return 0, err.Error(), nil
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, _, _ := get("/readyz", ""); st == 200 {
			break
		}
		select {
		case err := <-served:
			t.Fatalf("serve stopped: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready after 60s:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, _, _ := get("/api/v1/triggers", "Bearer "+admin); st != 200 {
		t.Fatalf("INLET_ADMIN_TOKEN: %d, want 200", st)
	}

	stdout, errOut, err := cli(t, env, "token", "create", "deploy-bot")
	if err != nil {
		t.Fatalf("token create: %v (%s)", err, errOut)
	}
	tok := strings.TrimSpace(stdout)
	id := regexp.MustCompile(`created token (\d+)`).FindStringSubmatch(errOut)[1]
	if st, body, _ := get("/api/v1/triggers/myapp.deployment_complete", "Bearer "+tok); st != 200 {
		t.Fatalf("CLI token: %d %s, want 200", st, body)
	}
	if _, errOut, err := cli(t, env, "token", "revoke", id); err != nil {
		t.Fatalf("token revoke: %v (%s)", err, errOut)
	}

	routes := []string{"/api/v1/triggers", "/api/v1/triggers/myapp.deployment_complete", "/api/v1/triggers/myapp.deployment_complete/webhooks",
		"/api/v1/triggers/myapp.deployment_complete/webhooks/log", "/api/v1/events", "/api/v1/events/evt_nothing", "/api/v1/triggers/no.such"}
	var first string
	for _, auth := range []string{"Bearer " + tok, "", "Bearer", "Bearer  " + tok, "Basic " + tok, tok, "Bearer wrong-" + strconv.Itoa(len(tok)), "Bearer " + admin + "x"} {
		for _, path := range routes {
			st, body, h := get(path, auth)
			if st != 401 {
				t.Errorf("GET %s with Authorization %q: %d, want 401", path, auth, st)
			}
			if first == "" {
				first = body
			}
			if body != first {
				t.Errorf("GET %s with Authorization %q answered %s, unlike the other refusals (%s)", path, auth, body, first)
			}
			if h.Get("WWW-Authenticate") == "" {
				t.Errorf("GET %s: 401 without WWW-Authenticate", path)
			}
		}
	}

	stop()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve after its context was cancelled: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve still running 40s after its context was cancelled")
	}
	all := out.String() + logs.String()
	for name, s := range map[string]string{"admin token": admin, "created token": tok} {
		if strings.Contains(all, s) || strings.Contains(all, s[8:24]) {
			t.Errorf("serve's output shows the %s", name)
		}
	}
	if !strings.Contains(out.String(), "the value of INLET_ADMIN_TOKEN") {
		t.Errorf("banner = %q, want it to point at INLET_ADMIN_TOKEN instead of printing it", out.String())
	}
}
