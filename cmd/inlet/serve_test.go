package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/inlet-dev/inlet/pkg/embednats/natstest"
	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

// server is an `inlet serve` running in the test's process.
type server struct {
	t      *testing.T
	base   string
	env    map[string]string
	logs   *lockedBuffer
	stop   context.CancelFunc
	served chan error
}

// freeAddr returns a loopback address with a free port.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startServe runs serve with env until the test ends or stop is called,
// and waits until it is ready.
func startServe(t *testing.T, env map[string]string) *server {
	t.Helper()
	env["INLET_HTTP_ADDR"] = freeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	s := &server{t: t, base: "http://" + env["INLET_HTTP_ADDR"], env: env, logs: &lockedBuffer{}, stop: stop, served: make(chan error, 1)}
	var out lockedBuffer
	go func() { s.served <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, &out, s.logs) }()
	t.Cleanup(s.shutdown)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st, _ := s.call("GET", "/readyz", "", nil); st == 200 {
			return s
		}
		select {
		case err := <-s.served:
			t.Fatalf("serve stopped: %v\n%s", err, s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready after 60s:\n%s", s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shutdown stops serve as SIGTERM would and waits for it.
func (s *server) shutdown() {
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.served:
		if err != nil {
			s.t.Errorf("serve: %v", err)
		}
	case <-time.After(40 * time.Second):
		s.t.Error("serve still running 40s after its context was cancelled")
	}
}

func (s *server) call(method, path, body string, header map[string]string) (int, []byte) {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (s *server) admin(method, path, body string) map[string]any {
	s.t.Helper()
	st, b := s.call(method, path, body, map[string]string{"Authorization": "Bearer " + s.env["INLET_ADMIN_TOKEN"], "Content-Type": "application/json"})
	if st/100 != 2 {
		s.t.Fatalf("%s %s = %d %s", method, path, st, b)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// signedWebhook posts body to key's URL signed with secret.
func (s *server) signedWebhook(key, secret, body string) (int, []byte) {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return s.call("POST", "/api/v1/webhooks/"+key, body, map[string]string{
		"Content-Type": "application/json", "X-Webhook-Signature": "sha256=" + hex.EncodeToString(m.Sum(nil)),
	})
}

const deployBody = `{"service":"api","version":"1.0.0","environment":"production","status":"succeeded"}`

// TestSecretsRotateKeyWhileServing: `inlet secrets rotate-key` beside a
// running inlet seals every secret under a new key; the running inlet
// keeps verifying and showing keys, and picks the new key up by itself.
func TestSecretsRotateKeyWhileServing(t *testing.T) {
	ns := natstest.New(t)
	dataDir := t.TempDir()
	dsn := storetest.NewURL(t)
	env := map[string]string{
		"DATABASE_URL": dsn, "NATS_URL": ns.URL, "INLET_STREAM": ns.Stream, "INLET_SUBJECT_PREFIX": ns.SubjectPrefix,
		"INLET_ADMIN_TOKEN": "inlet_rotate-test-admin-token-00000000000", "INLET_PACKS_DIR": "../../packs", "INLET_DATA_DIR": dataDir,
	}
	s := startServe(t, env)
	const ref = "myapp.deployment_complete"
	key := s.admin("POST", "/api/v1/triggers/"+ref+"/webhooks/enable", "")["data"].(map[string]any)["webhook_key"].(string)
	const hmacSecret = "rotate-test-secret-0123456789"
	s.admin("PATCH", "/api/v1/triggers/"+ref+"/webhooks", `{"hmac":{"enabled":true,"secret":"`+hmacSecret+`"}}`)
	if st, b := s.signedWebhook(key, hmacSecret, deployBody); st != 200 {
		t.Fatalf("signed webhook before the rotation: %d %s", st, b)
	}
	before, err := secret.ParseKeyring(readKeys(t, filepath.Join(dataDir, "secret.key")))
	if err != nil {
		t.Fatal(err)
	}

	_, errOut, err := cli(t, env, "secrets", "rotate-key")
	if err != nil {
		t.Fatalf("secrets rotate-key: %v (%s)", err, errOut)
	}
	m := regexp.MustCompile(`sealed (\d+) values under key ([0-9a-f]{8})`).FindStringSubmatch(errOut)
	if m == nil || m[1] == "0" || m[2] == before.ID() {
		t.Fatalf("rotate-key said %q, want values sealed under a new key", errOut)
	}
	after, err := secret.ParseKeyring(readKeys(t, filepath.Join(dataDir, "secret.key")))
	if err != nil {
		t.Fatal(err)
	}
	if ids := after.IDs(); len(ids) != 2 || ids[0] != m[2] || ids[1] != before.ID() {
		t.Errorf("key file after rotation holds %v, want the new key %s then the old %s", ids, m[2], before.ID())
	}
	db := sqlx.MustConnect("postgres", dsn)
	defer db.Close()
	used, err := store.New(db, nil).SealedKeyIDs(context.Background())
	if err != nil || len(used) != 1 || used[0] != m[2] {
		t.Errorf("sealed under %v (%v), want only the new key %s", used, err, m[2])
	}

	// The running inlet opens what is now sealed under the new key.
	s.admin("PATCH", "/api/v1/triggers/"+ref+"/webhooks", `{"rate_limit":{"requests":100}}`) // reloads the trigger
	if st, b := s.signedWebhook(key, hmacSecret, strings.Replace(deployBody, "1.0.0", "1.0.1", 1)); st != 200 {
		t.Errorf("signed webhook after the rotation: %d %s", st, b)
	}
	got := s.admin("GET", "/api/v1/triggers/"+ref, "")["data"].(map[string]any)["webhook_key"]
	if got != key {
		t.Errorf("webhook_key after the rotation = %v, want the same key", got)
	}
	var act int
	if err := db.Get(&act, `SELECT count(*) FROM activity WHERE action = 'secrets.rotate_key'`); err != nil || act != 1 {
		t.Errorf("activity rows of the rotation = %d (%v), want 1", act, err)
	}
}

func readKeys(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestTailFollowsRestarts: `inlet tail` on the embedded NATS server prints
// events as they are published, and when inlet restarts, its NATS on a new
// port, tail says on stderr that it lost NATS, reconnects to the server
// that <data_dir>/nats.url now names, says so naming it, and goes on
// printing.
func TestTailFollowsRestarts(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{
		"DATABASE_URL": storetest.NewURL(t), "INLET_ADMIN_TOKEN": "inlet_tail-test-admin-token-000000000000",
		"INLET_PACKS_DIR": "../../packs", "INLET_DATA_DIR": dataDir,
	}
	s := startServe(t, env)
	const ref = "myapp.deployment_complete"
	key := s.admin("POST", "/api/v1/triggers/"+ref+"/webhooks/enable", "")["data"].(map[string]any)["webhook_key"].(string)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut lockedBuffer
	tailed := make(chan error, 1)
	go func() { tailed <- run(ctx, []string{"tail"}, func(k string) string { return env[k] }, &out, &errOut) }()
	waitFor(t, 20*time.Second, "tail to start", func() bool { return strings.Contains(errOut.String(), "waiting for events") })

	post := func(version string) string {
		st, b := s.call("POST", "/api/v1/webhooks/"+key, strings.Replace(deployBody, "1.0.0", version, 1), map[string]string{"Content-Type": "application/json"})
		if st != 200 {
			t.Fatalf("webhook: %d %s", st, b)
		}
		var r struct {
			Data struct {
				EventID string `json:"event_id"`
			} `json:"data"`
		}
		_ = json.Unmarshal(b, &r)
		return r.Data.EventID
	}
	first := post("1.0.0")
	waitFor(t, 20*time.Second, "the first event in tail's output", func() bool { return strings.Contains(out.String(), first) })

	before := readKeys(t, filepath.Join(dataDir, "nats.url"))
	s.shutdown()
	s = startServe(t, env) // a new embedded NATS, on a new port
	after := readKeys(t, filepath.Join(dataDir, "nats.url"))
	if after == before {
		t.Fatalf("the restarted inlet's NATS listens at %s again; the test needs a new port", after)
	}
	second := post("2.0.0")
	waitFor(t, 30*time.Second, "the event after the restart in tail's output", func() bool { return strings.Contains(out.String(), second) })
	if say := errOut.String(); !strings.Contains(say, "lost NATS") || !strings.Contains(say, "reconnected to "+after+"\n") {
		t.Errorf("tail said %q, want that it lost NATS and reconnected to %s (named in nats.url)", say, after)
	}
	var line struct {
		Subject string          `json:"subject"`
		Event   json.RawMessage `json:"event"`
	}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if err := json.Unmarshal([]byte(l), &line); err != nil || line.Subject != "inlet.events."+ref {
			t.Errorf("tail line %q: %v, want JSON with subject inlet.events.%s", l, err, ref)
		}
	}
	cancel()
	if err := <-tailed; err != nil {
		t.Errorf("tail: %v", err)
	}
}

// TestCommandHelp: every subcommand's -h documents that subcommand.
func TestCommandHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
		not  string
	}{
		{[]string{"tail", "-h"}, []string{"usage: inlet tail", "-all", "nats.url"}, "-http-addr"},
		{[]string{"token", "-h"}, []string{"usage: inlet token create NAME", "revoke"}, "-http-addr"},
		{[]string{"secrets", "-h"}, []string{"usage: inlet secrets", "rotate-key", "INLET_SECRET_KEY"}, "-http-addr"},
		{[]string{"migrate", "-h"}, []string{"usage: inlet migrate"}, "-http-addr"},
		{[]string{"trigger", "-h"}, []string{"usage: inlet trigger list", "regenerate", "INLET_TOKEN"}, "-http-addr"},
		{[]string{"trigger", "list", "-h"}, []string{"usage: inlet trigger list", "-json", "-url", "INLET_URL", "admin-token"}, "-http-addr"},
		{[]string{"trigger", "show", "-h"}, []string{"usage: inlet trigger show REF", "-json"}, "-grace"},
		{[]string{"trigger", "regenerate", "-h"}, []string{"usage: inlet trigger regenerate REF", "-grace duration"}, "-http-addr"},
		{[]string{"trigger", "set", "-h"}, []string{"usage: inlet trigger set REF KEY=VALUE", "ip_allowlist.cidrs", "hmac.secret"}, "-http-addr"},
		{[]string{"trigger", "enable", "-h"}, []string{"usage: inlet trigger enable REF"}, "-http-addr"},
		{[]string{"trigger", "disable", "-h"}, []string{"usage: inlet trigger disable REF"}, "-http-addr"},
		{[]string{"key", "-h"}, []string{"usage: inlet key list REF"}, "-http-addr"},
		{[]string{"key", "add", "-h"}, []string{"usage: inlet key add REF", "-label label", "-expires duration"}, "-http-addr"},
		{[]string{"key", "list", "-h"}, []string{"usage: inlet key list REF", "-json"}, "-label"},
		{[]string{"key", "revoke", "-h"}, []string{"usage: inlet key revoke REF ID"}, "-http-addr"},
		{[]string{"events", "-h"}, []string{"usage: inlet events", "-follow", "-trigger ref", "-limit"}, "-http-addr"},
		{[]string{"replay", "-h"}, []string{"usage: inlet replay EVENT_ID", "-since time", "-until time", "-limit N"}, "-http-addr"},
		{[]string{"activity", "-h"}, []string{"usage: inlet activity", "-limit"}, "-http-addr"},
		{[]string{"help"}, []string{"exit status", "INLET_TOKEN", "inlet not reached"}, ""},
		{[]string{"serve", "-h"}, []string{"-http-addr", "INLET_SECRET_KEY"}, ""},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			_ = run(context.Background(), tt.args, func(string) string { return "" }, &out, &errOut)
			help := out.String() + errOut.String()
			for _, w := range tt.want {
				if !strings.Contains(help, w) {
					t.Errorf("inlet %s does not say %q:\n%s", strings.Join(tt.args, " "), w, help)
				}
			}
			if tt.not != "" && strings.Contains(help, tt.not) {
				t.Errorf("inlet %s documents serve's %s:\n%s", strings.Join(tt.args, " "), tt.not, help)
			}
		})
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTokenBesideEmbeddedDatabase: `inlet token` works while inlet runs on
// its embedded PostgreSQL: it joins that server instead of starting one.
func TestTokenBesideEmbeddedDatabase(t *testing.T) {
	ns := natstest.New(t)
	env := map[string]string{
		"NATS_URL": ns.URL, "INLET_STREAM": ns.Stream, "INLET_SUBJECT_PREFIX": ns.SubjectPrefix,
		"INLET_ADMIN_TOKEN": "inlet_embedded-test-admin-token-000000000", "INLET_PACKS_DIR": "../../packs", "INLET_DATA_DIR": t.TempDir(),
	}
	s := startServe(t, env)
	out, errOut, err := cli(t, env, "token", "create", "beside")
	if err != nil {
		t.Fatalf("token create beside a running inlet: %v (%s)", err, errOut)
	}
	tok := strings.TrimSpace(out)
	if st, b := s.call("GET", "/api/v1/triggers", "", map[string]string{"Authorization": "Bearer " + tok}); st != 200 {
		t.Errorf("the token made beside the running inlet: %d %s", st, b)
	}
}
