// Package publish relays committed events to NATS JetStream, once each and
// in order per trigger.
//
// Events are published in the order of their position (store.Position: the
// id of the transaction that stored them, then their sequence number), and
// the database keeps how far publishing got. Nothing is inserted or deleted
// per event: an accepted event's row is its own place in the queue.
//
// Across all instances on one database exactly one Publisher is the leader:
// it holds a PostgreSQL advisory lock (LeaseID) and is the only one that
// publishes. The others stand by and try to take the lock every two
// seconds. The leader reads the events after its position, publishes them
// asynchronously with Nats-Msg-Id set to the event id, and moves the
// position past every event JetStream acknowledged, stopping at the first
// failure so that no event overtakes an earlier one of its trigger.
// JetStream's de-duplication window covers an event published twice, after
// a failure or around a handover.
//
// No single event can stop publishing: an event too large for the server's
// max_payload is published with a null payload and the Inlet-Payload-Omitted
// header, and a message NATS refuses for a reason retrying cannot fix is set
// aside (store.SetAside) while the events after it go on.
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
	"golang.org/x/time/rate"

	"github.com/inlet-dev/inlet/pkg/metrics"
	"github.com/inlet-dev/inlet/pkg/store"
)

// LeaseID is the advisory lock that makes one Publisher the leader.
const LeaseID int64 = 0x696e6c65745f7075 // "inlet_pu"

// Defaults for Options.
const (
	DefaultBatch      = 1000
	DefaultWindow     = 256
	DefaultPoll       = 100 * time.Millisecond
	DefaultAckTimeout = 10 * time.Second
)

// Timing of the publisher's loops.
const (
	standbyEvery = 2 * time.Second        // standby: try to take the lease
	checkEvery   = 3 * time.Second        // leader: confirm the lease is held
	backlogEvery = 5 * time.Second        // leader: refresh backlog gauges
	minBackoff   = 250 * time.Millisecond // after a failed round, doubling
	maxBackoff   = 5 * time.Second
	dbTimeout    = 5 * time.Second // a statement of the publisher
	retryBatch   = 100             // set-aside events retried per round
)

// Options configure a Publisher.
type Options struct {
	// Stream is the JetStream stream that captures SubjectPrefix; it only
	// labels log lines, EnsureStream creates it.
	Stream string
	// SubjectPrefix starts every subject: "<SubjectPrefix>.<trigger_ref>".
	SubjectPrefix string
	// Batch is how many events one round reads, DefaultBatch if 0.
	Batch int
	// Window is how many publishes may await their ack at once,
	// DefaultWindow if 0. The JetStream context should allow at least as
	// many (jetstream.WithPublishAsyncMaxPending).
	Window int
	// Poll is how often the leader looks for events when nothing woke it,
	// DefaultPoll if 0. Kick wakes it at once for events committed by this
	// instance; events committed by other instances wait for the poll.
	Poll time.Duration
	// AckTimeout bounds a round's wait for JetStream's acknowledgements,
	// DefaultAckTimeout if 0.
	AckTimeout time.Duration
	// Metrics, if set, receives the publish counters and backlog gauges.
	// Only the leader sets the gauges, every five seconds; a standby
	// reports 0, so the sum or maximum over all instances is the backlog.
	Metrics *metrics.Metrics
}

// Publisher relays stored events to JetStream. Run drives it; Kick, Flush
// and Leader are safe to call from any goroutine.
type Publisher struct {
	st     *store.Store
	js     jetstream.JetStream
	opts   Options
	logger *slog.Logger
	// Lines that can repeat for every event of a flood, one sampler each.
	omittedLog, setAsideLog rate.Sometimes

	kick    chan struct{} // buffered 1: a pending wake-up
	flushc  chan flushReq // Flush asks the Run goroutine for rounds
	stopped chan struct{} // closed when Run returns
	leader  atomic.Bool   // the Run goroutine holds the lease
	once    sync.Once     // Run runs once

	// Owned by the Run goroutine, the only one that runs rounds.
	degraded bool            // the last round failed; logged once per episode
	unsynced bool            // the lease cannot be taken; logged once per episode
	lease    *store.Lease    // held while leading
	pos      store.Position  // how far events are published, as recorded
	omit     map[string]bool // events the stream refused as too large: sent without payload next
	// streamMax is the stream's max_msg_size (0: none), read every few
	// seconds: knowing it, a message that the stream would refuse is sent
	// without its payload at once, before the events behind it.
	streamMax int64
}

type flushReq struct {
	ctx  context.Context
	done chan error // buffered 1
}

