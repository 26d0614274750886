// Package gateway builds every inlet component from a Config, runs them, and
// stops them in order: the pruner first, then HTTP (draining in-flight
// requests), then the writer, then the outbox flush, then NATS, the
// database and the embedded servers.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	_ "github.com/lib/pq" // the PostgreSQL driver
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/migrations"
	"github.com/inlet-dev/inlet/pkg/api"
	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/console"
	"github.com/inlet-dev/inlet/pkg/embednats"
	"github.com/inlet-dev/inlet/pkg/embedpg"
	"github.com/inlet-dev/inlet/pkg/forward"
	"github.com/inlet-dev/inlet/pkg/metrics"
	"github.com/inlet-dev/inlet/pkg/netguard"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/publish"
	"github.com/inlet-dev/inlet/pkg/receiver"
	"github.com/inlet-dev/inlet/pkg/retention"
	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// Gateway is a running inlet.
type Gateway struct {
	cfg    config.Config
	logger *slog.Logger

	pg      *embedpg.Server   // nil with an external database
	ns      *embednats.Server // nil with an external NATS
	db      *sqlx.DB
	nc      *nats.Conn
	store   *store.Store
	writer  *store.Writer
	pub     *publish.Publisher
	fwd     *forward.Forwarder
	prune   *retention.Pruner
	rcv     *receiver.Handler
	srv     *http.Server
	ln      net.Listener
	metrics *metrics.Metrics

	// Token is the admin token generated at first start (empty otherwise):
	// shown once to the operator, never logged.
	Token secret.Value

	cancel context.CancelFunc // stops the background goroutines
	wg     sync.WaitGroup     // the background goroutines
	// stopPrune stops the pruner first thing in Shutdown, and pruned is
	// closed when it has stopped (its goroutine is owned by wg as well).
	stopPrune context.CancelFunc
	pruned    chan struct{}
	served    chan error // the HTTP server's result
}

