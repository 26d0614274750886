package secret

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// onlyFile fails unless dir holds exactly the named file: no temporary file
// may be left behind.
func onlyFile(t *testing.T, dir, name string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != name {
		t.Errorf("directory holds %v, want only %s", names, name)
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestLoadOrCreateKeyFileCreates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret.key")
	kr, created, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatalf("LoadOrCreateKeyFile() error = %v", err)
	}
	if !created {
		t.Error("LoadOrCreateKeyFile() created = false for a missing file, want true")
	}
	if got := mode(t, path); got != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", got)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{43}\n$`).Match(b) {
		t.Errorf("key file holds %d bytes, want one 43-character key and a newline", len(b))
	}
	if want := mustParse(t, string(b)).ID(); kr.ID() != want {
		t.Errorf("ID() = %s, want the id of the key in the file, %s", kr.ID(), want)
	}
	onlyFile(t, dir, "secret.key")

	again, created, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatalf("LoadOrCreateKeyFile() again error = %v", err)
	}
	if created || again.ID() != kr.ID() {
		t.Errorf("LoadOrCreateKeyFile() again = %s, created %v; want %s, false", again.ID(), created, kr.ID())
	}
	sealed, err := kr.Seal([]byte("v"), "c")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.Open(sealed, "c"); err != nil || string(got) != "v" {
		t.Errorf("Open() with the reloaded keyring = %q, %v; want v", got, err)
	}
}

func TestLoadOrCreateKeyFileReads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret.key")
	newKey := GenerateKey()
	if err := os.WriteFile(path, []byte(newKey+" ,\t"+hex.EncodeToString(testKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kr, created, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatalf("LoadOrCreateKeyFile() error = %v", err)
	}
	if want := []string{mustParse(t, newKey).ID(), testKeyID}; created || !equal(kr.IDs(), want) {
		t.Errorf("LoadOrCreateKeyFile() = %v, created %v; want %v, false", kr.IDs(), created, want)
	}
}

func TestLoadOrCreateKeyFileRefuses(t *testing.T) {
	bad := base64.StdEncoding.EncodeToString(testKey[:31])
	tests := []struct {
		name    string
		content string
		perm    os.FileMode
		wantErr string // "" means the file is accepted
	}{
		{"owner only", GenerateKey(), 0o600, ""},
		{"owner read only", GenerateKey(), 0o400, ""},
		{"owner executable", GenerateKey(), 0o700, ""},
		{"world readable", GenerateKey(), 0o644, "has mode 0644, open to group or others; run chmod 600"},
		{"group readable", GenerateKey(), 0o640, "has mode 0640, open to group or others; run chmod 600"},
		{"group writable", GenerateKey(), 0o620, "has mode 0620, open to group or others; run chmod 600"},
		{"other writable", GenerateKey(), 0o602, "has mode 0602, open to group or others; run chmod 600"},
		{"empty", "", 0o600, ": no key given"},
		{"bad key", GenerateKey() + "," + bad + "\n", 0o600, ": key 2 of 2 is 31 bytes, want 32"},
		{"too large", strings.Repeat(GenerateKey()+",", 200), 0o600, "is larger than 8192 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "secret.key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.perm); err != nil {
				t.Fatal(err)
			}
			kr, created, err := LoadOrCreateKeyFile(path)
			if tt.wantErr == "" {
				if err != nil || created || kr == nil {
					t.Errorf("LoadOrCreateKeyFile() = %v, %v, %v; want the keyring, false, nil", kr, created, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadOrCreateKeyFile() error = nil, want %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LoadOrCreateKeyFile() error = %q, want the path and %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), bad) || (tt.content != "" && strings.Contains(err.Error(), tt.content[:20])) {
				t.Errorf("LoadOrCreateKeyFile() error = %q, shows a key", err)
			}
			if got, _ := os.ReadFile(path); string(got) != tt.content {
				t.Error("LoadOrCreateKeyFile() changed a file it refused")
			}
		})
	}
}

func TestLoadOrCreateKeyFileMissingDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "secret.key")
	if _, _, err := LoadOrCreateKeyFile(path); err == nil {
		t.Error("LoadOrCreateKeyFile() in a missing directory: error = nil, want one")
	}
}

func TestLoadOrCreateKeyFileNotRegular(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadOrCreateKeyFile(path)
	if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
		t.Errorf("LoadOrCreateKeyFile(directory) error = %v, want not a regular file", err)
	}
}

// TestLoadOrCreateKeyFileRace starts several creators at once: exactly one
// creates the file and every one ends up with its key, so nothing is ever
// sealed with a key that another process overwrote.
func TestLoadOrCreateKeyFileRace(t *testing.T) {
	for round := range 20 {
		dir := t.TempDir()
		path := filepath.Join(dir, "secret.key")
		const n = 8
		ids := make([]string, n)
		createdBy := make([]bool, n)
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				kr, created, err := LoadOrCreateKeyFile(path)
				ids[i], createdBy[i], errs[i] = kr.ID(), created, err
			})
		}
		close(start)
		wg.Wait()
		creators := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d: LoadOrCreateKeyFile() error = %v", round, errs[i])
			}
			if createdBy[i] {
				creators++
			}
			if ids[i] != ids[0] {
				t.Fatalf("round %d: creators got keys %v, want one key", round, ids)
			}
		}
		if creators != 1 {
			t.Fatalf("round %d: %d callers report creating the file, want 1", round, creators)
		}
		if kr, _, _ := LoadOrCreateKeyFile(path); kr.ID() != ids[0] {
			t.Fatalf("round %d: file holds key %s, callers use %s", round, kr.ID(), ids[0])
		}
		onlyFile(t, dir, "secret.key")
	}
}

func TestWriteKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret.key")
	oldKr, _, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	oldText, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := oldKr.Seal([]byte("s"), "trigger/1/hmac.secret")
	if err != nil {
		t.Fatal(err)
	}
	// A reader that opened the file before the rewrite keeps reading the old
	// file: the new one replaces it by rename, never by writing in place.
	before, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()

	// The new key is given in hex; the file holds every key in canonical form.
	newHex := hex.EncodeToString(testKey)
	if err := WriteKeyFile(path, newHex, strings.TrimSpace(string(oldText))); err != nil {
		t.Fatalf("WriteKeyFile() error = %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := base64.RawURLEncoding.EncodeToString(testKey) + "," + string(oldText); string(got) != want {
		t.Errorf("key file holds %d bytes, want the new key, a comma, the old key and a newline (%d bytes)", len(got), len(want))
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", m)
	}
	if old, err := io.ReadAll(before); err != nil || string(old) != string(oldText) {
		t.Errorf("a reader of the old file read %d bytes, %v; want the old file unchanged", len(old), err)
	}
	onlyFile(t, dir, "secret.key")

	kr, created, err := LoadOrCreateKeyFile(path)
	if err != nil || created {
		t.Fatalf("LoadOrCreateKeyFile() after rotation = %v, %v", created, err)
	}
	if want := []string{testKeyID, oldKr.ID()}; !equal(kr.IDs(), want) {
		t.Errorf("IDs() after rotation = %v, want %v", kr.IDs(), want)
	}
	if got, err := kr.Open(sealed, "trigger/1/hmac.secret"); err != nil || string(got) != "s" || kr.Current(sealed) {
		t.Errorf("Open(sealed before rotation) = %q, %v, current %v; want s, nil, false", got, err, kr.Current(sealed))
	}
}

func TestWriteKeyFileReplacesLooseMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyFile(path, GenerateKey()); err != nil {
		t.Fatalf("WriteKeyFile() error = %v", err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", m)
	}
	onlyFile(t, dir, "secret.key")
}

func TestWriteKeyFileRejectsBadKeys(t *testing.T) {
	good := GenerateKey()
	tests := []struct {
		name    string
		keys    []string
		wantErr string
	}{
		{"no keys", nil, "no key given"},
		{"one empty", []string{""}, "no key given"},
		{"bad second", []string{good, good[:40]}, "key 2 of 2 is 30 bytes, want 32"},
		{"repeated", []string{good, " " + good}, "key 2 of 2 repeats key 1"},
		{"comma inside", []string{good + "," + GenerateKey()}, "key 1 of 1 has a character outside base64 and hex at position 44"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "secret.key")
			if err := os.WriteFile(path, []byte("previous"), 0o600); err != nil {
				t.Fatal(err)
			}
			err := WriteKeyFile(path, tt.keys...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("WriteKeyFile() error = %v, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), good[:20]) {
				t.Errorf("WriteKeyFile() error = %q, shows a key", err)
			}
			if got, _ := os.ReadFile(path); string(got) != "previous" {
				t.Errorf("key file holds %q after a refused write, want it unchanged", got)
			}
			onlyFile(t, dir, "secret.key")
		})
	}
}

func TestWriteKeyFileMissingDir(t *testing.T) {
	err := WriteKeyFile(filepath.Join(t.TempDir(), "missing", "secret.key"), GenerateKey())
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("WriteKeyFile() in a missing directory error = %v, want one matching os.ErrNotExist", err)
	}
}

func TestRotateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret.key")
	first, _, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := first.Seal([]byte("hush"), "ctx")
	if err != nil {
		t.Fatal(err)
	}
	all, err := RotateKeyFile(path)
	if err != nil {
		t.Fatalf("RotateKeyFile: %v", err)
	}
	if all.ID() == first.ID() || !slices.Contains(all.IDs(), first.ID()) {
		t.Fatalf("rotated keyring %v: want a new sealing key and the old one", all.IDs())
	}
	if got, err := all.Open(sealed, "ctx"); err != nil || string(got) != "hush" {
		t.Fatalf("Open of a value sealed before the rotation = %q, %v", got, err)
	}
	second, err := RotateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	onFile, _, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The file keeps the sealing key and the one before it, no more.
	if want := second.IDs()[:2]; !slices.Equal(onFile.IDs(), want) {
		t.Errorf("key file holds %v after two rotations, want %v", onFile.IDs(), want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode after rotation: %v, %v", fi.Mode(), err)
	}
}
