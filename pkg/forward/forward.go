// Package forward sends stored events to their trigger's destinations.
//
// The deliveries are rows the writer commits with each event, one per
// enabled destination; the Forwarder claims the due ones, a few at a time
// per destination, for a lease a little longer than an attempt may take,
// sends each as a signed POST and records the attempt with the delivery's
// next state in one transaction. Instances share the work through the
// claims: an instance that dies mid-attempt leaves the delivery to whoever
// claims it after the lease, so that a delivery is attempted at least once
// and never by two instances at the same time.
//
// Each destination has its own HTTP client (its connections are reused) and
// its own bound on concurrent attempts, so that a slow or dead destination
// holds only its own deliveries. Its circuit breaker, kept in the database
// by the store, holds its attempts after failures in a row and lets one
// probe through at a time.
//
// Nothing a destination keeps secret (its signing secrets, its headers'
// values) is logged or returned; an attempt's error names what happened
// without the URL.
package forward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/inlet-dev/inlet/pkg/destination"
	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/metrics"
	"github.com/inlet-dev/inlet/pkg/netguard"
	"github.com/inlet-dev/inlet/pkg/store"
)

// Defaults of Options.
const (
	DefaultPoll         = time.Second
	DefaultObserveEvery = 10 * time.Second
	// leaseSlack is how much longer than its timeout an attempt's claim
	// lasts: the time to record the attempt once the answer is in. An
	// instance that dies mid-attempt holds its deliveries this long.
	leaseSlack = 15 * time.Second
	// idleClient is how long a destination's client with nothing to do
	// keeps its connections.
	idleClient = 5 * time.Minute
	// minRoundGap spaces the rounds that look for due deliveries: the
	// commits and attempts that wake the forwarder come by the thousand
	// a second, and a round per wake would cost the database more than
	// the deliveries themselves.
	minRoundGap = 10 * time.Millisecond
	// busyRoundGap spaces them while the write path is saturated
	// (Options.Busy): accepting webhooks comes first, and deliveries
	// catch up when the load eases.
	busyRoundGap = 100 * time.Millisecond
	// finishLinger and maxFinishBatch bound how long, and for how many
	// attempts, results wait to be recorded together.
	finishLinger   = 5 * time.Millisecond
	maxFinishBatch = 256
)

// Options configures a Forwarder.
type Options struct {
	Store *store.Store
	// Guard judges every address dialed; nil refuses every special range.
	Guard *netguard.Guard
	// UserAgent is sent with every request ("inlet/<version>").
	UserAgent string
	// Poll is how often due deliveries are looked for when nothing wakes
	// the forwarder (DefaultPoll).
	Poll time.Duration
	// ObserveEvery is how often the pending deliveries are counted for
	// the metrics (DefaultObserveEvery).
	ObserveEvery time.Duration
	// Busy, if set, reports whether the write path is saturated (requests
	// wait for the database); the forwarder then looks for deliveries
	// ten times less often, so that forwarding never takes capacity
	// from accepting.
	Busy    func() bool
	Metrics *metrics.Metrics
	Logger  *slog.Logger
}

// Forwarder claims due deliveries and attempts them. Run drives it; Kick
// wakes it; Close stops it. Its methods are safe for concurrent use.
type Forwarder struct {
	o   Options
	log *slog.Logger

	kick    chan struct{}
	refresh atomic.Bool
	full    atomic.Bool // Wake asked for a full look
	// forwarding maps the triggers with enabled destinations to them, so
	// that Kick wakes the forwarder only for events that have deliveries,
	// and names the destinations to claim for.
	forwarding atomic.Pointer[map[int64][]string]

	mu      sync.Mutex
	dests   map[string]*dest
	closing bool
	// hot names the destinations that may have deliveries due now: those
	// of a trigger that just stored an event, and those whose last claim
	// filled every slot. A round claims for them without looking; the
	// full look (DueDestinations) runs every Poll, for retries that fall
	// due and circuits that may probe.
	hot map[string]struct{}

	// abort cancels the attempts in flight when Close runs out of time.
	abortCtx context.Context
	abort    context.CancelFunc
	attempts sync.WaitGroup

	// results carries finished attempts to the finisher, which records
	// them in batches; Close closes it once the attempts are done.
	results   chan store.AttemptResult
	finishing sync.WaitGroup
	started   bool // guarded by mu: Run started the finisher
	slot      int  // spreads the statistics of instances over rows
}

