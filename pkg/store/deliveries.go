package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/inlet-dev/inlet/pkg/destination"
	"github.com/inlet-dev/inlet/pkg/event"
)

// Delivery is an event on its way to a destination.
type Delivery struct {
	ID             string     `json:"id" db:"id"`
	EventID        string     `json:"event_id" db:"event_id"`
	DestinationID  string     `json:"destination_id" db:"destination_id"`
	Status         string     `json:"status" db:"status"`
	Attempts       int        `json:"attempts" db:"attempts"`
	NextAttemptAt  *time.Time `json:"next_attempt_at" db:"next_attempt_at"`
	LastStatusCode *int       `json:"last_status_code" db:"last_status_code"`
	LastError      string     `json:"last_error" db:"last_error"`
	CreatedAt      time.Time  `json:"created_at" db:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at" db:"updated_at"`
}

func (d *Delivery) utc() {
	d.CreatedAt, d.UpdatedAt = d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	d.NextAttemptAt = utcPtr(d.NextAttemptAt)
	if d.Status != destination.Pending {
		d.NextAttemptAt = nil
	}
}

// Attempt is one try of a delivery.
type Attempt struct {
	Attempt         int       `json:"attempt" db:"attempt"`
	StartedAt       time.Time `json:"started_at" db:"started_at"`
	DurationMS      float64   `json:"duration_ms" db:"duration_ms"`
	StatusCode      *int      `json:"status_code" db:"status_code"`
	Error           string    `json:"error" db:"error"`
	ResponseExcerpt string    `json:"response_excerpt" db:"response_excerpt"`
}

const deliveryColumns = `id, event_id, destination_id, status, attempts, next_attempt_at, last_status_code, last_error, created_at, updated_at`

// Due is a destination with deliveries due now that may be attempted.
type Due struct {
	ID string `db:"id"`
	// UpdatedAt changes with the destination's settings: a cached copy
	// older than it must be read again.
	UpdatedAt time.Time `db:"updated_at"`
	// Probe is set when the destination's circuit is open and its time
	// is over: one delivery may go, as the probe.
	Probe bool `db:"probe"`
}

// DueDestinations returns the destinations with deliveries due now that
// may be attempted: enabled, and with a closed circuit, or an open one
// whose time is over and that no instance is probing.
func (s *Store) DueDestinations(ctx context.Context) ([]Due, error) {
	var out []Due
	err := s.db.SelectContext(ctx, &out, `SELECT d.id, d.updated_at, d.circuit_open_until IS NOT NULL AS probe FROM destinations d
		WHERE d.enabled
		AND (d.circuit_open_until IS NULL
			OR (d.circuit_open_until <= now() AND (d.circuit_probe_until IS NULL OR d.circuit_probe_until < now())))
		AND EXISTS (SELECT 1 FROM deliveries l WHERE l.destination_id = d.id AND l.status = 'pending'
			AND l.next_attempt_at <= now() AND (l.locked_until IS NULL OR l.locked_until < now()))`)
	if err != nil {
		return nil, fmt.Errorf("due destinations: %w", err)
	}
	return out, nil
}

// Claimed is a delivery taken for an attempt, with its event.
type Claimed struct {
	Delivery
	Event event.Event
	// Lease is when the claim lapses: another instance may then take it.
	Lease time.Time
}

// claimDue takes the deliveries: up to $2 due deliveries of destination
// $1, oldest due first, skipping those another instance holds, for a
// lease of $3 seconds; none unless the destination is enabled and its
// circuit closed, or $4 (the caller holds the circuit's probe). Its
// commit does not wait for the disk: a claim lost in a crash costs
// nothing, its lease would lapse.
const claimDue = `WITH lazy AS (
		SELECT set_config('synchronous_commit', 'off', true) AS v
	), c AS (
		SELECT id FROM deliveries WHERE destination_id = $1 AND status = 'pending' AND next_attempt_at <= now()
			AND (locked_until IS NULL OR locked_until < now())
			AND ($4 OR EXISTS (SELECT 1 FROM destinations d WHERE d.id = $1 AND d.enabled AND d.circuit_open_until IS NULL))
		ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
	)
	UPDATE deliveries l SET locked_until = now() + make_interval(secs => $3)
	FROM c, events e, lazy WHERE l.id = c.id AND e.id = l.event_id
	RETURNING l.id, l.event_id, l.destination_id, l.status, l.attempts, l.next_attempt_at, l.last_status_code,
		l.last_error, l.created_at, l.updated_at, l.locked_until,
		e.id, e.trigger_id, e.trigger_ref, e.source, e.payload, e.metadata, e.delivery_id, e.received_at`

