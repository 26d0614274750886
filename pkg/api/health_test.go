package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestHealthz(t *testing.T) {
	v := newEnv(t)
	rec := v.doAuth(http.MethodGet, "/healthz", "", "")
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Errorf("GET /healthz = %d %s, want 200 {\"status\":\"ok\"}", rec.Code, rec.Body)
	}
}

func TestReadyz(t *testing.T) {
	v := newEnv(t)
	rec := v.doAuth(http.MethodGet, "/readyz", "", "")
	want := `{"status":"ready","checks":{"database":"ok","nats":"ok"}}`
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != want {
		t.Errorf("GET /readyz = %d %s, want 200 %s", rec.Code, rec.Body, want)
	}

	v.ready = map[string]error{
		"database": nil,
		"nats":     errors.New("dial nats://user:hunter2@10.0.0.5:4222: connection refused; password=hunter2"),
	}
	rec = v.doAuth(http.MethodGet, "/readyz", "", "")
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz with NATS down = %d, want 503", rec.Code)
	}
	var got readiness
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status != "unavailable" || got.Checks["database"] != "ok" || !strings.Contains(got.Checks["nats"], "connection refused") {
		t.Errorf("GET /readyz with NATS down = %+v", got)
	}
	if strings.Contains(rec.Body.String(), "hunter2") || strings.Contains(rec.Body.String(), "nats://") {
		t.Errorf("GET /readyz reveals a URL or password: %s", rec.Body)
	}
	if logs := v.logs.String(); !strings.Contains(logs, "readiness check failed") || strings.Contains(logs, "hunter2") {
		t.Errorf("readiness logs: want a warning without the password:\n%s", logs)
	}

	// Back to ready.
	v.ready = map[string]error{"database": nil, "nats": nil}
	if rec := v.doAuth(http.MethodGet, "/readyz", "", ""); rec.Code != http.StatusOK {
		t.Errorf("GET /readyz after recovery = %d, want 200", rec.Code)
	}
}

func TestRedact(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "connection refused", "connection refused"},
		{"url", "dial postgres://u:p@db:5432/x failed", "dial [redacted] failed"},
		{"dsn password", "host=db password=s3cret user=x", "host=db password=[redacted] user=x"},
		{"long", strings.Repeat("é", 150), strings.Repeat("é", 100) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact(tt.in); got != tt.want {
				t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	v := newEnv(t)
	v.api.metrics.Requests.WithLabelValues("github.push", "accepted").Inc()
	rec := v.doAuth(http.MethodGet, "/metrics", "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	if !strings.Contains(rec.Body.String(), `inlet_webhook_requests_total{outcome="accepted",trigger="github.push"} 1`) {
		t.Errorf("GET /metrics lacks the request counter:\n%s", rec.Body)
	}
}

func TestOpenAPIServed(t *testing.T) {
	v := newEnv(t)
	rec := v.doAuth(http.MethodGet, "/api/v1/openapi.json", "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json = %d", rec.Code)
	}
	if !bytes.Equal(rec.Body.Bytes(), openAPI) {
		t.Error("GET /api/v1/openapi.json differs from the embedded document")
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
}
