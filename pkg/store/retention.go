package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Pruned counts the rows one prune statement deleted, by table.
type Pruned struct {
	Events           int64
	Deliveries       int64
	DeliveryAttempts int64
	Audit            int64
	UsageMinutes     int64
}

// Add adds q's counts to p.
func (p *Pruned) Add(q Pruned) {
	p.Events += q.Events
	p.Deliveries += q.Deliveries
	p.DeliveryAttempts += q.DeliveryAttempts
	p.Audit += q.Audit
	p.UsageMinutes += q.UsageMinutes
}

// Total returns how many rows p counts in all.
func (p Pruned) Total() int64 {
	return p.Events + p.Deliveries + p.DeliveryAttempts + p.Audit + p.UsageMinutes
}

// PruneStep is where a prune walking a table stands after a batch: the
// cursor to pass to the next batch, and whether the walk reached rows
// young enough to keep (or the table's end), so that it is done.
type PruneStep[C any] struct {
	Pruned
	Next C
	Done bool
}

// Every prune statement walks its table in the order of an index, from the
// caller's cursor, over at most limit rows, and deletes those that may go:
// each batch costs the same however many rows the table holds or keeps,
// and holds its row locks for one short statement. Its commit does not wait
// for the disk: deletes lost in a crash are made again by the next pass.

// pruneEvents walks events by received_at (index events_received) and
// deletes those received before $1 that were published (at or before the
// publish position), are not set aside, and have no pending delivery,
// together with their deliveries (then all finished) and those
// deliveries' attempts. Locking the batch's deliveries first makes a
// delivery that a retry turned pending meanwhile count as pending: its
// event stays.
const pruneEvents = `
WITH lazy AS (
	SELECT set_config('synchronous_commit', 'off', true) AS v
), batch AS (
	SELECT id, received_at, xid, seq FROM events
	WHERE received_at < $1 AND (received_at, id) > ($2, $3)
	ORDER BY received_at, id LIMIT $4
), held AS (
	SELECT l.event_id, l.status FROM deliveries l JOIN batch b ON b.id = l.event_id FOR UPDATE OF l
), doomed AS (
	SELECT b.id FROM batch b, publish_position p, lazy
	WHERE (b.xid, b.seq) <= (p.xid, p.seq)
	AND NOT EXISTS (SELECT 1 FROM held h WHERE h.event_id = b.id AND h.status = 'pending')
	AND NOT EXISTS (SELECT 1 FROM publish_set_aside a WHERE a.event_id = b.id)
), dl AS (
	DELETE FROM deliveries l USING doomed d WHERE l.event_id = d.id RETURNING l.id
), att AS (
	DELETE FROM delivery_attempts t USING dl WHERE t.delivery_id = dl.id RETURNING 1
), ev AS (
	DELETE FROM events e USING doomed d WHERE e.id = d.id RETURNING 1
)
SELECT (SELECT count(*) FROM ev), (SELECT count(*) FROM dl), (SELECT count(*) FROM att), (SELECT count(*) FROM batch),
	(SELECT received_at FROM batch ORDER BY received_at DESC, id DESC LIMIT 1),
	(SELECT id FROM batch ORDER BY received_at DESC, id DESC LIMIT 1)`

// PruneEvents deletes, among the next limit events received before
// before, after cursor after (the zero Cursor starts at the oldest), those
// that were published, are not set aside and have no pending delivery, with
// their deliveries and attempts. Kept events are passed over, not waited
// for: the walk ends (Done) at the first event received since before.
func (s *Store) PruneEvents(ctx context.Context, before time.Time, after Cursor, limit int) (PruneStep[Cursor], error) {
	var st PruneStep[Cursor]
	var n int
	var at sql.NullTime
	var id sql.NullString
	from := after.At
	if from.IsZero() {
		from = time.Unix(0, 0).AddDate(-100, 0, 0) // before any event
	}
	if err := s.db.QueryRowContext(ctx, pruneEvents, before, from, after.ID, limit).Scan(
		&st.Events, &st.Deliveries, &st.DeliveryAttempts, &n, &at, &id); err != nil {
		return st, fmt.Errorf("prune events: %w", err)
	}
	// The batch asked only for events received before the cutoff: a short
	// one has reached the young ones.
	st.Done = n < limit
	st.Next = after
	if at.Valid {
		st.Next = Cursor{At: at.Time, ID: id.String}
	}
	return st, nil
}

