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

// DueDestinations returns the destinations with deliveries due now that
// may be attempted: enabled, and with a closed circuit, or an open one
// whose time is over and that no instance is probing.
func (s *Store) DueDestinations(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.db.SelectContext(ctx, &ids, `SELECT d.id FROM destinations d
		WHERE d.enabled
		AND (d.circuit_open_until IS NULL
			OR (d.circuit_open_until <= now() AND (d.circuit_probe_until IS NULL OR d.circuit_probe_until < now())))
		AND EXISTS (SELECT 1 FROM deliveries l WHERE l.destination_id = d.id AND l.status = 'pending'
			AND l.next_attempt_at <= now() AND (l.locked_until IS NULL OR l.locked_until < now()))`)
	if err != nil {
		return nil, fmt.Errorf("due destinations: %w", err)
	}
	return ids, nil
}

// Claimed is a delivery taken for an attempt, with its destination and
// event.
type Claimed struct {
	Delivery
	Event event.Event
	// Lease is when the claim lapses: another instance may then take it.
	Lease time.Time
}

// ClaimDeliveries takes up to limit due deliveries of destination id for
// lease, oldest due first, skipping those another instance holds. While
// the destination's circuit is open and its time is over, it takes one
// delivery at most, as the circuit's probe, and only if no instance
// probes it already.
func (s *Store) ClaimDeliveries(ctx context.Context, id string, limit int, lease time.Duration) ([]Claimed, error) {
	var out []Claimed
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var open bool
		err := tx.GetContext(ctx, &open, `SELECT circuit_open_until IS NOT NULL FROM destinations WHERE id = $1 AND enabled`, id)
		if err != nil {
			return err
		}
		if open {
			res, err := tx.ExecContext(ctx, `UPDATE destinations SET circuit_probe_until = now() + make_interval(secs => $2)
				WHERE id = $1 AND circuit_open_until <= now() AND (circuit_probe_until IS NULL OR circuit_probe_until < now())`,
				id, lease.Seconds())
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return nil // still open, or another instance probes
			}
			limit = 1
		}
		rows, err := tx.QueryxContext(ctx, `WITH c AS (
				SELECT id FROM deliveries WHERE destination_id = $1 AND status = 'pending' AND next_attempt_at <= now()
					AND (locked_until IS NULL OR locked_until < now())
				ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED
			)
			UPDATE deliveries l SET locked_until = now() + make_interval(secs => $3)
			FROM c, events e WHERE l.id = c.id AND e.id = l.event_id
			RETURNING l.id, l.event_id, l.destination_id, l.status, l.attempts, l.next_attempt_at, l.last_status_code,
				l.last_error, l.created_at, l.updated_at, l.locked_until,
				e.id, e.trigger_id, e.trigger_ref, e.source, e.payload, e.metadata, e.delivery_id, e.received_at`,
			id, limit, lease.Seconds())
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
	})
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
	// Slot spreads the statistics of concurrent attempts.
	Slot int
}

// FinishAttempt records an attempt and its delivery's new state, and the
// destination's circuit breaker and statistics, in one transaction.
func (s *Store) FinishAttempt(ctx context.Context, r AttemptResult) error {
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var n int
		// A delivery whose destination was deleted during the attempt
		// has nowhere to wait for its next one: it fails, as deleting
		// the destination failed the others.
		if err := tx.GetContext(ctx, &n, `UPDATE deliveries l SET attempts = attempts + 1,
				status = CASE WHEN $2 = 'pending' AND NOT EXISTS (SELECT 1 FROM destinations d WHERE d.id = l.destination_id)
					THEN 'failed' ELSE $2 END,
				next_attempt_at = CASE WHEN $2 = 'pending' THEN $3 ELSE next_attempt_at END,
				last_status_code = $4, last_error = $5, locked_until = NULL, updated_at = now()
			WHERE id = $1 RETURNING attempts`,
			r.DeliveryID, r.Status, r.NextAttemptAt, r.Attempt.StatusCode, clean(r.Attempt.Error)); err != nil {
			return err
		}
		a := r.Attempt
		if _, err := tx.ExecContext(ctx, `INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, response_excerpt)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
			r.DeliveryID, n, a.StartedAt, a.DurationMS, a.StatusCode, clean(a.Error), clean(a.ResponseExcerpt)); err != nil {
			return err
		}
		if r.Success {
			if _, err := tx.ExecContext(ctx, `UPDATE destinations SET consecutive_failures = 0, circuit_open_until = NULL, circuit_probe_until = NULL
				WHERE id = $1 AND (consecutive_failures <> 0 OR circuit_open_until IS NOT NULL)`, r.DestinationID); err != nil {
				return err
			}
		} else {
			// The circuit opens at the threshold-th failure in a row for
			// the shortest time, doubling with each failure after it up to
			// the longest; counted here, so that the failures of every
			// instance add up.
			if _, err := tx.ExecContext(ctx, `UPDATE destinations SET consecutive_failures = consecutive_failures + 1,
					circuit_open_until = CASE WHEN consecutive_failures + 1 >= $2
						THEN now() + make_interval(secs => least($3 * 2 ^ least(consecutive_failures + 1 - $2, 16), $4))
						ELSE circuit_open_until END,
					circuit_probe_until = NULL
				WHERE id = $1`, r.DestinationID, destination.CircuitThreshold,
				destination.CircuitMinOpen.Seconds(), destination.CircuitMaxOpen.Seconds()); err != nil {
				return err
			}
		}
		if r.Status == destination.Pending {
			return nil
		}
		succeeded, failed := 0, 0
		if r.Status == destination.Succeeded {
			succeeded = 1
		} else {
			failed = 1
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO destination_usage (destination_id, slot, succeeded, failed, last_success_at, last_failure_at)
			VALUES ($1, $2, $3::bigint, $4::bigint, CASE WHEN $3::bigint > 0 THEN now() END, CASE WHEN $4::bigint > 0 THEN now() END)
			ON CONFLICT (destination_id, slot) DO UPDATE SET succeeded = destination_usage.succeeded + EXCLUDED.succeeded,
				failed = destination_usage.failed + EXCLUDED.failed,
				last_success_at = greatest(destination_usage.last_success_at, EXCLUDED.last_success_at),
				last_failure_at = greatest(destination_usage.last_failure_at, EXCLUDED.last_failure_at)`,
			r.DestinationID, r.Slot, succeeded, failed)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish attempt of %s: %w", r.DeliveryID, mapErr(err))
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

// ForwardingTriggers returns the ids of the triggers with an enabled
// destination: their new events have deliveries to make.
func (s *Store) ForwardingTriggers(ctx context.Context) ([]int64, error) {
	var ids []int64
	if err := s.db.SelectContext(ctx, &ids, `SELECT DISTINCT trigger_id FROM destinations WHERE enabled`); err != nil {
		return nil, fmt.Errorf("forwarding triggers: %w", err)
	}
	return ids, nil
}
