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

// triggerRow is a triggers row with its primary key, sealed.
type triggerRow struct {
	trigger.Trigger
	SchemaJSON   []byte         `db:"payload_schema"` // NULL scans into a []byte, not a json.RawMessage
	SettingsJSON []byte         `db:"webhook_settings"`
	KeySealed    sql.NullString `db:"key_sealed"`
	KeyHash      []byte         `db:"key_hash"`
}

func (s *Store) decodeTrigger(r *triggerRow) (trigger.Trigger, error) {
	t := r.Trigger
	if len(r.SchemaJSON) > 0 && string(r.SchemaJSON) != "null" {
		t.PayloadSchema = r.SchemaJSON
	}
	var err error
	if t.Settings, err = s.decodeSettings(t.Ref, r.SettingsJSON); err != nil {
		return t, err
	}
	if r.KeySealed.Valid {
		key, err := s.open(r.KeySealed.String, keyContext(r.KeyHash))
		if err != nil {
			return t, fmt.Errorf("primary key of %s: %w", t.Ref, err)
		}
		t.Key = trigger.Key(key)
	}
	t.CreatedAt = t.CreatedAt.UTC()
	t.UpdatedAt = t.UpdatedAt.UTC()
	return t, nil
}

const triggerColumns = `t.id, t.ref, t.pack, t.name, t.description, t.payload_schema,
	t.webhook_enabled, t.webhook_settings, t.webhook_created_at, t.created_at, t.updated_at`

const selectTriggers = `SELECT ` + triggerColumns + `, k.sealed AS key_sealed, k.hash AS key_hash
FROM triggers t LEFT JOIN webhook_keys k ON k.trigger_id = t.id AND k.role = 'primary'`

// ListTriggers returns every trigger, ordered by ref.
func (s *Store) ListTriggers(ctx context.Context) ([]trigger.Trigger, error) {
	var rows []triggerRow
	if err := s.db.SelectContext(ctx, &rows, selectTriggers+` ORDER BY t.ref`); err != nil {
		return nil, fmt.Errorf("list triggers: %w", err)
	}
	out := make([]trigger.Trigger, 0, len(rows))
	for i := range rows {
		t, err := s.decodeTrigger(&rows[i])
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// GetTrigger returns the trigger whose ref, or numeric id, is refOrID.
func (s *Store) GetTrigger(ctx context.Context, refOrID string) (trigger.Trigger, error) {
	return s.getTrigger(ctx, s.db, refOrID)
}

func (s *Store) getTrigger(ctx context.Context, q sqlx.QueryerContext, refOrID string) (trigger.Trigger, error) {
	id, err := strconv.ParseInt(refOrID, 10, 64)
	if err != nil {
		id = -1
	}
	var row triggerRow
	if err := sqlx.GetContext(ctx, q, &row, selectTriggers+` WHERE t.ref = $1 OR t.id = $2`, refOrID, id); err != nil {
		return trigger.Trigger{}, mapErr(err)
	}
	return s.decodeTrigger(&row)
}

func (s *Store) getTriggerByID(ctx context.Context, q sqlx.QueryerContext, id int64) (trigger.Trigger, error) {
	return s.getTrigger(ctx, q, strconv.FormatInt(id, 10))
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
// so an operator's keys, enabled flag and settings survive every reload. It
// reports whether the trigger was created.
func (s *Store) UpsertDeclaration(ctx context.Context, d trigger.Declaration) (created bool, err error) {
	settings, err := s.encodeSettings(d.Ref, d.Settings)
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
			return s.enable(ctx, tx, res.ID)
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
	settings, err := s.encodeSettings(n.Ref, n.Settings)
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
			if err := s.enable(ctx, tx, id); err != nil {
				return err
			}
		}
		if err := record(ctx, tx, "trigger.create", n.Ref); err != nil {
			return err
		}
		t, err = s.getTriggerByID(ctx, tx, id)
		return err
	})
	if err != nil {
		return t, fmt.Errorf("create trigger %s: %w", n.Ref, mapErr(err))
	}
	s.triggerChanged(t.ID)
	return t, nil
}

// DeleteTrigger removes a trigger, its keys and its destinations, whose
// pending deliveries are canceled; its events stay.
func (s *Store) DeleteTrigger(ctx context.Context, id int64) error {
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, cancelDeliveries+`
			AND destination_id IN (SELECT id FROM destinations WHERE trigger_id = $1)`, id); err != nil {
			return err
		}
		var ref string
		if err := tx.GetContext(ctx, &ref, `DELETE FROM triggers WHERE id = $1 RETURNING ref`, id); err != nil {
			return err
		}
		return record(ctx, tx, "trigger.delete", ref)
	})
	if err != nil {
		return fmt.Errorf("delete trigger %d: %w", id, mapErr(err))
	}
	s.triggerChanged(id)
	return nil
}

// EnableWebhook turns a trigger's webhook on, creating a primary key if it
// has none.
func (s *Store) EnableWebhook(ctx context.Context, id int64) (trigger.Trigger, error) {
	var t trigger.Trigger
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := s.enable(ctx, tx, id); err != nil {
			return err
		}
		var err error
		if t, err = s.getTriggerByID(ctx, tx, id); err != nil {
			return err
		}
		return record(ctx, tx, "webhook.enable", t.Ref)
	})
	if err != nil {
		return t, fmt.Errorf("enable webhook of trigger %d: %w", id, mapErr(err))
	}
	s.triggerChanged(id)
	return t, nil
}