// New returns a Publisher of st's events to js. Nothing happens until Run.
func New(st *store.Store, js jetstream.JetStream, opts Options, logger *slog.Logger) *Publisher {
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = DefaultAckTimeout
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Publisher{
		st:          st,
		js:          js,
		opts:        opts,
		logger:      logger.With(slog.String("component", "publish")),
		omittedLog:  rate.Sometimes{First: 10, Interval: time.Minute},
		setAsideLog: rate.Sometimes{First: 20, Interval: 10 * time.Second},
		kick:        make(chan struct{}, 1),
		flushc:      make(chan flushReq),
		stopped:     make(chan struct{}),
		omit:        make(map[string]bool),
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

// lead publishes while this instance holds lease, until ctx is done or the
// lease is lost; it then releases the lease.
func (p *Publisher) lead(ctx context.Context, lease *store.Lease) {
	pctx, cancel := context.WithTimeout(ctx, dbTimeout)
	pos, err := p.st.PublishPosition(pctx)
	cancel()
	if err != nil {
		lease.Release()
		if ctx.Err() == nil && !p.unsynced {
			p.logger.Warn("publisher cannot read its position", slog.Any("err", err))
			p.unsynced = true
		}
		return
	}
	p.pos, p.lease = pos, lease
	p.leader.Store(true)
	p.logger.Info("publisher leading", slog.String("stream", p.opts.Stream))
	defer func() {
		p.leader.Store(false)
		p.lease = nil
		clear(p.omit)
		lease.Release()
		p.setGauges(0, 0, 0)
	}()
	p.refreshGauges(ctx)
	p.refreshStreamMax(ctx)

	check := time.NewTicker(checkEvery)
	defer check.Stop()
	gauges := time.NewTicker(backlogEvery)
	defer gauges.Stop()
	poll := time.NewTicker(p.opts.Poll)
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
			more, err := p.round(ctx)
			if ctx.Err() != nil {
				return
			}
			wake = more
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
			p.refreshGauges(ctx)
			p.refreshStreamMax(ctx)
		case <-check.C:
			if err := p.checkLease(ctx); err != nil {
				return
			}
		case req := <-p.flushc:
			req.done <- p.flush(ctx, req.ctx)
		}
	}
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

// flush runs rounds until no event waits or either context is done.
func (p *Publisher) flush(runCtx, reqCtx context.Context) error {
	ctx, cancel := context.WithCancel(reqCtx)
	defer cancel()
	stop := context.AfterFunc(runCtx, cancel)
	defer stop()

	var backoff time.Duration
	for {
		more, err := p.round(ctx)
		if err == nil && more {
			continue
		}
		wait := 20 * time.Millisecond // events of transactions still running
		if err == nil {
			n, _, berr := p.backlog(ctx)
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
			n, _, berr := p.backlog(context.WithoutCancel(ctx))
			if berr != nil {
				return fmt.Errorf("flush: %w", errors.Join(ctx.Err(), err, berr))
			}
			if n == 0 {
				return nil
			}
			return fmt.Errorf("flush: %d events remain unpublished: %w", n, errors.Join(ctx.Err(), err))
		case <-t.C:
		}
	}
}

// Flush publishes everything waiting, if this instance is the leader, until
// nothing waits or ctx is done. It returns an error if events remain. On a
// standby it returns nil at once: the leader publishes. Flush needs Run to
// be running, since Run's goroutine does the work.
func (p *Publisher) Flush(ctx context.Context) error {
	if !p.Leader() {
		return nil
	}
	req := flushReq{ctx: ctx, done: make(chan error, 1)}
	select {
	case p.flushc <- req:
	case <-ctx.Done():
		return fmt.Errorf("flush: %w", ctx.Err())
	case <-p.stopped:
		return errors.New("flush: publisher stopped")
	}
	return <-req.done
}

// backlog counts the events after the position.
func (p *Publisher) backlog(ctx context.Context) (int64, *time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	return p.st.Backlog(ctx, p.pos)
}

// refreshGauges sets the backlog and set-aside gauges from the database.
func (p *Publisher) refreshGauges(ctx context.Context) {
	if p.opts.Metrics == nil {
		return
	}
	n, first, err := p.backlog(ctx)
	if err != nil {
		return // a failing database shows in rounds and readiness
	}
	var age time.Duration
	if first != nil {
		age = max(time.Since(*first), 0)
	}
	cctx, cancel := context.WithTimeout(ctx, dbTimeout)
	aside, err := p.st.CountSetAside(cctx)
	cancel()
	if err != nil {
		return
	}
	p.setGauges(n, age, aside)
}

// refreshStreamMax reads the stream's max_msg_size. A stream that cannot be
// read keeps the last value: publishing finds out what is wrong.
func (p *Publisher) refreshStreamMax(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	s, err := p.js.Stream(ctx, p.opts.Stream)
	if err != nil {
		return
	}
	p.streamMax = max(int64(s.CachedInfo().Config.MaxMsgSize), 0)
}

func (p *Publisher) setGauges(n int64, age time.Duration, aside int64) {
	if m := p.opts.Metrics; m != nil {
		m.OutboxBacklog.Set(float64(n))
		m.OutboxOldest.Set(age.Seconds())
		m.SetAside.Set(float64(aside))
	}
}
