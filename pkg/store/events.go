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
// ref), and the cursor of the next page if there is one. A page ends early,
// with a cursor, once its events hold more than maxBytes of payload and
// metadata (it always holds at least one event), so that a page of large
// events stays a bounded answer.
func (s *Store) ListEvents(ctx context.Context, triggerRef string, p Page, maxBytes int) ([]event.Event, *Cursor, error) {
	if !p.Cursor.IsZero() && !event.ValidID(p.Cursor.ID) {
		return nil, nil, ErrBadCursor
	}
	cond, args := p.after(p.Cursor.ID)
	q := `SELECT ` + eventColumns + ` FROM events WHERE ` + cond
	if triggerRef != "" {
		args = append(args, triggerRef)
		q += fmt.Sprintf(" AND trigger_ref = $%d", len(args))
	}
	args = append(args, p.Limit+1)
	q += fmt.Sprintf(" ORDER BY received_at DESC, id DESC LIMIT $%d", len(args))
	rows, err := s.db.QueryxContext(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var evs []event.Event
	size, more := 0, false
	for rows.Next() {
		if len(evs) == p.Limit || (len(evs) > 0 && size > maxBytes) {
			more = true
			break
		}
		var e event.Event
		if err := rows.StructScan(&e); err != nil {
			return nil, nil, fmt.Errorf("list events: %w", err)
		}
		e.ReceivedAt = e.ReceivedAt.UTC()
		size += len(e.Payload) + len(e.Metadata)
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("list events: %w", err)
	}
	var next *Cursor
	if more {
		last := evs[len(evs)-1]
		next = &Cursor{At: last.ReceivedAt, ID: last.ID}
	}
	return evs, next, nil
}
