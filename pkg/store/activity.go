package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Activity is one management change and who made it.
type Activity struct {
	ID        int64     `json:"id" db:"id"`
	At        time.Time `json:"at" db:"at"`
	TokenID   *int64    `json:"token_id" db:"token_id"`
	TokenName string    `json:"token_name" db:"token_name"`
	// Action is what was done, as "<resource>.<verb>": trigger.disable,
	// key.create, settings.update, token.revoke, ...
	Action string `json:"action" db:"action"`
	// Target names what it was done to: a trigger ref, "<ref> key <label>",
	// a destination id, "token 3 (ci)".
	Target string `json:"target" db:"target"`
	// Changes names the fields a change touched, never their values.
	Changes pq.StringArray `json:"changes" db:"changes"`
}

// RecordActivity stores a change made outside the Store's own methods, as
// the actor in ctx.
func (s *Store) RecordActivity(ctx context.Context, action, target string, changes ...string) error {
	return record(ctx, s.db, action, target, changes...)
}

// ListActivity returns activity newest first, and the cursor of the next
// page if there is one.
func (s *Store) ListActivity(ctx context.Context, p Page) ([]Activity, *Cursor, error) {
	q := `SELECT id, at, token_id, token_name, action, target, changes FROM activity`
	var args []any
	if !p.Cursor.IsZero() {
		id, err := strconv.ParseInt(p.Cursor.ID, 10, 64)
		if err != nil {
			return nil, nil, ErrBadCursor
		}
		q += ` WHERE (at, id) < ($1, $2)`
		args = append(args, p.Cursor.At, id)
	}
	args = append(args, p.Limit+1)
	q += fmt.Sprintf(` ORDER BY at DESC, id DESC LIMIT $%d`, len(args))
	var rows []Activity
	if err := s.db.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, nil, fmt.Errorf("list activity: %w", err)
	}
	var next *Cursor
	if len(rows) > p.Limit {
		rows = rows[:p.Limit]
		last := rows[len(rows)-1]
		next = &Cursor{At: last.At, ID: strconv.FormatInt(last.ID, 10)}
	}
	for i := range rows {
		rows[i].At = rows[i].At.UTC()
	}
	return rows, next, nil
}

// Actor is who makes a management change: a token of the API or the
// console, or a command.
type Actor struct {
	TokenID *int64
	Name    string
}

type actorKey struct{}

// WithActor returns ctx carrying the actor of the changes made with it:
// every change a Store method makes under such a ctx is recorded in the
// activity log, in the change's own transaction.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// TokenActor is the actor of a request authenticated with t.
func TokenActor(t Token) Actor {
	id := t.ID
	return Actor{TokenID: &id, Name: t.Name}
}

// record adds the activity of a change made in tx, when ctx names an
// actor; changes made without one (packs loading at start) are not
// management changes.
func record(ctx context.Context, tx sqlx.ExecerContext, action, target string, changes ...string) error {
	a, ok := ctx.Value(actorKey{}).(Actor)
	if !ok {
		return nil
	}
	if changes == nil {
		changes = []string{}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO activity (token_id, token_name, action, target, changes) VALUES ($1, $2, $3, $4, $5)`,
		a.TokenID, clean(a.Name), action, clean(target), pq.StringArray(changes)); err != nil {
		return fmt.Errorf("record activity %s: %w", action, err)
	}
	return nil
}
