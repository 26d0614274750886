// Package embednats runs a NATS server with JetStream inside the calling
// process, its JetStream store under a directory the caller chooses. inlet
// uses it when no NATS_URL is configured; tests use it through natstest.
//
// The server's own log lines reach log/slog through an adapter for
// nats-server's Logger interface, tagged component=nats.
package embednats

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultHost is the address the server listens on when Options.Host is
// empty: local clients only.
const DefaultHost = "127.0.0.1"

// startTimeout bounds Start when ctx has no deadline.
const startTimeout = 30 * time.Second

// DefaultMaxPayload is the largest message the server takes when
// Options.MaxPayload is zero: 8 MiB, the ceiling NATS recommends for
// max_payload (its default is 1 MiB, its hard limit 64 MiB).
const DefaultMaxPayload = 8 << 20

// Options configures the client listener. The zero value listens on
// 127.0.0.1 on a random free port, without authentication.
type Options struct {
	Host string // default DefaultHost
	Port int    // 0 or -1: a random free port
	// Token, when set, is required of every client (nats.Token), so that
	// knowing the port is not enough to publish or to delete a stream.
	Token string
	// MaxPayload is the largest message in bytes, DefaultMaxPayload if 0.
	MaxPayload int32
}

// Server is a running in-process NATS server. Its methods are safe for
// concurrent use.
type Server struct {
	ns     *server.Server
	logger *slog.Logger
}

// Start starts a NATS server with JetStream, storing streams under dir
// (created if missing), and waits until it accepts connections. ctx bounds
// the wait (30 s when ctx has no deadline). The server installs no signal
// handlers; the caller must call Shutdown. A nil logger discards the
// server's log.
func Start(ctx context.Context, dir string, logger *slog.Logger, opts Options) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "nats")
	storeDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("nats store directory %s: %w", dir, err)
	}
	host := opts.Host
	if host == "" {
		host = DefaultHost
	}
	port := opts.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}

	maxPayload := opts.MaxPayload
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	nopts := &server.Options{
		// A fixed name keeps the JetStream store's identity across restarts.
		ServerName: "inlet",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		MaxPayload: maxPayload,
		// The authorization token; empty means none.
		Authorization: opts.Token,
		// Signals belong to the gateway, which shuts the server down in order.
		NoSigs: true,
		Debug:  logger.Enabled(ctx, slog.LevelDebug),
		// Trace stays off whatever the level: it logs message payloads,
		// and payloads are webhook bodies, which are never logged.
		Trace: false,
	}
	ns, err := server.NewServer(nopts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	adapter := &slogAdapter{logger: logger}
	ns.SetLoggerV2(adapter, nopts.Debug, false, false)

	begin := time.Now()
	// Start returns once JetStream is enabled and the accept loop runs on
	// goroutines the server owns; Shutdown stops them.
	ns.Start()
	s := &Server{ns: ns, logger: logger}
	if err := s.waitReady(ctx, adapter); err != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, err
	}
	logger.Info("nats started",
		slog.String("client_url", ns.ClientURL()),
		slog.String("store_dir", storeDir),
		slog.Duration("duration", time.Since(begin)))
	return s, nil
}

func (s *Server) waitReady(ctx context.Context, adapter *slogAdapter) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	for {
		// A failed listener or JetStream is reported through Fatalf;
		// without this check the wait would run to its deadline.
		if msg := adapter.fatal(); msg != "" {
			return fmt.Errorf("nats server: %s", msg)
		}
		if s.ns.ReadyForConnections(50 * time.Millisecond) {
			break
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wait for nats server: %w", err)
		}
	}
	if !s.ns.JetStreamEnabled() {
		if msg := adapter.fatal(); msg != "" {
			return fmt.Errorf("nats server: %s", msg)
		}
		return errors.New("nats server: JetStream did not start")
	}
	return nil
}

// ClientURL returns the URL clients connect to, such as
// "nats://127.0.0.1:41234".
func (s *Server) ClientURL() string {
	return s.ns.ClientURL()
}

// Shutdown stops the server, closing client connections, and waits until
// it has stopped and flushed its JetStream store. It may be called more
// than once.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// Files in inlet's data directory that let other local processes (inlet
// tail, the nats CLI) reach the embedded server: its URL, and the token it
// requires, readable by the owner only.
const (
	URLFile   = "nats.url"
	TokenFile = "nats.token"
)

// LoadOrCreateToken returns the token kept in path, creating the file with
// a new random token, readable by its owner only, when it is missing.
func LoadOrCreateToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read nats token: %w", err)
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write nats token: %w", err)
	}
	return tok, nil
}
