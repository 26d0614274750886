package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// errNoDestinations is what createDestination returns when the inlet
// binary has no destination routes (one built before they existed).
var errNoDestinations = errors.New("this inlet has no destinations")

// DestinationSettings is the destination of the run, as inlet created it.
type DestinationSettings struct {
	URL            string `json:"url"`
	Scheme         string `json:"scheme"`
	TimeoutSeconds int    `json:"timeout_seconds"`
	MaxInFlight    int    `json:"max_in_flight"`
}

// createDestination adds a disabled destination to the benchmarked
// trigger, sending to sinkURL with the default signing scheme, timeout and
// retry schedule and at most maxInFlight attempts at a time. It returns
// errNoDestinations if inlet does not know the route.
func (in *inlet) createDestination(ctx context.Context, sinkURL string, maxInFlight int) (DestinationSettings, error) {
	var created struct {
		Data struct {
			ID      string `json:"id"`
			URL     string `json:"url"`
			Signing struct {
				Scheme string `json:"scheme"`
			} `json:"signing"`
			TimeoutSeconds int `json:"timeout_seconds"`
			MaxInFlight    int `json:"max_in_flight"`
		} `json:"data"`
	}
	req := map[string]any{"name": "bench sink", "url": sinkURL, "enabled": false, "max_in_flight": maxInFlight}
	err := in.api(ctx, http.MethodPost, "/api/v1/triggers/"+url.PathEscape(in.o.trigger)+"/destinations", req, &created)
	var ae *apiError
	if errors.As(err, &ae) && (ae.status == http.StatusNotFound || ae.status == http.StatusMethodNotAllowed) {
		return DestinationSettings{}, errNoDestinations
	}
	if err != nil {
		return DestinationSettings{}, fmt.Errorf("create the destination: %w", err)
	}
	d := created.Data
	if d.ID == "" {
		return DestinationSettings{}, errors.New("create the destination: no id in the answer")
	}
	in.destinationID = d.ID
	return DestinationSettings{URL: d.URL, Scheme: d.Signing.Scheme, TimeoutSeconds: d.TimeoutSeconds, MaxInFlight: d.MaxInFlight}, nil
}

// enableDestination enables or disables the destination. Events committed
// while it is enabled get a delivery each.
func (in *inlet) enableDestination(ctx context.Context, on bool) error {
	err := in.api(ctx, http.MethodPatch, "/api/v1/destinations/"+in.destinationID, map[string]bool{"enabled": on}, nil)
	if err != nil {
		return fmt.Errorf("enable the destination (%v): %w", on, err)
	}
	return nil
}

// deliveryMark returns the creation time of the destination's newest
// delivery (not valid if there is none). The deliveries of a phase are
// those created after the mark taken before it: every earlier one was
// created in a transaction that had committed before the destination was
// enabled again, so before any of the phase's began.
func (in *inlet) deliveryMark(ctx context.Context) (sql.NullTime, error) {
	var mark sql.NullTime
	err := in.db.QueryRowContext(ctx, `SELECT max(created_at) FROM deliveries WHERE destination_id = $1`,
		in.destinationID).Scan(&mark)
	if err != nil {
		return mark, fmt.Errorf("newest delivery: %w", err)
	}
	return mark, nil
}

