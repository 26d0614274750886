package receiver

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/inlet-dev/inlet/pkg/store"
)

// errOpen answers a request that needs the database while the breaker is
// open; like an unavailable database it becomes a 503 with Retry-After.
var errOpen = errors.New("database unavailable: not retried for a moment")

// breaker stops requests from waiting on a database that stopped
// answering. After a failure it is open for a while: requests that need
// the database are answered 503 at once. Then one request at a time probes
// it; a success closes the breaker, a failure opens it again. Without it,
// every request during an outage would hold a goroutine and a connection
// for the whole wait.
type breaker struct {
	window  time.Duration
	until   atomic.Int64 // unix nanoseconds the breaker stays open until; 0 when closed
	probing atomic.Bool  // a request is finding out whether the database is back
}

// allow reports whether a request may use the database now. When it returns
// true after an outage, the caller is the probe and must report its result.
func (b *breaker) allow(now time.Time) bool {
	until := b.until.Load()
	if until == 0 {
		return true
	}
	if now.UnixNano() < until {
		return false
	}
	return b.probing.CompareAndSwap(false, true)
}

// success closes the breaker.
func (b *breaker) success() {
	if b.until.Load() != 0 {
		b.until.Store(0)
	}
	b.probing.Store(false)
}

// failure opens the breaker for its window.
func (b *breaker) failure(now time.Time) {
	b.until.Store(now.Add(b.window).UnixNano())
	b.probing.Store(false)
}

// release ends a probe whose result says nothing about the database (the
// client went away).
func (b *breaker) release() { b.probing.Store(false) }

// report feeds the outcome of a database call to the breaker: timeouts and
// unreachable databases open it, anything the database answered closes it.
func (b *breaker) report(err error, now time.Time) {
	switch {
	case err == nil, errors.Is(err, store.ErrNotFound):
		b.success()
	case errors.Is(err, context.Canceled), errors.Is(err, store.ErrOverloaded), errors.Is(err, errOpen):
		b.release()
	case errors.Is(err, context.DeadlineExceeded), store.IsUnavailable(err):
		b.failure(now)
	default:
		b.success() // the database answered, if only to refuse a record
	}
}
