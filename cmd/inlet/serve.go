package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/gateway"
)

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.LoadServe(args, getenv, stderr)
	if err != nil {
		return asUsage(err)
	}
	buf := newLineBuffer(stderr)
	defer buf.Close()
	logger := slog.New(flushingHandler{newLogger(cfg, buf).Handler(), buf})
	g, err := gateway.Start(ctx, cfg, logger)
	if err != nil {
		return err
	}
	banner(stdout, cfg, g)
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-g.Served():
		logger.Error("http server stopped", slog.Any("err", err))
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	return g.Shutdown(sctx)
}

// banner tells a person at a terminal where inlet is and how to try it. It
// goes to stdout, not the log: the token in it must never reach a log file.
func banner(w io.Writer, cfg config.Config, g *gateway.Gateway) {
	base := cfg.PublicBaseURL()
	local := "http://" + g.Addr()
	if host, port, err := net.SplitHostPort(g.Addr()); err == nil && (host == "::" || host == "0.0.0.0" || host == "") {
		local = "http://localhost:" + port
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\ninlet is ready on %s (webhook URLs use %s)\n", local, base)
	fmt.Fprintf(&b, "console: %s/console/ (sign in with the admin token)\n", local)
	if cfg.NATSURL == "" {
		fmt.Fprintf(&b, "embedded NATS: %s (watch events with: bin/inlet tail)\n", g.NATSURL())
	}
	switch {
	case g.Token != "":
		tok := string(g.Token)
		fmt.Fprintf(&b, "admin token:   %s\n\n", tok)
		fmt.Fprintf(&b, "Try it: enable a trigger's webhook and get its URL:\n")
		fmt.Fprintf(&b, "  curl -s -X POST -H 'Authorization: Bearer %s' %s/api/v1/triggers/myapp.deployment_complete/webhooks/enable\n\n", tok, local)
	case cfg.AdminToken != "":
		fmt.Fprintf(&b, "admin token:   the value of INLET_ADMIN_TOKEN\n\n")
	default:
		fmt.Fprintf(&b, "admin token:   shown at first start; make another with: bin/inlet token create NAME\n\n")
	}
	fmt.Fprint(w, b.String())
}