// Start brings every component up and starts serving HTTP. On error it stops
// whatever it had started.
func Start(ctx context.Context, cfg config.Config, logger *slog.Logger) (g *Gateway, err error) {
	g = &Gateway{cfg: cfg, logger: logger, served: make(chan error, 1)}
	// Take the port first: a busy port fails before anything is started.
	if g.ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	if cfg.PublicURL == "" {
		// Webhook URLs derived from the listen address name the port
		// actually bound (":0" picks one).
		cfg.HTTPAddr = g.ln.Addr().String()
		g.cfg = cfg
	}
	defer func() {
		if err != nil {
			g.ln.Close()
			if g.cancel != nil {
				g.cancel()
				g.wg.Wait()
			}
			if g.writer != nil {
				g.writer.Close()
			}
			g.stopServers(context.Background())
		}
	}()
	dsn, err := g.startDatabase(ctx)
	if err != nil {
		return nil, err
	}
	if err := g.startNATS(ctx); err != nil {
		return nil, err
	}
	if err := g.loadPacks(ctx); err != nil {
		return nil, err
	}
	if err := g.bootstrapToken(ctx); err != nil {
		return nil, err
	}

	g.metrics = metrics.New(func() float64 { return float64(g.writer.Queued()) })
	g.metrics.WriteQueueCapacity.Set(float64(cfg.WriteQueue))
	g.writer = store.NewWriter(g.store, store.WriterOptions{
		QueueLen:  cfg.WriteQueue,
		FloodRate: cfg.AuditFloodRate,
		Observe: func(size int, took time.Duration, err error) {
			g.metrics.BatchSize.Observe(float64(size))
			g.metrics.BatchDuration.Observe(took.Seconds())
			if err != nil {
				g.metrics.BatchErrors.Inc()
			}
		},
		Aggregated: func(n int) { g.metrics.AuditAggregated.Add(float64(n)) },
		Dropped:    func(n int) { g.metrics.AuditDropped.Add(float64(n)) },
	}, logger)
	js, err := jetstream.New(g.nc,
		jetstream.WithPublishAsyncMaxPending(publish.DefaultWindow),
		// Publishes a round gave up on must not linger until a reconnect.
		jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	g.pub = publish.New(g.store, js, publish.Options{
		Stream: cfg.Stream, SubjectPrefix: cfg.SubjectPrefix, Metrics: g.metrics,
	}, logger)
	g.fwd = forward.New(forward.Options{
		Store: g.store, Guard: netguard.New(cfg.DestinationAllowList()), UserAgent: "inlet/" + Version(),
		Metrics: g.metrics, Logger: logger,
		// Requests waiting for a batch of their own: the database is the
		// bottleneck, and accepting comes first.
		Busy: func() bool { return g.writer.Queued() >= busyQueue },
	})
	rcv := receiver.New(receiver.Options{
		Store: g.store, Writer: g.writer, PublicURL: cfg.PublicBaseURL(),
		UnknownKeyLimit: cfg.UnknownKeyLimit, IPRateLimit: cfg.IPRateLimit, TrustedProxies: cfg.TrustedProxyPrefixes(),
		Metrics: g.metrics, Logger: logger,
		OnCommit: func(triggerID int64) {
			g.pub.Kick()
			g.fwd.Kick(triggerID)
		},
	})
	g.rcv = rcv
	rcv.Warm(ctx)
	g.store.OnTriggerChange(rcv.Forget)
	e := g.echo()
	rcv.Register(e)
	api.New(api.Options{
		Store: g.store, PublicURL: cfg.PublicBaseURL(), Metrics: g.metrics, Logger: logger, Forwarder: g.fwd,
		Ready: func(ctx context.Context) map[string]error {
			return map[string]error{"database": g.db.PingContext(ctx), "nats": g.natsReady(ctx, js)}
		},
	}).Register(e)
	// The console serves its pages through the same Echo instance, and
	// makes its changes through the API routes registered above.
	con := console.New(console.Options{
		Store: g.store, Handler: e, PublicURL: cfg.PublicBaseURL(), SubjectPrefix: cfg.SubjectPrefix, Logger: logger,
	})
	con.Register(e)

	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.cancel = cancel
	g.goBackground(func() { g.ensureStream(bg, js) })
	g.goBackground(func() { g.watchDependencies(bg, js) })
	g.goBackground(func() { g.watchHealth(bg) })
	g.goBackground(func() {
		if err := g.pub.Run(bg); err != nil {
			logger.Error("publisher stopped", slog.Any("err", err))
		}
	})
	g.goBackground(func() {
		if err := g.fwd.Run(bg); err != nil {
			logger.Error("forwarder stopped", slog.Any("err", err))
		}
	})
	g.prune = retention.New(g.store, retention.Options{
		Events: cfg.EventRetention.Duration(), Audit: cfg.AuditRetention.Duration(), Deliveries: cfg.DeliveryRetention.Duration(),
		Interval: cfg.RetentionInterval, Metrics: g.metrics,
	}, logger)
	pctx, stopPrune := context.WithCancel(bg)
	g.stopPrune, g.pruned = stopPrune, make(chan struct{})
	g.goBackground(func() {
		defer close(g.pruned)
		if err := g.prune.Run(pctx); err != nil {
			logger.Error("pruner stopped", slog.Any("err", err))
		}
	})
	g.goBackground(func() {
		// A destination's changes are announced on the triggers' channel.
		changed := func(p string) {
			rcv.Invalidate(bg, p)
			g.fwd.Refresh()
		}
		reset := func() {
			rcv.Reset(bg)
			g.fwd.Refresh()
		}
		err := store.Listen(bg, dsn, store.ChannelTriggers, logger, changed, reset)
		if err != nil {
			logger.Error("trigger change listener stopped", slog.Any("err", err))
		}
	})

	if cfg.PprofAddr != "" {
		pln, err := net.Listen("tcp", cfg.PprofAddr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s for pprof: %w", cfg.PprofAddr, err)
		}
		g.goBackground(func() { g.servePprof(bg, pln) })
	}
	g.srv = &http.Server{
		Handler:           e,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	// The console's live streams end when shutdown starts, not at its
	// deadline.
	g.srv.RegisterOnShutdown(con.Close)
	go func() { g.served <- g.srv.Serve(g.ln) }() // owned by Shutdown, which waits on served
	logger.Info("listening", slog.String("addr", g.ln.Addr().String()), slog.String("public_url", cfg.PublicBaseURL()))
	return g, nil
}

// goBackground runs fn on a goroutine owned by the Gateway: Shutdown cancels
// it and waits for it.
func (g *Gateway) goBackground(fn func()) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		fn()
	}()
}