// pruneDeliveries walks deliveries by id (the primary key; delivery ids
// begin with their creation's milliseconds, so that this is the order in
// which they were made) and deletes those created before $1 that
// succeeded or failed, with their attempts. A delivery a retry turns
// pending meanwhile fails the DELETE's condition when PostgreSQL checks it
// again, and stays.
const pruneDeliveries = `
WITH lazy AS (
	SELECT set_config('synchronous_commit', 'off', true) AS v
), batch AS (
	SELECT id, created_at FROM deliveries WHERE id > $2 ORDER BY id LIMIT $3
), dl AS (
	DELETE FROM deliveries l USING batch b, lazy
	WHERE l.id = b.id AND l.created_at < $1 AND l.status <> 'pending' RETURNING l.id
), att AS (
	DELETE FROM delivery_attempts t USING dl WHERE t.delivery_id = dl.id RETURNING 1
)
SELECT (SELECT count(*) FROM dl), (SELECT count(*) FROM att), (SELECT count(*) FROM batch),
	(SELECT COALESCE(max(id), '') FROM batch), EXISTS (SELECT 1 FROM batch WHERE created_at >= $1)`

// PruneDeliveries deletes, among the next limit deliveries after id after
// ("" starts at the oldest), those created before before that succeeded or
// failed, with their attempts. Pending deliveries are passed over; the
// walk ends (Done) at the first delivery created since before.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time, after string, limit int) (PruneStep[string], error) {
	var st PruneStep[string]
	var n int
	var young bool
	if err := s.db.QueryRowContext(ctx, pruneDeliveries, before, after, limit).Scan(
		&st.Deliveries, &st.DeliveryAttempts, &n, &st.Next, &young); err != nil {
		return st, fmt.Errorf("prune deliveries: %w", err)
	}
	st.Done = young || n < limit
	if n == 0 {
		st.Next = after
	}
	return st, nil
}

// pruneAudit walks audit records by id (the primary key: the order in
// which they were written, which is the order they were received in
// within a request's duration) and deletes those received before $1.
const pruneAudit = `
WITH lazy AS (
	SELECT set_config('synchronous_commit', 'off', true) AS v
), batch AS (
	SELECT id, received_at FROM audit_log WHERE id > $2 ORDER BY id LIMIT $3
), gone AS (
	DELETE FROM audit_log a USING batch b, lazy WHERE a.id = b.id AND b.received_at < $1 RETURNING 1
)
SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM batch),
	(SELECT COALESCE(max(id), 0) FROM batch), EXISTS (SELECT 1 FROM batch WHERE received_at >= $1)`

// PruneAudit deletes, among the next limit audit records after id after
// (0 starts at the oldest), those received before before. The walk ends
// (Done) at the first record received since before: the few older ones
// written after it, by requests that took long, go in a later pass.
func (s *Store) PruneAudit(ctx context.Context, before time.Time, after int64, limit int) (PruneStep[int64], error) {
	var st PruneStep[int64]
	var n int
	var young bool
	if err := s.db.QueryRowContext(ctx, pruneAudit, before, after, limit).Scan(&st.Audit, &n, &st.Next, &young); err != nil {
		return st, fmt.Errorf("prune audit records: %w", err)
	}
	st.Done = young || n < limit
	if n == 0 {
		st.Next = after
	}
	return st, nil
}
