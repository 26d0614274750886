package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/store"
)

// errLeaseLost ends leadership: another instance may now publish.
var errLeaseLost = errors.New("publisher lease lost")

// errDisconnected stops a round while the NATS connection is down, so that
// messages are not queued in the client's reconnect buffer.
var errDisconnected = errors.New("nats is not connected")

// jsErrCodeHeaderTooLarge is JetStream's "header size exceeds maximum
// allowed" (nats-server's JSStreamHeaderExceedsMaximumErr), which the client
// library has no constant for.
const jsErrCodeHeaderTooLarge jetstream.ErrorCode = 10097

// round publishes one batch and records how far it got. more reports a
// full batch, so more events are likely waiting. A failure is logged once
// when publishing becomes degraded, and its recovery once.
func (p *Publisher) round(ctx context.Context) (more bool, err error) {
	more, err = p.publishBatch(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		if !p.degraded {
			p.logger.Warn("publishing degraded, events wait in the database", slog.Any("err", err))
		}
		p.degraded = true
	case err == nil && p.degraded:
		p.logger.Info("publishing recovered")
		p.degraded = false
	}
	return more, err
}

func (p *Publisher) publishBatch(ctx context.Context) (bool, error) {
	if !p.js.Conn().IsConnected() {
		return false, errDisconnected
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	prog := store.PublishProgress{To: p.pos}
	rerr := p.retrySetAside(ctx, &prog)
	rctx, cancel := context.WithTimeout(ctx, dbTimeout)
	pending, err := p.st.PendingEvents(rctx, p.pos, p.opts.Batch)
	cancel()
	if err != nil {
		return false, errors.Join(rerr, err, p.record(ctx, prog))
	}
	done, aside, perr := p.send(ctx, pending)
	if done > 0 {
		prog.To = pending[done-1].Pos
		for _, pe := range pending[:done] {
			delete(p.omit, pe.Event.ID)
		}
	}
	prog.SetAside = append(prog.SetAside, aside...)
	if err := p.record(ctx, prog); err != nil {
		return false, errors.Join(rerr, perr, err)
	}
	if err := errors.Join(rerr, perr); err != nil {
		p.count(func() { p.opts.Metrics.PublishErrors.Add(float64(len(pending) - done)) })
		return false, err
	}
	return len(pending) >= p.opts.Batch, nil
}

// record saves a round's progress. It outlives ctx briefly, so that a
// shutdown does not make the next leader publish the round again.
func (p *Publisher) record(ctx context.Context, prog store.PublishProgress) error {
	if prog.To == p.pos && len(prog.SetAside) == 0 && len(prog.Published) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dbTimeout)
	defer cancel()
	if err := p.st.RecordProgress(ctx, prog); err != nil {
		return err
	}
	p.pos = prog.To
	if n := len(prog.SetAside); n > 0 {
		p.count(func() { p.opts.Metrics.SetAsideTotal.Add(float64(n)) })
		p.refreshGauges(ctx)
	}
	return nil
}

// attempt is one event of a round on its way to JetStream.
type attempt struct {
	ev      *event.Event
	fut     jetstream.PubAckFuture // nil when set aside unsent
	omitted bool                   // sent without its payload
	aside   string                 // why it was set aside unsent
}

