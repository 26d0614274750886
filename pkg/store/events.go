package store

import (
	"context"
	"fmt"

	"github.com/inlet-dev/inlet/pkg/event"
)

const eventColumns = `id, trigger_id, trigger_ref, source, payload, metadata, delivery_id, received_at`

// GetEvent returns one event.
func (s *Store) GetEvent(ctx context.Context, id string) (event.Event, error) {
	var e event.Event
	if err := s.db.GetContext(ctx, &e, `SELECT `+eventColumns+` FROM events WHERE id = $1`, id); err != nil {
		return e, mapErr(err)
	}
	e.ReceivedAt = e.ReceivedAt.UTC()
	return e, nil
}

// ListEvents returns events newest first, optionally of one trigger (by
// ref), and the cursor of the next page if there is one.
func (s *Store) ListEvents(ctx context.Context, triggerRef string, p Page) ([]event.Event, *Cursor, error) {
	cond, args := p.after(p.Cursor.ID)
	q := `SELECT ` + eventColumns + ` FROM events WHERE ` + cond
	if triggerRef != "" {
		args = append(args, triggerRef)
		q += fmt.Sprintf(" AND trigger_ref = $%d", len(args))
	}
	args = append(args, p.Limit+1)
	q += fmt.Sprintf(" ORDER BY received_at DESC, id DESC LIMIT $%d", len(args))
	var evs []event.Event
	if err := s.db.SelectContext(ctx, &evs, q, args...); err != nil {
		return nil, nil, fmt.Errorf("list events: %w", err)
	}
	for i := range evs {
		evs[i].ReceivedAt = evs[i].ReceivedAt.UTC()
	}
	var next *Cursor
	if len(evs) > p.Limit {
		evs = evs[:p.Limit]
		last := evs[len(evs)-1]
		next = &Cursor{At: last.ReceivedAt, ID: last.ID}
	}
	return evs, next, nil
}
