package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Audit is one request to the receiver and how it was answered.
type Audit struct {
	ID         int64     `json:"id" db:"id"`
	ReceivedAt time.Time `json:"received_at" db:"received_at"`
	TriggerID  *int64    `json:"-" db:"trigger_id"`
	TriggerRef *string   `json:"trigger_ref" db:"trigger_ref"`
	KeyPrefix  string    `json:"key_prefix" db:"key_prefix"`
	SourceIP   string    `json:"source_ip" db:"source_ip"`
	UserAgent  string    `json:"user_agent" db:"user_agent"`
	Status     int       `json:"status" db:"status"`
	Outcome    string    `json:"outcome" db:"outcome"`
	Detail     string    `json:"detail" db:"detail"`
	BodySize   int64     `json:"body_size" db:"body_size"`
	DurationMS float64   `json:"duration_ms" db:"duration_ms"`
	EventID    *string   `json:"event_id" db:"event_id"`
}

const auditColumns = `id, received_at, trigger_id, trigger_ref, key_prefix, source_ip, user_agent,
	status, outcome, detail, body_size, duration_ms, event_id`

// ListAudit returns a trigger's audit records newest first, optionally only
// those with one outcome, and the cursor of the next page if there is one.
func (s *Store) ListAudit(ctx context.Context, triggerID int64, outcome string, p Page) ([]Audit, *Cursor, error) {
	var cursorID int64
	if !p.Cursor.IsZero() {
		var err error
		if cursorID, err = strconv.ParseInt(p.Cursor.ID, 10, 64); err != nil {
			return nil, nil, ErrBadCursor
		}
	}
	cond, args := p.after(cursorID)
	args = append(args, triggerID)
	q := `SELECT ` + auditColumns + ` FROM audit_log WHERE ` + cond + fmt.Sprintf(" AND trigger_id = $%d", len(args))
	if outcome != "" {
		args = append(args, outcome)
		q += fmt.Sprintf(" AND outcome = $%d", len(args))
	}
	args = append(args, p.Limit+1)
	q += fmt.Sprintf(" ORDER BY received_at DESC, id DESC LIMIT $%d", len(args))
	var rows []Audit
	if err := s.db.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, nil, fmt.Errorf("list audit: %w", err)
	}
	for i := range rows {
		rows[i].ReceivedAt = rows[i].ReceivedAt.UTC()
	}
	var next *Cursor
	if len(rows) > p.Limit {
		rows = rows[:p.Limit]
		last := rows[len(rows)-1]
		next = &Cursor{At: last.ReceivedAt, ID: strconv.FormatInt(last.ID, 10)}
	}
	return rows, next, nil
}
