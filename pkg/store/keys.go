package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/inlet-dev/inlet/pkg/trigger"
)

// Key errors.
var (
	// ErrTooManyKeys means the trigger already holds trigger.MaxLiveKeys
	// live keys.
	ErrTooManyKeys = errors.New("trigger holds the most live keys it may")
	// ErrPrimaryKey means the primary key cannot be revoked alone:
	// regenerate replaces it.
	ErrPrimaryKey = errors.New("the primary key is replaced by regenerate, not revoked")
)

type keyRow struct {
	ID         int64      `db:"id"`
	TriggerID  int64      `db:"trigger_id"`
	Hash       []byte     `db:"hash"`
	Sealed     string     `db:"sealed"`
	Label      string     `db:"label"`
	Role       string     `db:"role"`
	CreatedAt  time.Time  `db:"created_at"`
	ExpiresAt  *time.Time `db:"expires_at"`
	LastUsedAt *time.Time `db:"last_used_at"`
}

func (s *Store) decodeKey(r keyRow) (trigger.WebhookKey, error) {
	key, err := s.open(r.Sealed, keyContext(r.Hash))
	if err != nil {
		return trigger.WebhookKey{}, err
	}
	k := trigger.WebhookKey{
		ID: r.ID, TriggerID: r.TriggerID, Label: r.Label, Key: trigger.Key(key), Role: r.Role,
		CreatedAt: r.CreatedAt.UTC(), ExpiresAt: utcPtr(r.ExpiresAt), LastUsedAt: utcPtr(r.LastUsedAt),
	}
	return k, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// insertKey adds a fresh key to trigger id.
func (s *Store) insertKey(ctx context.Context, tx *sqlx.Tx, id int64, label, role string, expiresAt *time.Time) (trigger.WebhookKey, error) {
	key := trigger.NewKey()
	hash := trigger.HashKey(string(key))
	sealed, err := s.seal(string(key), keyContext(hash))
	if err != nil {
		return trigger.WebhookKey{}, err
	}
	var r keyRow
	err = tx.GetContext(ctx, &r, `INSERT INTO webhook_keys (trigger_id, hash, sealed, prefix, label, role, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		RETURNING id, trigger_id, hash, sealed, label, role, created_at, expires_at`,
		id, hash, sealed, key.Prefix(), label, role, expiresAt)
	if err != nil {
		return trigger.WebhookKey{}, err
	}
	return s.decodeKey(r)
}

// ListKeys returns a trigger's live keys: the primary first, then the
// others oldest first.
func (s *Store) ListKeys(ctx context.Context, triggerID int64) ([]trigger.WebhookKey, error) {
	var rows []keyRow
	err := s.db.SelectContext(ctx, &rows, `SELECT k.id, k.trigger_id, k.hash, k.sealed, k.label, k.role, k.created_at, k.expires_at,
			(SELECT max(u.last_at) FROM usage u WHERE u.key_id = k.id) AS last_used_at
		FROM webhook_keys k WHERE k.trigger_id = $1 AND (k.expires_at IS NULL OR k.expires_at > now())
		ORDER BY k.role <> 'primary', k.created_at, k.id`, triggerID)
	if err != nil {
		return nil, fmt.Errorf("list keys of trigger %d: %w", triggerID, err)
	}
	keys := make([]trigger.WebhookKey, 0, len(rows))
	for _, r := range rows {
		k, err := s.decodeKey(r)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// lockTrigger takes trigger id's row lock for the rest of tx, so that key
// changes of one trigger happen one at a time, drops its expired keys, and
// returns its ref.
func lockTrigger(ctx context.Context, tx *sqlx.Tx, id int64) (string, error) {
	var ref string
	if err := tx.GetContext(ctx, &ref, `SELECT ref FROM triggers WHERE id = $1 FOR UPDATE`, id); err != nil {
		return "", err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM webhook_keys WHERE trigger_id = $1 AND expires_at <= now()`, id)
	return ref, err
}

// CreateKey adds an extra key with label to trigger id, expiring after
// expiresIn when that is positive. It returns ErrTooManyKeys when the
// trigger already holds trigger.MaxLiveKeys live keys, and ErrConflict when
// a live key has the label.
func (s *Store) CreateKey(ctx context.Context, triggerID int64, label string, expiresIn time.Duration) (trigger.WebhookKey, error) {
	var k trigger.WebhookKey
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		ref, err := lockTrigger(ctx, tx, triggerID)
		if err != nil {
			return err
		}
		var live int
		if err := tx.GetContext(ctx, &live, `SELECT count(*) FROM webhook_keys WHERE trigger_id = $1`, triggerID); err != nil {
			return err
		}
		if live >= trigger.MaxLiveKeys {
			return ErrTooManyKeys
		}
		var exp *time.Time
		if expiresIn > 0 {
			var at time.Time
			if err := tx.GetContext(ctx, &at, `SELECT now() + make_interval(secs => $1)`, expiresIn.Seconds()); err != nil {
				return err
			}
			exp = &at
		}
		if k, err = s.insertKey(ctx, tx, triggerID, label, trigger.RoleExtra, exp); err != nil {
			return err
		}
		return record(ctx, tx, "key.create", ref+" key "+label)
	})
	if err != nil {
		return k, fmt.Errorf("create key of trigger %d: %w", triggerID, mapErr(err))
	}
	s.triggerChanged(triggerID)
	return k, nil
}

// RevokeKey deletes a live key of a trigger, so that it stops working at
// once. It returns ErrNotFound for a key the trigger does not hold (or no
// longer holds) and ErrPrimaryKey for its primary key.
func (s *Store) RevokeKey(ctx context.Context, triggerID, keyID int64) (trigger.WebhookKey, error) {
	var k trigger.WebhookKey
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		ref, err := lockTrigger(ctx, tx, triggerID)
		if err != nil {
			return err
		}
		var r keyRow
		if err := tx.GetContext(ctx, &r, `SELECT id, trigger_id, hash, sealed, label, role, created_at, expires_at
			FROM webhook_keys WHERE id = $1 AND trigger_id = $2`, keyID, triggerID); err != nil {
			return err
		}
		if r.Role == trigger.RolePrimary {
			return ErrPrimaryKey
		}
		if k, err = s.decodeKey(r); err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, `DELETE FROM webhook_keys WHERE id = $1`, keyID); err != nil {
			return err
		}
		return record(ctx, tx, "key.revoke", ref+" key "+r.Label)
	})
	if err != nil {
		return k, fmt.Errorf("revoke key %d of trigger %d: %w", keyID, triggerID, mapErr(err))
	}
	s.triggerChanged(triggerID)
	return k, nil
}

// Regenerated is the outcome of a key regeneration.
type Regenerated struct {
	Trigger trigger.Trigger
	// PreviousExpiresAt is when the replaced primary key stops working;
	// nil when it was revoked at once (or there was none).
	PreviousExpiresAt *time.Time
	// PreviousRevoked reports that no replaced key works any more: neither
	// the key just replaced nor one replaced earlier that was still in its
	// grace period.
	PreviousRevoked bool
}

// RegenerateKey gives a trigger a new primary key. With a positive grace
// the old primary key keeps working for grace; without, it stops at once,
// and so does every key an earlier regenerate left in its grace period.
// Extra keys are not touched.
func (s *Store) RegenerateKey(ctx context.Context, id int64, grace time.Duration) (Regenerated, error) {
	var r Regenerated
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		ref, err := lockTrigger(ctx, tx, id)
		if err != nil {
			return err
		}
		if grace > 0 {
			var exp time.Time
			err := tx.GetContext(ctx, &exp, `UPDATE webhook_keys SET role = 'replaced', label = label || ' (replaced)',
				expires_at = now() + make_interval(secs => $2)
				WHERE trigger_id = $1 AND role = 'primary' RETURNING expires_at`, id, grace.Seconds())
			if err == nil {
				exp = exp.UTC()
				r.PreviousExpiresAt = &exp
			} else if mapErr(err) != ErrNotFound {
				return err
			}
		} else if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_keys WHERE trigger_id = $1 AND role IN ('primary', 'replaced')`, id); err != nil {
			return err
		}
		var replaced int
		if err := tx.GetContext(ctx, &replaced, `SELECT count(*) FROM webhook_keys WHERE trigger_id = $1 AND role = 'replaced'`, id); err != nil {
			return err
		}
		r.PreviousRevoked = replaced == 0
		var live int
		if err := tx.GetContext(ctx, &live, `SELECT count(*) FROM webhook_keys WHERE trigger_id = $1`, id); err != nil {
			return err
		}
		if live >= trigger.MaxLiveKeys {
			return ErrTooManyKeys
		}
		if _, err := s.insertKey(ctx, tx, id, trigger.PrimaryLabel, trigger.RolePrimary, nil); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE triggers SET webhook_created_at = COALESCE(webhook_created_at, now()), updated_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		changes := []string{"previous_key_revoked"}
		if grace > 0 {
			changes = []string{"grace_seconds"}
		}
		if err := record(ctx, tx, "key.regenerate", ref, changes...); err != nil {
			return err
		}
		r.Trigger, err = s.getTriggerByID(ctx, tx, id)
		return err
	})
	if err != nil {
		return r, fmt.Errorf("regenerate key of trigger %d: %w", id, mapErr(err))
	}
	s.triggerChanged(id)
	return r, nil
}
