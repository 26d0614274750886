package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/inlet-dev/inlet/pkg/trigger"
)

// triggerRow is a triggers row with its current key.
type triggerRow struct {
	trigger.Trigger
	SchemaJSON   []byte         `db:"payload_schema"` // NULL scans into a []byte, not a json.RawMessage
	SettingsJSON []byte         `db:"webhook_settings"`
	KeyText      sql.NullString `db:"key"`
}

func (r *triggerRow) decode() (trigger.Trigger, error) {
	t := r.Trigger
	if len(r.SchemaJSON) > 0 && string(r.SchemaJSON) != "null" {
		t.PayloadSchema = r.SchemaJSON
	}
	t.Settings = trigger.DefaultSettings()
	if err := json.Unmarshal(r.SettingsJSON, &t.Settings); err != nil {
		return t, fmt.Errorf("decode settings of %s: %w", t.Ref, err)
	}
	t.Settings.Normalize()
	t.Key = trigger.Key(r.KeyText.String)
	t.CreatedAt = t.CreatedAt.UTC()
	t.UpdatedAt = t.UpdatedAt.UTC()
	return t, nil
}

const triggerColumns = `t.id, t.ref, t.pack, t.name, t.description, t.payload_schema,
	t.webhook_enabled, t.webhook_settings, t.webhook_created_at, t.created_at, t.updated_at, k.key`

const triggerFrom = `FROM triggers t LEFT JOIN webhook_keys k ON k.trigger_id = t.id AND k.expires_at IS NULL`

const selectTriggers = `SELECT ` + triggerColumns + ` ` + triggerFrom + ` ORDER BY t.ref`

// ListTriggers returns every trigger, ordered by ref.
func (s *Store) ListTriggers(ctx context.Context) ([]trigger.Trigger, error) {
	var rows []triggerRow
	if err := s.db.SelectContext(ctx, &rows, selectTriggers); err != nil {
		return nil, fmt.Errorf("list triggers: %w", err)
	}
	out := make([]trigger.Trigger, 0, len(rows))
	for i := range rows {
		t, err := rows[i].decode()
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

const selectTrigger = `SELECT ` + triggerColumns + ` ` + triggerFrom + ` WHERE t.ref = $1 OR t.id = $2`

// GetTrigger returns the trigger whose ref, or numeric id, is refOrID.
func (s *Store) GetTrigger(ctx context.Context, refOrID string) (trigger.Trigger, error) {
	return getTrigger(ctx, s.db, refOrID)
}

func getTrigger(ctx context.Context, q sqlx.QueryerContext, refOrID string) (trigger.Trigger, error) {
	id, err := strconv.ParseInt(refOrID, 10, 64)
	if err != nil {
		id = -1
	}
	var row triggerRow
	if err := sqlx.GetContext(ctx, q, &row, selectTrigger, refOrID, id); err != nil {
		return trigger.Trigger{}, mapErr(err)
	}
	return row.decode()
}

const upsertDeclaration = `
INSERT INTO triggers (ref, pack, name, description, payload_schema, webhook_settings)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (ref) DO UPDATE SET
	pack = EXCLUDED.pack, name = EXCLUDED.name, description = EXCLUDED.description,
	payload_schema = EXCLUDED.payload_schema, updated_at = now()
WHERE (triggers.pack, triggers.name, triggers.description, triggers.payload_schema)
	IS DISTINCT FROM (EXCLUDED.pack, EXCLUDED.name, EXCLUDED.description, EXCLUDED.payload_schema)
RETURNING id, (xmax = 0) AS inserted`

// UpsertDeclaration creates or updates a pack's trigger by ref. It updates
// only the pack-owned columns; the webhook defaults apply on creation only,
// so an operator's key, enabled flag and settings survive every reload. It
// reports whether the trigger was created.
func (s *Store) UpsertDeclaration(ctx context.Context, d trigger.Declaration) (created bool, err error) {
	settings, err := json.Marshal(d.Settings)
	if err != nil {
		return false, err
	}
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		var res struct {
			ID       int64 `db:"id"`
			Inserted bool  `db:"inserted"`
		}
		err := tx.GetContext(ctx, &res, upsertDeclaration, d.Ref, d.Pack, d.Name, d.Description, nullJSON(d.PayloadSchema), settings)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // unchanged
		}
		if err != nil {
			return err
		}
		created = res.Inserted
		if created && d.Enabled {
			return enable(ctx, tx, res.ID)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("upsert trigger %s: %w", d.Ref, mapErr(err))
	}
	return created, nil
}

// NewTrigger is a trigger created through the API.
type NewTrigger struct {
	Ref           string
	Description   string
	PayloadSchema json.RawMessage
	Enabled       bool
	Settings      trigger.Settings
}

const insertTrigger = `
INSERT INTO triggers (ref, pack, name, description, payload_schema, webhook_settings)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`

// CreateTrigger inserts a trigger; ErrConflict if the ref is taken.
func (s *Store) CreateTrigger(ctx context.Context, n NewTrigger) (trigger.Trigger, error) {
	settings, err := json.Marshal(n.Settings)
	if err != nil {
		return trigger.Trigger{}, err
	}
	pack, name := trigger.SplitRef(n.Ref)
	var t trigger.Trigger
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		var id int64
		if err := tx.GetContext(ctx, &id, insertTrigger, n.Ref, pack, name, n.Description, nullJSON(n.PayloadSchema), settings); err != nil {
			return err
		}
		if n.Enabled {
			if err := enable(ctx, tx, id); err != nil {
				return err
			}
		}
		t, err = getTrigger(ctx, tx, strconv.FormatInt(id, 10))
		return err
	})
	if err != nil {
		return t, fmt.Errorf("create trigger %s: %w", n.Ref, mapErr(err))
	}
	s.triggerChanged(t.ID)
	return t, nil
}

