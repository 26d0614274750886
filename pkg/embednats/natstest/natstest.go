// Package natstest gives each test a JetStream-enabled NATS server and a
// stream name and subject prefix of its own.
//
// The server is chosen once per test binary: $INLET_TEST_NATS_URL if set;
// else a NATS server with JetStream at nats://127.0.0.1:4222 (or at
// $INLET_TEST_NATS_PROBE) if one answers within 2 s; else an embedded
// server started per test under t.TempDir().
package natstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/pkg/embednats"
)

// DefaultProbeURL is where New looks for a shared NATS server.
const DefaultProbeURL = "nats://127.0.0.1:4222"

// Env is one test's share of a NATS server.
type Env struct {
	URL           string // client URL of a JetStream-enabled server
	Stream        string // stream name unique to the test, like "T_9F2C…"
	SubjectPrefix string // subject prefix unique to the test, like "t9f2c….events"
}

var (
	chooseOnce sync.Once
	sharedURL  string // "" means: embed a server per test
)

// New returns the NATS server, stream name and subject prefix for the
// test. The stream is not created; if the test creates it on a shared
// server, it is deleted in t.Cleanup. An embedded server is shut down in
// t.Cleanup.
func New(t testing.TB) Env {
	t.Helper()
	chooseOnce.Do(func() { sharedURL = chooseServer() })

	id := randomHex()
	env := Env{
		URL:           sharedURL,
		Stream:        "T_" + strings.ToUpper(id),
		SubjectPrefix: "t" + id + ".events",
	}
	if env.URL == "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := embednats.Start(ctx, t.TempDir(), slog.New(slog.DiscardHandler), embednats.Options{})
		if err != nil {
			t.Fatalf("natstest: start embedded NATS: %v", err)
		}
		t.Cleanup(s.Shutdown)
		env.URL = s.ClientURL()
		return env
	}
	t.Cleanup(func() { deleteStream(t, env) })
	return env
}

// chooseServer returns the URL of a shared server, or "" to embed one.
func chooseServer() string {
	if url := os.Getenv("INLET_TEST_NATS_URL"); url != "" {
		return url
	}
	probe := os.Getenv("INLET_TEST_NATS_PROBE")
	if probe == "" {
		probe = DefaultProbeURL
	}
	if err := hasJetStream(probe); err != nil {
		return ""
	}
	return probe
}

func hasJetStream(url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	_, err = js.AccountInfo(ctx)
	return err
}

func deleteStream(t testing.TB, env Env) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := nats.Connect(env.URL, nats.Timeout(5*time.Second))
	if err != nil {
		t.Errorf("natstest: connect to delete stream %s: %v", env.Stream, err)
		return
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Errorf("natstest: %v", err)
		return
	}
	if err := js.DeleteStream(ctx, env.Stream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("natstest: delete stream %s: %v", env.Stream, err)
	}
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails; see crypto/rand.Read
	return hex.EncodeToString(b)
}
