// Package publish relays committed events from the transactional outbox to
// NATS JetStream, once each and in order per trigger.
//
// Across all instances on one database exactly one Publisher is the leader:
// it holds a PostgreSQL advisory lock (LeaseID) and is the only one that
// claims outbox rows. The others stand by and try to take the lock every two
// seconds. The leader claims rows in seq order, publishes them asynchronously
// with Nats-Msg-Id set to the event id, deletes the rows JetStream
// acknowledged and releases the rest, stopping at the first failure so that
// no event overtakes an earlier one of its trigger. JetStream's
// de-duplication window covers an event published twice around a handover.
package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/pkg/metrics"
	"github.com/inlet-dev/inlet/pkg/store"
)

// LeaseID is the advisory lock that makes one Publisher the leader.
const LeaseID int64 = 0x696e6c65745f7075 // "inlet_pu"

// Defaults for Options.
const (
	DefaultBatch  = 1000
	DefaultWindow = 256
	DefaultLease  = 30 * time.Second
)

// Timing of the publisher's loops.
const (
	standbyEvery = 2 * time.Second        // standby: try to take the lease
	checkEvery   = 3 * time.Second        // leader: confirm the lease is held
	backlogEvery = 5 * time.Second        // leader: refresh backlog gauges
	pollEvery    = time.Second            // leader: round without a wake-up
	ackTimeout   = 10 * time.Second       // a round's wait for acks
	minBackoff   = 250 * time.Millisecond // after a failed round, doubling
	maxBackoff   = 5 * time.Second
	dbTimeout    = 5 * time.Second // settling rows, checking the lease
)

// Options configure a Publisher.
type Options struct {
	// DSN is the database to LISTEN on for new outbox rows. Empty means no
	// LISTEN: the publisher then relies on Kick and a one-second poll.
	DSN string
	// Stream is the JetStream stream that captures SubjectPrefix; it only
	// labels log lines, EnsureStream creates it.
	Stream string
	// SubjectPrefix starts every subject: "<SubjectPrefix>.<trigger_ref>".
	SubjectPrefix string
	// Batch is how many outbox rows one round claims, DefaultBatch if 0.
	Batch int
	// Window is how many publishes may await their ack at once,
	// DefaultWindow if 0. The JetStream context should allow at least as
	// many (jetstream.WithPublishAsyncMaxPending).
	Window int
	// Lease is how long a claim keeps other publishers off a row,
	// DefaultLease if 0. It must stay well below the stream's duplicate
	// window.
	Lease time.Duration
	// Metrics, if set, receives the publish counters and backlog gauges.
	// Only the leader sets the gauges, every five seconds; a standby
	// reports 0, so the sum or maximum over all instances is the backlog.
	Metrics *metrics.Metrics
}

// Publisher relays the outbox to JetStream. Run drives it; Kick, Flush and
// Leader are safe to call from any goroutine.
type Publisher struct {
	st     *store.Store
	js     jetstream.JetStream
	opts   Options
	logger *slog.Logger

	kick    chan struct{} // buffered 1: a pending wake-up
	flushc  chan flushReq // Flush asks the Run goroutine for rounds
	stopped chan struct{} // closed when Run returns
	leader  atomic.Bool   // the Run goroutine holds the lease
	once    sync.Once     // Run runs once

	// Owned by the Run goroutine, the only one that runs rounds.
	degraded   bool         // the last round failed; logged once per episode
	unsynced   bool         // the lease cannot be taken; logged once per episode
	lease      *store.Lease // held while leading
	del, rel   []int64      // rows of a finished round not yet deleted / released
	claimAfter time.Time    // no claim before: an earlier claim's outcome is unknown
}

type flushReq struct {
	ctx  context.Context
	done chan error // buffered 1
}