// dest is what the forwarder keeps of a destination between attempts.
type dest struct {
	client *client
	// Guarded by Forwarder.mu.
	cfg         *destination.Destination // as of updatedAt
	updatedAt   time.Time
	inFlight    int
	maxInFlight int
	more        bool                // the last claim filled every slot
	held        map[string]struct{} // ids of the deliveries in flight
	lastUsed    time.Time
	failLog     rate.Sometimes
}

// New returns a Forwarder; call Run to start it.
func New(o Options) *Forwarder {
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.ObserveEvery <= 0 {
		o.ObserveEvery = DefaultObserveEvery
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Forwarder{
		o:       o,
		log:     o.Logger.With("component", "forwarder"),
		kick:    make(chan struct{}, 1),
		dests:   map[string]*dest{},
		results: make(chan store.AttemptResult, 4*maxFinishBatch),
		slot:    rand.IntN(16),
	}
	f.abortCtx, f.abort = context.WithCancel(context.Background())
	f.forwarding.Store(&map[int64][]string{})
	f.hot = map[string]struct{}{}
	f.refresh.Store(true)
	return f
}

// Kick wakes the forwarder after an event of triggerID was committed, if
// that trigger has a destination.
func (f *Forwarder) Kick(triggerID int64) {
	ids := (*f.forwarding.Load())[triggerID]
	if len(ids) == 0 {
		return
	}
	f.mu.Lock()
	for _, id := range ids {
		f.hot[id] = struct{}{}
	}
	f.mu.Unlock()
	f.wake()
}

// Refresh makes the forwarder reload which triggers have destinations,
// and read every destination's settings again; call it when a trigger or
// a destination changes.
func (f *Forwarder) Refresh() {
	f.mu.Lock()
	for _, w := range f.dests {
		w.cfg = nil
	}
	f.mu.Unlock()
	f.refresh.Store(true)
	f.wake()
}

// Wake has the forwarder look for due deliveries of every destination
// now, as after deliveries were made due by hand.
func (f *Forwarder) Wake() {
	f.full.Store(true)
	f.wake()
}

func (f *Forwarder) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Run looks for due deliveries until ctx is canceled: when woken (at most
// every minRoundGap), and every Poll. The attempts it starts outlive it;
// Close waits for them and for their results to be recorded.
func (f *Forwarder) Run(ctx context.Context) error {
	f.mu.Lock()
	if !f.started && !f.closing {
		f.started = true
		f.finishing.Add(1)
		go f.finisher()
	}
	f.mu.Unlock()
	poll := time.NewTicker(f.o.Poll)
	defer poll.Stop()
	observe := time.NewTicker(f.o.ObserveEvery)
	defer observe.Stop()
	f.observe(ctx)
	full := true
	for {
		if f.refresh.Swap(false) {
			if err := f.loadForwarding(ctx); err != nil {
				f.refresh.Store(true)
			}
		}
		f.round(ctx, full || f.full.Swap(false))
		full = false
		last := time.Now()
		select {
		case <-ctx.Done():
			return nil
		case <-f.kick:
		case <-poll.C:
			full = true
		case <-observe.C:
			f.observe(ctx)
		}
		gap := minRoundGap
		if f.o.Busy != nil && f.o.Busy() {
			gap = busyRoundGap
		}
		if wait := gap - time.Since(last); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
	}
}

func (f *Forwarder) loadForwarding(ctx context.Context) error {
	m, err := f.o.Store.ForwardingDestinations(ctx)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("cannot load the triggers with destinations", slog.Any("err", err))
		}
		return err
	}
	f.forwarding.Store(&m)
	return nil
}

