package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/pkg/store"
)

// errClaimsUnknown holds rounds back after a claim that may have taken rows
// without saying which, until that claim's lease has run out.
var errClaimsUnknown = errors.New("waiting for the lease of a failed claim to run out")

// errLeaseLost ends leadership: another instance may now publish.
var errLeaseLost = errors.New("publisher lease lost")

// errDisconnected stops a round while the NATS connection is down, so that
// messages are not queued in the client's reconnect buffer.
var errDisconnected = errors.New("nats is not connected")

// round claims one batch, publishes it and settles its rows. full reports a
// batch of Options.Batch rows, so more are likely waiting. A failure is
// logged once when publishing becomes degraded, and its recovery once.
func (p *Publisher) round(ctx context.Context) (full bool, err error) {
	full, err = p.publishBatch(ctx)
	switch {
	case errors.Is(err, errLeaseLost):
		// Logged by checkLease; not a publishing failure.
	case err != nil && ctx.Err() == nil:
		if !p.degraded {
			p.logger.Warn("publishing degraded, events wait in the outbox", slog.Any("err", err))
		}
		p.degraded = true
	case err == nil && p.degraded:
		p.logger.Info("publishing recovered")
		p.degraded = false
	}
	return full, err
}

func (p *Publisher) publishBatch(ctx context.Context) (bool, error) {
	// A row left claimed by the previous round would be skipped by the
	// claim, letting later events of its trigger overtake it.
	if err := p.settle(ctx); err != nil {
		return false, err
	}
	if !p.js.Conn().IsConnected() {
		return false, errDisconnected
	}
	// A lease lost silently (its session ended) lets a standby take over;
	// checking before each claim keeps two leaders from claiming at once
	// for longer than one round.
	if err := p.checkLease(ctx); err != nil {
		return false, err
	}
	if wait := time.Until(p.claimAfter); wait > 0 {
		return false, fmt.Errorf("%w for another %v", errClaimsUnknown, wait.Round(time.Millisecond))
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	// Not cancelled by ctx: a claim committed while its answer is lost
	// holds rows that later rounds skip, so that newer events of their
	// triggers would overtake them.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	start := time.Now()
	claimed, err := p.st.ClaimOutbox(cctx, p.opts.Batch, p.opts.Lease)
	cancel()
	if err != nil {
		if !neverSent(err) && !p.resetClaims(ctx) {
			p.claimAfter = start.Add(p.opts.Lease)
		}
		return false, err
	}
	if len(claimed) == 0 {
		return false, nil
	}
	ok, perr := p.send(ctx, claimed)
	for _, c := range claimed[:ok] {
		p.del = append(p.del, c.Seq)
	}
	for _, c := range claimed[ok:] {
		p.rel = append(p.rel, c.Seq)
	}
	if perr != nil {
		p.count(func() { p.opts.Metrics.PublishErrors.Add(float64(len(claimed) - ok)) })
	}
	if err := p.settle(ctx); err != nil {
		return false, errors.Join(perr, err)
	}
	return perr == nil && len(claimed) >= p.opts.Batch, perr
}

// send publishes claimed in order, with at most Options.Window acks
// outstanding, and waits for the acks. It returns how many leading events
// are done (acknowledged, or dropped as unpublishable) and, if that is not
// all of them, why the next one failed. Events after a failure are not
// counted as done even if acknowledged: they are published again, and
// JetStream drops the copies by Nats-Msg-Id.
func (p *Publisher) send(ctx context.Context, claimed []store.Pending) (int, error) {
	deadline := time.Now().Add(ackTimeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	futs := make([]jetstream.PubAckFuture, len(claimed)) // nil: dropped
	nc := p.js.Conn()

	ok, sent := 0, 0
	await := func() error {
		e := &claimed[ok].Event
		f := futs[ok]
		if f == nil {
			ok++
			return nil
		}
		select {
		case <-f.Ok():
			p.count(func() {
				p.opts.Metrics.Published.Inc()
				p.opts.Metrics.PublishLag.Observe(time.Since(e.ReceivedAt).Seconds())
			})
			ok++
			return nil
		case err := <-f.Err():
			return fmt.Errorf("publish event %s: %w", e.ID, err)
		case <-ctx.Done():
			return fmt.Errorf("wait for ack of event %s: %w", e.ID, ctx.Err())
		}
	}
	for sent < len(claimed) {
		if sent-ok >= p.opts.Window {
			if err := await(); err != nil {
				return ok, err
			}
			continue
		}
		if !nc.IsConnected() {
			return ok, errDisconnected
		}
		e := &claimed[sent].Event
		msg, err := Message(p.opts.SubjectPrefix, e)
		if err != nil {
			// Retrying cannot help, and holding the row would stop every
			// trigger's events behind it. The event stays in the database.
			p.logger.Error("event cannot be published, dropped from the outbox",
				slog.String("event_id", e.ID), slog.String("trigger_ref", e.TriggerRef), slog.Any("err", err))
			sent++
			continue
		}
		// No client-side retry: a retried message could land after the
		// ones sent behind it. A failed round is retried as a whole.
		f, err := p.js.PublishMsgAsync(msg, jetstream.WithRetryAttempts(0),
			jetstream.WithStallWait(max(time.Until(deadline), time.Millisecond)))
		if err != nil {
			return ok, fmt.Errorf("publish event %s: %w", e.ID, err)
		}
		futs[sent] = f
		sent++
	}
	for ok < sent {
		if err := await(); err != nil {
			return ok, err
		}
	}
	return ok, nil
}

// settle deletes the rows of published events and releases the others. It
// outlives ctx briefly so that a shutdown does not leave rows claimed.
func (p *Publisher) settle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	if len(p.del) > 0 {
		if err := p.st.DeleteOutbox(ctx, p.del); err != nil {
			return err
		}
		p.del = nil
	}
	if len(p.rel) > 0 {
		if err := p.st.ReleaseOutbox(ctx, p.rel); err != nil {
			return err
		}
		p.rel = nil
	}
	return nil
}

// count runs f if metrics are enabled.
func (p *Publisher) count(f func()) {
	if p.opts.Metrics != nil {
		f()
	}
}

// neverSent reports whether err shows that a statement did not reach the
// database, because no connection could be made.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