// Addr returns the address the HTTP server listens on.
func (g *Gateway) Addr() string { return g.ln.Addr().String() }

// Served returns a channel that receives the HTTP server's error if it stops
// on its own.
func (g *Gateway) Served() <-chan error { return g.served }

// NATSURL returns the URL of the NATS server in use.
func (g *Gateway) NATSURL() string { return g.nc.ConnectedUrl() }

func (g *Gateway) echo() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = problem.Handler(g.logger)
	e.IPExtractor = ipExtractor(g.cfg.TrustedProxyPrefixes())
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{DisableStackAll: true, LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
		g.logger.Error("panic", slog.String("path", c.Path()), slog.Any("err", err), slog.String("stack", string(stack)))
		return err
	}}))
	return e
}

func (g *Gateway) startDatabase(ctx context.Context) (string, error) {
	dsn := g.cfg.DatabaseURL
	if dsn == "" {
		pg, err := embedpg.Start(ctx, filepath.Join(g.cfg.DataDir, "postgres"), g.logger)
		if err != nil {
			return "", fmt.Errorf("embedded postgres: %w", err)
		}
		g.pg = pg
		dsn = pg.URL()
	}
	db, err := store.Open(dsn)
	if err != nil {
		return "", err
	}
	db.SetMaxOpenConns(g.cfg.DBMaxConns)
	db.SetMaxIdleConns(g.cfg.DBMaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	g.db = db
	keys, err := OpenKeyring(g.cfg, g.logger)
	if err != nil {
		return "", err
	}
	g.store = store.New(db, keys.Keyring)
	g.store.OnKeyUnknown(keys.Reload)
	pingCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := waitFor(pingCtx, func() error { return db.PingContext(pingCtx) }); err != nil {
		return "", fmt.Errorf("connect to database: %w", err)
	}
	n, err := migrations.Up(ctx, db.DB)
	if err != nil {
		return "", err
	}
	if n > 0 {
		g.logger.Info("migrated database", slog.Int("applied", n))
	}
	if err := CheckKeyring(ctx, g.store, keys); err != nil {
		return "", err
	}
	if n, err := g.store.Reseal(ctx); err != nil {
		return "", fmt.Errorf("seal secrets: %w", err)
	} else if n > 0 {
		g.logger.Info("sealed secrets under the current key", slog.Int("values", n), slog.String("key_id", keys.Keyring.ID()))
	}
	return dsn, nil
}

// waitFor retries fn until it succeeds or ctx is done.
func waitFor(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (g *Gateway) startNATS(ctx context.Context) error {
	url := g.cfg.NATSURL
	var auth []nats.Option
	if url == "" {
		// The embedded server listens on loopback, where any local
		// process could otherwise publish forged events or delete the
		// stream: it requires a token, kept beside the admin token.
		token, err := embednats.LoadOrCreateToken(filepath.Join(g.cfg.DataDir, embednats.TokenFile))
		if err != nil {
			return fmt.Errorf("embedded nats: %w", err)
		}
		ns, err := embednats.Start(ctx, filepath.Join(g.cfg.DataDir, "nats"), g.logger, embednats.Options{Token: token, MaxPayload: int32(g.cfg.NATSMaxPayload)})
		if err != nil {
			return fmt.Errorf("embedded nats: %w", err)
		}
		g.ns = ns
		url = ns.ClientURL()
		auth = append(auth, nats.Token(token))
		// Other processes on this machine (inlet tail, the nats CLI) find
		// the embedded server here, and its token in TokenFile.
		if err := os.WriteFile(filepath.Join(g.cfg.DataDir, embednats.URLFile), []byte(url+"\n"), 0o644); err != nil {
			return err
		}
	}
	nc, err := nats.Connect(url, append(auth,
		nats.Name("inlet"),
		nats.RetryOnFailedConnect(true), // start, and accept webhooks, while NATS is down
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			g.logger.Warn("nats disconnected", slog.Any("err", err))
		}),
		nats.ReconnectHandler(func(*nats.Conn) { g.logger.Info("nats reconnected") }),
	)...)
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	g.nc = nc
	return nil
}

