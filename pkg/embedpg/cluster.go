package embedpg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// account is the user initdb and postgres run as.
type account struct {
	name       string
	uid, gid   uint32
	switchUser bool // true when running as root: drop to uid/gid
}

// serverAccount returns the current user, or, when running as root (which
// PostgreSQL refuses), $INLET_PG_USER or "nobody".
func serverAccount() (account, error) {
	if os.Geteuid() != 0 {
		return account{
			name: strconv.Itoa(os.Geteuid()),
			uid:  uint32(os.Geteuid()),
			gid:  uint32(os.Getegid()),
		}, nil
	}
	name := os.Getenv("INLET_PG_USER")
	if name == "" {
		name = "nobody"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return account{}, fmt.Errorf("postgres server user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return account{}, fmt.Errorf("postgres server user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return account{}, fmt.Errorf("postgres server user %s: gid %q: %w", name, u.Gid, err)
	}
	if uid == 0 {
		return account{}, fmt.Errorf("postgres server user %s is root; set INLET_PG_USER to an unprivileged user", name)
	}
	return account{name: name, uid: uint32(uid), gid: uint32(gid), switchUser: true}, nil
}

// chooseClusterDir creates dir's parents and returns dir, or, when the
// server user cannot traverse them, a fallback directory under
// os.TempDir() named from a hash of dir, so that the same dir always maps
// to the same fallback.
func chooseClusterDir(dir string, acct account, logger *slog.Logger) (string, error) {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("create postgres data directory: %w", err)
	}
	if !acct.switchUser {
		return dir, nil
	}
	ok, err := canTraverse(parent, acct)
	if err != nil {
		return "", err
	}
	if ok {
		return dir, nil
	}
	sum := sha256.Sum256([]byte(dir))
	fallback := filepath.Join(os.TempDir(), "inlet-pgdata-"+hex.EncodeToString(sum[:8]))
	// Others can create names in the temporary directory: accept an
	// existing fallback only if it is a real directory owned by us or by
	// the server user.
	fi, err := os.Lstat(fallback)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(fallback, 0o700); err != nil {
			return "", fmt.Errorf("create postgres fallback directory: %w", err)
		}
	case err != nil:
		return "", fmt.Errorf("postgres fallback directory: %w", err)
	default:
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || !ok || (st.Uid != 0 && st.Uid != acct.uid) {
			return "", fmt.Errorf("postgres fallback directory %s is not a directory owned by root or %s", fallback, acct.name)
		}
	}
	logger.Info("postgres server user cannot reach the data directory, keeping the cluster in a fallback directory",
		slog.String("data_dir", dir),
		slog.String("cluster_dir", fallback),
		slog.String("user", acct.name),
		slog.String("hint", "data under the temporary directory may not survive a reboot; let the user traverse the data directory's parents (chmod o+x) or choose another data directory"))
	return fallback, nil
}

// canTraverse reports whether acct may search dir and every directory above
// it, judged from the permission bits (acct runs without supplementary
// groups, and ACLs are not consulted).
func canTraverse(dir string, acct account) (bool, error) {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return false, fmt.Errorf("postgres data directory: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return true, nil
		}
		perm := fi.Mode().Perm()
		var x bool
		switch {
		case st.Uid == acct.uid:
			x = perm&0o100 != 0
		case st.Gid == acct.gid:
			x = perm&0o010 != 0
		default:
			x = perm&0o001 != 0
		}
		if !x {
			return false, nil
		}
		if d == filepath.Dir(d) {
			return true, nil
		}
	}
}

