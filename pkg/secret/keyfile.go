package secret

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// maxKeyFile bounds what is read of a key file; a hundred keys fit.
const maxKeyFile = 8 << 10

// LoadOrCreateKeyFile returns the Keyring held in the file at path, which
// has the same text as INLET_SECRET_KEY (a final newline is allowed). When
// the file does not exist it is created, with mode 0600, holding one new
// key, and created is true. The directory must exist.
//
// Creation is atomic and never replaces a file: the key is written and
// synced under a temporary name, then linked into place, so a crash leaves
// either no key file or a complete one, and of two processes creating it at
// once, the second reads the key of the first. A file that group or others
// may read or write is refused with an error that says to chmod 600 it.
func LoadOrCreateKeyFile(path string) (kr *Keyring, created bool, err error) {
	kr, err = readKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return kr, false, err
	}
	text := GenerateKey() + "\n"
	err = writeKeyFile(path, []byte(text), false)
	if errors.Is(err, fs.ErrExist) {
		kr, err = readKeyFile(path)
		return kr, false, err
	}
	if err != nil {
		return nil, false, err
	}
	kr, err = ParseKeyring(text)
	if err != nil {
		return nil, false, fmt.Errorf("key file %s: %w", path, err)
	}
	return kr, true, nil
}

// WriteKeyFile replaces the file at path with keys, the sealing key first,
// written in canonical form as one line that INLET_SECRET_KEY could hold.
// Every key is checked as ParseKeyring does before anything is written; the
// write is atomic (a temporary file in the same directory, synced, then
// renamed over path) and leaves the file with mode 0600.
func WriteKeyFile(path string, keys ...string) error {
	raws, err := parseKeys(keys)
	if err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	texts := make([]string, len(raws))
	for i, raw := range raws {
		texts[i] = base64.RawURLEncoding.EncodeToString(raw)
		clear(raw)
	}
	return writeKeyFile(path, []byte(strings.Join(texts, ",")+"\n"), true)
}

// readKeyFile parses the key file at path. An error for a missing file
// matches fs.ErrNotExist.
func readKeyFile(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	// Checking the opened file, not the path, leaves no gap for the file to
	// be swapped between the check and the read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file", path)
	}
	// Windows reports no Unix permission bits worth checking.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("key file %s has mode %04o, open to group or others; run chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("key file %s is larger than %d bytes", path, maxKeyFile)
	}
	kr, err := ParseKeyring(string(b))
	clear(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return kr, nil
}

// writeKeyFile writes data to a temporary file beside path with mode 0600,
// syncs it, and puts it in place: by rename when replace is set, otherwise
// by a hard link, which fails with an error matching fs.ErrExist rather than
// replace a file another process created first.
func writeKeyFile(path string, data []byte, replace bool) (err error) {
	dir := filepath.Dir(path)
	// os.CreateTemp creates the file with mode 0600.
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if tmp != "" {
			// The temporary name is ours alone; once the file is linked or
			// renamed, or the write failed, it must go.
			if rerr := os.Remove(tmp); rerr != nil && err == nil {
				err = fmt.Errorf("write key file: %w", rerr)
			}
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write key file %s: %w", tmp, err)
	}
	if replace {
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("write key file: %w", err)
		}
		tmp = ""
	} else if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	// The new directory entry is durable only once the directory is synced;
	// Windows cannot sync a directory.
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write key file: sync %s: %w", dir, err)
	}
	return nil
}

// RotateKeyFile puts a new key first in the key file at path and keeps only
// the key that sealed until now behind it. It returns a keyring of the new
// key and every key the file held, so that the caller can open whatever
// they sealed while it seals it again under the new key.
func RotateKeyFile(path string) (*Keyring, error) {
	old, err := readKeyTexts(path)
	if err != nil {
		return nil, err
	}
	fresh := GenerateKey()
	if err := WriteKeyFile(path, fresh, old[0]); err != nil {
		return nil, err
	}
	return ParseKeyring(strings.Join(append([]string{fresh}, old...), ","))
}

// readKeyTexts returns the keys of the key file at path as written, after
// the checks readKeyFile makes.
func readKeyTexts(path string) ([]string, error) {
	if _, err := readKeyFile(path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	defer clear(b)
	var keys []string
	for _, k := range strings.Split(string(b), ",") {
		keys = append(keys, strings.TrimSpace(k))
	}
	return keys, nil
}
