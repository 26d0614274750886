package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/inlet-dev/inlet/pkg/event"
)

// Position is a place in the order in which events are published: the id of
// the transaction that stored an event, then the event's sequence number.
// Events are published in Position order; every event after the publisher's
// Position is waiting to be published.
type Position struct {
	XID uint64
	Seq int64
}

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool {
	return p.XID < q.XID || (p.XID == q.XID && p.Seq < q.Seq)
}

func (p Position) xid() string { return strconv.FormatUint(p.XID, 10) }

// Pending is an event waiting to be published, with its position.
type Pending struct {
	Pos   Position
	Event event.Event
}

// pendingEvents reads events after a position, but only those stored by
// transactions older than every transaction of this database still
// running: those have ended, so no event can still appear before the last
// one returned. Reading further would let a transaction that commits later
// add an event behind the publisher's position, where it would never be
// published.
//
// The bound is the oldest transaction in the snapshot's list of running
// ones ($4 is the snapshot), leaving out those that pg_stat_activity and
// pg_prepared_xacts show in another database: on a server shared with
// other applications, their long transactions cannot hold publishing back.
// A transaction that ended between the snapshot and that reading is not
// shown anywhere and so counts, which only delays.
const pendingEvents = `
WITH snap AS (
	SELECT pg_current_snapshot() AS s
), elsewhere AS (
	SELECT backend_xid AS x FROM pg_stat_activity
	WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()
	UNION ALL
	SELECT transaction FROM pg_prepared_xacts WHERE database <> current_database()
), bound AS (
	SELECT COALESCE(
		(SELECT min(x) FROM pg_snapshot_xip(snap.s) AS x WHERE x::xid NOT IN (SELECT x FROM elsewhere)),
		pg_snapshot_xmax(snap.s)) AS b
	FROM snap
)
SELECT xid::text AS xid_text, seq, ` + eventColumns + ` FROM events
WHERE (xid, seq) > ($1::xid8, $2) AND xid < (SELECT b FROM bound)
ORDER BY events.xid, events.seq LIMIT $3`

// PendingEvents returns up to limit events after pos, in publication order.
func (s *Store) PendingEvents(ctx context.Context, after Position, limit int) ([]Pending, error) {
	rows, err := s.db.QueryxContext(ctx, pendingEvents, after.xid(), after.Seq, limit)
	if err != nil {
		return nil, fmt.Errorf("read pending events: %w", err)
	}
	defer rows.Close()
	var out []Pending
	for rows.Next() {
		var p Pending
		var xid string
		e := &p.Event
		if err := rows.Scan(&xid, &p.Pos.Seq, &e.ID, &e.TriggerID, &e.TriggerRef, &e.Source, &e.Payload, &e.Metadata, &e.DeliveryID, &e.ReceivedAt); err != nil {
			return nil, fmt.Errorf("read pending events: %w", err)
		}
		if p.Pos.XID, err = strconv.ParseUint(xid, 10, 64); err != nil {
			return nil, fmt.Errorf("read pending events: xid %q: %w", xid, err)
		}
		e.ReceivedAt = e.ReceivedAt.UTC()
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read pending events: %w", err)
	}
	return out, nil
}

// PublishPosition returns how far events have been published.
func (s *Store) PublishPosition(ctx context.Context) (Position, error) {
	var row struct {
		XID string `db:"xid"`
		Seq int64  `db:"seq"`
	}
	if err := s.db.GetContext(ctx, &row, `SELECT xid::text AS xid, seq FROM publish_position`); err != nil {
		return Position{}, fmt.Errorf("read publish position: %w", err)
	}
	x, err := strconv.ParseUint(row.XID, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("read publish position: xid %q: %w", row.XID, err)
	}
	return Position{XID: x, Seq: row.Seq}, nil
}

// SetAside is an event NATS refused for a reason retrying cannot fix.
type SetAside struct {
	EventID          string     `json:"event_id" db:"event_id"`
	TriggerRef       string     `json:"trigger_ref" db:"trigger_ref"`
	Reason           string     `json:"reason" db:"reason"`
	SetAsideAt       time.Time  `json:"set_aside_at" db:"set_aside_at"`
	Attempts         int        `json:"attempts" db:"attempts"`
	RetryRequestedAt *time.Time `json:"retry_requested_at" db:"retry_requested_at"`
}

// PublishProgress is what one publishing round settles: the position it
// reached, the events it set aside, and the set-aside events it published
// on an operator's request.
type PublishProgress struct {
	To        Position
	SetAside  []SetAside // EventID, TriggerRef, Reason
	Published []string   // ids of set-aside events now published
}

