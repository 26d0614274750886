package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/metrics"
	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const publicURL = "https://hooks.example.com"

// lockedBuffer collects log output; handlers may log from any goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is an Echo with the API's routes on a fresh database, and a live
// token.
type env struct {
	t     *testing.T
	e     *echo.Echo
	api   *API
	store *store.Store
	token string
	logs  *lockedBuffer
	ready map[string]error
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := store.New(storetest.New(t), storetest.Keyring())
	_, tok, err := st.CreateToken(context.Background(), "test", store.OriginCLI)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	v := &env{t: t, store: st, token: string(tok), logs: logs, ready: map[string]error{"database": nil, "nats": nil}}
	v.api = New(Options{
		Store:     st,
		PublicURL: publicURL,
		Metrics:   metrics.New(func() float64 { return 0 }),
		Ready:     func(context.Context) map[string]error { return v.ready },
		Logger:    logger,
	})
	v.e = echo.New()
	v.e.HTTPErrorHandler = problem.Handler(logger)
	v.api.Register(v.e)
	return v
}

// do sends a request with the env's token.
func (v *env) do(method, path, body string) *httptest.ResponseRecorder {
	v.t.Helper()
	return v.doAuth(method, path, body, "Bearer "+v.token)
}

// doAuth sends a request with the given Authorization header ("" for none).
func (v *env) doAuth(method, path, body, authorization string) *httptest.ResponseRecorder {
	v.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	v.e.ServeHTTP(rec, req)
	return rec
}

// call sends a request, checks its status and decodes the body into out
// (when out is not nil), and returns the body.
func (v *env) call(method, path, body string, want int, out any) []byte {
	v.t.Helper()
	rec := v.do(method, path, body)
	if rec.Code != want {
		v.t.Fatalf("%s %s = %d %s, want %d", method, path, rec.Code, rec.Body.String(), want)
	}
	if out != nil {
		// Decode into a zero value: json.Unmarshal merges into maps and
		// keeps members the body lacks.
		reflect.ValueOf(out).Elem().SetZero()
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			v.t.Fatalf("%s %s: decode %s: %v", method, path, rec.Body.String(), err)
		}
	}
	return rec.Body.Bytes()
}

// problemBody is a problem as clients see it.
type problemBody struct {
	Type   string               `json:"type"`
	Title  string               `json:"title"`
	Status int                  `json:"status"`
	Detail string               `json:"detail"`
	Code   string               `json:"code"`
	Errors []trigger.FieldError `json:"errors"`
}

func decodeProblem(t *testing.T, rec *httptest.ResponseRecorder) problemBody {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", ct)
	}
	var p problemBody
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("decode problem %s: %v", rec.Body.String(), err)
	}
	return p
}

// createTrigger makes a trigger through the store, webhook disabled.
func (v *env) createTrigger(ref string) trigger.Trigger {
	v.t.Helper()
	tr, err := v.store.CreateTrigger(context.Background(), store.NewTrigger{Ref: ref, Settings: trigger.DefaultSettings()})
	if err != nil {
		v.t.Fatal(err)
	}
	return tr
}

// settingsOf reads a trigger's stored settings.
func (v *env) settingsOf(ref string) trigger.Settings {
	v.t.Helper()
	tr, err := v.store.GetTrigger(context.Background(), ref)
	if err != nil {
		v.t.Fatal(err)
	}
	return tr.Settings
}

// seedAudit writes n audit rows for tr, one second apart starting at
// start, with outcomes cycling through outcomes.
func (v *env) seedAudit(tr trigger.Trigger, start time.Time, n int, outcomes []string) {
	v.t.Helper()
	recs := make([]*store.Record, n)
	for i := range recs {
		id, ref := tr.ID, tr.Ref
		recs[i] = &store.Record{Audit: store.Audit{
			ReceivedAt: start.Add(time.Duration(i) * time.Second),
			TriggerID:  &id,
			TriggerRef: &ref,
			KeyPrefix:  "wh_abcde",
			SourceIP:   "192.0.2.1",
			UserAgent:  "test",
			Status:     http.StatusTooManyRequests,
			Outcome:    outcomes[i%len(outcomes)],
		}}
	}
	if _, err := v.store.WriteBatch(context.Background(), recs); err != nil {
		v.t.Fatal(err)
	}
}

// seedEvents stores one event per payload for tr, one second apart from
// start, and returns their ids in the order given.
func (v *env) seedEvents(tr trigger.Trigger, start time.Time, payloads ...string) []string {
	v.t.Helper()
	recs := make([]*store.Record, len(payloads))
	ids := make([]string, len(payloads))
	for i, p := range payloads {
		at := event.Time(start.Add(time.Duration(i) * time.Second))
		ids[i] = event.MustNewID(at)
		id, ref := tr.ID, tr.Ref
		meta, err := json.Marshal(event.Metadata{
			Source: event.Source, WebhookKeyPrefix: "wh_abcde", ReceivedAt: at, SourceIP: "2001:db8::1",
			UserAgent: "GitHub-Hookshot/abc <x>", Headers: map[string]string{"X-GitHub-Event": "push"},
		})
		if err != nil {
			v.t.Fatal(err)
		}
		recs[i] = &store.Record{
			Event: &event.Event{ID: ids[i], TriggerID: tr.ID, TriggerRef: tr.Ref, Source: event.Source,
				Payload: json.RawMessage(p), Metadata: meta, ReceivedAt: at},
			Audit: store.Audit{ReceivedAt: at, TriggerID: &id, TriggerRef: &ref, Status: http.StatusOK, Outcome: outcome.Accepted},
		}
	}
	if _, err := v.store.WriteBatch(context.Background(), recs); err != nil {
		v.t.Fatal(err)
	}
	return ids
}
