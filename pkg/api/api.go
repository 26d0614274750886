// Package api serves inlet's management API: bearer-token authentication,
// triggers and their webhook keys and settings, the receiver's audit log,
// stored events, health and readiness probes, Prometheus metrics and the
// OpenAPI document. Every route is registered in routes.go.
//
// Handlers return errors and never write a problem themselves: a
// *problem.Error carries the status and code, and problem.Handler, installed
// as Echo's HTTPErrorHandler by the caller, writes it. No response, error or
// log line carries a webhook key, an HMAC secret or a bearer token, except
// the one response that hands out a secret the server generated.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/inlet-dev/inlet/pkg/forward"
	"github.com/inlet-dev/inlet/pkg/metrics"
	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// Options configures an API.
type Options struct {
	Store *store.Store
	// PublicURL is the base of every webhook_url, without a trailing slash.
	PublicURL string
	// Metrics is served on GET /metrics; nil serves an empty registry.
	Metrics *metrics.Metrics
	// Ready runs named dependency checks ("database", "nats") for
	// GET /readyz; a nil error means the dependency is usable. Nil means
	// there is nothing to check.
	Ready  func(ctx context.Context) map[string]error
	Logger *slog.Logger
	// Forwarder sends destinations' test requests and is woken by manual
	// retries; nil answers the test route with 503.
	Forwarder *forward.Forwarder
}

// API is the management API. It is safe for concurrent use once
// registered.
type API struct {
	store     *store.Store
	publicURL string
	metrics   *metrics.Metrics
	ready     func(ctx context.Context) map[string]error
	log       *slog.Logger
	forwarder *forward.Forwarder

	// now is the clock used for secret rotation; tests replace it.
	now func() time.Time
	// readyWarn keeps failing readiness checks from flooding the log.
	readyWarn throttle
}

// New returns an API built from o.
func New(o Options) *API {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{
		store:     o.Store,
		publicURL: o.PublicURL,
		metrics:   o.Metrics,
		ready:     o.Ready,
		forwarder: o.Forwarder,
		log:       logger.With("component", "api"),
		now:       time.Now,
	}
}

// webhookURL is the receiver URL of key, or nil when there is no key.
func (a *API) webhookURL(key trigger.Key) *string {
	if key == "" {
		return nil
	}
	u := a.publicURL + "/api/v1/webhooks/" + string(key)
	return &u
}

// retryAfterUnavailable is the Retry-After sent when the database is down.
const retryAfterUnavailable = 5 * time.Second

// storeErr maps an error from the store to the problem a client sees.
// what names the missing thing for a 404 ("trigger", "event").
func storeErr(err error, what string) error {
	var p *problem.Error
	switch {
	case errors.As(err, &p):
		return p
	case errors.Is(err, store.ErrNotFound):
		return problem.New(http.StatusNotFound, outcome.NotFound, "%s not found", what)
	case errors.Is(err, store.ErrConflict):
		return &problem.Error{Status: http.StatusConflict, Code: problem.Conflict, Detail: what + " already exists", Err: err}
	case errors.Is(err, store.ErrBadCursor):
		return problem.New(http.StatusBadRequest, problem.Invalid, "invalid cursor")
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads the answer.
		return &problem.Error{Status: 499, Code: problem.Invalid, Detail: "request canceled", Err: err}
	case store.IsUnavailable(err):
		return &problem.Error{Status: http.StatusServiceUnavailable, Code: outcome.Internal,
			Detail: "database unavailable", RetryAfter: retryAfterUnavailable, Err: err}
	}
	return &problem.Error{Status: http.StatusInternalServerError, Code: outcome.Internal, Detail: "internal error", Err: err}
}