// RecordProgress moves the publish position forward to p.To (never back:
// a former leader finishing a round late cannot undo a newer one) and
// records p's set-aside events, in one transaction. The transaction does
// not wait for its commit to reach the disk: if the database crashes right
// after, the position is a little behind and those events are published
// again, which JetStream's de-duplication drops.
func (s *Store) RecordProgress(ctx context.Context, p PublishProgress) error {
	const advance = `UPDATE publish_position SET xid = $1::xid8, seq = $2, updated_at = now()
			WHERE (xid, seq) < ($1::xid8, $2)`
	if len(p.SetAside) == 0 && len(p.Published) == 0 {
		// The usual round: one statement, one round trip.
		if _, err := s.db.ExecContext(ctx, `WITH lazy AS (SELECT set_config('synchronous_commit', 'off', true) AS v)
			`+advance+` AND (SELECT v FROM lazy) IS NOT NULL`, p.To.xid(), p.To.Seq); err != nil {
			return fmt.Errorf("record publish progress: %w", err)
		}
		return nil
	}
	err := s.inLazyTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, advance, p.To.xid(), p.To.Seq); err != nil {
			return err
		}
		for _, a := range p.SetAside {
			if _, err := tx.ExecContext(ctx, `INSERT INTO publish_set_aside (event_id, trigger_ref, reason) VALUES ($1, $2, $3)
				ON CONFLICT (event_id) DO UPDATE SET reason = EXCLUDED.reason, set_aside_at = now(),
					attempts = publish_set_aside.attempts + 1, retry_requested_at = NULL`,
				a.EventID, a.TriggerRef, clean(a.Reason)); err != nil {
				return err
			}
		}
		if len(p.Published) > 0 {
			if _, err := tx.ExecContext(ctx, `DELETE FROM publish_set_aside WHERE event_id = ANY($1)`, pq.StringArray(p.Published)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record publish progress: %w", err)
	}
	return nil
}

// RetryRequested returns up to limit set-aside events an operator asked to
// publish again, oldest request first.
func (s *Store) RetryRequested(ctx context.Context, limit int) ([]event.Event, error) {
	var evs []event.Event
	err := s.db.SelectContext(ctx, &evs, `SELECT e.id, e.trigger_id, e.trigger_ref, e.source, e.payload, e.metadata, e.delivery_id, e.received_at
		FROM publish_set_aside a JOIN events e ON e.id = a.event_id
		WHERE a.retry_requested_at IS NOT NULL ORDER BY a.retry_requested_at, a.event_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read set-aside events to retry: %w", err)
	}
	for i := range evs {
		evs[i].ReceivedAt = evs[i].ReceivedAt.UTC()
	}
	return evs, nil
}

// ListSetAside returns the set-aside events, most recent first.
func (s *Store) ListSetAside(ctx context.Context, limit int) ([]SetAside, error) {
	var out []SetAside
	if err := s.db.SelectContext(ctx, &out, `SELECT event_id, trigger_ref, reason, set_aside_at, attempts, retry_requested_at
		FROM publish_set_aside ORDER BY set_aside_at DESC, event_id DESC LIMIT $1`, limit); err != nil {
		return nil, fmt.Errorf("list set-aside events: %w", err)
	}
	for i := range out {
		out[i].SetAsideAt = out[i].SetAsideAt.UTC()
	}
	return out, nil
}

// CountSetAside returns how many events are set aside.
func (s *Store) CountSetAside(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.GetContext(ctx, &n, `SELECT count(*) FROM publish_set_aside`); err != nil {
		return 0, fmt.Errorf("count set-aside events: %w", err)
	}
	return n, nil
}

// RequestRetry asks the publisher to try a set-aside event again. It
// returns ErrNotFound when the event is not set aside.
func (s *Store) RequestRetry(ctx context.Context, eventID string) (SetAside, error) {
	var a SetAside
	err := s.db.GetContext(ctx, &a, `UPDATE publish_set_aside SET retry_requested_at = now() WHERE event_id = $1
		RETURNING event_id, trigger_ref, reason, set_aside_at, attempts, retry_requested_at`, eventID)
	if err != nil {
		return a, mapErr(err)
	}
	a.SetAsideAt = a.SetAsideAt.UTC()
	return a, nil
}

// Backlog returns how many events wait to be published after pos and when
// the first of them arrived.
func (s *Store) Backlog(ctx context.Context, after Position) (int64, *time.Time, error) {
	var n int64
	if err := s.db.GetContext(ctx, &n, `SELECT count(*) FROM events WHERE (xid, seq) > ($1::xid8, $2)`, after.xid(), after.Seq); err != nil {
		return 0, nil, fmt.Errorf("publish backlog: %w", err)
	}
	if n == 0 {
		return 0, nil, nil
	}
	var first time.Time
	err := s.db.GetContext(ctx, &first, `SELECT received_at FROM events WHERE (xid, seq) > ($1::xid8, $2) ORDER BY xid, seq LIMIT 1`, after.xid(), after.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil // published meanwhile
	}
	if err != nil {
		return 0, nil, fmt.Errorf("publish backlog: %w", err)
	}
	first = first.UTC()
	return n, &first, nil
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