// DeleteTrigger removes a trigger and its keys; its events stay.
func (s *Store) DeleteTrigger(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM triggers WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete trigger %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	s.triggerChanged(id)
	return nil
}

// EnableWebhook turns a trigger's webhook on, creating a key if it has none.
func (s *Store) EnableWebhook(ctx context.Context, id int64) (trigger.Trigger, error) {
	var t trigger.Trigger
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := enable(ctx, tx, id); err != nil {
			return err
		}
		var err error
		t, err = getTrigger(ctx, tx, strconv.FormatInt(id, 10))
		return err
	})
	if err != nil {
		return t, fmt.Errorf("enable webhook of trigger %d: %w", id, mapErr(err))
	}
	s.triggerChanged(id)
	return t, nil
}

func enable(ctx context.Context, tx *sqlx.Tx, id int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE triggers SET webhook_enabled = TRUE,
		webhook_created_at = COALESCE(webhook_created_at, now()), updated_at = now() WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	var has bool
	if err := tx.GetContext(ctx, &has, `SELECT EXISTS (SELECT 1 FROM webhook_keys WHERE trigger_id = $1 AND expires_at IS NULL)`, id); err != nil {
		return err
	}
	if has {
		return nil
	}
	_, err = insertKey(ctx, tx, id)
	return err
}

func insertKey(ctx context.Context, tx *sqlx.Tx, id int64) (trigger.Key, error) {
	key := trigger.NewKey()
	_, err := tx.ExecContext(ctx, `INSERT INTO webhook_keys (key, trigger_id) VALUES ($1, $2)`, string(key), id)
	return key, err
}

// DisableWebhook turns a trigger's webhook off; its key stops working at
// once and works again when the webhook is enabled.
func (s *Store) DisableWebhook(ctx context.Context, id int64) (trigger.Trigger, error) {
	var t trigger.Trigger
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE triggers SET webhook_enabled = FALSE, updated_at = now() WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		t, err = getTrigger(ctx, tx, strconv.FormatInt(id, 10))
		return err
	})
	if err != nil {
		return t, fmt.Errorf("disable webhook of trigger %d: %w", id, mapErr(err))
	}
	s.triggerChanged(id)
	return t, nil
}

// Regenerated is the outcome of a key regeneration.
type Regenerated struct {
	Trigger trigger.Trigger
	// PreviousExpiresAt is when the old key stops working; nil when it was
	// revoked at once (or there was none).
	PreviousExpiresAt *time.Time
}

// RegenerateKey gives a trigger a new key. The old key is revoked at once
// when grace is zero, or keeps working for grace. Keys that expired earlier
// are removed.
func (s *Store) RegenerateKey(ctx context.Context, id int64, grace time.Duration) (Regenerated, error) {
	var r Regenerated
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var locked int64
		if err := tx.GetContext(ctx, &locked, `SELECT id FROM triggers WHERE id = $1 FOR UPDATE`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_keys WHERE trigger_id = $1 AND expires_at <= now()`, id); err != nil {
			return err
		}
		if grace > 0 {
			var exp time.Time
			err := tx.GetContext(ctx, &exp, `UPDATE webhook_keys SET expires_at = now() + make_interval(secs => $2)
				WHERE trigger_id = $1 AND expires_at IS NULL RETURNING expires_at`, id, grace.Seconds())
			if err == nil {
				exp = exp.UTC()
				r.PreviousExpiresAt = &exp
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		} else if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_keys WHERE trigger_id = $1 AND expires_at IS NULL`, id); err != nil {
			return err
		}
		if _, err := insertKey(ctx, tx, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE triggers SET webhook_created_at = COALESCE(webhook_created_at, now()), updated_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		var err error
		r.Trigger, err = getTrigger(ctx, tx, strconv.FormatInt(id, 10))
		return err
	})
	if err != nil {
		return r, fmt.Errorf("regenerate key of trigger %d: %w", id, mapErr(err))
	}
	s.triggerChanged(id)
	return r, nil
}

