package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/lib/pq"

	"github.com/inlet-dev/inlet/pkg/event"
)

// Pending is an outbox row claimed for publishing, with its event.
type Pending struct {
	Seq   int64 `db:"seq"`
	Event event.Event
}

const claimOutbox = `
WITH c AS (
	SELECT seq FROM outbox WHERE claimed_until < now() ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE outbox o SET claimed_until = now() + make_interval(secs => $2)
FROM c, events e
WHERE o.seq = c.seq AND e.id = o.event_id
RETURNING o.seq, e.id, e.trigger_id, e.trigger_ref, e.source, e.payload, e.metadata, e.delivery_id, e.received_at`

// ClaimOutbox claims up to limit unpublished events for lease, oldest first.
// Rows claimed by another publisher whose lease has not run out are skipped.
func (s *Store) ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]Pending, error) {
	rows, err := s.db.QueryxContext(ctx, claimOutbox, limit, lease.Seconds())
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	defer rows.Close()
	var out []Pending
	for rows.Next() {
		var p Pending
		e := &p.Event
		if err := rows.Scan(&p.Seq, &e.ID, &e.TriggerID, &e.TriggerRef, &e.Source, &e.Payload, &e.Metadata, &e.DeliveryID, &e.ReceivedAt); err != nil {
			return nil, fmt.Errorf("claim outbox: %w", err)
		}
		e.ReceivedAt = e.ReceivedAt.UTC()
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// DeleteOutbox removes the rows of published events.
func (s *Store) DeleteOutbox(ctx context.Context, seqs []int64) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM outbox WHERE seq = ANY($1)`, pq.Array(seqs)); err != nil {
		return fmt.Errorf("delete outbox rows: %w", err)
	}
	return nil
}

// ReleaseOutbox gives up the claim on rows that could not be published, so
// they are retried without waiting for the lease to run out.
func (s *Store) ReleaseOutbox(ctx context.Context, seqs []int64) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE outbox SET claimed_until = '-infinity' WHERE seq = ANY($1)`, pq.Array(seqs)); err != nil {
		return fmt.Errorf("release outbox rows: %w", err)
	}
	return nil
}

// ResetOutboxClaims releases every claim. Only the leader publishes, so a
// claim it finds is one whose answer was lost or one left by a leader that
// died; releasing them keeps those rows from being overtaken by newer
// events of their triggers. A former leader still sending is covered by
// JetStream's de-duplication on Nats-Msg-Id.
func (s *Store) ResetOutboxClaims(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE outbox SET claimed_until = '-infinity' WHERE claimed_until > now()`); err != nil {
		return fmt.Errorf("reset outbox claims: %w", err)
	}
	return nil
}

// OutboxBacklog returns how many events wait to be published and when the
// oldest of them was queued.
func (s *Store) OutboxBacklog(ctx context.Context) (int64, *time.Time, error) {
	var row struct {
		N      int64      `db:"n"`
		Oldest *time.Time `db:"oldest"`
	}
	if err := s.db.GetContext(ctx, &row, `SELECT count(*) AS n, min(created_at) AS oldest FROM outbox`); err != nil {
		return 0, nil, fmt.Errorf("outbox backlog: %w", err)
	}
	return row.N, row.Oldest, nil
}

// Lease is a cluster-wide lock held on a dedicated connection; it is lost
// when that connection is.
type Lease struct {
	conn *sql.Conn
}

// ErrNotLeader means another instance holds the lease.
var ErrNotLeader = errors.New("another instance holds the lease")

// AcquireLease takes the advisory lock id, returning ErrNotLeader when
// another session holds it.
func (s *Store) AcquireLease(ctx context.Context, id int64) (*Lease, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("lease connection: %w", err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, id).Scan(&ok); err != nil {
		conn.Close()
		return nil, fmt.Errorf("take lease: %w", err)
	}
	if !ok {
		conn.Close()
		return nil, ErrNotLeader
	}
	return &Lease{conn: conn}, nil
}

// Check confirms the lease's connection is alive, and so the lock held.
func (l *Lease) Check(ctx context.Context) error { return l.conn.PingContext(ctx) }

// Release gives the lock up.
func (l *Lease) Release() {
	// Closing the session releases its advisory locks; the pool may keep the
	// connection only if unlock succeeds.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := l.conn.ExecContext(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
		// Only ErrBadConn makes database/sql drop the connection instead of
		// pooling it with the lock still held.
		_ = l.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	l.conn.Close()
}
