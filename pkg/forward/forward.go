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
	Metrics      *metrics.Metrics
	Logger       *slog.Logger
}

// Forwarder claims due deliveries and attempts them. Run drives it; Kick
// wakes it; Close stops it. Its methods are safe for concurrent use.
type Forwarder struct {
	o   Options
	log *slog.Logger

	kick    chan struct{}
	refresh atomic.Bool
	// forwarding holds the ids of the triggers with an enabled
	// destination, so that Kick wakes the forwarder only for events that
	// have deliveries.
	forwarding atomic.Pointer[map[int64]struct{}]

	mu      sync.Mutex
	dests   map[string]*dest
	closing bool

	// abort cancels the attempts in flight when Close runs out of time.
	abortCtx context.Context
	abort    context.CancelFunc
	attempts sync.WaitGroup
	slot     atomic.Int32
}

// dest is what the forwarder keeps of a destination between attempts.
type dest struct {
	client *client
	// Guarded by Forwarder.mu.
	inFlight    int
	maxInFlight int
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
		o:     o,
		log:   o.Logger.With("component", "forwarder"),
		kick:  make(chan struct{}, 1),
		dests: map[string]*dest{},
	}
	f.abortCtx, f.abort = context.WithCancel(context.Background())
	f.forwarding.Store(&map[int64]struct{}{})
	f.refresh.Store(true)
	return f
}

// Kick wakes the forwarder after an event of triggerID was committed, if
// that trigger has a destination.
func (f *Forwarder) Kick(triggerID int64) {
	if _, ok := (*f.forwarding.Load())[triggerID]; ok {
		f.wake()
	}
}

// Refresh makes the forwarder reload which triggers have destinations;
// call it when a trigger or a destination changes.
func (f *Forwarder) Refresh() {
	f.refresh.Store(true)
	f.wake()
}

// Wake has the forwarder look for due deliveries now.
func (f *Forwarder) Wake() { f.wake() }

func (f *Forwarder) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Run looks for due deliveries until ctx is canceled: when woken, and every
// Poll. The attempts it starts outlive it; Close waits for them.
func (f *Forwarder) Run(ctx context.Context) error {
	poll := time.NewTicker(f.o.Poll)
	defer poll.Stop()
	observe := time.NewTicker(f.o.ObserveEvery)
	defer observe.Stop()
	f.observe(ctx)
	for {
		if f.refresh.Swap(false) {
			if err := f.loadForwarding(ctx); err != nil {
				f.refresh.Store(true)
			}
		}
		f.round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-f.kick:
		case <-poll.C:
		case <-observe.C:
			f.observe(ctx)
		}
	}
}

func (f *Forwarder) loadForwarding(ctx context.Context) error {
	ids, err := f.o.Store.ForwardingTriggers(ctx)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("cannot load the triggers with destinations", slog.Any("err", err))
		}
		return err
	}
	m := make(map[int64]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	f.forwarding.Store(&m)
	return nil
}

// round claims what each destination with due deliveries has room for and
// starts the attempts.
func (f *Forwarder) round(ctx context.Context) {
	ids, err := f.o.Store.DueDestinations(ctx)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("cannot look for due deliveries", slog.Any("err", err))
		}
		return
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		f.fill(ctx, id)
	}
	f.dropIdle(ids)
}

// fill claims due deliveries of one destination up to its max_in_flight
// and starts an attempt for each.
func (f *Forwarder) fill(ctx context.Context, id string) {
	f.mu.Lock()
	w := f.dests[id]
	full := f.closing || (w != nil && w.inFlight >= w.maxInFlight)
	f.mu.Unlock()
	if full {
		return
	}
	d, err := f.o.Store.GetDestination(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
			f.log.Warn("cannot load a destination", slog.String("destination", id), slog.Any("err", err))
		}
		return
	}
	f.mu.Lock()
	if w = f.dests[id]; w == nil {
		w = &dest{client: newClient(f.o.Guard), held: map[string]struct{}{},
			failLog: rate.Sometimes{First: 3, Interval: time.Minute}}
		f.dests[id] = w
	}
	w.maxInFlight = d.MaxInFlight
	room := d.MaxInFlight - w.inFlight
	f.mu.Unlock()
	if room <= 0 || !d.Enabled {
		return
	}
	claimed, err := f.o.Store.ClaimDeliveries(ctx, id, room, d.Timeout()+leaseSlack)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("cannot claim deliveries", slog.String("destination", id), slog.Any("err", err))
		}
		return
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
		go f.attempt(&d, w, c)
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
func (f *Forwarder) dropIdle(due []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, w := range f.dests {
		if w.inFlight == 0 && time.Since(w.lastUsed) > idleClient && !slices.Contains(due, id) {
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
		f.mu.Unlock()
		f.wake() // room for the next one
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
		Slot: int(f.slot.Add(1) % 16),
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
	// Recording must not be cut short by shutdown: the attempt was made.
	ctx, cancel := context.WithTimeout(context.Background(), leaseSlack)
	defer cancel()
	if err := f.o.Store.FinishAttempt(ctx, r); err != nil {
		// The claim lapses and the delivery is attempted again: at least
		// once, as promised.
		f.log.Warn("cannot record a delivery attempt; it will be repeated", slog.String("delivery", c.ID), slog.Any("err", err))
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
