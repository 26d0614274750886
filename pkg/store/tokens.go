package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/inlet-dev/inlet/pkg/trigger"
)

// Token is a management API bearer token; only its hash is stored.
type Token struct {
	ID        int64      `json:"id" db:"id"`
	Name      string     `json:"name" db:"name"`
	CreatedAt time.Time  `json:"created_at" db:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty" db:"revoked_at"`
}

// TokenPrefix starts every token inlet generates, so that secret scanners
// can recognise one.
const TokenPrefix = "inlet_"

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// CreateToken stores a new random token and returns it; it is not
// retrievable later.
func (s *Store) CreateToken(ctx context.Context, name string) (Token, trigger.Secret, error) {
	plain := TokenPrefix + trigger.RandomString(40)
	t, err := s.AddToken(ctx, name, plain)
	return t, trigger.Secret(plain), err
}

// AddToken stores the hash of a token chosen by the operator (such as
// INLET_ADMIN_TOKEN); adding a token already stored is a no-op.
func (s *Store) AddToken(ctx context.Context, name, plain string) (Token, error) {
	var t Token
	err := s.db.GetContext(ctx, &t, `INSERT INTO api_tokens (name, hash) VALUES ($1, $2)
		ON CONFLICT (hash) DO UPDATE SET revoked_at = NULL
		RETURNING id, name, created_at, revoked_at`, name, hashToken(plain))
	if err != nil {
		return t, fmt.Errorf("add token: %w", err)
	}
	return t, nil
}

// CheckToken reports whether plain is a live token.
func (s *Store) CheckToken(ctx context.Context, plain string) (bool, error) {
	want := hashToken(plain)
	var got []byte
	err := s.db.GetContext(ctx, &got, `SELECT hash FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL`, want)
	if err != nil {
		if mapErr(err) == ErrNotFound {
			return false, nil
		}
		return false, fmt.Errorf("check token: %w", err)
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// ListTokens returns every token, newest first.
func (s *Store) ListTokens(ctx context.Context) ([]Token, error) {
	var ts []Token
	if err := s.db.SelectContext(ctx, &ts, `SELECT id, name, created_at, revoked_at FROM api_tokens ORDER BY id DESC`); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return ts, nil
}

// RevokeToken stops a token from working.
func (s *Store) RevokeToken(ctx context.Context, id int64) error {
	res, err := s.db.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, id)
	if err != nil {
		return fmt.Errorf("revoke token %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// CountLiveTokens returns how many tokens are not revoked.
func (s *Store) CountLiveTokens(ctx context.Context) (int, error) {
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL`); err != nil {
		return 0, fmt.Errorf("count tokens: %w", err)
	}
	return n, nil
}
