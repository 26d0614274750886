package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// serveBaseline runs the yardstick: Echo v4 on the receiver's route, with
// the http.Server timeouts inlet uses, answering 200 with no body and
// without reading the request's body (net/http discards what is left of a
// small body so that the connection is reused). It is the least an Echo
// server can do for a webhook; whatever inlet does beyond this is the cost
// of its pipeline. It prints its address on the first line of stdout and
// serves until ctx is done.
func serveBaseline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.POST("/api/v1/webhooks/:webhook_key", func(c echo.Context) error {
		return c.NoContent(http.StatusOK)
	})
	return serveOn(ctx, ln, e, stdout)
}

// serveOn serves h on ln with the http.Server timeouts inlet uses, after
// printing ln's address on the first line of stdout, until ctx is done.
func serveOn(ctx context.Context, ln net.Listener, h http.Handler, stdout io.Writer) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	fmt.Fprintln(stdout, ln.Addr().String())
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}
