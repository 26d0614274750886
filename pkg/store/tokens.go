package store

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// Token is a management API bearer token; only its hash is stored.
type Token struct {
	ID        int64      `json:"id" db:"id"`
	Name      string     `json:"name" db:"name"`
	Origin    string     `json:"origin" db:"origin"`
	CreatedAt time.Time  `json:"created_at" db:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty" db:"revoked_at"`
}

// Where a token came from.
const (
	// OriginGenerated is the token inlet made at first start, when no
	// INLET_ADMIN_TOKEN was set.
	OriginGenerated = "generated"
	// OriginEnv is the value of INLET_ADMIN_TOKEN.
	OriginEnv = "env"
	// OriginCLI is a token made with `inlet token create`.
	OriginCLI = "cli"
)

// TokenPrefix starts every token inlet generates, so that secret scanners
// can recognise one.
const TokenPrefix = "inlet_"

// TokenLen is the length of a token inlet generates: TokenPrefix and 40
// random characters of [A-Za-z0-9].
const TokenLen = len(TokenPrefix) + 40

// ErrTokenRevoked means a token was revoked; it is never made live again.
var ErrTokenRevoked = errors.New("token was revoked")

const tokenColumns = `id, name, origin, created_at, revoked_at`

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// CreateToken stores a new random token and returns it; it is not
// retrievable later.
func (s *Store) CreateToken(ctx context.Context, name, origin string) (Token, secret.Value, error) {
	plain := TokenPrefix + trigger.RandomString(TokenLen-len(TokenPrefix))
	var t Token
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &t, `INSERT INTO api_tokens (name, hash, origin) VALUES ($1, $2, $3)
			RETURNING `+tokenColumns, name, hashToken(plain), origin); err != nil {
			return err
		}
		return record(ctx, tx, "token.create", tokenTarget(t))
	})
	if err != nil {
		return t, "", fmt.Errorf("create token: %w", err)
	}
	return t, secret.Value(plain), nil
}

// AdoptEnvToken makes plain, the value of INLET_ADMIN_TOKEN, the one
// admin token: it is stored if new, and the tokens that earlier values of
// INLET_ADMIN_TOKEN stored, and the token generated at first start, are
// revoked. It returns how many it revoked, and ErrTokenRevoked, changing
// nothing, when plain is a token an operator revoked.
func (s *Store) AdoptEnvToken(ctx context.Context, plain string) (int, error) {
	retired := 0
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var cur []Token
		if err := tx.SelectContext(ctx, &cur, `SELECT `+tokenColumns+` FROM api_tokens WHERE hash = $1 FOR UPDATE`, hashToken(plain)); err != nil {
			return err
		}
		switch {
		case len(cur) == 0:
			if _, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (name, hash, origin) VALUES ('INLET_ADMIN_TOKEN', $1, 'env')`, hashToken(plain)); err != nil {
				return err
			}
		case cur[0].RevokedAt != nil:
			return ErrTokenRevoked
		}
		res, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = now()
			WHERE origin IN ('env', 'generated') AND hash <> $1 AND revoked_at IS NULL`, hashToken(plain))
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		retired = int(n)
		return nil
	})
	if err != nil && !errors.Is(err, ErrTokenRevoked) {
		err = fmt.Errorf("adopt INLET_ADMIN_TOKEN: %w", err)
	}
	return retired, err
}

func tokenTarget(t Token) string { return fmt.Sprintf("token %d (%s)", t.ID, t.Name) }

// CheckToken returns the live token plain, or ErrNotFound.
func (s *Store) CheckToken(ctx context.Context, plain string) (Token, error) {
	want := hashToken(plain)
	var row struct {
		Token
		Hash []byte `db:"hash"`
	}
	err := s.db.GetContext(ctx, &row, `SELECT `+tokenColumns+`, hash FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL`, want)
	if err != nil {
		if err = mapErr(err); errors.Is(err, ErrNotFound) {
			return Token{}, ErrNotFound
		}
		return Token{}, fmt.Errorf("check token: %w", err)
	}
	if subtle.ConstantTimeCompare(row.Hash, want) != 1 {
		return Token{}, ErrNotFound
	}
	return row.Token, nil
}

// GetToken returns one token, live or revoked.
func (s *Store) GetToken(ctx context.Context, id int64) (Token, error) {
	var t Token
	if err := s.db.GetContext(ctx, &t, `SELECT `+tokenColumns+` FROM api_tokens WHERE id = $1`, id); err != nil {
		return t, mapErr(err)
	}
	return t, nil
}

// ListTokens returns every token, newest first.
func (s *Store) ListTokens(ctx context.Context) ([]Token, error) {
	var ts []Token
	if err := s.db.SelectContext(ctx, &ts, `SELECT `+tokenColumns+` FROM api_tokens ORDER BY id DESC`); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return ts, nil
}

// RevokeToken stops a token from working, for good.
func (s *Store) RevokeToken(ctx context.Context, id int64) (Token, error) {
	var t Token
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := tx.GetContext(ctx, &t, `UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL
			RETURNING `+tokenColumns, id); err != nil {
			return err
		}
		return record(ctx, tx, "token.revoke", tokenTarget(t))
	})
	if err != nil {
		return t, mapErr(err)
	}
	return t, nil
}

// CountLiveTokens returns how many tokens are not revoked.
func (s *Store) CountLiveTokens(ctx context.Context) (int, error) {
	var n int
	if err := s.db.GetContext(ctx, &n, `SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL`); err != nil {
		return 0, fmt.Errorf("count tokens: %w", err)
	}
	return n, nil
}
