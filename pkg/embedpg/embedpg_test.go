package embedpg

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// dataDir returns a data directory the server user can reach even when the
// tests run as root: t.TempDir's own directories are 0700.
func dataDir(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	for _, d := range []string{base, filepath.Dir(base)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(base, "pg")
}

func start(t *testing.T, dir string) (*Server, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	begin := time.Now()
	s, err := Start(ctx, dir, testLogger(t))
	if err != nil {
		t.Fatalf("Start(%s): %v", dir, err)
	}
	took := time.Since(begin)
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s, took
}

func stop(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

func open(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec1(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func count(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM kept`).Scan(&n); err != nil {
		t.Fatalf("count rows: %v", err)
	}
	return n
}

func TestStartStopRestart(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)

	s, first := start(t, dir)
	t.Logf("first start (initdb included): %v", first)
	if s.Dir() != dir {
		t.Errorf("Dir() = %s, want %s", s.Dir(), dir)
	}
	db := open(t, s.URL())
	var name, listen string
	if err := db.QueryRow(`SELECT current_database(), current_setting('listen_addresses')`).Scan(&name, &listen); err != nil {
		t.Fatal(err)
	}
	if name != "inlet" || listen != "" {
		t.Errorf("database, listen_addresses = %q, %q, want \"inlet\", \"\"", name, listen)
	}
	if os.Geteuid() == 0 {
		checkNotRoot(t, s)
	}
	exec1(t, db, `CREATE TABLE kept (n int)`)
	exec1(t, db, `INSERT INTO kept VALUES (1), (2), (3)`)
	db.Close()
	stop(t, s)
	if _, err := os.Stat(s.sockDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket directory %s still there after Stop (err %v)", s.sockDir, err)
	}

	s2, again := start(t, dir)
	t.Logf("restart on existing cluster: %v", again)
	if got := count(t, open(t, s2.URL())); got != 3 {
		t.Errorf("rows after restart = %d, want 3", got)
	}
	stop(t, s2)
}

// checkNotRoot checks that the postmaster runs as the unprivileged user.
func checkNotRoot(t *testing.T, s *Server) {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" && f[1] == "0" {
			t.Errorf("postmaster runs as root: %s", strings.TrimSpace(line))
		}
	}
}

func TestRestartAfterKill(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	s, _ := start(t, dir)
	db := open(t, s.URL())
	exec1(t, db, `CREATE TABLE kept (n int)`)
	exec1(t, db, `INSERT INTO kept VALUES (1), (2)`)
	db.Close()

	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.Done()
	if err := s.Stop(context.Background()); err == nil {
		t.Error("Stop after SIGKILL = nil, want an error reporting the exit")
	}
	if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); err != nil {
		t.Fatalf("postmaster.pid after SIGKILL: %v (the test expects a stale file)", err)
	}

	s2, took := start(t, dir)
	t.Logf("restart after SIGKILL: %v", took)
	if got := count(t, open(t, s2.URL())); got != 2 {
		t.Errorf("rows after restart = %d, want 2", got)
	}
	stop(t, s2)
}

func TestStalePIDOfOtherProcess(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	s, _ := start(t, dir)
	stop(t, s)

	// A pid reused by an unrelated live process makes postgres itself
	// refuse to start; Start must see through it.
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Skipf("no sleep command: %v", err)
	}
	t.Cleanup(func() {
		_ = other.Process.Kill()
		_ = other.Wait()
	})
	content := strconv.Itoa(other.Process.Pid) + "\n" + dir + "\n"
	if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, _ := start(t, dir)
	stop(t, s2)
}

func TestStartRefusesRunningCluster(t *testing.T) {
	t.Parallel()
	dir := dataDir(t)
	s, _ := start(t, dir)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s2, err := Start(ctx, dir, testLogger(t))
	if err == nil {
		_ = s2.Stop(ctx)
		t.Fatal("second Start on a running cluster succeeded")
	}
	if !errors.Is(err, ErrRunning) {
		t.Errorf("second Start error = %v, want ErrRunning", err)
	}
	// The first server must be unharmed.
	exec1(t, open(t, s.URL()), `SELECT 1`)
	stop(t, s)
}

func TestFallbackDirAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root needs a fallback directory")
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "pg") // t.TempDir is 0700: nobody cannot enter it
	s, _ := start(t, dir)
	t.Cleanup(func() { _ = os.RemoveAll(s.Dir()) })
	if s.Dir() == dir || !strings.HasPrefix(s.Dir(), os.TempDir()) {
		t.Errorf("Dir() = %s, want a fallback under %s", s.Dir(), os.TempDir())
	}
	db := open(t, s.URL())
	exec1(t, db, `CREATE TABLE kept (n int)`)
	exec1(t, db, `INSERT INTO kept VALUES (1)`)
	db.Close()
	stop(t, s)

	// The same data directory maps to the same fallback.
	s2, _ := start(t, dir)
	if s2.Dir() != s.Dir() {
		t.Errorf("Dir() on restart = %s, want %s", s2.Dir(), s.Dir())
	}
	if got := count(t, open(t, s2.URL())); got != 1 {
		t.Errorf("rows after restart = %d, want 1", got)
	}
	stop(t, s2)
}

func TestAdminURL(t *testing.T) {
	s := &Server{sockDir: "/tmp/inlet-pg-123"}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"URL", s.URL(), "postgres://inlet@/inlet?host=/tmp/inlet-pg-123&port=5432&sslmode=disable"},
		{"AdminURL", s.AdminURL("postgres"), "postgres://inlet@/postgres?host=/tmp/inlet-pg-123&port=5432&sslmode=disable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
			}
		})
	}
}

func TestLogSinkTail(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	w := newLogSink(f, slog.New(slog.DiscardHandler))
	for i := range tailLines + 5 {
		_, _ = w.Write([]byte("2025-01-01 00:00:00 UTC [1] LOG:  line " + strconv.Itoa(i) + "\n"))
	}
	_, _ = w.Write([]byte("FATAL:  unterminated"))
	w.close()
	lines := strings.Split(w.tail(), "\n")
	if len(lines) != tailLines {
		t.Fatalf("tail has %d lines, want %d", len(lines), tailLines)
	}
	if got, want := lines[len(lines)-1], "FATAL:  unterminated"; got != want {
		t.Errorf("last tail line = %q, want %q", got, want)
	}
}
