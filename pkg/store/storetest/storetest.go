// Package storetest gives each test a fresh, migrated PostgreSQL database
// of its own, dropped when the test ends, so that tests can run in
// parallel and never see each other's rows.
//
// The server is chosen once per test binary:
//
//  1. $INLET_TEST_DATABASE_URL, if set (a URL or key=value DSN of a role
//     that may create databases);
//  2. else PostgreSQL at postgres://postgres@127.0.0.1:5432/test?sslmode=disable
//     (or at $INLET_TEST_PG_PROBE), if it answers within 2 s;
//  3. else a private server started with embedpg in a temporary directory.
//
// A package using New or NewURL calls Main from its TestMain, which stops
// the private server when the tests are done:
//
//	func TestMain(m *testing.M) { storetest.Main(m) }
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the PostgreSQL driver

	"github.com/inlet-dev/inlet/migrations"
	"github.com/inlet-dev/inlet/pkg/embedpg"
	"github.com/inlet-dev/inlet/pkg/secret"
)

// DefaultProbeURL is where a shared PostgreSQL is looked for when
// INLET_TEST_DATABASE_URL is not set.
const DefaultProbeURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// tempPrefix names the temporary directories of private servers.
const tempPrefix = "inlet-storetest-"

// server is the PostgreSQL server of this test binary.
type server struct {
	admin  *sql.DB                // maintenance connection: CREATE and DROP DATABASE
	urlFor func(db string) string // URL of database db on this server
	pg     *embedpg.Server        // nil unless a private server was started
	tmpDir string                 // holds pg's cluster
	err    error                  // why no server is available
}

var (
	chooseOnce sync.Once
	srv        *server
	mainCalled atomic.Bool
)

