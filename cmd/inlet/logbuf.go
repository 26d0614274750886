package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Log lines are written in bulk: one line per accepted request, each its
// own write(2), cost inlet more than a tenth of its CPU under load.
const (
	logFlushEvery = 100 * time.Millisecond
	logBufferSize = 64 << 10
)

// lineBuffer gathers log lines and writes them to w every logFlushEvery,
// when half the buffer is full, and at once after a line at warn level or
// above (see flushingHandler). A process killed outright loses at most the
// last logFlushEvery of info lines. It is safe for concurrent use.
type lineBuffer struct {
	mu   sync.Mutex
	bw   *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newLineBuffer(w io.Writer) *lineBuffer {
	b := &lineBuffer{bw: bufio.NewWriterSize(w, logBufferSize), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushing()
	return b
}

// Write buffers one log line; a slog handler writes each record whole.
func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.bw.Write(p)
	if err == nil && b.bw.Buffered() > logBufferSize/2 {
		err = b.bw.Flush()
	}
	return n, err
}

// Flush writes what is buffered.
func (b *lineBuffer) Flush() {
	b.mu.Lock()
	_ = b.bw.Flush()
	b.mu.Unlock()
}

func (b *lineBuffer) flushing() {
	defer close(b.done)
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.Flush()
		}
	}
}

// Close stops the flushing and writes what is left.
func (b *lineBuffer) Close() {
	close(b.stop)
	<-b.done
	b.Flush()
}

// flushingHandler writes the buffer out after every record at warn level
// or above, so that what goes wrong shows at once.
type flushingHandler struct {
	slog.Handler
	buf *lineBuffer
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		h.buf.Flush()
	}
	return err
}

func (h flushingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushingHandler{h.Handler.WithAttrs(attrs), h.buf}
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{h.Handler.WithGroup(name), h.buf}
}
