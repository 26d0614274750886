package store_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

// A session lives until it expires, is deleted or its token is revoked;
// only its hash is stored, and its flash is shown once and sealed.
func TestSessions(t *testing.T) {
	db := storetest.New(t)
	s := store.New(db, storetest.Keyring())
	ctx := context.Background()
	tok, _, err := s.CreateToken(ctx, "ops", store.OriginCLI)
	if err != nil {
		t.Fatal(err)
	}

	sess, id, err := s.CreateSession(ctx, tok, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(id) < 40 || len(sess.CSRFSecret) != 32 {
		t.Fatalf("session id of %d characters, CSRF secret of %d bytes; want at least 40 and 32", len(id), len(sess.CSRFSecret))
	}
	if d := sess.ExpiresAt.Sub(sess.CreatedAt); d < 12*time.Hour-time.Second || d > 12*time.Hour+time.Second {
		t.Errorf("session lasts %v, want 12h", d)
	}
	if n := count(t, db, `SELECT count(*) FROM console_sessions WHERE position($1::bytea in id_hash) > 0`, []byte(id)); n != 0 {
		t.Errorf("the session id is stored as is")
	}
	got, gotTok, err := s.GetSession(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if gotTok.ID != tok.ID || gotTok.Name != "ops" || !bytes.Equal(got.CSRFSecret, sess.CSRFSecret) {
		t.Errorf("GetSession = %+v, %+v; want token %d and the same CSRF secret", got, gotTok, tok.ID)
	}
	if _, _, err := s.GetSession(ctx, id+"x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetSession(unknown id) error = %v, want ErrNotFound", err)
	}

	t.Run("flash", func(t *testing.T) {
		if err := s.SetFlash(ctx, id, "secret whsec_shown_once"); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, `SELECT count(*) FROM console_sessions WHERE flash LIKE '%shown_once%'`); n != 0 {
			t.Errorf("the flash is stored in the clear")
		}
		if sess, _, _ := s.GetSession(ctx, id); !sess.HasFlash {
			t.Errorf("HasFlash = false with a flash waiting")
		}
		if msg, err := s.TakeFlash(ctx, id); err != nil || msg != "secret whsec_shown_once" {
			t.Errorf("TakeFlash = %q, %v; want the message", msg, err)
		}
		if msg, err := s.TakeFlash(ctx, id); err != nil || msg != "" {
			t.Errorf("second TakeFlash = %q, %v; want nothing", msg, err)
		}
	})

	t.Run("expired", func(t *testing.T) {
		_, old, err := s.CreateSession(ctx, tok, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE console_sessions SET expires_at = now() - interval '1 second' WHERE token_id = $1 AND expires_at < now() + interval '2 hours'`, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.GetSession(ctx, old); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSession(expired) error = %v, want ErrNotFound", err)
		}
		// The next sign-in clears it away.
		if _, _, err := s.CreateSession(ctx, tok, time.Hour); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, `SELECT count(*) FROM console_sessions WHERE expires_at <= now()`); n != 0 {
			t.Errorf("%d expired sessions kept", n)
		}
	})

	t.Run("sign out", func(t *testing.T) {
		_, other, err := s.CreateSession(ctx, tok, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteSession(ctx, other, tok); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.GetSession(ctx, other); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSession(deleted) error = %v, want ErrNotFound", err)
		}
		if n := count(t, db, `SELECT count(*) FROM activity WHERE action = 'console.sign_out' AND token_id = $1`, tok.ID); n != 1 {
			t.Errorf("%d sign-outs recorded, want 1", n)
		}
		if n := count(t, db, `SELECT count(*) FROM activity WHERE action = 'console.sign_in' AND token_id = $1`, tok.ID); n < 1 {
			t.Errorf("sign-in not recorded")
		}
	})

	t.Run("revoked token", func(t *testing.T) {
		if _, err := s.RevokeToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.GetSession(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetSession(session of a revoked token) error = %v, want ErrNotFound", err)
		}
	})
}