// ClaimDeliveries takes up to limit due deliveries of destination id for
// lease, oldest due first, skipping those another instance holds, and
// none while the destination is disabled or its circuit open. When probe
// is set (DueDestinations said the circuit is open and its time over) it
// takes one delivery at most, as the circuit's probe, and only if no
// instance probes it already.
func (s *Store) ClaimDeliveries(ctx context.Context, id string, limit int, lease time.Duration, probe bool) ([]Claimed, error) {
	var out []Claimed
	claim := func(q sqlx.QueryerContext) error {
		rows, err := q.QueryxContext(ctx, claimDue, id, limit, lease.Seconds(), probe)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c Claimed
			d, e := &c.Delivery, &c.Event
			if err := rows.Scan(&d.ID, &d.EventID, &d.DestinationID, &d.Status, &d.Attempts, &d.NextAttemptAt, &d.LastStatusCode,
				&d.LastError, &d.CreatedAt, &d.UpdatedAt, &c.Lease,
				&e.ID, &e.TriggerID, &e.TriggerRef, &e.Source, &e.Payload, &e.Metadata, &e.DeliveryID, &e.ReceivedAt); err != nil {
				return err
			}
			d.utc()
			e.ReceivedAt = e.ReceivedAt.UTC()
			out = append(out, c)
		}
		return rows.Err()
	}
	var err error
	if !probe {
		// One statement, its own transaction.
		err = claim(s.db)
	} else {
		err = s.inLazyTx(ctx, func(tx *sqlx.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE destinations SET circuit_probe_until = now() + make_interval(secs => $2)
				WHERE id = $1 AND enabled AND circuit_open_until <= now() AND (circuit_probe_until IS NULL OR circuit_probe_until < now())`,
				id, lease.Seconds())
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return nil // still open, closed by now, or another instance probes
			}
			limit = 1
			return claim(tx)
		})
	}
	if err != nil {
		return nil, fmt.Errorf("claim deliveries of %s: %w", id, mapErr(err))
	}
	return out, nil
}

// AttemptResult is the outcome of one attempt, and what it makes of its
// delivery.
type AttemptResult struct {
	DeliveryID    string
	DestinationID string
	Attempt       Attempt
	// Status is the delivery's status after the attempt; NextAttemptAt
	// when it is pending.
	Status        string
	NextAttemptAt time.Time
	// Success is whether the attempt succeeded.
	Success bool
}

// finishAttempts records attempts ($1-$8), their deliveries' new states,
// each destination's circuit breaker ($9-$11: whether a success reset it,
// and the failures after the last success) and statistics ($14-$16) in
// one statement. The circuit opens at the threshold-th failure in a row
// ($12) for the shortest time ($13), doubling with each failure after it
// up to the longest ($17); counted here, so that the failures of every
// instance add up. A delivery whose destination was deleted during its
// attempt has nowhere to wait for the next one: it fails, as deleting the
// destination failed the others. Its commit does not wait for the disk:
// a record lost in a crash means one more attempt, which at least once
// allows.
const finishAttempts = `
WITH lazy AS (
	SELECT set_config('synchronous_commit', 'off', true) AS v
), r AS (
	SELECT r.* FROM lazy, unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::text[], $6::timestamptz[], $7::float8[], $8::text[])
		AS r(id, status, next_at, code, err, started, dur, excerpt)
), upd AS (
	UPDATE deliveries l SET attempts = l.attempts + 1,
		status = CASE WHEN r.status = 'pending' AND NOT EXISTS (SELECT 1 FROM destinations d WHERE d.id = l.destination_id)
			THEN 'failed' ELSE r.status END,
		next_attempt_at = CASE WHEN r.status = 'pending' THEN r.next_at ELSE l.next_attempt_at END,
		last_status_code = r.code, last_error = r.err, locked_until = NULL, updated_at = now()
	FROM r WHERE l.id = r.id
	RETURNING l.id, l.attempts
), logged AS (
	INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_excerpt)
	SELECT upd.id, upd.attempts, r.started, r.dur, r.code, r.err, r.excerpt FROM upd JOIN r ON r.id = upd.id
	ON CONFLICT DO NOTHING
), c AS (
	SELECT * FROM unnest($9::text[], $10::bool[], $11::int[]) AS c(id, reset, fails)
), circuit AS (
	UPDATE destinations d SET
		consecutive_failures = CASE WHEN c.reset THEN c.fails ELSE d.consecutive_failures + c.fails END,
		circuit_open_until = CASE
			WHEN (CASE WHEN c.reset THEN c.fails ELSE d.consecutive_failures + c.fails END) >= $12
			THEN now() + make_interval(secs => least($13 * 2 ^ least((CASE WHEN c.reset THEN c.fails ELSE d.consecutive_failures + c.fails END) - $12, 16), $17))
			WHEN c.reset THEN NULL
			ELSE d.circuit_open_until END,
		circuit_probe_until = NULL
	FROM c WHERE d.id = c.id AND (c.fails > 0 OR d.consecutive_failures <> 0 OR d.circuit_open_until IS NOT NULL)
)
INSERT INTO destination_usage (destination_id, slot, succeeded, failed, last_success_at, last_failure_at)
SELECT u.id, $18, u.ok, u.ko, CASE WHEN u.ok > 0 THEN now() END, CASE WHEN u.ko > 0 THEN now() END
FROM unnest($14::text[], $15::bigint[], $16::bigint[]) AS u(id, ok, ko)
ON CONFLICT (destination_id, slot) DO UPDATE SET succeeded = destination_usage.succeeded + EXCLUDED.succeeded,
	failed = destination_usage.failed + EXCLUDED.failed,
	last_success_at = greatest(destination_usage.last_success_at, EXCLUDED.last_success_at),
	last_failure_at = greatest(destination_usage.last_failure_at, EXCLUDED.last_failure_at)`

// FinishAttempts records attempts, in the order they ended, with their
// deliveries' new states and their destinations' circuit breakers and
// statistics, in one transaction. slot spreads the statistics of
// concurrent writers over rows of their own.
func (s *Store) FinishAttempts(ctx context.Context, rs []AttemptResult, slot int) error {
	if len(rs) == 0 {
		return nil
	}
	n := len(rs)
	var (
		ids, statuses, errs, excerpts = make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n)
		nexts, starts                 = make([]string, n), make([]string, n)
		codes                         = make(nullInt64s, n)
		durs                          = make(pq.Float64Array, n)
	)
	type circuit struct {
		reset   bool
		fails   int
		ok, bad int64
	}
	byDest := map[string]*circuit{}
	var order []string
	for i, r := range rs {
		a := r.Attempt
		ids[i], statuses[i], errs[i], excerpts[i] = r.DeliveryID, r.Status, clean(a.Error), clean(a.ResponseExcerpt)
		nexts[i] = r.NextAttemptAt.UTC().Format(timeFormat)
		starts[i] = a.StartedAt.UTC().Format(timeFormat)
		if a.StatusCode != nil {
			codes[i] = sql.NullInt64{Int64: int64(*a.StatusCode), Valid: true}
		}
		durs[i] = a.DurationMS
		c := byDest[r.DestinationID]
		if c == nil {
			c = &circuit{}
			byDest[r.DestinationID] = c
			order = append(order, r.DestinationID)
		}
		if r.Success {
			c.reset, c.fails = true, 0
		} else {
			c.fails++
		}
		switch r.Status {
		case destination.Succeeded:
			c.ok++
		case destination.Failed:
			c.bad++
		}
	}
	var cIDs, uIDs pq.StringArray
	var cReset pq.BoolArray
	var cFails, uOK, uBad pq.Int64Array
	for _, id := range order {
		c := byDest[id]
		cIDs, cReset, cFails = append(cIDs, id), append(cReset, c.reset), append(cFails, int64(c.fails))
		if c.ok+c.bad > 0 {
			uIDs, uOK, uBad = append(uIDs, id), append(uOK, c.ok), append(uBad, c.bad)
		}
	}
	_, err := s.db.ExecContext(ctx, finishAttempts,
		ids, statuses, pq.StringArray(nexts), codes, errs, pq.StringArray(starts), durs, excerpts,
		cIDs, cReset, cFails, destination.CircuitThreshold, destination.CircuitMinOpen.Seconds(),
		uIDs, uOK, uBad, destination.CircuitMaxOpen.Seconds(), slot)
	if err != nil {
		return fmt.Errorf("finish %d attempts: %w", n, mapErr(err))
	}
	return nil
}

// ReleaseDeliveries gives up the claims on deliveries whose attempts were
// abandoned (a shutdown), so that they are attempted again at once.
func (s *Store) ReleaseDeliveries(ctx context.Context, ids []string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE deliveries SET locked_until = NULL WHERE id = ANY($1)`, pq.StringArray(ids)); err != nil {
		return fmt.Errorf("release deliveries: %w", err)
	}
	return nil
}

