package store

import (
	"context"
	"fmt"
	"time"

	"github.com/inlet-dev/inlet/pkg/outcome"
)

// Usage is a trigger's traffic as the writer counted it: requests per
// outcome since the trigger was made, the events they stored, and the
// last hour. Reading it costs a few index lookups, whatever the traffic.
type Usage struct {
	// Requests counts requests per outcome.
	Requests map[string]int64
	// Events counts the events requests stored.
	Events int64
	// LastUsedAt is the last request of any outcome; LastAcceptedAt the
	// last answered 200, LastRejectedAt the last refused.
	LastUsedAt, LastAcceptedAt, LastRejectedAt *time.Time
	// Accepted1h and Rejected1h count the requests of the last hour
	// answered 200, and refused.
	Accepted1h, Rejected1h int64
}

// Usage returns trigger id's traffic.
func (s *Store) Usage(ctx context.Context, triggerID int64) (Usage, error) {
	u := Usage{Requests: map[string]int64{}}
	var rows []struct {
		Outcome string    `db:"outcome"`
		N       int64     `db:"n"`
		Events  int64     `db:"events"`
		Last    time.Time `db:"last"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT outcome, sum(n)::bigint AS n, sum(events)::bigint AS events, max(last_at) AS last
		FROM usage WHERE trigger_id = $1 GROUP BY outcome`, triggerID); err != nil {
		return u, fmt.Errorf("usage of trigger %d: %w", triggerID, err)
	}
	later := func(p **time.Time, t time.Time) {
		t = t.UTC()
		if *p == nil || t.After(**p) {
			*p = &t
		}
	}
	for _, r := range rows {
		u.Requests[r.Outcome] = r.N
		u.Events += r.Events
		later(&u.LastUsedAt, r.Last)
		if outcome.Rejected(r.Outcome) {
			later(&u.LastRejectedAt, r.Last)
		} else {
			later(&u.LastAcceptedAt, r.Last)
		}
	}
	err := s.db.QueryRowxContext(ctx, `SELECT COALESCE(sum(accepted), 0)::bigint, COALESCE(sum(rejected), 0)::bigint
		FROM usage_minutes WHERE trigger_id = $1 AND minute > now() - interval '1 hour'`, triggerID).Scan(&u.Accepted1h, &u.Rejected1h)
	if err != nil {
		return u, fmt.Errorf("usage of trigger %d: %w", triggerID, err)
	}
	return u, nil
}

// PruneUsageMinutes deletes the per-minute counts older than two hours,
// which no health reading needs, and returns how many it deleted.
func (s *Store) PruneUsageMinutes(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM usage_minutes WHERE minute < now() - interval '2 hours'`)
	if err != nil {
		return 0, fmt.Errorf("prune usage minutes: %w", err)
	}
	return res.RowsAffected()
}
