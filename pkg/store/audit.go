package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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
	// Count is how many identical rejections from one source the record
	// stands for: 1, or more during a flood (see Writer.RecordAudit).
	Count int `json:"count" db:"count"`
	// KeyID and KeyLabel name the webhook key the request used, when it
	// named a live one.
	KeyID    *int64 `json:"-" db:"key_id"`
	KeyLabel string `json:"key_label" db:"key_label"`
	// EventCount is how many events the request stored: 1 for an accepted
	// webhook, 0 for a duplicate, one per new element of a batch; nil for
	// a refused request.
	EventCount *int `json:"event_count,omitempty" db:"event_count"`
}

const auditColumns = `id, received_at, trigger_id, trigger_ref, key_prefix, source_ip, user_agent,
	status, outcome, detail, body_size, duration_ms, event_id, count, key_id, key_label, event_count`

// ListAudit returns a trigger's audit records newest first, optionally only
// those with one outcome, and the cursor of the next page if there is one.
func (s *Store) ListAudit(ctx context.Context, triggerID int64, oc string, p Page) ([]Audit, *Cursor, error) {
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
	if oc != "" {
		args = append(args, oc)
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

// AuditFilter selects audit records of every trigger; zero fields select
// all.
type AuditFilter struct {
	Outcome   string
	TriggerID int64
	SourceIP  string
	Since     time.Time
}

// ListAllAudit returns audit records of every trigger, unknown keys
// included, newest first (by id, the order they were written), and the
// cursor of the next page if there is one.
func (s *Store) ListAllAudit(ctx context.Context, f AuditFilter, p Page) ([]Audit, *Cursor, error) {
	var conds []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		conds = append(conds, fmt.Sprintf(cond, len(args)))
	}
	if !p.Cursor.IsZero() {
		id, err := strconv.ParseInt(p.Cursor.ID, 10, 64)
		if err != nil {
			return nil, nil, ErrBadCursor
		}
		add("id < $%d", id)
	}
	if f.Outcome != "" {
		add("outcome = $%d", f.Outcome)
	}
	if f.TriggerID != 0 {
		add("trigger_id = $%d", f.TriggerID)
	}
	if f.SourceIP != "" {
		add("source_ip = $%d", f.SourceIP)
	}
	if !f.Since.IsZero() {
		add("received_at >= $%d", f.Since)
	}
	q := `SELECT ` + auditColumns + ` FROM audit_log`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, " AND ")
	}
	args = append(args, p.Limit+1)
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args))
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

// markAnsweredUnavailable finds the audit row that the batch of a request
// answered 503 wrote, if it committed after all, and makes it say what the
// request was answered (a's status, outcome and the given detail), keeping
// its event id. It reports whether there was such a row.
func (s *Store) markAnsweredUnavailable(ctx context.Context, a Audit, detail string) (bool, error) {
	if a.TriggerID == nil {
		return false, nil
	}
	res, err := s.db.ExecContext(ctx, `UPDATE audit_log SET status = $5, outcome = $6, detail = $7
		WHERE trigger_id = $1 AND received_at = $2 AND source_ip = $3 AND user_agent = $4 AND status = 200`,
		*a.TriggerID, a.ReceivedAt, clean(a.SourceIP), clean(a.UserAgent), a.Status, a.Outcome, detail)
	if err != nil {
		return false, fmt.Errorf("settle audit row: %w", err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