// findBinDir returns the directory holding initdb and postgres.
func findBinDir(clusterDir string) (string, error) {
	if dir := os.Getenv("INLET_PG_BIN"); dir != "" {
		if !hasServerBinaries(dir) {
			return "", fmt.Errorf("INLET_PG_BIN=%s: no initdb and postgres there", dir)
		}
		return dir, nil
	}

	// An existing cluster can only be run by its own major version.
	want := ""
	if b, err := os.ReadFile(filepath.Join(clusterDir, "PG_VERSION")); err == nil {
		want = strings.TrimSpace(string(b))
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	type install struct {
		dir     string
		version string
		n       float64
	}
	var found []install
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err != nil || !hasServerBinaries(d) {
			continue
		}
		v := filepath.Base(filepath.Dir(d))
		n, _ := strconv.ParseFloat(v, 64)
		found = append(found, install{dir: d, version: v, n: n})
	}
	sort.Slice(found, func(i, j int) bool { return found[i].n > found[j].n })
	for _, in := range found {
		if in.version == want {
			return in.dir, nil
		}
	}
	if want != "" && len(found) > 0 {
		return "", fmt.Errorf("cluster in %s is PostgreSQL %s, but only %s is installed in /usr/lib/postgresql", clusterDir, want, found[0].version)
	}
	if len(found) > 0 {
		return found[0].dir, nil
	}
	if p, err := exec.LookPath("postgres"); err == nil && hasServerBinaries(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL server binaries found (looked in INLET_PG_BIN, /usr/lib/postgresql/*/bin, PATH); install them with scripts/ensure-postgres.sh or set DATABASE_URL")
}

func hasServerBinaries(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// ensureCluster runs initdb unless clusterDir already holds a cluster, and
// gives the cluster to the server user.
func ensureCluster(ctx context.Context, binDir, clusterDir string, acct account, logger *slog.Logger) error {
	if _, err := os.Stat(filepath.Join(clusterDir, "PG_VERSION")); err == nil {
		if acct.switchUser {
			return chownTree(clusterDir, acct)
		}
		return nil
	}
	entries, err := os.ReadDir(clusterDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("postgres data directory: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("postgres data directory %s is neither empty nor a PostgreSQL cluster", clusterDir)
	}

	begin := time.Now()
	// initdb works in a sibling directory that is renamed into place, so
	// that an interrupted initdb never leaves a half-made cluster behind.
	tmp := filepath.Join(filepath.Dir(clusterDir), "."+filepath.Base(clusterDir)+".initdb")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove leftover initdb directory: %w", err)
	}
	if err := initdb(ctx, binDir, tmp, acct); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, clusterDir); err != nil {
		// clusterDir may be a mount point, which cannot be renamed over:
		// initialise it in place instead.
		logger.Debug("initdb rename failed, initialising in place", slog.Any("err", err))
		_ = os.RemoveAll(tmp)
		if err := initdb(ctx, binDir, clusterDir, acct); err != nil {
			return err
		}
	}
	if err := syncDir(filepath.Dir(clusterDir)); err != nil {
		return err
	}
	logger.Info("postgres cluster initialised",
		slog.String("cluster_dir", clusterDir),
		slog.String("bin_dir", binDir),
		slog.Duration("duration", time.Since(begin)))
	return nil
}

func initdb(ctx context.Context, binDir, dir string, acct account) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create postgres data directory: %w", err)
	}
	if acct.switchUser {
		if err := os.Chown(dir, int(acct.uid), int(acct.gid)); err != nil {
			return fmt.Errorf("chown postgres data directory: %w", err)
		}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"-D", dir,
		// Trust is safe only because the server never listens on TCP; see
		// Server.launch.
		"--auth=trust",
		"--username="+superuser,
		"--encoding=UTF8",
		"--locale=C",
	)
	cmd.Dir = "/"
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	// initdb removes its half-made cluster on SIGTERM; see Server.launch.
	setDeathSignal(cmd.SysProcAttr, syscall.SIGTERM)
	if acct.switchUser {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: acct.uid, Gid: acct.gid}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb %s: %w: %s", dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// chownTree gives dir and everything in it to acct, when dir is not
// already theirs (for example a cluster first made by another user).
func chownTree(dir string, acct account) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("postgres data directory: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == acct.uid && st.Gid == acct.gid {
		return nil
	}
	err = filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(acct.uid), int(acct.gid))
	})
	if err != nil {
		return fmt.Errorf("chown postgres data directory to %s: %w", acct.name, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