// round claims what destinations with due deliveries have room for and
// starts the attempts: the hot destinations, and with full, every
// destination DueDestinations finds.
func (f *Forwarder) round(ctx context.Context, full bool) {
	var due []store.Due
	if full {
		var err error
		if due, err = f.o.Store.DueDestinations(ctx); err != nil {
			if ctx.Err() == nil {
				f.log.Warn("cannot look for due deliveries", slog.Any("err", err))
			}
			return
		}
	}
	f.mu.Lock()
	for id := range f.hot {
		if !slices.ContainsFunc(due, func(d store.Due) bool { return d.ID == id }) {
			due = append(due, store.Due{ID: id})
		}
	}
	clear(f.hot)
	f.mu.Unlock()
	for _, d := range due {
		if ctx.Err() != nil {
			return
		}
		f.fill(ctx, d)
	}
	if full {
		f.dropIdle(due)
	}
}

// fill claims due deliveries of one destination up to its max_in_flight
// and starts an attempt for each. The destination's settings are read
// again only when they changed.
func (f *Forwarder) fill(ctx context.Context, due store.Due) {
	f.mu.Lock()
	w := f.dests[due.ID]
	if f.closing || (w != nil && w.inFlight >= w.maxInFlight) {
		f.mu.Unlock()
		return
	}
	// A hot destination (no UpdatedAt) uses the settings last read; a
	// change reaches it through Refresh, which drops them.
	var cfg *destination.Destination
	if w != nil && w.cfg != nil && (due.UpdatedAt.IsZero() || w.updatedAt.Equal(due.UpdatedAt)) {
		cfg = w.cfg
	}
	f.mu.Unlock()
	if cfg == nil {
		d, err := f.o.Store.GetDestination(ctx, due.ID)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
				f.log.Warn("cannot load a destination", slog.String("destination", due.ID), slog.Any("err", err))
			}
			return
		}
		cfg = &d
	}
	f.mu.Lock()
	if w = f.dests[due.ID]; w == nil {
		w = &dest{client: newClient(f.o.Guard), held: map[string]struct{}{},
			failLog: rate.Sometimes{First: 3, Interval: time.Minute}}
		f.dests[due.ID] = w
	}
	w.cfg, w.updatedAt, w.maxInFlight = cfg, cfg.UpdatedAt, cfg.MaxInFlight
	room := cfg.MaxInFlight - w.inFlight
	f.mu.Unlock()
	if room <= 0 || !cfg.Enabled {
		return
	}
	claimed, err := f.o.Store.ClaimDeliveries(ctx, due.ID, room, cfg.Timeout()+leaseSlack, due.Probe)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("cannot claim deliveries", slog.String("destination", due.ID), slog.Any("err", err))
		}
		return
	}
	if len(claimed) == room {
		// There may be more: claim again when a slot frees.
		f.mu.Lock()
		w.more = true
		f.mu.Unlock()
	}
	for _, c := range claimed {
		f.mu.Lock()
		if f.closing {
			// Close came between the claim and now: give the rest back.
			f.mu.Unlock()
			f.release(remaining(claimed, c.ID))
			return
		}
		w.inFlight++
		w.held[c.ID] = struct{}{}
		w.lastUsed = time.Now()
		f.attempts.Add(1)
		f.mu.Unlock()
		go f.attempt(cfg, w, c)
	}
}

func remaining(claimed []store.Claimed, from string) []string {
	i := slices.IndexFunc(claimed, func(c store.Claimed) bool { return c.ID == from })
	var ids []string
	for _, c := range claimed[i:] {
		ids = append(ids, c.ID)
	}
	return ids
}

// dropIdle closes the connections of destinations that have had nothing to
// do for a while.
func (f *Forwarder) dropIdle(due []store.Due) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, w := range f.dests {
		isDue := slices.ContainsFunc(due, func(d store.Due) bool { return d.ID == id })
		if w.inFlight == 0 && time.Since(w.lastUsed) > idleClient && !isDue {
			w.client.closeIdle()
			delete(f.dests, id)
		}
	}
}