// send publishes pending in order, with at most Options.Window acks
// outstanding, and waits for the acks. It returns how many leading events
// are done (acknowledged, or set aside) and, if that is not all of them,
// why the next one failed. Events after a failure are not counted as done
// even if acknowledged: they are published again, and JetStream drops the
// copies by Nats-Msg-Id.
func (p *Publisher) send(ctx context.Context, pending []store.Pending) (done int, aside []store.SetAside, err error) {
	deadline := time.Now().Add(p.opts.AckTimeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	nc := p.js.Conn()
	limit := p.limit()
	atts := make([]attempt, len(pending))

	await := func() error {
		a := &atts[done]
		if a.aside != "" {
			aside = append(aside, p.setAside(a.ev, a.aside))
			done++
			return nil
		}
		select {
		case <-a.fut.Ok():
			p.published(a, limit)
			done++
			return nil
		case err := <-a.fut.Err():
			if reason, ok := p.refused(a, err); ok {
				aside = append(aside, p.setAside(a.ev, reason))
				done++
				return nil
			}
			return fmt.Errorf("publish event %s: %w", a.ev.ID, err)
		case <-ctx.Done():
			return fmt.Errorf("wait for ack of event %s: %w", a.ev.ID, ctx.Err())
		}
	}
	sent := 0
	for sent < len(pending) {
		if sent-done >= p.opts.Window {
			if err := await(); err != nil {
				return done, aside, err
			}
			continue
		}
		if !nc.IsConnected() {
			return done, aside, errDisconnected
		}
		a := &atts[sent]
		a.ev = &pending[sent].Event
		msg, reason := p.build(a, limit)
		if reason != "" {
			a.aside = reason
			sent++
			continue
		}
		// No client-side retry: a retried message could land after the
		// ones sent behind it. A failed round is retried as a whole.
		f, err := p.js.PublishMsgAsync(msg, jetstream.WithRetryAttempts(0),
			jetstream.WithStallWait(max(time.Until(deadline), time.Millisecond)))
		if err != nil {
			if reason, ok := p.refused(a, err); ok {
				a.aside = reason
				sent++
				continue
			}
			for done < sent { // settle what went out before it
				if werr := await(); werr != nil {
					break
				}
			}
			return done, aside, fmt.Errorf("publish event %s: %w", a.ev.ID, err)
		}
		a.fut = f
		sent++
	}
	for done < sent {
		if err := await(); err != nil {
			return done, aside, err
		}
	}
	return done, aside, nil
}

// limit is the largest message NATS takes now: the server's max_payload,
// or the stream's max_msg_size when that is smaller; 0 when unknown.
func (p *Publisher) limit() int64 {
	limit := p.js.Conn().MaxPayload()
	if p.streamMax > 0 && (limit <= 0 || p.streamMax < limit) {
		limit = p.streamMax
	}
	return limit
}

// build makes a's message, leaving the payload out when the whole message
// would exceed limit (see Publisher.limit) or when the
// stream refused it as too large before. It returns a reason instead when
// no message of a's event can be published.
func (p *Publisher) build(a *attempt, limit int64) (*nats.Msg, string) {
	omit := p.omit[a.ev.ID]
	msg, err := Message(p.opts.SubjectPrefix, a.ev, omit)
	if err != nil {
		return nil, err.Error()
	}
	if limit > 0 && Size(msg) > limit && !omit {
		omit = true
		msg, _ = Message(p.opts.SubjectPrefix, a.ev, true)
	}
	if limit > 0 && Size(msg) > limit {
		return nil, fmt.Sprintf("message of %d bytes is too large for NATS even without its payload: the server or stream takes at most %d bytes", Size(msg), limit)
	}
	a.omitted = omit
	return msg, ""
}

// refused reports whether err, NATS's answer to a's message, is one that
// publishing again cannot change, and why. A message refused as too large
// with its payload is not: the next round sends it without.
func (p *Publisher) refused(a *attempt, err error) (string, bool) {
	tooLarge := errors.Is(err, nats.ErrMaxPayload)
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamMessageExceedsMaximum:
			tooLarge = true
		case jsErrCodeHeaderTooLarge:
			return "the stream refused the message: " + apiErr.Description, true
		}
	}
	if !tooLarge {
		return "", false
	}
	if !a.omitted {
		p.omit[a.ev.ID] = true
		return "", false
	}
	return "the message is too large for NATS even without its payload: " + err.Error(), true
}

// published counts an acknowledged message.
func (p *Publisher) published(a *attempt, limit int64) {
	p.count(func() {
		p.opts.Metrics.Published.Inc()
		p.opts.Metrics.PublishLag.Observe(time.Since(a.ev.ReceivedAt).Seconds())
		if a.omitted {
			p.opts.Metrics.PayloadOmitted.Inc()
		}
	})
	if a.omitted {
		p.omittedLog.Do(func() {
			p.logger.Warn("event published without its payload, too large for NATS",
				slog.String("event_id", a.ev.ID), slog.String("trigger_ref", a.ev.TriggerRef),
				slog.Int("payload_bytes", len(a.ev.Payload)), slog.Int64("max_payload", limit))
		})
	}
}

// setAside logs and returns the record of an event NATS will not take.
func (p *Publisher) setAside(e *event.Event, reason string) store.SetAside {
	p.setAsideLog.Do(func() {
		p.logger.Error("event set aside, NATS refuses it for good; the events after it go on",
			slog.String("event_id", e.ID), slog.String("trigger_ref", e.TriggerRef), slog.String("reason", reason))
	})
	return store.SetAside{EventID: e.ID, TriggerRef: e.TriggerRef, Reason: reason}
}

// retrySetAside publishes the set-aside events an operator asked to retry,
// adding the outcome to prog. It stops at the first failure that retrying
// may fix, leaving the rest requested.
func (p *Publisher) retrySetAside(ctx context.Context, prog *store.PublishProgress) error {
	rctx, cancel := context.WithTimeout(ctx, dbTimeout)
	evs, err := p.st.RetryRequested(rctx, retryBatch)
	cancel()
	if err != nil || len(evs) == 0 {
		return err
	}
	// The operator asks after changing something, maybe the stream.
	p.refreshStreamMax(ctx)
	limit := p.limit()
	for i := range evs {
		a := &attempt{ev: &evs[i]}
		msg, reason := p.build(a, limit)
		if reason == "" {
			pctx, cancel := context.WithTimeout(ctx, p.opts.AckTimeout)
			_, err = p.js.PublishMsg(pctx, msg, jetstream.WithRetryAttempts(0))
			cancel()
			if err == nil {
				p.published(a, limit)
				delete(p.omit, a.ev.ID)
				prog.Published = append(prog.Published, a.ev.ID)
				p.logger.Info("set-aside event published on request", slog.String("event_id", a.ev.ID))
				continue
			}
			var ok bool
			if reason, ok = p.refused(a, err); !ok {
				return fmt.Errorf("publish set-aside event %s: %w", a.ev.ID, err)
			}
		}
		prog.SetAside = append(prog.SetAside, p.setAside(a.ev, reason))
		delete(p.omit, a.ev.ID)
	}
	return nil
}

// count runs f if metrics are enabled.
func (p *Publisher) count(f func()) {
	if p.opts.Metrics != nil {
		f()
	}
}