// ensureStream creates the stream, retrying while NATS is unreachable.
func (g *Gateway) ensureStream(ctx context.Context, js jetstream.JetStream) {
	for delay := 250 * time.Millisecond; ; delay = min(delay*2, 10*time.Second) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := publish.EnsureStream(sctx, js, g.cfg.Stream, g.cfg.SubjectPrefix, g.cfg.StreamReplicas)
		cancel()
		if err == nil {
			return
		}
		g.logger.Warn("stream not ready", slog.String("stream", g.cfg.Stream), slog.Any("err", err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

// watchDependencies sets inlet_dependency_up every ten seconds, so that an
// alert does not depend on someone asking /readyz; while a dependency is
// down (at start, the stream may not be ready yet), every second, so that
// its return shows at once.
func (g *Gateway) watchDependencies(ctx context.Context, js jetstream.JetStream) {
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		every := 10 * time.Second
		for name, err := range map[string]error{"database": g.db.PingContext(cctx), "nats": g.natsReady(cctx, js)} {
			up := 0.0
			if err == nil {
				up = 1
			} else {
				every = time.Second
			}
			g.metrics.DependencyUp.WithLabelValues(name).Set(up)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// healthEvery is how often inlet_trigger_health is computed.
const healthEvery = 30 * time.Second

// watchHealth keeps inlet_trigger_health current: every trigger's status
// as GET .../webhooks shows it, from the statistics every instance
// shares.
func (g *Gateway) watchHealth(ctx context.Context) {
	t := time.NewTicker(healthEvery)
	defer t.Stop()
	for {
		g.observeHealth(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (g *Gateway) observeHealth(ctx context.Context) {
	triggers, err := g.store.ListTriggers(ctx)
	if err != nil {
		return
	}
	usage, err := g.store.AllUsage(ctx)
	if err != nil {
		return
	}
	now := time.Now()
	g.metrics.TriggerHealth.Reset()
	for _, t := range triggers {
		status := t.Health(usage[t.ID].Traffic(), t.WebhookSince(), now)
		for _, s := range trigger.HealthStatuses {
			v := 0.0
			if s == status {
				v = 1
			}
			g.metrics.TriggerHealth.WithLabelValues(t.Ref, s).Set(v)
		}
	}
}

func (g *Gateway) natsReady(ctx context.Context, js jetstream.JetStream) error {
	if !g.nc.IsConnected() {
		return errors.New("not connected")
	}
	if _, err := js.Stream(ctx, g.cfg.Stream); err != nil {
		return fmt.Errorf("stream %s: %w", g.cfg.Stream, err)
	}
	return nil
}

func (g *Gateway) loadPacks(ctx context.Context) error {
	packs, err := trigger.LoadPacks(g.cfg.PacksDir)
	if err != nil {
		return fmt.Errorf("load packs: %w", err)
	}
	created, total := 0, 0
	for _, p := range packs {
		for _, d := range p.Triggers {
			c, err := g.store.UpsertDeclaration(ctx, d)
			if err != nil {
				return err
			}
			total++
			if c {
				created++
			}
		}
	}
	g.logger.Info("loaded packs", slog.Int("packs", len(packs)), slog.Int("triggers", total), slog.Int("created", created))
	return nil
}

// tokenFile keeps the generated admin token of an embedded database beside
// that database, which holds every webhook key and secret anyway, so that
// `make run` can show it at every start.
func (g *Gateway) tokenFile() string { return filepath.Join(g.cfg.DataDir, "admin-token") }

// bootstrapToken makes sure an operator can reach the management API. A
// configured INLET_ADMIN_TOKEN becomes the one admin token: the value it
// held before and the token generated at first start stop working. Without
// one, a token is generated at first start and, with the embedded
// database, kept in tokenFile to be shown again.
func (g *Gateway) bootstrapToken(ctx context.Context) error {
	if tok := string(g.cfg.AdminToken); tok != "" {
		retired, err := g.store.AdoptEnvToken(ctx, tok)
		if errors.Is(err, store.ErrTokenRevoked) {
			// A restart never brings back a token an operator revoked.
			g.logger.Error("INLET_ADMIN_TOKEN holds a token that was revoked; it does not authenticate: set a new value")
			return nil
		}
		if err != nil {
			return err
		}
		if retired > 0 {
			g.logger.Info("admin tokens replaced by INLET_ADMIN_TOKEN revoked", slog.Int("tokens", retired))
		}
		if err := os.Remove(g.tokenFile()); err == nil {
			g.logger.Info("removed the generated admin token's file: INLET_ADMIN_TOKEN replaces it", slog.String("path", g.tokenFile()))
		}
		return nil
	}
	n, err := g.store.CountLiveTokens(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		if g.pg != nil {
			if b, err := os.ReadFile(g.tokenFile()); err == nil {
				tok := strings.TrimSpace(string(b))
				if _, err := g.store.CheckToken(ctx, tok); err == nil {
					g.Token = secret.Value(tok)
				}
			}
		}
		return nil
	}
	_, tok, err := g.store.CreateToken(ctx, "admin", store.OriginGenerated)
	if err != nil {
		return err
	}
	g.Token = tok
	if g.pg != nil {
		return os.WriteFile(g.tokenFile(), []byte(string(tok)+"\n"), 0o600)
	}
	return nil
}

// busyQueue is the write queue's length from which the forwarder slows
// down.
const busyQueue = 8

// stopReserve is the part of the shutdown budget kept for stopping NATS,
// the database and the embedded servers after the outbox flush.
const stopReserve = 5 * time.Second

// Shutdown stops serving and drains everything in order: in-flight
// requests, the write queue, the outbox; then NATS, the database and the
// embedded servers.
func (g *Gateway) Shutdown(ctx context.Context) error {
	var errs []error
	// A pass in progress is given up at once (its statement rolls back,
	// the next pass, here or on another instance, does it again): its
	// connections and its database time go to the drain.
	g.stopPrune()
	<-g.pruned
	// The forwarder stops claiming now and lets its attempts finish
	// while the rest drains, keeping the reserve like the flush.
	forwarded := make(chan error, 1)
	go func() {
		fctx, cancel := context.WithCancel(ctx)
		if d, ok := ctx.Deadline(); ok {
			fctx, cancel = context.WithDeadline(ctx, d.Add(-min(stopReserve, time.Until(d)/2)))
		}
		defer cancel()
		forwarded <- g.fwd.Close(fctx)
	}()
	if err := g.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	g.writer.Close()
	// With NATS unreachable a flush cannot succeed; the events are durable
	// in the outbox and the next publisher (another instance, or this one
	// at its next start) sends them, so shutdown does not wait for NATS.
	if g.nc.IsConnected() {
		// The flush may not take the whole budget: stopping the embedded
		// servers cleanly needs the rest.
		fctx, cancel := context.WithCancel(ctx)
		if d, ok := ctx.Deadline(); ok {
			fctx, cancel = context.WithDeadline(ctx, d.Add(-min(stopReserve, time.Until(d)/2)))
		}
		err := g.pub.Flush(fctx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("flush outbox: %w", err))
		}
	} else {
		g.logger.Warn("nats unreachable at shutdown: unpublished events stay in the outbox")
	}
	if err := <-forwarded; err != nil {
		errs = append(errs, err)
	}
	g.cancel()
	g.wg.Wait()
	g.rcv.Close()
	g.stopServers(ctx)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	g.logger.Info("stopped")
	return nil
}

func (g *Gateway) stopServers(ctx context.Context) {
	if g.nc != nil {
		// Drain flushes what the publisher sent; give it a bounded time.
		if err := g.nc.Drain(); err == nil {
			deadline := time.Now().Add(5 * time.Second)
			for !g.nc.IsClosed() && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
		g.nc.Close()
	}
	if g.db != nil {
		g.db.Close()
	}
	if g.ns != nil {
		g.ns.Shutdown()
	}
	if g.pg != nil {
		if err := g.pg.Stop(ctx); err != nil {
			g.logger.Warn("stop embedded postgres", slog.Any("err", err))
		}
	}
}
