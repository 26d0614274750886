package main

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestLineBuffer(t *testing.T) {
	out := &lockedBuf{}
	buf := newLineBuffer(out)
	logger := slog.New(flushingHandler{slog.NewJSONHandler(buf, nil), buf})

	logger.Info("accepted one")
	if strings.Contains(out.String(), "accepted one") {
		t.Fatal("an info line was written at once, not buffered")
	}
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(out.String(), "accepted one") {
		if time.Now().After(deadline) {
			t.Fatal("a buffered line was not written within the flush interval")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A warning goes out at once, with whatever waited before it.
	logger.With("component", "x").Info("before")
	logger.With("component", "x").Warn("trouble")
	if s := out.String(); !strings.Contains(s, "before") || !strings.Contains(s, "trouble") {
		t.Errorf("after a warning the output is %q", s)
	}
	// Close writes what is left; lines are never cut or mixed.
	for i := 0; i < 1000; i++ {
		logger.Info("line", "i", i)
	}
	buf.Close()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1003 {
		t.Fatalf("%d lines written, want 1003", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") || !strings.HasSuffix(l, "}") {
			t.Fatalf("a cut line: %q", l)
		}
	}
}