// New returns a Publisher of st's outbox to js. Nothing happens until Run.
func New(st *store.Store, js jetstream.JetStream, opts Options, logger *slog.Logger) *Publisher {
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Lease <= 0 {
		opts.Lease = DefaultLease
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Publisher{
		st:      st,
		js:      js,
		opts:    opts,
		logger:  logger.With(slog.String("component", "publish")),
		kick:    make(chan struct{}, 1),
		flushc:  make(chan flushReq),
		stopped: make(chan struct{}),
	}
}

// Kick wakes the publisher at once, as after a commit. It never blocks.
func (p *Publisher) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Leader reports whether this instance currently publishes.
func (p *Publisher) Leader() bool { return p.leader.Load() }

// Run takes part in leader election and, while leader, publishes until ctx
// is cancelled; it then releases the lease and returns nil. Every goroutine
// it starts has stopped when it returns. Run may be called once; later calls
// return an error at once.
func (p *Publisher) Run(ctx context.Context) error {
	started := false
	p.once.Do(func() { started = true })
	if !started {
		return errors.New("publisher already ran")
	}
	defer close(p.stopped)

	standby := false
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case req := <-p.flushc:
			req.done <- nil // not the leader: the leader flushes
		case <-retry.C:
			lease, err := p.st.AcquireLease(ctx, LeaseID)
			switch {
			case err == nil:
				p.unsynced, standby = false, false
				p.logger.Info("publisher leading", slog.String("stream", p.opts.Stream))
				p.lead(ctx, lease)
			case errors.Is(err, store.ErrNotLeader):
				if !standby {
					p.logger.Info("publisher standing by")
				}
				p.unsynced, standby = false, true
			case ctx.Err() != nil:
				return nil
			default:
				if !p.unsynced {
					p.logger.Warn("publisher lease unavailable", slog.Any("err", err))
				}
				p.unsynced = true
			}
			retry.Reset(standbyEvery)
		}
	}
}