func (s *Store) enable(ctx context.Context, tx *sqlx.Tx, id int64) error {
	res, err := tx.ExecContext(ctx, `UPDATE triggers SET webhook_enabled = TRUE,
		webhook_created_at = COALESCE(webhook_created_at, now()), updated_at = now() WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	var has bool
	if err := tx.GetContext(ctx, &has, `SELECT EXISTS (SELECT 1 FROM webhook_keys WHERE trigger_id = $1 AND role = 'primary')`, id); err != nil {
		return err
	}
	if has {
		return nil
	}
	_, err = s.insertKey(ctx, tx, id, trigger.PrimaryLabel, trigger.RolePrimary, nil)
	return err
}

// DisableWebhook turns a trigger's webhook off; its keys stop working at
// once and work again when the webhook is enabled.
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
		if t, err = s.getTriggerByID(ctx, tx, id); err != nil {
			return err
		}
		return record(ctx, tx, "webhook.disable", t.Ref)
	})
	if err != nil {
		return t, fmt.Errorf("disable webhook of trigger %d: %w", id, mapErr(err))
	}
	s.triggerChanged(id)
	return t, nil
}

// UpdateSettings changes a trigger's settings under a row lock: fn gets the
// current settings and edits them; returning an error changes nothing.
func (s *Store) UpdateSettings(ctx context.Context, id int64, fn func(*trigger.Settings) error) (trigger.Trigger, error) {
	var t trigger.Trigger
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var row struct {
			Ref      string `db:"ref"`
			Settings []byte `db:"webhook_settings"`
		}
		if err := tx.GetContext(ctx, &row, `SELECT ref, webhook_settings FROM triggers WHERE id = $1 FOR UPDATE`, id); err != nil {
			return err
		}
		settings, err := s.decodeSettings(row.Ref, row.Settings)
		if err != nil {
			return err
		}
		old := settings
		if err := fn(&settings); err != nil {
			return err
		}
		out, err := s.encodeSettings(row.Ref, settings)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE triggers SET webhook_settings = $2, updated_at = now() WHERE id = $1`, id, out); err != nil {
			return err
		}
		if err := record(ctx, tx, "settings.update", row.Ref, trigger.Changed(old, settings)...); err != nil {
			return err
		}
		t, err = s.getTriggerByID(ctx, tx, id)
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
	// Trigger is the key's trigger; its Key (the primary key) is not read.
	Trigger trigger.Trigger
	// KeyID and KeyLabel name the key looked up; KeyExpiresAt is set for
	// a key that stops working at a known time.
	KeyID        int64
	KeyLabel     string
	KeyExpiresAt *time.Time
}

const lookupKey = `SELECT ` + triggerColumns + `, k.id AS key_id, k.label AS key_label, k.expires_at AS key_expires_at
FROM webhook_keys k JOIN triggers t ON t.id = k.trigger_id
WHERE k.hash = $1 AND (k.expires_at IS NULL OR k.expires_at > now())`

// LookupKey returns the trigger a live key belongs to, or ErrNotFound.
func (s *Store) LookupKey(ctx context.Context, key string) (Webhook, error) {
	var row struct {
		triggerRow
		KeyID        int64      `db:"key_id"`
		KeyLabel     string     `db:"key_label"`
		KeyExpiresAt *time.Time `db:"key_expires_at"`
	}
	if err := s.db.GetContext(ctx, &row, lookupKey, trigger.HashKey(key)); err != nil {
		return Webhook{}, mapErr(err)
	}
	t, err := s.decodeTrigger(&row.triggerRow)
	if err != nil {
		return Webhook{}, err
	}
	return Webhook{Trigger: t, KeyID: row.KeyID, KeyLabel: row.KeyLabel, KeyExpiresAt: row.KeyExpiresAt}, nil
}

// KeyedWebhook is a live key with what LookupKey returns for it.
type KeyedWebhook struct {
	Key string
	Webhook
}

// LiveWebhooks returns every live key of trigger triggerID, or of every
// trigger when triggerID is 0, with its trigger, so that the receiver knows
// every key before a request names it.
func (s *Store) LiveWebhooks(ctx context.Context, triggerID int64) ([]KeyedWebhook, error) {
	var rows []struct {
		triggerRow
		KeyID        int64      `db:"key_id"`
		KeyLabel     string     `db:"key_label"`
		KeyExpiresAt *time.Time `db:"key_expires_at"`
		Hash         []byte     `db:"hash"`
		Sealed       string     `db:"sealed"`
	}
	err := s.db.SelectContext(ctx, &rows, `SELECT `+triggerColumns+`, k.id AS key_id, k.label AS key_label,
			k.expires_at AS key_expires_at, k.hash, k.sealed
		FROM webhook_keys k JOIN triggers t ON t.id = k.trigger_id
		WHERE (k.expires_at IS NULL OR k.expires_at > now()) AND ($1 = 0 OR t.id = $1)`, triggerID)
	if err != nil {
		return nil, fmt.Errorf("live webhooks: %w", err)
	}
	out := make([]KeyedWebhook, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		key, err := s.open(r.Sealed, keyContext(r.Hash))
		if err != nil {
			return nil, err
		}
		t, err := s.decodeTrigger(&r.triggerRow)
		if err != nil {
			return nil, err
		}
		out = append(out, KeyedWebhook{Key: key, Webhook: Webhook{Trigger: t, KeyID: r.KeyID, KeyLabel: r.KeyLabel, KeyExpiresAt: r.KeyExpiresAt}})
	}
	return out, nil
}

func nullJSON(raw json.RawMessage) any {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return []byte(raw)
}
