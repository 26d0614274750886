// Package embedpg runs a private PostgreSQL server from the PostgreSQL
// binaries installed on the machine, with its cluster under a directory the
// caller chooses. inlet uses it when no DATABASE_URL is configured, and
// storetest uses it when no test server is reachable.
//
// The server listens only on a unix socket in a fresh private directory,
// never on TCP. Its binaries are found in $INLET_PG_BIN, else in the newest
// /usr/lib/postgresql/*/bin that holds pg_ctl (preferring the version the
// cluster was created with), else on $PATH.
//
// PostgreSQL refuses to run as root. When the calling process is root, initdb
// and postgres run as the user named by $INLET_PG_USER (default "nobody"),
// which then owns the cluster directory. If that user cannot reach the
// directory (for example, it sits under a 0700 home directory), the cluster
// goes to a fallback directory under os.TempDir() instead; see Start.
package embedpg

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/lib/pq" // driver for the readiness probe and database creation
)

// Database is the name of the database Start makes sure exists.
const Database = "inlet"

// user is the superuser initdb creates; connections authenticate as it.
const superuser = "inlet"

// port only names the socket file (.s.PGSQL.5432); there is no TCP listener,
// and the socket directory is private to one server, so it never clashes.
const port = "5432"

// maxSocketPath is the room sun_path leaves for a socket path, less its NUL.
const maxSocketPath = 107

// ErrNotRunning is returned by Attach when no server runs on the cluster.
var ErrNotRunning = errors.New("no postgres is running on this cluster directory")

// Attach returns a lib/pq URL for the "inlet" database of the server that
// another process started with Start on the cluster in dir, so that a
// command (inlet token, inlet secrets) can work beside a running inlet. It
// returns ErrNotRunning when no server runs there.
func Attach(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	acct, err := serverAccount()
	if err != nil {
		return "", err
	}
	clusterDir, err := chooseClusterDir(abs, acct, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", err
	}
	// postmaster.pid: pid, data directory, start time, port, socket
	// directory, ... (PostgreSQL's miscadmin.h, LOCK_FILE_LINE_*).
	b, err := os.ReadFile(filepath.Join(clusterDir, "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", ErrNotRunning
	}
	if err != nil {
		return "", fmt.Errorf("read postmaster.pid: %w", err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 5 {
		return "", ErrNotRunning // being written by a starting server
	}
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	real, rerr := filepath.EvalSymlinks(clusterDir)
	if err != nil || rerr != nil || !running(pid, real) {
		return "", ErrNotRunning
	}
	return socketURL(strings.TrimSpace(lines[4]), Database), nil
}

// ErrRunning is returned by Start when a postgres process is already
// serving the cluster directory.
var ErrRunning = errors.New("postgres is already running on this cluster directory")

// Server is a running private PostgreSQL server. Its methods are safe for
// concurrent use.
type Server struct {
	dir     string // cluster directory actually used
	sockDir string
	logger  *slog.Logger
	cmd     *exec.Cmd
	sink    *logSink

	// done is closed by the goroutine started in Start, which owns cmd.Wait,
	// once the postmaster has exited; waitErr is written before that.
	done    chan struct{}
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// Start initialises (the first time) or reuses the cluster in dir, starts
// postgres on it, waits until it accepts connections and makes sure a
// database named "inlet" exists.
//
// dir and its missing parents are created. When running as root and the
// server user cannot traverse dir's parents, the cluster is kept in
// os.TempDir()/inlet-pgdata-<hash of dir> instead, which Start logs at Info;
// Dir reports the directory in use. A postmaster.pid left by a killed
// server does not prevent the start; one of a live server on the same
// directory makes Start return ErrRunning.
//
// ctx bounds the whole start-up, including initdb; if it ends, the
// half-started server is stopped. The caller must call Stop. The server
// log is written to postgres.log in the cluster directory, and its
// messages are forwarded to logger at Debug. A nil logger discards them.
func Start(ctx context.Context, dir string, logger *slog.Logger) (*Server, error) {
	begin := time.Now()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "postgres")

	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("postgres data directory %s: %w", dir, err)
	}
	acct, err := serverAccount()
	if err != nil {
		return nil, err
	}
	clusterDir, err := chooseClusterDir(abs, acct, logger)
	if err != nil {
		return nil, err
	}
	binDir, err := findBinDir(clusterDir)
	if err != nil {
		return nil, err
	}
	if err := ensureCluster(ctx, binDir, clusterDir, acct, logger); err != nil {
		return nil, err
	}
	if err := clearStalePID(ctx, clusterDir, logger); err != nil {
		return nil, err
	}
	sockDir, err := makeSocketDir(acct)
	if err != nil {
		return nil, err
	}

	s := &Server{
		dir:     clusterDir,
		sockDir: sockDir,
		logger:  logger,
		done:    make(chan struct{}),
	}
	if err := s.launch(binDir, acct); err != nil {
		_ = os.RemoveAll(sockDir)
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		s.abort()
		return nil, err
	}
	if err := s.ensureDatabase(ctx); err != nil {
		s.abort()
		return nil, err
	}
	logger.Info("postgres started",
		slog.String("cluster_dir", clusterDir),
		slog.String("socket_dir", sockDir),
		slog.Int("pid", s.cmd.Process.Pid),
		slog.Duration("duration", time.Since(begin)))
	return s, nil
}

// URL returns a lib/pq URL for the "inlet" database, connecting over the
// unix socket as the superuser "inlet".
func (s *Server) URL() string {
	return s.AdminURL(Database)
}

// AdminURL returns a lib/pq URL for database db on the same server, for
// example "postgres" to create or drop other databases.
func (s *Server) AdminURL(db string) string { return socketURL(s.sockDir, db) }

func socketURL(sockDir, db string) string {
	// The socket directory goes into the query as a path; keeping its
	// slashes unescaped makes the URL readable and lib/pq decodes it either way.
	host := strings.ReplaceAll(url.QueryEscape(sockDir), "%2F", "/")
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(superuser),
		Path:     "/" + db,
		RawQuery: "host=" + host + "&port=" + port + "&sslmode=disable",
	}
	return u.String()
}

// Dir returns the cluster directory in use: the one passed to Start, or
// the fallback directory when the server user could not reach it.
func (s *Server) Dir() string {
	return s.dir
}

// Done returns a channel that is closed when the postmaster has exited,
// whether through Stop or not.
func (s *Server) Done() <-chan struct{} {
	return s.done
}

// Stop asks postgres for a fast shutdown (open sessions are disconnected,
// a checkpoint is written) and waits until it has exited, then removes the
// socket directory. If ctx ends first, postgres is stopped immediately
// (crash recovery runs at the next start) and ctx's error is returned.
// Stop also reports a postmaster that had already exited abnormally. Only
// the first call does any work; later calls return its result.
func (s *Server) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() {
		s.stopErr = s.stop(ctx)
		if err := os.RemoveAll(s.sockDir); err != nil && s.stopErr == nil {
			s.stopErr = fmt.Errorf("remove postgres socket directory: %w", err)
		}
		if s.stopErr == nil {
			s.logger.Info("postgres stopped", slog.String("cluster_dir", s.dir))
		}
	})
	return s.stopErr
}

