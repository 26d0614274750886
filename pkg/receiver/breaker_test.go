package receiver

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/store"
)

func TestBreakerOpensThenLetsOneProbeThrough(t *testing.T) {
	b := &breaker{window: 2 * time.Second}
	now := time.Unix(1000, 0)
	if !b.allow(now) {
		t.Fatal("a closed breaker refused a request")
	}
	b.report(context.DeadlineExceeded, now)
	if b.allow(now.Add(time.Second)) {
		t.Error("an open breaker allowed a request inside its window")
	}

	// After the window, exactly one of many concurrent requests probes.
	later := now.Add(3 * time.Second)
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b.allow(later) {
				allowed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := allowed.Load(); n != 1 {
		t.Fatalf("%d requests probed at once, want 1", n)
	}

	// A probe whose client left tells nothing: the next request probes.
	b.report(context.Canceled, later)
	if !b.allow(later) {
		t.Fatal("no probe allowed after the first probe's client left")
	}
	// The database answered (a miss is an answer): closed for everyone.
	b.report(store.ErrNotFound, later)
	for i := range 3 {
		if !b.allow(later) {
			t.Errorf("request %d refused after a successful probe", i)
		}
	}
}

func TestBreakerReport(t *testing.T) {
	tests := []struct {
		name string
		err  error
		open bool
	}{
		{"deadline", context.DeadlineExceeded, true},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"success", nil, false},
		{"not found", store.ErrNotFound, false},
		{"queue full", store.ErrOverloaded, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &breaker{window: time.Minute}
			now := time.Unix(1000, 0)
			b.report(tt.err, now)
			if got := !b.allow(now); got != tt.open {
				t.Errorf("after report(%v): open = %v, want %v", tt.err, got, tt.open)
			}
		})
	}
}
