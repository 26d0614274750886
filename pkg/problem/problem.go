// Package problem writes errors as RFC 9457 problem details
// (application/problem+json) and holds the stable codes that the receiver
// also records as audit outcomes.
package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/inlet-dev/inlet/pkg/outcome"
)

// Management API codes.
const (
	Unauthorized  = "unauthorized"
	Invalid       = "invalid_request"
	Conflict      = "conflict"
	Unprocessable = "validation_failed"
)

// Error is an answer other than success. Its Detail is shown to the client,
// so it must never carry a key, secret, token or signature.
type Error struct {
	Status int
	Code   string
	Detail string
	// RetryAfter, when positive, is sent as a Retry-After header in seconds.
	RetryAfter time.Duration
	// Extra members added to the problem object (e.g. "violations").
	Extra map[string]any
	// Err is the cause, logged but never sent.
	Err error
}

// New returns an *Error with a formatted detail.
func New(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Detail: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Detail, e.Err)
	}
	return e.Code + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// Body is the JSON form of a problem.
func (e *Error) Body() map[string]any {
	body := map[string]any{
		"type":   "about:blank",
		"title":  http.StatusText(e.Status),
		"status": e.Status,
		"detail": e.Detail,
		"code":   e.Code,
	}
	for k, v := range e.Extra {
		body[k] = v
	}
	return body
}

// Write sends e as application/problem+json.
func Write(w http.ResponseWriter, e *Error) error {
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	return json.NewEncoder(w).Encode(e.Body())
}

// Handler returns an Echo HTTPErrorHandler that writes every error as a
// problem: *Error as is, *echo.HTTPError with its status, anything else as a
// 500 whose cause is logged and not sent. Server errors are logged at
// error level, sampled per route, status and code: an outage answered 503
// a thousand times a second is a few lines a second, and one kind of
// failure does not hide another.
func Handler(logger *slog.Logger) echo.HTTPErrorHandler {
	var samplers sync.Map // "method path status code" -> *rate.Sometimes
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		p := From(err)
		if p.Status >= 500 {
			key := c.Request().Method + " " + c.Path() + " " + strconv.Itoa(p.Status) + " " + p.Code
			s, _ := samplers.LoadOrStore(key, &rate.Sometimes{First: 5, Interval: time.Second})
			s.(*rate.Sometimes).Do(func() {
				logger.Error("request failed", slog.String("method", c.Request().Method),
					slog.String("path", c.Path()), slog.Int("status", p.Status), slog.Any("err", err))
			})
		}
		if c.Request().Method == http.MethodHead {
			c.Response().WriteHeader(p.Status)
			return
		}
		_ = Write(c.Response(), p)
	}
}

// From converts any error to an *Error.
func From(err error) *Error {
	var p *Error
	if errors.As(err, &p) {
		return p
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		detail := http.StatusText(he.Code)
		if s, ok := he.Message.(string); ok && s != "" {
			detail = s
		}
		return &Error{Status: he.Code, Code: codeFor(he.Code), Detail: detail}
	}
	return &Error{Status: http.StatusInternalServerError, Code: outcome.Internal, Detail: "internal error", Err: err}
}

func codeFor(status int) string {
	switch status {
	case http.StatusNotFound:
		return outcome.NotFound
	case http.StatusUnauthorized:
		return Unauthorized
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return outcome.TooLarge
	case http.StatusTooManyRequests:
		return outcome.RateLimited
	}
	if status >= 500 {
		return outcome.Internal
	}
	return Invalid
}