func (s *Server) stop(ctx context.Context) error {
	select {
	case <-s.done:
		if s.waitErr != nil {
			return fmt.Errorf("postgres exited before stop: %w", s.waitErr)
		}
		return nil
	default:
	}
	// SIGINT is postgres's fast shutdown.
	if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal postgres: %w", err)
	}
	select {
	case <-s.done:
		if s.waitErr != nil {
			return fmt.Errorf("postgres shutdown: %w", s.waitErr)
		}
		return nil
	case <-ctx.Done():
		s.logger.Warn("postgres fast shutdown timed out, stopping immediately")
		s.kill()
		return fmt.Errorf("postgres shutdown: %w", ctx.Err())
	}
}

// kill stops postgres with an immediate shutdown (SIGQUIT), which skips
// the checkpoint, and with SIGKILL if even that hangs. It returns once the
// postmaster has exited.
func (s *Server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// abort stops a server whose start-up failed.
func (s *Server) abort() {
	s.stopOnce.Do(func() {
		s.kill()
		_ = os.RemoveAll(s.sockDir)
		s.stopErr = errors.New("postgres start-up failed")
	})
}

// launch starts the postmaster as a child process and the goroutine that
// waits for it.
func (s *Server) launch(binDir string, acct account) error {
	logPath := filepath.Join(s.dir, "postgres.log")
	// Keep one previous log, so that a restart does not bury why the last
	// run ended, while the file stays bounded.
	if err := os.Rename(logPath, logPath+".1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("rotate postgres log: %w", err)
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open postgres log: %w", err)
	}
	if acct.switchUser {
		if err := f.Chown(int(acct.uid), int(acct.gid)); err != nil {
			f.Close()
			return fmt.Errorf("chown postgres log: %w", err)
		}
	}
	s.sink = newLogSink(f, s.logger)

	cmd := exec.Command(filepath.Join(binDir, "postgres"),
		"-D", s.dir,
		"-k", s.sockDir,
		"-p", port,
		// Trust authentication (set by initdb) is safe only because
		// nothing listens on TCP: the socket lives in a 0700 directory
		// owned by the server user, so only that user and root can connect.
		"-c", "listen_addresses=",
		"-c", "unix_socket_permissions=0700",
		"-c", "shared_buffers=128MB",
		"-c", "max_connections=200",
		// fsync, synchronous_commit and full_page_writes keep their
		// defaults: an accepted webhook must survive a crash.
	)
	cmd.Dir = "/"
	cmd.Env = childEnv()
	cmd.Stdout = s.sink
	cmd.Stderr = s.sink
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// A process group of its own keeps a terminal's Ctrl-C away from
		// postgres, so that the gateway can stop it last, after flushing.
		Setpgid: true,
	}
	// If this process dies without calling Stop, postgres gets SIGTERM
	// (a smart shutdown, which completes once our sessions are gone)
	// instead of running on as an orphan.
	setDeathSignal(cmd.SysProcAttr, syscall.SIGTERM)
	if acct.switchUser {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: acct.uid, Gid: acct.gid}
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	s.cmd = cmd

	// Owned by the Server: it ends when the postmaster exits, and Stop
	// waits for it through s.done.
	go func() {
		err := cmd.Wait()
		s.sink.close()
		s.waitErr = err
		close(s.done)
	}()
	return nil
}

