package problem

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestHandlerSamplesServerErrors: a flood of one server error logs a few
// lines, not one per request, and another error still gets its own.
func TestHandlerSamplesServerErrors(t *testing.T) {
	var logs bytes.Buffer
	h := Handler(slog.New(slog.NewTextHandler(&logs, nil)))
	e := echo.New()
	fail := func(path string, p *Error) {
		req := httptest.NewRequest(http.MethodPost, path, nil)
		rec := httptest.NewRecorder()
		c := e.NewContext(req, rec)
		c.SetPath(path)
		h(p, c)
		if rec.Code != p.Status {
			t.Fatalf("status %d, want %d", rec.Code, p.Status)
		}
	}
	for range 1000 {
		fail("/api/v1/webhooks/:webhook_key", &Error{Status: 503, Code: "error", Detail: "storage is unavailable", Err: errors.New("db down")})
	}
	fail("/api/v1/triggers", &Error{Status: 500, Code: "error", Detail: "internal error", Err: errors.New("boom")})
	lines := strings.Count(logs.String(), "request failed")
	if lines > 10 {
		t.Errorf("1000 503s logged %d lines, want a few", lines)
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Error("a different error after the flood was not logged")
	}
}
