package api

import (
	"context"
	_ "embed"
	"net/http"
	"regexp"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ReadyTimeout bounds the dependency checks of one GET /readyz.
const ReadyTimeout = 5 * time.Second

type health struct {
	Status string `json:"status"`
}

type readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// healthz answers GET /healthz: the process is up.
func (a *API) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, health{Status: "ok"})
}

// readyz answers GET /readyz: 200 when every dependency check passes, else
// 503 naming the failing ones.
func (a *API) readyz(c echo.Context) error {
	r := readiness{Status: "ready", Checks: map[string]string{}}
	if a.ready != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), ReadyTimeout)
		defer cancel()
		for name, err := range a.ready(ctx) {
			if err == nil {
				r.Checks[name] = "ok"
				continue
			}
			r.Status = "unavailable"
			// Messages may name a server by URL, credentials included.
			msg := redact(err.Error())
			r.Checks[name] = msg
			if a.readyWarn.allow(time.Now()) {
				a.log.Warn("readiness check failed", "check", name, "err", msg)
			}
		}
	}
	status := http.StatusOK
	if r.Status != "ready" {
		status = http.StatusServiceUnavailable
	}
	return c.JSON(status, r)
}

// readyWarnEvery spaces the warnings of failing readiness checks: probes
// run every few seconds, and anyone may call /readyz.
const readyWarnEvery = 30 * time.Second

// throttle allows one event per readyWarnEvery. Its zero value is ready
// to use and it is safe for concurrent use.
type throttle struct {
	last atomic.Int64 // unix nanoseconds of the last allowed event
}

func (t *throttle) allow(now time.Time) bool {
	last := t.last.Load()
	if last != 0 && now.UnixNano()-last < int64(readyWarnEvery) {
		return false
	}
	return t.last.CompareAndSwap(last, now.UnixNano())
}

var (
	// urlRe matches URLs, which may carry credentials (postgres://u:p@h,
	// nats://token@h); connection strings' password=... likewise.
	urlRe      = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://\S*`)
	passwordRe = regexp.MustCompile(`(?i)(password|passwd|pwd|token|secret)=\S*`)
)

// maxCheckMessage bounds a failing check's message in /readyz.
const maxCheckMessage = 200

// redact removes URLs and credentials from a check's error message.
func redact(msg string) string {
	msg = urlRe.ReplaceAllString(msg, "[redacted]")
	msg = passwordRe.ReplaceAllString(msg, "$1=[redacted]")
	if len(msg) > maxCheckMessage {
		n := maxCheckMessage
		for n > 0 && !utf8.RuneStart(msg[n]) {
			n--
		}
		msg = msg[:n] + "…"
	}
	return msg
}

// metricsHandler serves the Prometheus registry, or an empty one when the
// API has none.
func (a *API) metricsHandler() echo.HandlerFunc {
	reg := prometheus.NewRegistry()
	if a.metrics != nil {
		reg = a.metrics.Registry
	}
	return echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

//go:embed openapi.json
var openAPI []byte

// openAPIDocument answers GET /api/v1/openapi.json.
func (a *API) openAPIDocument(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPI)
}