// UpdateSettings changes a trigger's settings under a row lock: fn gets the
// current settings and edits them; returning an error changes nothing.
func (s *Store) UpdateSettings(ctx context.Context, id int64, fn func(*trigger.Settings) error) (trigger.Trigger, error) {
	var t trigger.Trigger
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var raw []byte
		if err := tx.GetContext(ctx, &raw, `SELECT webhook_settings FROM triggers WHERE id = $1 FOR UPDATE`, id); err != nil {
			return err
		}
		settings := trigger.DefaultSettings()
		if err := json.Unmarshal(raw, &settings); err != nil {
			return fmt.Errorf("decode settings: %w", err)
		}
		if err := fn(&settings); err != nil {
			return err
		}
		out, err := json.Marshal(settings)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE triggers SET webhook_settings = $2, updated_at = now() WHERE id = $1`, id, out); err != nil {
			return err
		}
		t, err = getTrigger(ctx, tx, strconv.FormatInt(id, 10))
		return err
	})
	if err != nil {
		return t, fmt.Errorf("update settings of trigger %d: %w", id, mapErr(err))
	}
	s.triggerChanged(id)
	return t, nil
}

// Webhook is what the receiver needs to handle a request for a key.
type Webhook struct {
	Trigger trigger.Trigger
	// Key is the key looked up; KeyExpiresAt is set while a regenerated
	// key's predecessor is in its grace period.
	Key          trigger.Key
	KeyExpiresAt *time.Time
}

const lookupKey = `SELECT ` + triggerColumns + `, k.expires_at
FROM webhook_keys k JOIN triggers t ON t.id = k.trigger_id
WHERE k.key = $1 AND (k.expires_at IS NULL OR k.expires_at > now())`

// LookupKey returns the trigger a live key belongs to, or ErrNotFound.
func (s *Store) LookupKey(ctx context.Context, key string) (Webhook, error) {
	var row struct {
		triggerRow
		ExpiresAt *time.Time `db:"expires_at"`
	}
	if err := s.db.GetContext(ctx, &row, lookupKey, key); err != nil {
		return Webhook{}, mapErr(err)
	}
	t, err := row.decode()
	if err != nil {
		return Webhook{}, err
	}
	return Webhook{Trigger: t, Key: trigger.Key(row.KeyText.String), KeyExpiresAt: row.ExpiresAt}, nil
}

// WebhookStats summarises a trigger's traffic.
type WebhookStats struct {
	TotalEvents int64            `json:"total_events"`
	LastUsedAt  *time.Time       `json:"last_used_at"`
	Outcomes    map[string]int64 `json:"outcomes"`
}

// Stats counts a trigger's events and its audit records per outcome.
func (s *Store) Stats(ctx context.Context, id int64) (WebhookStats, error) {
	st := WebhookStats{Outcomes: map[string]int64{}}
	if err := s.db.GetContext(ctx, &st.TotalEvents, `SELECT count(*) FROM events WHERE trigger_id = $1`, id); err != nil {
		return st, fmt.Errorf("count events: %w", err)
	}
	var rows []struct {
		Outcome string     `db:"outcome"`
		N       int64      `db:"n"`
		Last    *time.Time `db:"last"`
	}
	if err := s.db.SelectContext(ctx, &rows, `SELECT outcome, count(*) AS n, max(received_at) AS last
		FROM audit_log WHERE trigger_id = $1 GROUP BY outcome`, id); err != nil {
		return st, fmt.Errorf("count outcomes: %w", err)
	}
	for _, r := range rows {
		st.Outcomes[r.Outcome] = r.N
		if r.Last != nil && (st.LastUsedAt == nil || r.Last.After(*st.LastUsedAt)) {
			last := r.Last.UTC()
			st.LastUsedAt = &last
		}
	}
	return st, nil
}

func nullJSON(raw json.RawMessage) any {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return []byte(raw)
}
