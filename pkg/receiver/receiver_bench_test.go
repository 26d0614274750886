package receiver_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/inlet-dev/inlet/pkg/metrics"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/receiver"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const benchSecret = "whsec_receiver-benchmark-secret"

// benchBody is a 1 KB deployment delivery matching benchSchema.
var benchBody = func() []byte {
	b := []byte(`{"service":"checkout","version":"2.14.0","environment":"production","status":"succeeded",` +
		`"url":"https://ci.example.com/pipelines/1234","commit":"6113728f27ae82c7b1a177c8d03f9e96e0adf246",` +
		`"changes":[{"id":"6113728f","message":"Fix the retry budget of the payment client"}],"notes":"`)
	b = append(b, bytes.Repeat([]byte("x"), 1022-len(b))...)
	return append(b, `"}`...)
}()

const benchSchema = `{"type":"object","required":["service","version","environment","status"],
	"properties":{"service":{"type":"string","minLength":1},"version":{"type":"string","minLength":1},
	"environment":{"type":"string","enum":["development","staging","production"]},
	"status":{"type":"string","enum":["succeeded","failed"]},"url":{"type":"string"}}}`

// BenchmarkHandle drives the receiver as make bench does, in process: a
// signed 1 KB body through lookup, HMAC, JSON, schema and mapping, and the
// event and audit row committed by the group-commit writer to a real
// PostgreSQL, 64 requests at a time. Most of ns/op is the database; the
// allocations are the hot path's (handler, writer and driver).
func BenchmarkHandle(b *testing.B) {
	ctx := context.Background()
	st := store.New(storetest.New(b), storetest.Keyring())
	settings := trigger.Settings{
		HMAC: trigger.HMAC{Enabled: true, Algorithm: "sha256", Secret: benchSecret},
		PayloadMapping: map[string]string{
			"service": "$.service", "version": "$.version", "environment": "$.environment",
			"status": "$.status", "commit": "$.commit", "pipeline": "$.url",
		},
	}
	settings.Normalize()
	tr, err := st.CreateTrigger(ctx, store.NewTrigger{
		Ref: "bench.deployment", PayloadSchema: []byte(benchSchema), Enabled: true, Settings: settings,
	})
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	w := store.NewWriter(st, store.WriterOptions{}, logger)
	defer w.Close()
	h := receiver.New(receiver.Options{
		Store: st, Writer: w, Metrics: metrics.New(func() float64 { return 0 }), Logger: logger,
	})
	e := echo.New()
	e.HTTPErrorHandler = problem.Handler(logger)
	h.Register(e)
	path := "/api/v1/webhooks/" + string(tr.Key)

	mac := hmac.New(sha256.New, []byte(benchSecret))
	mac.Write(benchBody)
	good := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	var seq atomic.Int64
	run := func(b *testing.B, sig string, want int) {
		b.ReportAllocs()
		b.SetBytes(int64(len(benchBody)))
		b.SetParallelism(32) // 64 concurrent requests on 2 CPUs
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(benchBody))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Webhook-Signature", sig)
				req.Header.Set("X-Webhook-ID", fmt.Sprintf("bench-%d", seq.Add(1)))
				rec := httptest.NewRecorder()
				e.ServeHTTP(rec, req)
				if rec.Code != want {
					b.Fatalf("status %d, want %d: %s", rec.Code, want, rec.Body)
				}
			}
		})
	}
	b.Run("accepted", func(b *testing.B) { run(b, good, http.StatusOK) })
	b.Run("bad_signature", func(b *testing.B) { run(b, "sha256="+hex.EncodeToString(make([]byte, 32)), http.StatusUnauthorized) })
}