// ErrDestinationGone is returned by RetryDelivery for a delivery whose
// destination was deleted: there is nowhere to send it.
var ErrDestinationGone = errors.New("the delivery's destination was deleted")

// RetryDelivery makes a delivery due at once, whatever its status, for one
// more attempt. An attempt in flight keeps its claim, so that no other
// instance makes a second one at the same time.
func (s *Store) RetryDelivery(ctx context.Context, id string) (Delivery, error) {
	var d Delivery
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &d, `UPDATE deliveries l SET status = 'pending', next_attempt_at = now(), updated_at = now()
			WHERE id = $1 AND EXISTS (SELECT 1 FROM destinations d WHERE d.id = l.destination_id)
			RETURNING `+deliveryColumns, id)
		if errors.Is(err, sql.ErrNoRows) {
			var n int
			if err := tx.GetContext(ctx, &n, `SELECT count(*) FROM deliveries WHERE id = $1`, id); err != nil {
				return err
			}
			if n > 0 {
				return ErrDestinationGone
			}
		}
		if err != nil {
			return err
		}
		return record(ctx, tx, "delivery.retry", id)
	})
	if err != nil {
		return d, fmt.Errorf("retry delivery %s: %w", id, mapErr(err))
	}
	d.utc()
	return d, nil
}

