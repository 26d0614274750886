// Package retention deletes the rows inlet no longer needs: events, audit
// records and finished deliveries older than their retention.
//
// One instance prunes at a time: a pass takes a PostgreSQL advisory lock
// (LeaseID) and gives it up when it ends; an instance that finds it taken
// skips that pass. A pass walks each table in the order of an index, in
// batches of Options.Batch rows, each batch one short statement of its own
// followed by a pause four times as long as the batch took (Options.Duty),
// so that pruning a large backlog keeps one database connection busy a
// fifth of the time at most and never holds locks for long.
//
// What is never deleted, whatever its age: an event not yet published to
// NATS (after the publish position), an event set aside by the publisher
// (it was never published; an operator may still retry it), and an event
// with a pending delivery, with that delivery. An event's finished
// deliveries go with it: a delivery is kept at most as long as its event.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/inlet-dev/inlet/pkg/metrics"
	"github.com/inlet-dev/inlet/pkg/store"
)

// LeaseID is the advisory lock held by the instance that prunes.
const LeaseID int64 = 0x696e6c65745f7265 // "inlet_re"

// Defaults for Options.
const (
	DefaultInterval = 5 * time.Minute
	DefaultBatch    = 2000
	DefaultPause    = 20 * time.Millisecond
	// DefaultDuty: at 0.5 the receiver's p99 doubled under load while a
	// backlog was pruned; see bench/README.md.
	DefaultDuty = 0.2
)

// stmtTimeout bounds one batch's statement.
const stmtTimeout = 30 * time.Second

// Options configure a Pruner.
type Options struct {
	// Events, Audit and Deliveries are how long each is kept; 0 keeps
	// them forever.
	Events, Audit, Deliveries time.Duration
	// Interval is the time between passes, DefaultInterval if 0.
	Interval time.Duration
	// Batch is how many rows one statement examines, DefaultBatch if 0.
	Batch int
	// Pause is the shortest wait after a batch, DefaultPause if 0.
	Pause time.Duration
	// Duty is the share of a pass's time its statements may take, in
	// (0, 1], DefaultDuty if 0: after a batch that took d the pruner
	// waits d×(1−Duty)/Duty, if that is longer than Pause.
	Duty float64
	// Metrics, if set, counts the deleted rows.
	Metrics *metrics.Metrics
	// Now is the clock, time.Now if nil.
	Now func() time.Time
}

// Pruner deletes expired rows. Run drives it; Prune runs one pass.
type Pruner struct {
	st     *store.Store
	opts   Options
	logger *slog.Logger
	mu     sync.Mutex // one pass at a time in this process
}

// New returns a Pruner of st's rows. Nothing happens until Run or Prune.
func New(st *store.Store, opts Options, logger *slog.Logger) *Pruner {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Pause <= 0 {
		opts.Pause = DefaultPause
	}
	if opts.Duty <= 0 || opts.Duty > 1 {
		opts.Duty = DefaultDuty
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Pruner{st: st, opts: opts, logger: logger.With(slog.String("component", "retention"))}
}

// Run prunes a minute after it is called (not at once: the start of an
// instance has better uses for the database), then every Interval, until
// ctx is cancelled; it then returns nil. Cancelling ctx stops a pass
// between two batches or within one statement, whose deletes are then
// rolled back.
func (p *Pruner) Run(ctx context.Context) error {
	t := time.NewTimer(min(time.Minute, p.opts.Interval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		t.Reset(p.opts.Interval)
		start := time.Now()
		n, err := p.Prune(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, store.ErrNotLeader):
			p.logger.Debug("another instance prunes")
		case err != nil:
			p.logger.Warn("pruning failed", slog.Any("err", err), pruned(n), slog.Duration("duration", time.Since(start)))
		case n.Total() > 0:
			p.logger.Info("pruned", pruned(n), slog.Duration("duration", time.Since(start)))
		default:
			p.logger.Debug("nothing to prune", slog.Duration("duration", time.Since(start)))
		}
	}
}

// pruned is the log attribute of a pass's counts.
func pruned(n store.Pruned) slog.Attr {
	return slog.Group("deleted", slog.Int64("events", n.Events), slog.Int64("deliveries", n.Deliveries),
		slog.Int64("delivery_attempts", n.DeliveryAttempts), slog.Int64("audit", n.Audit),
		slog.Int64("usage_minutes", n.UsageMinutes))
}

// Prune runs one pass: it takes the lease, deletes every expired row in
// batches, and gives the lease up. It returns store.ErrNotLeader, having
// deleted nothing, when another instance holds the lease. On error the
// counts say what was deleted before it.
func (p *Pruner) Prune(ctx context.Context) (store.Pruned, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var total store.Pruned
	lease, err := p.st.AcquireLease(ctx, LeaseID)
	if err != nil {
		return total, err
	}
	defer lease.Release()

	now := p.opts.Now()
	count := func(n store.Pruned) {
		total.Add(n)
		if m := p.opts.Metrics; m != nil {
			for table, v := range map[string]int64{"events": n.Events, "deliveries": n.Deliveries,
				"delivery_attempts": n.DeliveryAttempts, "audit_log": n.Audit, "usage_minutes": n.UsageMinutes} {
				if v > 0 {
					m.RetentionDeleted.WithLabelValues(table).Add(float64(v))
				}
			}
		}
	}
	// Events first: their finished deliveries go with them, which
	// leaves fewer for the deliveries' own walk.
	if d := p.opts.Events; d > 0 {
		err := walk(ctx, p, lease, store.Cursor{}, func(ctx context.Context, c store.Cursor) (store.PruneStep[store.Cursor], error) {
			return p.st.PruneEvents(ctx, now.Add(-d), c, p.opts.Batch)
		}, count)
		if err != nil {
			return total, err
		}
	}
	if d := p.opts.Deliveries; d > 0 {
		err := walk(ctx, p, lease, "", func(ctx context.Context, c string) (store.PruneStep[string], error) {
			return p.st.PruneDeliveries(ctx, now.Add(-d), c, p.opts.Batch)
		}, count)
		if err != nil {
			return total, err
		}
	}
	if d := p.opts.Audit; d > 0 {
		err := walk(ctx, p, lease, int64(0), func(ctx context.Context, c int64) (store.PruneStep[int64], error) {
			return p.st.PruneAudit(ctx, now.Add(-d), c, p.opts.Batch)
		}, count)
		if err != nil {
			return total, err
		}
	}
	// The per-minute counts behind the health readings are needed for two
	// hours only, whatever the retentions.
	n, err := p.st.PruneUsageMinutes(ctx)
	if err != nil {
		return total, err
	}
	count(store.Pruned{UsageMinutes: n})
	return total, nil
}

// walk runs step from cursor c until it is done, pausing between batches
// and confirming before each that the lease is still held.
func walk[C any](ctx context.Context, p *Pruner, lease *store.Lease, c C,
	step func(context.Context, C) (store.PruneStep[C], error), count func(store.Pruned)) error {
	for {
		if err := lease.Check(ctx); err != nil {
			return fmt.Errorf("retention lease lost: %w", err)
		}
		start := time.Now()
		sctx, cancel := context.WithTimeout(ctx, stmtTimeout)
		st, err := step(sctx, c)
		cancel()
		if err != nil {
			return err
		}
		count(st.Pruned)
		if st.Done {
			return nil
		}
		c = st.Next
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(p.opts.Pause, time.Duration(float64(time.Since(start))*(1-p.opts.Duty)/p.opts.Duty))):
		}
	}
}
