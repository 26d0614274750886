package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Session is a signed-in session of the operator console. Its id is given
// to the browser once and only its hash is stored.
type Session struct {
	TokenID int64 `db:"token_id"`
	// CSRFSecret derives the session's form tokens; never sent as is.
	CSRFSecret []byte    `db:"csrf_secret"`
	CreatedAt  time.Time `db:"created_at"`
	ExpiresAt  time.Time `db:"expires_at"`
	// HasFlash says a message waits for the next page (TakeFlash).
	HasFlash bool `db:"has_flash"`
}

// sessionIDBytes is the entropy of a session id.
const sessionIDBytes = 32

func hashSessionID(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

func flashContext(hash []byte) string {
	return "console_session/" + hex.EncodeToString(hash) + "/flash"
}

// CreateSession starts a session of token t lasting ttl and returns it
// with its id, which is not retrievable later. Expired sessions are
// deleted on the way. The sign-in is recorded in the activity log as t's.
func (s *Store) CreateSession(ctx context.Context, t Token, ttl time.Duration) (Session, string, error) {
	raw := make([]byte, sessionIDBytes)
	csrf := make([]byte, sessionIDBytes)
	if _, err := rand.Read(raw); err != nil {
		return Session{}, "", fmt.Errorf("create session: %w", err)
	}
	if _, err := rand.Read(csrf); err != nil {
		return Session{}, "", fmt.Errorf("create session: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(raw)
	var sess Session
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE expires_at <= now()`); err != nil {
			return err
		}
		if err := tx.GetContext(ctx, &sess, `INSERT INTO console_sessions (id_hash, token_id, csrf_secret, expires_at)
			VALUES ($1, $2, $3, now() + make_interval(secs => $4))
			RETURNING token_id, csrf_secret, created_at, expires_at, false AS has_flash`,
			hashSessionID(id), t.ID, csrf, ttl.Seconds()); err != nil {
			return err
		}
		return record(WithActor(ctx, TokenActor(t)), tx, "console.sign_in", tokenTarget(t))
	})
	if err != nil {
		return Session{}, "", fmt.Errorf("create session: %w", mapErr(err))
	}
	return sess, id, nil
}

// GetSession returns the live session id and the token it belongs to, or
// ErrNotFound when there is no such session, it has expired, or its token
// was revoked.
func (s *Store) GetSession(ctx context.Context, id string) (Session, Token, error) {
	var row struct {
		Session
		Name           string     `db:"name"`
		Origin         string     `db:"origin"`
		TokenCreatedAt time.Time  `db:"token_created_at"`
		RevokedAt      *time.Time `db:"revoked_at"`
	}
	err := s.db.GetContext(ctx, &row, `SELECT s.token_id, s.csrf_secret, s.created_at, s.expires_at, s.flash IS NOT NULL AS has_flash,
			t.name, t.origin, t.created_at AS token_created_at, t.revoked_at
		FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id
		WHERE s.id_hash = $1 AND s.expires_at > now() AND t.revoked_at IS NULL`, hashSessionID(id))
	if err != nil {
		if err = mapErr(err); errors.Is(err, ErrNotFound) {
			return Session{}, Token{}, ErrNotFound
		}
		return Session{}, Token{}, fmt.Errorf("get session: %w", err)
	}
	t := Token{ID: row.TokenID, Name: row.Name, Origin: row.Origin, CreatedAt: row.TokenCreatedAt, RevokedAt: row.RevokedAt}
	return row.Session, t, nil
}

// DeleteSession ends session id, recording the sign-out as t's. Ending a
// session that does not exist is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string, t Token) error {
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash = $1`, hashSessionID(id))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		return record(WithActor(ctx, TokenActor(t)), tx, "console.sign_out", tokenTarget(t))
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// SetFlash keeps msg, sealed, for the next page of session id, replacing
// one not yet shown.
func (s *Store) SetFlash(ctx context.Context, id, msg string) error {
	h := hashSessionID(id)
	sealed, err := s.seal(msg, flashContext(h))
	if err != nil {
		return fmt.Errorf("set flash: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE console_sessions SET flash = $2 WHERE id_hash = $1`, h, sealed); err != nil {
		return fmt.Errorf("set flash: %w", err)
	}
	return nil
}

// TakeFlash returns the message waiting for session id and forgets it, so
// that it is shown once; "" when there is none.
func (s *Store) TakeFlash(ctx context.Context, id string) (string, error) {
	h := hashSessionID(id)
	var sealed *string
	err := s.db.GetContext(ctx, &sealed, `UPDATE console_sessions s SET flash = NULL
		FROM (SELECT id_hash, flash FROM console_sessions WHERE id_hash = $1 FOR UPDATE) old
		WHERE s.id_hash = old.id_hash RETURNING old.flash`, h)
	if err != nil {
		if errors.Is(mapErr(err), ErrNotFound) {
			return "", nil
		}
		return "", fmt.Errorf("take flash: %w", err)
	}
	if sealed == nil {
		return "", nil
	}
	return s.open(*sealed, flashContext(h))
}