// attempt sends one delivery and records the attempt.
func (f *Forwarder) attempt(d *destination.Destination, w *dest, c store.Claimed) {
	defer f.attempts.Done()
	defer func() {
		f.mu.Lock()
		w.inFlight--
		delete(w.held, c.ID)
		w.lastUsed = time.Now()
		more := w.more
		if more {
			w.more = false
			f.hot[d.ID] = struct{}{}
		}
		f.mu.Unlock()
		if more {
			f.wake() // room for the next one
		}
	}()
	res := w.client.send(f.abortCtx, d, f.o.UserAgent, c.Event.ID, c.Event.Marshal())
	if f.abortCtx.Err() != nil {
		// Shutdown cut the attempt short: it did not happen, as far as
		// the delivery is concerned; another claim makes it again.
		f.release([]string{c.ID})
		return
	}
	number := c.Attempts + 1
	r := store.AttemptResult{
		DeliveryID: c.ID, DestinationID: d.ID, Success: res.Result == Success,
		Attempt: store.Attempt{
			Attempt: number, StartedAt: res.StartedAt, DurationMS: res.DurationMS(),
			StatusCode: res.StatusCode, Error: res.Error, ResponseExcerpt: res.Excerpt,
		},
	}
	switch delay, more := destination.NextDelay(d.RetrySchedule, number, rand.Float64()); {
	case r.Success:
		r.Status = destination.Succeeded
	case more:
		r.Status, r.NextAttemptAt = destination.Pending, time.Now().Add(delay)
	default:
		r.Status = destination.Failed
	}
	if m := f.o.Metrics; m != nil {
		m.DeliveryAttempts.WithLabelValues(d.ID, res.Result).Inc()
		m.DeliveryDuration.WithLabelValues(d.ID).Observe(res.Duration.Seconds())
		if r.Status == destination.Failed {
			m.DeliveriesFailed.WithLabelValues(d.ID).Inc()
		}
	}
	if !r.Success {
		w.failLog.Do(func() {
			f.log.Info("delivery attempt failed", slog.String("destination", d.ID), slog.String("delivery", c.ID),
				slog.String("event_id", c.Event.ID), slog.Int("attempt", number), slog.String("result", res.Result),
				slog.String("err", res.Error), slog.String("next", r.Status))
		})
	}
	// The claim holds the delivery until the result is recorded, with
	// others' results, by the finisher.
	f.results <- r
}

// finisher records the results of attempts in batches: those that end
// within finishLinger of each other share one statement. It returns when
// Close closes results, after recording the last ones.
func (f *Forwarder) finisher() {
	defer f.finishing.Done()
	var batch []store.AttemptResult
	var linger <-chan time.Time
	flush := func() {
		if len(batch) > 0 {
			// Recording must not be cut short by shutdown: the attempts
			// were made.
			ctx, cancel := context.WithTimeout(context.Background(), leaseSlack)
			if err := f.o.Store.FinishAttempts(ctx, batch, f.slot); err != nil {
				// The claims lapse and the deliveries are attempted
				// again: at least once, as promised.
				f.log.Warn("cannot record delivery attempts; they will be repeated", slog.Int("attempts", len(batch)), slog.Any("err", err))
			}
			cancel()
		}
		batch, linger = batch[:0], nil
	}
	for {
		select {
		case r, ok := <-f.results:
			if !ok {
				flush()
				return
			}
			batch = append(batch, r)
			if len(batch) >= maxFinishBatch {
				flush()
			} else if linger == nil {
				linger = time.After(finishLinger)
			}
		case <-linger:
			flush()
		}
	}
}

// release gives claimed deliveries back for another attempt at once.
func (f *Forwarder) release(ids []string) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.o.Store.ReleaseDeliveries(ctx, ids); err != nil {
		f.log.Warn("cannot release deliveries; their claims lapse on their own", slog.Int("deliveries", len(ids)), slog.Any("err", err))
	}
}

