package embednats

import (
	"context"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func start(t *testing.T, dir string, opts Options) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, dir, slog.New(slog.DiscardHandler), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func connect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestDedupAndRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s := start(t, dir, Options{})
	if !strings.HasPrefix(s.ClientURL(), "nats://127.0.0.1:") {
		t.Errorf("ClientURL() = %q, want nats://127.0.0.1:<port>", s.ClientURL())
	}
	js := connect(t, s.ClientURL())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "EVENTS",
		Subjects: []string{"events.>"},
		Storage:  jetstream.FileStorage,
	}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	for i := range 2 {
		ack, err := js.Publish(ctx, "events.a", []byte(`{"n":1}`), jetstream.WithMsgID("evt_1"))
		if err != nil {
			t.Fatalf("Publish #%d: %v", i, err)
		}
		if got, want := ack.Duplicate, i == 1; got != want {
			t.Errorf("Publish #%d: Duplicate = %v, want %v", i, got, want)
		}
	}
	if _, err := js.Publish(ctx, "events.b", []byte(`{"n":2}`), jetstream.WithMsgID("evt_2")); err != nil {
		t.Fatalf("Publish evt_2: %v", err)
	}
	if got := messages(ctx, t, js); got != 2 {
		t.Fatalf("stream holds %d messages, want 2", got)
	}
	s.Shutdown()

	s2 := start(t, dir, Options{})
	js2 := connect(t, s2.ClientURL())
	if got := messages(ctx, t, js2); got != 2 {
		t.Errorf("stream holds %d messages after restart, want 2", got)
	}
	msg, err := (mustStream(ctx, t, js2)).GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("GetMsg(1): %v", err)
	}
	if got := msg.Header.Get(jetstream.MsgIDHeader); got != "evt_1" {
		t.Errorf("first message Nats-Msg-Id = %q, want evt_1", got)
	}
}

func mustStream(ctx context.Context, t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	st, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatalf("Stream(EVENTS): %v", err)
	}
	return st
}

func messages(ctx context.Context, t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	info, err := mustStream(ctx, t, js).Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

func TestStartPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	begin := time.Now()
	s, err := Start(ctx, t.TempDir(), nil, Options{Port: port})
	if err == nil {
		s.Shutdown()
		t.Fatalf("Start on busy port %d succeeded", port)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("Start error = %v, want it to name port %d", err, port)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("Start took %v to fail, want it to fail fast", took)
	}
}

func TestLoggerLevels(t *testing.T) {
	var buf strings.Builder
	a := &slogAdapter{logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	a.Noticef("n %d", 1)
	a.Warnf("w")
	a.Errorf("e")
	a.Fatalf("f %s", "x")
	a.Debugf("d")
	a.Tracef("t")
	want := []string{"level=INFO msg=\"n 1\"", "level=WARN msg=w", "level=ERROR msg=e", "level=ERROR msg=\"f x\"", "level=DEBUG msg=d", "level=DEBUG msg=t"}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d = %q, want it to contain %q", i, lines[i], w)
		}
	}
	if got := a.fatal(); got != "f x" {
		t.Errorf("fatal() = %q, want %q", got, "f x")
	}
}

// TestTokenAndMaxPayload: with a token, the server's URL alone is not
// enough to connect, let alone publish; the token is; and the default
// max_payload is the 8 MiB ceiling NATS recommends.
func TestTokenAndMaxPayload(t *testing.T) {
	dir := t.TempDir()
	tok, err := LoadOrCreateToken(dir + "/" + TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreateToken(dir + "/" + TokenFile)
	if err != nil || again != tok || len(tok) < 32 {
		t.Fatalf("LoadOrCreateToken twice = %q, %v; want the same token of 32+ characters", again, err)
	}
	if fi, err := os.Stat(dir + "/" + TokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	s := start(t, dir+"/nats", Options{Token: tok})
	if nc, err := nats.Connect(s.ClientURL(), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("connected with the URL alone")
	} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("connect without the token: %v, want an authorization error", err)
	}
	if nc, err := nats.Connect(s.ClientURL(), nats.Token("wrong"), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("connected with a wrong token")
	}
	nc, err := nats.Connect(s.ClientURL(), nats.Token(tok))
	if err != nil {
		t.Fatalf("connect with the token: %v", err)
	}
	defer nc.Close()
	if got := nc.MaxPayload(); got != DefaultMaxPayload {
		t.Errorf("max_payload = %d, want %d", got, DefaultMaxPayload)
	}
	small := start(t, t.TempDir(), Options{MaxPayload: 64 << 10})
	nc2, err := nats.Connect(small.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	if got := nc2.MaxPayload(); got != 64<<10 {
		t.Errorf("max_payload = %d, want %d", got, 64<<10)
	}
}