// RecoverDeliveries makes every failed delivery of a destination created
// since then due at once, and returns how many.
func (s *Store) RecoverDeliveries(ctx context.Context, destID string, since time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE deliveries SET status = 'pending', next_attempt_at = now(), locked_until = NULL,
			updated_at = now() WHERE destination_id = $1 AND status = 'failed' AND created_at >= $2`, destID, since)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return record(ctx, tx, "destination.recover", destID, "requeued "+strconv.FormatInt(n, 10))
	})
	if err != nil {
		return 0, fmt.Errorf("recover deliveries of %s: %w", destID, mapErr(err))
	}
	return n, nil
}

// DeliveryFilter selects deliveries of a destination.
type DeliveryFilter struct {
	Status  string
	EventID string
}

// ListDeliveries returns a destination's deliveries newest first, and the
// cursor of the next page if there is one.
func (s *Store) ListDeliveries(ctx context.Context, destID string, f DeliveryFilter, p Page) ([]Delivery, *Cursor, error) {
	conds := []string{"destination_id = $1"}
	args := []any{destID}
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if !p.Cursor.IsZero() {
		if !strings.HasPrefix(p.Cursor.ID, "dlv_") {
			return nil, nil, ErrBadCursor
		}
		args = append(args, p.Cursor.At, p.Cursor.ID)
		conds = append(conds, fmt.Sprintf("(created_at, id) < ($%d, $%d)", len(args)-1, len(args)))
	}
	if f.Status != "" {
		add("status = $%d", f.Status)
	}
	if f.EventID != "" {
		add("event_id = $%d", f.EventID)
	}
	args = append(args, p.Limit+1)
	q := `SELECT ` + deliveryColumns + ` FROM deliveries WHERE ` + strings.Join(conds, " AND ") +
		fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d`, len(args))
	var out []Delivery
	if err := s.db.SelectContext(ctx, &out, q, args...); err != nil {
		return nil, nil, fmt.Errorf("list deliveries: %w", err)
	}
	for i := range out {
		out[i].utc()
	}
	var next *Cursor
	if len(out) > p.Limit {
		out = out[:p.Limit]
		last := out[len(out)-1]
		next = &Cursor{At: last.CreatedAt, ID: last.ID}
	}
	return out, next, nil
}

