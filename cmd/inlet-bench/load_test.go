package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// TestLoadRate drives the Go load generator against a server on 127.0.0.1
// for one second, closed loop and at fixed rates.
func TestLoadRate(t *testing.T) {
	tests := []struct {
		name  string
		delay time.Duration // the server's time per request
		conns int
		rate  float64
		// bounds on the requests measured in the second, and on the p50
		minN, maxN int
		minP50     time.Duration
	}{
		// A closed loop sends as fast as the server answers.
		{name: "closed loop", conns: 2, minN: 1000, maxN: 1 << 30},
		// At a fixed rate the server's speed does not matter.
		{name: "100 req/s on 2 connections", conns: 2, rate: 100, minN: 90, maxN: 110},
		// A server at 50 req/s on one connection falls ever further behind
		// a schedule of 200 req/s: latency counts from when each request
		// was due, not from when the busy connection could send it, so it
		// grows far beyond the server's 20 ms.
		{name: "a server slower than the rate", delay: 20 * time.Millisecond, conns: 1, rate: 200,
			minN: 30, maxN: 60, minP50: 150 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				time.Sleep(tt.delay)
			}))
			defer srv.Close()
			u, _ := url.Parse(srv.URL + "/api/v1/webhooks/wh_test")
			res := load(context.Background(), loadOptions{
				target: u, conns: tt.conns, duration: time.Second, idPrefix: "t", rate: tt.rate,
			})
			if res.NetErrors > 0 || res.OK != res.Total {
				t.Fatalf("got %d network errors (%s) and %d of %d answers 200", res.NetErrors, res.FirstErr, res.OK, res.Total)
			}
			if res.Measured < tt.minN || res.Measured > tt.maxN {
				t.Errorf("measured %d requests in 1 s, want %d to %d", res.Measured, tt.minN, tt.maxN)
			}
			if p50 := time.Duration(res.P50 * float64(time.Millisecond)); p50 < tt.minP50 {
				t.Errorf("p50 %v, want at least %v", p50, tt.minP50)
			}
		})
	}
}
