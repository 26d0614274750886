package store

import (
	"context"
	"fmt"
	"time"

	"github.com/inlet-dev/inlet/pkg/outcome"
	"github.com/inlet-dev/inlet/pkg/trigger"
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

// Traffic returns the part of u a trigger's health is judged from.
func (u Usage) Traffic() trigger.Traffic {
	return trigger.Traffic{LastAcceptedAt: u.LastAcceptedAt, Accepted1h: u.Accepted1h, Rejected1h: u.Rejected1h}
}

// Usage returns trigger id's traffic.
func (s *Store) Usage(ctx context.Context, triggerID int64) (Usage, error) {
	all, err := s.usage(ctx, triggerID)
	if err != nil {
		return Usage{}, fmt.Errorf("usage of trigger %d: %w", triggerID, err)
	}
	if u, ok := all[triggerID]; ok {
		return u, nil
	}
	return Usage{Requests: map[string]int64{}}, nil
}

// AllUsage returns the traffic of every trigger that has some, by id.
func (s *Store) AllUsage(ctx context.Context) (map[int64]Usage, error) {
	all, err := s.usage(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("usage of every trigger: %w", err)
	}
	return all, nil
}

// usage reads the traffic of trigger triggerID, or of every trigger when
// it is 0.
func (s *Store) usage(ctx context.Context, triggerID int64) (map[int64]Usage, error) {
	out := map[int64]Usage{}
	get := func(id int64) Usage {
		u, ok := out[id]
		if !ok {
			u = Usage{Requests: map[string]int64{}}
		}
		return u
	}
	var rows []struct {
		TriggerID int64     `db:"trigger_id"`
		Outcome   string    `db:"outcome"`
		N         int64     `db:"n"`
		Events    int64     `db:"events"`
		Last      time.Time `db:"last"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT trigger_id, outcome, sum(n)::bigint AS n, sum(events)::bigint AS events, max(last_at) AS last
		FROM usage WHERE $1 = 0 OR trigger_id = $1 GROUP BY trigger_id, outcome`, triggerID); err != nil {
		return nil, err
	}
	later := func(p **time.Time, t time.Time) {
		t = t.UTC()
		if *p == nil || t.After(**p) {
			*p = &t
		}
	}
	for _, r := range rows {
		u := get(r.TriggerID)
		u.Requests[r.Outcome] = r.N
		u.Events += r.Events
		later(&u.LastUsedAt, r.Last)
		if outcome.Rejected(r.Outcome) {
			later(&u.LastRejectedAt, r.Last)
		} else {
			later(&u.LastAcceptedAt, r.Last)
		}
		out[r.TriggerID] = u
	}
	var hour []struct {
		TriggerID int64 `db:"trigger_id"`
		Accepted  int64 `db:"accepted"`
		Rejected  int64 `db:"rejected"`
	}
	if err := s.db.SelectContext(ctx, &hour, `SELECT trigger_id, sum(accepted)::bigint AS accepted, sum(rejected)::bigint AS rejected
		FROM usage_minutes WHERE ($1 = 0 OR trigger_id = $1) AND minute > now() - interval '1 hour' GROUP BY trigger_id`, triggerID); err != nil {
		return nil, err
	}
	for _, h := range hour {
		u := get(h.TriggerID)
		u.Accepted1h, u.Rejected1h = h.Accepted, h.Rejected
		out[h.TriggerID] = u
	}
	return out, nil
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