// listen turns outbox notifications into Kicks until ctx is done,
// reconnecting after failures.
func (p *Publisher) listen(ctx context.Context) {
	for {
		err := store.Listen(ctx, p.opts.DSN, store.ChannelOutbox, p.logger, func(string) { p.Kick() }, p.Kick)
		if ctx.Err() != nil {
			return
		}
		p.logger.Warn("outbox listener failed", slog.Any("err", err))
		t := time.NewTimer(maxBackoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// lead publishes while this instance holds lease, until ctx is done or the
// lease is lost; it then settles its rows and releases the lease.
func (p *Publisher) lead(ctx context.Context, lease *store.Lease) {
	p.lease = lease
	p.leader.Store(true)
	defer func() {
		p.leader.Store(false)
		p.lease = nil
		// Rows of the last round that could not be settled are claimed until
		// their lease runs out; try once more before handing over.
		if err := p.settle(ctx); err != nil {
			p.logger.Warn("outbox rows left claimed", slog.Any("err", err))
		}
		lease.Release()
		p.setBacklog(0, 0)
	}()
	// The LISTEN goroutine is owned by lead: cancelled and waited for by this
	// defer, before the lease is released. It only calls Kick. It starts
	// here rather than in Run because store.Listen cannot be cancelled
	// until its first connection is made, and the lease just proved the
	// database reachable; standbys need no notifications anyway.
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	if p.opts.DSN != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.listen(lctx)
		}()
	}
	p.resetClaims(ctx)
	p.refreshBacklog(ctx)

	check := time.NewTicker(checkEvery)
	defer check.Stop()
	gauges := time.NewTicker(backlogEvery)
	defer gauges.Stop()
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	retry := time.NewTimer(0)
	retry.Stop()
	defer retry.Stop()

	// ready is always receivable: selecting on it runs a round while other
	// cases (cancellation, lease checks, Flush) still get their turn.
	ready := make(chan struct{})
	close(ready)
	wake, backingOff := true, false
	var backoff time.Duration
	for {
		var now <-chan struct{}
		if wake && !backingOff {
			now = ready
		}
		select {
		case <-ctx.Done():
			return
		case <-now:
			full, err := p.round(ctx)
			if ctx.Err() != nil || errors.Is(err, errLeaseLost) {
				return
			}
			wake = full
			if err != nil {
				backoff = min(max(2*backoff, minBackoff), maxBackoff)
				backingOff, wake = true, true
				retry.Reset(backoff)
			} else {
				backoff = 0
			}
		case <-retry.C:
			backingOff = false
		case <-p.kick:
			wake = true
		case <-poll.C:
			wake = true
		case <-gauges.C:
			p.refreshBacklog(ctx)
		case <-check.C:
			if err := p.checkLease(ctx); err != nil {
				return
			}
		case req := <-p.flushc:
			err := p.flush(ctx, req.ctx)
			req.done <- err
			if errors.Is(err, errLeaseLost) {
				return
			}
		}
	}
}

// resetClaims releases claims a previous leader (or a claim whose answer was
// lost) left behind, so that their rows are published next, in order. It
// reports whether it succeeded; if not, the claims run out on their own.
func (p *Publisher) resetClaims(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	if err := p.st.ResetOutboxClaims(cctx); err != nil {
		p.logger.Warn("outbox claims not reset", slog.Any("err", err))
		return false
	}
	return true
}

// checkLease confirms that the lease is still held, logging its loss.
func (p *Publisher) checkLease(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	if err := p.lease.Check(cctx); err != nil {
		if ctx.Err() != nil {
			return err
		}
		p.logger.Warn("publisher lease lost", slog.Any("err", err))
		return fmt.Errorf("%w: %w", errLeaseLost, err)
	}
	return nil
}

// flush runs rounds until the outbox is empty or either context is done.
func (p *Publisher) flush(runCtx, reqCtx context.Context) error {
	ctx, cancel := context.WithCancel(reqCtx)
	defer cancel()
	stop := context.AfterFunc(runCtx, cancel)
	defer stop()

	var backoff time.Duration
	for {
		full, err := p.round(ctx)
		if errors.Is(err, errLeaseLost) {
			return fmt.Errorf("flush outbox: %w", err)
		}
		if err == nil && full {
			continue
		}
		wait := 50 * time.Millisecond // new rows, or rows claimed elsewhere
		if err == nil {
			n, _, berr := p.st.OutboxBacklog(ctx)
			if berr == nil && n == 0 {
				return nil
			}
			err = berr
		}
		if err != nil {
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			wait = backoff
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			bctx, bcancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
			n, _, berr := p.st.OutboxBacklog(bctx)
			bcancel()
			if berr != nil {
				return fmt.Errorf("flush outbox: %w", errors.Join(ctx.Err(), err, berr))
			}
			if n == 0 {
				return nil
			}
			return fmt.Errorf("flush outbox: %d events remain: %w", n, errors.Join(ctx.Err(), err))
		case <-t.C:
		}
	}
}

// Flush publishes everything pending, if this instance is the leader, until
// the outbox is empty or ctx is done. It returns an error if events remain.
// On a standby it returns nil at once: the leader publishes. Flush needs Run
// to be running, since Run's goroutine does the work.
func (p *Publisher) Flush(ctx context.Context) error {
	if !p.Leader() {
		return nil
	}
	req := flushReq{ctx: ctx, done: make(chan error, 1)}
	select {
	case p.flushc <- req:
	case <-ctx.Done():
		return fmt.Errorf("flush outbox: %w", ctx.Err())
	case <-p.stopped:
		return errors.New("flush outbox: publisher stopped")
	}
	return <-req.done
}

// refreshBacklog sets the backlog gauges from the database.
func (p *Publisher) refreshBacklog(ctx context.Context) {
	if p.opts.Metrics == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	n, oldest, err := p.st.OutboxBacklog(ctx)
	if err != nil {
		return // a failing database shows in rounds and readiness
	}
	var age time.Duration
	if oldest != nil {
		age = max(time.Since(*oldest), 0)
	}
	p.setBacklog(n, age)
}

func (p *Publisher) setBacklog(n int64, age time.Duration) {
	if m := p.opts.Metrics; m != nil {
		m.OutboxBacklog.Set(float64(n))
		m.OutboxOldest.Set(age.Seconds())
	}
}