// Main runs the package's tests, then each of after (to release what the
// tests shared, such as a browser), and exits with their status; call it
// from TestMain. It stops the private PostgreSQL server, if one was started,
// and removes its directory.
func Main(m *testing.M, after ...func()) {
	mainCalled.Store(true)
	code := m.Run()
	for _, f := range after {
		f()
	}
	if srv != nil {
		if err := srv.close(); err != nil {
			fmt.Fprintf(os.Stderr, "storetest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// New returns a connection to a fresh, migrated database of the test's own.
// In t.Cleanup the connection is closed and the database dropped.
func New(t testing.TB) *sqlx.DB {
	t.Helper()
	url := create(t)
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		t.Fatalf("storetest: open %s: %v", url, err)
	}
	// Registered after the drop, so it runs before it.
	t.Cleanup(func() { db.Close() })
	migrate(t, db.DB)
	return db
}

// NewURL is like New but returns the database's URL, for tests that start
// a whole gateway. The database is migrated, and dropped in t.Cleanup even
// if connections to it are still open.
func NewURL(t testing.TB) string {
	t.Helper()
	url := create(t)
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatalf("storetest: open %s: %v", url, err)
	}
	defer db.Close()
	migrate(t, db)
	return url
}

// Keyring returns a keyring with a fresh key, for a Store of a test.
func Keyring() *secret.Keyring {
	kr, err := secret.ParseKeyring(secret.GenerateKey())
	if err != nil {
		panic(err) // a generated key always parses
	}
	return kr
}

// create makes an empty database and registers its drop.
func create(t testing.TB) string {
	t.Helper()
	chooseOnce.Do(func() { srv = chooseServer() })
	if srv.err != nil {
		t.Fatalf("storetest: no PostgreSQL server: %v", srv.err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails; see crypto/rand.Read
	name := "inlet_t_" + hex.EncodeToString(b)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// template0 and C collation make every database the same whatever the
	// server's defaults, and the embedded production server uses C too.
	q := `CREATE DATABASE ` + name + ` TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'`
	if _, err := srv.admin.ExecContext(ctx, q); err != nil {
		t.Fatalf("storetest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := srv.admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
		}
	})
	return srv.urlFor(name)
}

func migrate(t testing.TB, db *sql.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := migrations.Up(ctx, db); err != nil {
		t.Fatalf("storetest: %v", err)
	}
}

// chooseServer picks the server for this test binary; see the package
// comment. Failures are kept in server.err for every test to report.
func chooseServer() *server {
	if dsn := os.Getenv("INLET_TEST_DATABASE_URL"); dsn != "" {
		return external(dsn)
	}
	probe := os.Getenv("INLET_TEST_PG_PROBE")
	if probe == "" {
		probe = DefaultProbeURL
	}
	if s := external(probe); s.err == nil {
		return s
	}
	return embedded(probe)
}

// external connects to an existing server through dsn.
func external(dsn string) *server {
	admin, err := sql.Open("postgres", dsn)
	if err != nil {
		return &server{err: fmt.Errorf("open %s: %w", redact(dsn), err)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		return &server{err: fmt.Errorf("connect to %s: %w", redact(dsn), err)}
	}
	return &server{admin: admin, urlFor: func(db string) string { return withDatabase(dsn, db) }}
}

// embedded starts a private server in a new temporary directory.
func embedded(probe string) *server {
	sweep()
	dir, err := os.MkdirTemp("", tempPrefix)
	if err != nil {
		return &server{err: err}
	}
	s := &server{tmpDir: dir}
	// When tests run as root, postgres runs as an unprivileged user, which
	// must be able to enter the directory (MkdirTemp makes it 0700).
	if err := os.Chmod(dir, 0o755); err != nil {
		s.err = err
		return s
	}
	// The owner's pid lets a later run remove the directory if this
	// process dies without reaching the end of Main.
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		s.err = err
		return s
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	begin := time.Now()
	pg, err := embedpg.Start(ctx, filepath.Join(dir, "pg"), logger)
	if err != nil {
		_ = os.RemoveAll(dir)
		s.err = fmt.Errorf("nothing answers at %s and the private server failed: %w", redact(probe), err)
		return s
	}
	s.pg = pg
	fmt.Fprintf(os.Stderr, "storetest: nothing answers at %s; started a private PostgreSQL in %s (%v)\n",
		redact(probe), dir, time.Since(begin).Round(time.Millisecond))
	if !mainCalled.Load() {
		fmt.Fprintf(os.Stderr, "storetest: TestMain does not call storetest.Main: the private PostgreSQL stops when the test binary exits, and a later run removes %s\n", dir)
	}
	s.urlFor = pg.AdminURL
	s.admin, err = sql.Open("postgres", pg.AdminURL("postgres"))
	if err != nil {
		s.err = err
	}
	return s
}

// close releases the server: the private one is stopped and its directory
// removed.
func (s *server) close() error {
	if s.admin != nil {
		s.admin.Close()
	}
	if s.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.pg.Stop(ctx); err != nil {
			// Keep the directory: its postgres.log says what happened.
			return fmt.Errorf("stop private PostgreSQL in %s: %w", s.tmpDir, err)
		}
	}
	if s.tmpDir != "" {
		if err := os.RemoveAll(s.tmpDir); err != nil {
			return fmt.Errorf("remove %s: %w", s.tmpDir, err)
		}
	}
	return nil
}

// sweep removes directories of private servers whose test binary died
// before Main could remove them (a test timeout, a kill).
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			// Another binary may be between MkdirTemp and writing its pid.
			if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > time.Hour {
				_ = os.RemoveAll(d)
			}
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = os.RemoveAll(d)
		}
	}
}

// withDatabase returns dsn with its database replaced by db. dsn is a
// postgres:// URL or a key=value DSN, as lib/pq accepts.
func withDatabase(dsn, db string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			u.Path = "/" + db
			u.RawPath = ""
			return u.String()
		}
	}
	// In a key=value DSN the last dbname wins.
	return dsn + " dbname=" + db
}

var dsnPassword = regexp.MustCompile(`password=('(\\.|[^'])*'|\S+)`)

// redact hides a password in a URL or key=value DSN for messages.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	return dsnPassword.ReplaceAllString(dsn, "password=xxxxx")
}
