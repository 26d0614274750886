// Package store holds all of inlet's SQL: triggers, webhook keys and
// settings, events and their publication, audit records and API tokens. Methods are
// safe for concurrent use; missing rows come back as ErrNotFound and unique
// violations as ErrConflict.
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/inlet-dev/inlet/pkg/secret"
)

// Sentinel errors.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
)

// Store is inlet's PostgreSQL storage.
type Store struct {
	db      *sqlx.DB
	changed func(triggerID int64)
	// kr seals and opens the secrets the store keeps (HMAC secrets, webhook
	// keys); reloadKeys, if set, reads it again when a value was sealed
	// under a key it does not hold, as after a rotation by another process.
	kr         atomic.Pointer[secret.Keyring]
	reloadKeys func() (*secret.Keyring, error)
}

// New returns a Store on db that seals secrets with kr. A nil kr makes
// every method that stores or reads a secret fail; tests of other tables
// pass nil.
func New(db *sqlx.DB, kr *secret.Keyring) *Store {
	s := &Store{db: db}
	s.kr.Store(kr)
	return s
}

// OnKeyUnknown sets fn to be called, once per value, when a sealed value
// names a key the keyring does not hold: fn returns the keyring to use from
// then on (typically read again from its file). Call it before the Store
// is shared.
func (s *Store) OnKeyUnknown(fn func() (*secret.Keyring, error)) { s.reloadKeys = fn }

// OnTriggerChange sets fn to be called after every committed change to a
// trigger or its keys made through this Store. Other instances learn of
// the change through ChannelTriggers; this hook lets the instance that made
// it apply it before answering, so its next request already sees it. Call
// it before the Store is shared.
func (s *Store) OnTriggerChange(fn func(triggerID int64)) { s.changed = fn }

func (s *Store) triggerChanged(id int64) {
	if s.changed != nil {
		s.changed(id)
	}
}

// DB returns the underlying pool.
func (s *Store) DB() *sqlx.DB { return s.db }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// inLazyTx runs fn in a transaction whose commit does not wait for the
// WAL to reach the disk (synchronous_commit off): for writes that a crash
// may lose at no cost but doing them again, such as a delivery's claim
// (its lease lapses anyway) or an attempt's record (the delivery is then
// attempted again, which at least once allows). It saves the forwarder an
// fsync per statement, and the writer's commits the wait behind them.
func (s *Store) inLazyTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit = off`); err != nil {
			return err
		}
		return fn(tx)
	})
}

// mapErr turns driver errors into the package's sentinels.
func mapErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var pe *pq.Error
	if errors.As(err, &pe) && pe.Code == "23505" {
		return fmt.Errorf("%w: %s", ErrConflict, pe.Constraint)
	}
	return err
}

// IsUnavailable reports whether err means the database could not be reached
// or stopped answering, as opposed to a query that failed on its own.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, sql.ErrConnDone) {
		return true
	}
	var pe *pq.Error
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P: operator intervention
		// (shutdown); 53: insufficient resources.
		// 57014: a batch that reached the database after its deadline.
		c := string(pe.Code)
		return len(c) >= 2 && (c[:2] == "08" || c[:2] == "53" || c[:3] == "57P" || c == "57014")
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}