// GetDelivery returns one delivery with its attempts, oldest first.
func (s *Store) GetDelivery(ctx context.Context, id string) (Delivery, []Attempt, error) {
	var d Delivery
	if err := s.db.GetContext(ctx, &d, `SELECT `+deliveryColumns+` FROM deliveries WHERE id = $1`, id); err != nil {
		return d, nil, mapErr(err)
	}
	d.utc()
	var as []Attempt
	if err := s.db.SelectContext(ctx, &as, `SELECT attempt, started_at, duration_ms, status_code, error, response_excerpt
		FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt`, id); err != nil {
		return d, nil, fmt.Errorf("attempts of %s: %w", id, err)
	}
	for i := range as {
		as[i].StartedAt = as[i].StartedAt.UTC()
	}
	return d, as, nil
}

// EventDeliveries returns an event's deliveries, oldest first.
func (s *Store) EventDeliveries(ctx context.Context, eventID string) ([]Delivery, error) {
	var out []Delivery
	if err := s.db.SelectContext(ctx, &out, `SELECT `+deliveryColumns+` FROM deliveries WHERE event_id = $1 ORDER BY created_at, id`, eventID); err != nil {
		return nil, fmt.Errorf("deliveries of event %s: %w", eventID, err)
	}
	for i := range out {
		out[i].utc()
	}
	return out, nil
}

// DestinationState is what the forwarder's metrics show of a destination.
type DestinationState struct {
	DestinationID string     `db:"id"`
	Pending       int64      `db:"pending"`
	Oldest        *time.Time `db:"oldest"`
	CircuitOpen   bool       `db:"circuit_open"`
	// Gone is set for a destination that no longer exists but has
	// pending deliveries.
	Gone bool `db:"gone"`
}

// DestinationStates returns every destination's pending deliveries and
// whether its circuit holds attempts, in one pass over the pending
// deliveries.
func (s *Store) DestinationStates(ctx context.Context) ([]DestinationState, error) {
	var out []DestinationState
	if err := s.db.SelectContext(ctx, &out, `SELECT COALESCE(d.id, l.destination_id) AS id, COALESCE(l.pending, 0) AS pending,
			l.oldest, COALESCE(d.circuit_open_until > now(), false) AS circuit_open, d.id IS NULL AS gone
		FROM destinations d FULL JOIN (
			SELECT destination_id, count(*) AS pending, min(created_at) AS oldest
			FROM deliveries WHERE status = 'pending' GROUP BY destination_id
		) l ON l.destination_id = d.id`); err != nil {
		return nil, fmt.Errorf("destination states: %w", err)
	}
	return out, nil
}

// ForwardingDestinations maps the ids of the triggers with an enabled
// destination to those destinations' ids: their new events have
// deliveries to make.
func (s *Store) ForwardingDestinations(ctx context.Context) (map[int64][]string, error) {
	var rows []struct {
		TriggerID int64  `db:"trigger_id"`
		ID        string `db:"id"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT trigger_id, id FROM destinations WHERE enabled ORDER BY trigger_id, id`); err != nil {
		return nil, fmt.Errorf("forwarding destinations: %w", err)
	}
	out := make(map[int64][]string)
	for _, r := range rows {
		out[r.TriggerID] = append(out[r.TriggerID], r.ID)
	}
	return out, nil
}
