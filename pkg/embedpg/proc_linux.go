package embedpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// setDeathSignal makes the kernel send sig to the child when the thread
// that started it exits. Go keeps its threads for the life of the process
// (the goroutine that starts postgres never locks its thread), so in
// practice that is when this process exits.
func setDeathSignal(a *syscall.SysProcAttr, sig syscall.Signal) {
	a.Pdeathsig = sig
}

// clearStalePID removes a postmaster.pid left behind by a postmaster that
// no longer runs, so that it cannot block the start.
//
// postgres itself removes a lock file whose pid is dead, but refuses one
// whose pid was reused by another process, which after a SIGKILL and a
// reboot or a busy machine is likely. Before removing the file this waits
// for leftover children of the dead postmaster to exit (they notice its
// death within moments): the file names their shared memory, and starting
// while they still run would be unsafe. If the file's pid is a postgres
// serving clusterDir, ErrRunning is returned.
func clearStalePID(ctx context.Context, clusterDir string, logger *slog.Logger) error {
	pidFile := filepath.Join(clusterDir, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read postmaster.pid: %w", err)
	}
	dir, err := filepath.EvalSymlinks(clusterDir)
	if err != nil {
		return fmt.Errorf("postgres data directory: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err == nil && pid > 0 && postgresIn(pid, dir) {
		return fmt.Errorf("%w (%s, pid %d)", ErrRunning, clusterDir, pid)
	}

	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	logged := false
	for {
		left := postgresProcsIn(dir)
		if len(left) == 0 {
			break
		}
		if !logged {
			logger.Info("waiting for processes of a stopped postgres to exit", slog.Any("pids", left))
			logged = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for leftover postgres processes %v: %w", left, ctx.Err())
		case <-tick.C:
		}
	}
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale postmaster.pid: %w", err)
	}
	logger.Info("removed stale postmaster.pid", slog.Int("pid", pid), slog.String("cluster_dir", clusterDir))
	return nil
}

// postgresIn reports whether pid is a live postgres process whose working
// directory is dir; postgres processes chdir into their data directory.
// A process we may not inspect belongs to another user and so cannot be
// serving a cluster we own.
func postgresIn(pid int, dir string) bool {
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil || string(bytes.TrimSpace(comm)) != "postgres" {
		return false
	}
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	return err == nil && cwd == dir
}

// postgresProcsIn returns the pids of postgres processes working in dir.
func postgresProcsIn(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if postgresIn(pid, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// running reports whether pid is a postgres serving the cluster in dir.
func running(pid int, dir string) bool { return pid > 0 && postgresIn(pid, dir) }