// waitDeliveries waits until none of the destination's deliveries is
// pending, at most timeout.
func (in *inlet) waitDeliveries(ctx context.Context, timeout time.Duration) error {
	start := time.Now()
	for {
		var pending bool
		err := in.db.QueryRowContext(ctx, `SELECT EXISTS (
				SELECT 1 FROM deliveries WHERE destination_id = $1 AND status = 'pending')`,
			in.destinationID).Scan(&pending)
		if err != nil {
			return fmt.Errorf("pending deliveries: %w", err)
		}
		if !pending {
			return nil
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("deliveries still pending after %v: %s", timeout, in.deliveryStates(ctx))
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// deliveryStates says how many of the destination's deliveries are in
// each state, and the last error of those not succeeded, for an error
// message. An attempt's error names what happened without the URL.
func (in *inlet) deliveryStates(ctx context.Context) string {
	rows, err := in.db.QueryContext(ctx, `SELECT status, count(*), max(last_error) FROM deliveries
		WHERE destination_id = $1 GROUP BY status ORDER BY status`, in.destinationID)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var status, lastErr string
		var n int
		if err := rows.Scan(&status, &n, &lastErr); err != nil {
			return err.Error()
		}
		part := fmt.Sprintf("%d %s", n, status)
		if status != "succeeded" && lastErr != "" {
			part += fmt.Sprintf(" (last error: %s)", lastErr)
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}

// Deliveries is what became of the deliveries of one phase's events to
// the benchmark's destination, counted once none of them was pending.
type Deliveries struct {
	// Events is the phase's event rows (Check.Events); Deliveries the
	// deliveries created with them, for DistinctEvents events; Succeeded
	// those succeeded, after Attempts attempts in all.
	Events         int `json:"events"`
	Deliveries     int `json:"deliveries"`
	DistinctEvents int `json:"distinct_events"`
	Succeeded      int `json:"succeeded"`
	Attempts       int `json:"attempts"`
	// SinkRequests is the POSTs the sink got during the phase, SinkSigned
	// those of them with a webhook-signature header.
	SinkRequests int `json:"sink_requests"`
	SinkSigned   int `json:"sink_signed"`
	// FirstCreated is the created_at of the first delivery (its event's
	// transaction), LastUpdated the updated_at of the last (when its
	// successful attempt was recorded).
	FirstCreated time.Time `json:"first_created_at"`
	LastUpdated  time.Time `json:"last_updated_at"`
	// PerS is Succeeded over the time from FirstCreated to LastUpdated.
	PerS float64 `json:"succeeded_per_s"`
	// The lag of a delivery is its updated_at less its created_at: from
	// its event's commit to the record of its success.
	LagP50MS float64 `json:"lag_p50_ms"`
	LagP99MS float64 `json:"lag_p99_ms"`
	LagMaxMS float64 `json:"lag_max_ms"`
	// DrainS is the time from the end of the load (the load generator's
	// return) to LastUpdated.
	DrainS float64 `json:"drained_in_s"`
	// CPU seconds from the start of the phase's load until no delivery
	// was pending: inlet's process, its PostgreSQL, and the sink.
	InletCPU    float64 `json:"inlet_cpu_s"`
	PostgresCPU float64 `json:"postgres_cpu_s"`
	SinkCPU     float64 `json:"sink_cpu_s"`
	// OnePerEvent: as many deliveries as events, each for another event,
	// and every one succeeded.
	OnePerEvent bool `json:"one_delivery_per_event"`
	// SinkGotAll: the sink got at least a request per delivery (a
	// delivery may be attempted again after a success not yet recorded),
	// every one of them signed.
	SinkGotAll bool `json:"sink_got_every_delivery"`
}

// judge sets OnePerEvent and SinkGotAll from d's counts, and PerS.
func (d *Deliveries) judge() {
	d.OnePerEvent = d.Deliveries == d.Events && d.DistinctEvents == d.Deliveries && d.Succeeded == d.Deliveries
	d.SinkGotAll = d.SinkRequests >= d.Succeeded && d.SinkSigned == d.SinkRequests
	if span := d.LastUpdated.Sub(d.FirstCreated).Seconds(); span > 0 {
		d.PerS = float64(d.Succeeded) / span
	}
}

// Consistent reports whether every event got one delivery that reached the
// sink.
func (d *Deliveries) Consistent() bool { return d.OnePerEvent && d.SinkGotAll }

// deliveries counts the destination's deliveries created after mark and
// computes their lag percentiles.
func (in *inlet) deliveries(ctx context.Context, mark sql.NullTime) (Deliveries, error) {
	var d Deliveries
	var first, last sql.NullTime
	err := in.db.QueryRowContext(ctx, `
		WITH l AS (
			SELECT event_id, status, attempts, created_at, updated_at,
				extract(epoch FROM updated_at - created_at)::float8 * 1000 AS lag_ms
			FROM deliveries WHERE destination_id = $1 AND created_at > coalesce($2::timestamptz, '-infinity')
		)
		SELECT count(*), count(DISTINCT event_id), count(*) FILTER (WHERE status = 'succeeded'),
			coalesce(sum(attempts), 0), min(created_at), max(updated_at),
			coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag_ms), 0),
			coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY lag_ms), 0),
			coalesce(max(lag_ms), 0)
		FROM l`, in.destinationID, mark).Scan(&d.Deliveries, &d.DistinctEvents, &d.Succeeded, &d.Attempts,
		&first, &last, &d.LagP50MS, &d.LagP99MS, &d.LagMaxMS)
	if err != nil {
		return d, fmt.Errorf("count deliveries: %w", err)
	}
	d.FirstCreated, d.LastUpdated = first.Time, last.Time
	return d, nil
}

// setUpDestination starts the sink and creates, on the -inlet binary, a
// destination sending to it, disabled until each phase's destination
// measurement. A binary without destinations is measured without. The
// forwarder is warmed up like the receiver: 2 s at 64 connections with the
// destination enabled, and every delivery waited for.
func (b *bench) setUpDestination(ctx context.Context) error {
	b.logf("starting the sink")
	s, err := startSink(b.self)
	if err != nil {
		return err
	}
	b.sink = &s
	settings, err := b.in.createDestination(ctx, s.base+"/deliveries", b.o.dstInFlight)
	if errors.Is(err, errNoDestinations) {
		b.logf("%s answers 404 to the destination routes: measuring it without a destination", b.o.inletBin)
		b.sink = nil
		s.ch.stop(5 * time.Second)
		return nil
	}
	if err != nil {
		return err
	}
	b.res.Destination = &settings
	b.logf("warming the forwarder up (destination %s, %s, max_in_flight %d)", b.in.destinationID, settings.Scheme, settings.MaxInFlight)
	if err := b.in.enableDestination(ctx, true); err != nil {
		return err
	}
	if _, err := b.load(ctx, b.in.secret, b.in.webhookURL, 64, 2*time.Second, 0, b.runID+"-dst-warm", nil); err != nil {
		return err
	}
	if _, err := b.in.drain(ctx); err != nil {
		return err
	}
	if err := b.in.settle(ctx); err != nil {
		return err
	}
	if err := b.in.waitDeliveries(ctx, b.o.dstWait); err != nil {
		return err
	}
	if err := b.in.enableDestination(ctx, false); err != nil {
		return err
	}
	b.dst = true
	return nil
}

// measureDestination measures inlet again in phase p with the destination
// enabled, waits until every delivery of the phase has succeeded (at most
// -destination-wait), disables the destination and counts the deliveries.
func (b *bench) measureDestination(ctx context.Context, p *Phase) error {
	in := b.in
	q := &Phase{Round: p.Round, Conns: p.Conns, Baseline: p.Baseline}
	mark, err := in.deliveryMark(ctx)
	if err != nil {
		return err
	}
	sink0, err := b.sink.count(ctx)
	if err != nil {
		return err
	}
	if err := in.enableDestination(ctx, true); err != nil {
		return err
	}
	cpu0, sinkCPU0 := treeCPU(in.pid()), treeCPU(b.sink.pid())
	stop, err := b.measure(ctx, in, q, false, "dst")
	if err != nil {
		return err
	}
	if err := in.waitDeliveries(ctx, b.o.dstWait); err != nil {
		return fmt.Errorf("round %d, %d connections, with the destination: %w", p.Round, p.Conns, err)
	}
	cpu, sinkCPU := treeCPU(in.pid()).sub(cpu0), treeCPU(b.sink.pid()).sub(sinkCPU0)
	if err := in.enableDestination(ctx, false); err != nil {
		return err
	}
	d, err := in.deliveries(ctx, mark)
	if err != nil {
		return err
	}
	sink1, err := b.sink.count(ctx)
	if err != nil {
		return err
	}
	d.Events = q.Check.Events
	d.SinkRequests, d.SinkSigned = sink1.posts-sink0.posts, sink1.signed-sink0.signed
	d.DrainS = max(0, d.LastUpdated.Sub(stop).Seconds())
	d.InletCPU, d.PostgresCPU, d.SinkCPU = cpu.self.Seconds(), cpu.children.Seconds(), sinkCPU.self.Seconds()
	d.judge()
	q.Deliveries = &d
	q.Baseline = LoadResult{} // the same as p's
	p.Destination = q
	return nil
}
