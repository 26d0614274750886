package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/inlet-dev/inlet/pkg/config"
	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/store"
)

// KeyFile is where inlet keeps its keyring in the data directory when
// INLET_SECRET_KEY is not set.
const KeyFile = "secret.key"

// Keys is the keyring that seals secrets at rest, and where it comes from.
type Keys struct {
	Keyring *secret.Keyring
	// Source names where the keys come from, for messages:
	// "INLET_SECRET_KEY" or the key file's path.
	Source string
	// Path is the key file, empty when the keys come from the environment.
	Path string

	mu      sync.Mutex
	modTime time.Time
}

// OpenKeyring returns the keyring of cfg: INLET_SECRET_KEY when set, or
// else the key file in the data directory, made at first start. Instances
// sharing an external database must share the keys, so a key file next to
// an external database is worth a warning.
func OpenKeyring(cfg config.Config, logger *slog.Logger) (*Keys, error) {
	if cfg.SecretKey != "" {
		kr, err := secret.ParseKeyring(string(cfg.SecretKey))
		if err != nil {
			return nil, fmt.Errorf("INLET_SECRET_KEY: %w", err)
		}
		return &Keys{Keyring: kr, Source: "INLET_SECRET_KEY"}, nil
	}
	path := filepath.Join(cfg.DataDir, KeyFile)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	kr, created, err := secret.LoadOrCreateKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("secret key file: %w", err)
	}
	k := &Keys{Keyring: kr, Source: path, Path: path}
	if fi, err := os.Stat(path); err == nil {
		k.modTime = fi.ModTime()
	}
	if created {
		logger.Info("made a key to seal secrets", slog.String("path", path), slog.String("key_id", kr.ID()))
	}
	if cfg.DatabaseURL != "" {
		logger.Warn("INLET_SECRET_KEY is not set: secrets are sealed with the key in the data directory; "+
			"every instance on this database needs the same keys in INLET_SECRET_KEY", slog.String("path", path))
	}
	return k, nil
}

// Reload reads the key file again, for a value sealed under a key this
// process does not hold (after `inlet secrets rotate-key`). Keys from the
// environment cannot change: it returns them as they are.
func (k *Keys) Reload() (*secret.Keyring, error) {
	if k.Path == "" {
		return k.Keyring, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	fi, err := os.Stat(k.Path)
	if err != nil {
		return nil, err
	}
	if fi.ModTime().Equal(k.modTime) {
		return k.Keyring, nil
	}
	kr, _, err := secret.LoadOrCreateKeyFile(k.Path)
	if err != nil {
		return nil, err
	}
	k.Keyring, k.modTime = kr, fi.ModTime()
	return kr, nil
}

// CheckKeyring fails when the database holds secrets sealed under a key
// that the keyring lacks, saying which, rather than failing later on
// every request that needs one of them.
func CheckKeyring(ctx context.Context, st *store.Store, k *Keys) error {
	used, err := st.SealedKeyIDs(ctx)
	if err != nil {
		return err
	}
	var missing []string
	for _, id := range used {
		if !slices.Contains(k.Keyring.IDs(), id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the database holds secrets sealed under key %s, which %s does not hold (it holds %s): "+
			"give every instance the same INLET_SECRET_KEY", strings.Join(missing, ", "), k.Source, strings.Join(k.Keyring.IDs(), ", "))
	}
	return nil
}