// observe cancels the deliveries left without a destination and
// refreshes the gauges of pending deliveries and open circuits.
func (f *Forwarder) observe(ctx context.Context) {
	states, err := f.o.Store.DestinationStates(ctx)
	if err != nil {
		return
	}
	var gone []string
	for _, s := range states {
		if s.Gone {
			gone = append(gone, s.DestinationID)
		}
	}
	if len(gone) > 0 {
		if n, err := f.o.Store.CancelOrphanDeliveries(ctx, gone); err == nil && n > 0 {
			f.log.Info("canceled deliveries of deleted destinations", slog.Int64("deliveries", n))
		}
	}
	m := f.o.Metrics
	if m == nil {
		return
	}
	m.DeliveriesPending.Reset()
	m.DeliveryOldest.Reset()
	m.CircuitOpen.Reset()
	now := time.Now()
	for _, s := range states {
		if s.Gone {
			continue
		}
		m.DeliveriesPending.WithLabelValues(s.DestinationID).Set(float64(s.Pending))
		age := 0.0
		if s.Oldest != nil {
			age = now.Sub(*s.Oldest).Seconds()
		}
		m.DeliveryOldest.WithLabelValues(s.DestinationID).Set(age)
		open := 0.0
		if s.CircuitOpen {
			open = 1
		}
		m.CircuitOpen.WithLabelValues(s.DestinationID).Set(open)
	}
}

// Close stops claiming deliveries and waits for the attempts in flight
// until ctx is done; the attempts still running then are abandoned and
// their deliveries released, so that the next claim makes them at once.
// Run must have returned or be about to (its context canceled).
func (f *Forwarder) Close(ctx context.Context) error {
	f.mu.Lock()
	f.closing = true
	f.mu.Unlock()
	done := make(chan struct{})
	go func() {
		f.attempts.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		f.abort()
		<-done
		err = fmt.Errorf("forwarder: attempts abandoned at shutdown: %w", ctx.Err())
	}
	f.abort()
	f.mu.Lock()
	started := f.started
	f.started = false
	f.mu.Unlock()
	if started {
		close(f.results)
		f.finishing.Wait()
	}
	f.mu.Lock()
	for _, w := range f.dests {
		w.client.closeIdle()
	}
	f.mu.Unlock()
	return err
}

// TestResult is what a test request to a destination came to.
type TestResult struct {
	Success         bool    `json:"success"`
	StatusCode      *int    `json:"status_code"`
	DurationMS      float64 `json:"duration_ms"`
	ResponseExcerpt string  `json:"response_excerpt"`
	Error           *string `json:"error"`
}

// TestPayload is the payload of a test request that names none.
var TestPayload = json.RawMessage(`{"test":true}`)

// Test sends d a request now, signed and shaped like a delivery, of an
// event that is not stored: source "test", metadata {"test": true}, and
// payload (TestPayload when nil). It is not retried and not counted in
// the metrics.
func (f *Forwarder) Test(ctx context.Context, d destination.Destination, payload json.RawMessage) TestResult {
	if payload == nil {
		payload = TestPayload
	}
	now := event.Time(time.Now())
	ev := event.Event{
		ID: event.MustNewID(now), TriggerID: d.TriggerID, TriggerRef: d.TriggerRef, Source: TestSource,
		Payload: payload, Metadata: json.RawMessage(`{"test":true}`), ReceivedAt: now,
	}
	f.mu.Lock()
	w := f.dests[d.ID]
	f.mu.Unlock()
	var c *client
	if w != nil {
		c = w.client
	} else {
		c = newClient(f.o.Guard)
		defer c.closeIdle()
	}
	o := c.send(ctx, &d, f.o.UserAgent, ev.ID, ev.Marshal())
	res := TestResult{Success: o.Result == Success, StatusCode: o.StatusCode, DurationMS: o.DurationMS(), ResponseExcerpt: o.Excerpt}
	if o.Error != "" {
		res.Error = &o.Error
	}
	return res
}

// TestSource is the source of the event a test request carries.
const TestSource = "test"