// waitReady polls until postgres accepts a connection, postgres exits, or
// ctx ends.
func (s *Server) waitReady(ctx context.Context) error {
	db, err := sql.Open("postgres", s.AdminURL("postgres"))
	if err != nil {
		return fmt.Errorf("postgres probe: %w", err)
	}
	defer db.Close()

	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited during start-up (%v): %s", s.waitErr, s.sink.tail())
		case <-ctx.Done():
			return fmt.Errorf("wait for postgres: %w (last error: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func (s *Server) ensureDatabase(ctx context.Context) error {
	db, err := sql.Open("postgres", s.AdminURL("postgres"))
	if err != nil {
		return fmt.Errorf("postgres admin connection: %w", err)
	}
	defer db.Close()
	var exists bool
	const q = `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`
	if err := db.QueryRowContext(ctx, q, Database).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", Database, err)
	}
	if exists {
		return nil
	}
	if _, err := db.ExecContext(ctx, `CREATE DATABASE `+Database); err != nil {
		return fmt.Errorf("create database %s: %w", Database, err)
	}
	return nil
}

// makeSocketDir creates a short private directory for the server's socket;
// sun_path leaves only 107 bytes, which a deep data directory could exceed.
func makeSocketDir(acct account) (string, error) {
	parent := ""
	if len(os.TempDir())+len("/inlet-pg-0123456789/.s.PGSQL."+port+".lock") > maxSocketPath {
		parent = "/tmp"
	}
	removeEmptySocketDirs(parent)
	dir, err := os.MkdirTemp(parent, "inlet-pg-")
	if err != nil {
		return "", fmt.Errorf("create postgres socket directory: %w", err)
	}
	if acct.switchUser {
		if err := os.Chown(dir, int(acct.uid), int(acct.gid)); err != nil {
			_ = os.RemoveAll(dir)
			return "", fmt.Errorf("chown postgres socket directory: %w", err)
		}
	}
	return dir, nil
}

// removeEmptySocketDirs removes socket directories that servers which
// exited without Stop left behind (postgres removes its socket files when
// it exits, so those are empty). A fresh empty one may belong to a server
// about to start, hence the age limit.
func removeEmptySocketDirs(parent string) {
	if parent == "" {
		parent = os.TempDir()
	}
	dirs, _ := filepath.Glob(filepath.Join(parent, "inlet-pg-*"))
	for _, d := range dirs {
		if strings.HasPrefix(filepath.Base(d), "inlet-pgdata-") {
			continue // a fallback cluster directory, see chooseClusterDir
		}
		fi, err := os.Lstat(d)
		if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < 10*time.Minute {
			continue
		}
		_ = os.Remove(d) // fails unless empty
	}
}

// childEnv is this process's environment without PG* variables, which
// would otherwise change what initdb and postgres do (PGDATA, PGPORT, …).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}
