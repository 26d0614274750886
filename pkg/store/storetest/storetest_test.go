package storetest

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

func TestMain(m *testing.M) { Main(m) }

func TestNew(t *testing.T) {
	var names [2]string
	t.Run("group", func(t *testing.T) {
		for i := range names {
			t.Run("parallel", func(t *testing.T) {
				t.Parallel()
				db := New(t)
				if err := db.Get(&names[i], `SELECT current_database()`); err != nil {
					t.Fatal(err)
				}
				var table sql.NullString
				if err := db.Get(&table, `SELECT to_regclass('triggers')::text`); err != nil {
					t.Fatal(err)
				}
				if !table.Valid {
					t.Error("table triggers missing: database not migrated")
				}
				// Rows stay in the test's own database.
				if _, err := db.Exec(`CREATE TABLE mine (n int)`); err != nil {
					t.Fatalf("create table in %s: %v", names[i], err)
				}
			})
		}
	})
	if names[0] == names[1] {
		t.Errorf("two tests got the same database %q", names[0])
	}
	for _, name := range names {
		if exists(t, name) {
			t.Errorf("database %s still exists after its test", name)
		}
	}
}

func TestNewURL(t *testing.T) {
	var name string
	t.Run("use", func(t *testing.T) {
		url := NewURL(t)
		db, err := sql.Open("postgres", url)
		if err != nil {
			t.Fatal(err)
		}
		// Left open on purpose: the drop must not wait for it.
		var n int
		if err := db.QueryRow(`SELECT current_database(), (SELECT count(*) FROM triggers)`).Scan(&name, &n); err != nil {
			t.Fatalf("query %s: %v", url, err)
		}
		t.Cleanup(func() { db.Close() })
	})
	if name == "" || exists(t, name) {
		t.Errorf("database %q still exists after its test", name)
	}
}

func exists(t *testing.T, name string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var ok bool
	if err := srv.admin.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestWithDatabase(t *testing.T) {
	tests := []struct {
		name string
		dsn  string
		want string
	}{
		{"url", "postgres://u:p@127.0.0.1:5432/test?sslmode=disable", "postgres://u:p@127.0.0.1:5432/x?sslmode=disable"},
		{"url without database", "postgresql://u@localhost", "postgresql://u@localhost/x"},
		{"key value", "host=/tmp user=u dbname=test", "host=/tmp user=u dbname=test dbname=x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := withDatabase(tt.dsn, "x"); got != tt.want {
				t.Errorf("withDatabase(%q, x) = %q, want %q", tt.dsn, got, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct {
		name string
		dsn  string
		want string
	}{
		{"url", "postgres://u:secret@h/db", "postgres://u:xxxxx@h/db"},
		{"key value", "host=h password=secret user=u", "host=h password=xxxxx user=u"},
		{"quoted", "password='se cret' user=u", "password=xxxxx user=u"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact(tt.dsn); got != tt.want {
				t.Errorf("redact(%q) = %q, want %q", tt.dsn, got, tt.want)
			}
		})
	}
}
