package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// testKey is the bytes 0x00 to 0x1f; the test tables write it in every
// accepted form.
var testKey = func() []byte {
	b := make([]byte, KeySize)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

const (
	// testKeyID is the id of testKey. It must never change: stored values
	// name their key by it.
	testKeyID = "6357fd74"
	// goldenSealed was sealed once with testKey, plaintext goldenPlain and
	// context goldenContext, and checked to open with another AES-GCM
	// implementation (Python's cryptography package) given the nonce, the
	// ciphertext and tag, and "sealed:v1:6357fd74:" + goldenContext as
	// additional data. Every later version must still open it.
	goldenSealed  = "sealed:v1:6357fd74:iyj-zHJneaesWkZcYL54Wlrqv2WA1L8rOS-Hs1OI6DJ77gNyD1Mcdg"
	goldenPlain   = "whsec_golden"
	goldenContext = "trigger/42/hmac.secret"
	// collideA and collideB are two keys with the same id, 7f0b1a55, found
	// by hashing counters until two ids met.
	collideA = "1c5ad6a3b206986d4dfc87863fb7213c130ed13c7332af93e80b2f66987a8d39"
	collideB = "d809707205535a214e63076692d3d6cd5148d3a39f5752beca681c6903a8670e"
)

var sealedForm = regexp.MustCompile(`^sealed:v1:[0-9a-f]{8}:[A-Za-z0-9_-]+$`)

func mustParse(t testing.TB, s string) *Keyring {
	t.Helper()
	kr, err := ParseKeyring(s)
	if err != nil {
		t.Fatalf("ParseKeyring: %v", err)
	}
	return kr
}

func TestParseKeyring(t *testing.T) {
	std := base64.StdEncoding.EncodeToString(testKey)
	rawStd := base64.RawStdEncoding.EncodeToString(testKey)
	url := base64.URLEncoding.EncodeToString(testKey)
	rawURL := base64.RawURLEncoding.EncodeToString(testKey)
	hexKey := hex.EncodeToString(testKey)
	// Base64 of 32 bytes with '+', '/', '-' and '_' in it, so that the
	// alphabets differ.
	both := bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 11)[:KeySize]
	bothStd := base64.StdEncoding.EncodeToString(both)
	bothURL := base64.RawURLEncoding.EncodeToString(both)
	other := GenerateKey()
	otherID := mustParse(t, other).ID()
	bothID := mustParse(t, bothURL).ID()

	tests := []struct {
		name    string
		in      string
		wantIDs []string
		wantErr string
	}{
		{"standard base64 padded", std, []string{testKeyID}, ""},
		{"standard base64 unpadded", rawStd, []string{testKeyID}, ""},
		{"URL-safe base64 padded", url, []string{testKeyID}, ""},
		{"URL-safe base64 unpadded", rawURL, []string{testKeyID}, ""},
		{"standard alphabet symbols", bothStd, []string{bothID}, ""},
		{"URL-safe alphabet symbols", bothURL, []string{bothID}, ""},
		{"hex lower case", hexKey, []string{testKeyID}, ""},
		{"hex upper case", strings.ToUpper(hexKey), []string{testKeyID}, ""},
		{"surrounding white space and newline", " \t" + rawURL + "\n", []string{testKeyID}, ""},
		{"two keys, sealing key first", other + "," + hexKey, []string{otherID, testKeyID}, ""},
		{"spaces around the comma", other + " ,\t" + std + "\n", []string{otherID, testKeyID}, ""},
		{"three keys", bothURL + ", " + other + ", " + url, []string{bothID, otherID, testKeyID}, ""},

		{"empty", "", nil, "no key given"},
		{"white space only", " \n\t", nil, "no key given"},
		{"only a comma", ",", nil, "key 1 of 2 is empty"},
		{"trailing comma", rawURL + ",", nil, "key 2 of 2 is empty"},
		{"empty middle key", other + ", ," + rawURL, nil, "key 2 of 3 is empty"},
		{"31 bytes base64", base64.RawURLEncoding.EncodeToString(testKey[:31]), nil, "key 1 of 1 is 31 bytes, want 32"},
		{"33 bytes base64", base64.StdEncoding.EncodeToString(append(testKey[:32:32], 1)), nil, "key 1 of 1 is 33 bytes, want 32"},
		{"second of three too short", other + "," + base64.StdEncoding.EncodeToString(testKey[:31]) + "," + hexKey, nil, "key 2 of 3 is 31 bytes, want 32"},
		{"31 bytes hex", hexKey[:62], nil, "key 1 of 1 is 31 bytes, want 32"},
		{"odd hex", hexKey[:63], nil, "key 1 of 1 is 63 hex digits, want 64"},
		{"65 hex digits", hexKey + "a", nil, "key 1 of 1 is 65 hex digits, want 64"},
		{"bad character", rawURL[:10] + "*" + rawURL[11:], nil, "key 1 of 1 has a character outside base64 and hex at position 11"},
		{"non-ASCII character", "é" + rawURL[2:], nil, "key 1 of 1 has a character outside base64 and hex at position 1"},
		{"inner space", rawURL[:20] + " " + rawURL[20:], nil, "key 1 of 1 has a character outside base64 and hex at position 21"},
		{"mixed alphabets", "+" + bothURL[1:], nil, "key 1 of 1 mixes the standard and URL-safe base64 alphabets"},
		{"padding inside", rawURL[:20] + "=" + rawURL[21:] + "=", nil, "key 1 of 1 has misplaced base64 padding"},
		{"too much padding", rawURL + "===", nil, "key 1 of 1 has misplaced base64 padding"},
		{"padding on a wrong length", rawURL + "==", nil, "key 1 of 1 has misplaced base64 padding"},
		{"impossible base64 length", rawURL + "AB", nil, "key 1 of 1 is not valid base64"},
		{"non-zero trailing bits", rawURL[:42] + "B", nil, "key 1 of 1 is not valid base64"},
		{"all zero", strings.Repeat("0", 64), nil, "key 1 of 1 is all zero bytes"},
		{"repeated key", rawURL + "," + rawURL, nil, "key 2 of 2 repeats key 1"},
		{"repeated key in another form", other + "," + hexKey + "," + std, nil, "key 3 of 3 repeats key 2"},
		{"distinct keys with one id", collideA + "," + collideB, nil, "key 2 of 2 has the same id as key 1; generate another"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kr, err := ParseKeyring(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseKeyring() = %v, want error %q", kr, tt.wantErr)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("ParseKeyring() error = %q, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKeyring() error = %v", err)
			}
			if got := kr.IDs(); !equal(got, tt.wantIDs) {
				t.Errorf("IDs() = %v, want %v", got, tt.wantIDs)
			}
			if got := kr.ID(); got != tt.wantIDs[0] {
				t.Errorf("ID() = %q, want %q", got, tt.wantIDs[0])
			}
		})
	}
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func TestGenerateKey(t *testing.T) {
	k1, k2 := GenerateKey(), GenerateKey()
	for _, k := range []string{k1, k2} {
		if !regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`).MatchString(k) {
			t.Errorf("GenerateKey() = %d characters that are not 43 of base64url", len(k))
		}
		if _, err := ParseKeyring(k); err != nil {
			t.Errorf("ParseKeyring(GenerateKey()) error = %v", err)
		}
	}
	if k1 == k2 {
		t.Error("GenerateKey() returned the same key twice")
	}
}

func TestSealOpen(t *testing.T) {
	kr := mustParse(t, GenerateKey())
	tests := []struct {
		name      string
		plaintext []byte
		context   string
	}{
		{"hmac secret", []byte("whsec_abc"), "trigger/42/hmac.secret"},
		{"empty plaintext", nil, "destination/7/secret"},
		{"empty context", []byte("x"), ""},
		{"binary", []byte{0, 0xff, '\n', ':', 0x80}, "header/3/value"},
		{"large", bytes.Repeat([]byte("0123456789"), 100_000), "c"},
		{"context with separators", []byte("v"), "a:b/c\x00d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := kr.Seal(tt.plaintext, tt.context)
			if err != nil {
				t.Fatalf("Seal() error = %v", err)
			}
			if !sealedForm.MatchString(sealed) {
				t.Errorf("Seal() = %.60q, want sealed:v1:<id>:<base64url>", sealed)
			}
			if !strings.HasPrefix(sealed, "sealed:v1:"+kr.ID()+":") {
				t.Errorf("Seal() = %.60q, want the sealing key id %s", sealed, kr.ID())
			}
			payload := sealed[strings.LastIndexByte(sealed, ':')+1:]
			if got, want := base64.RawURLEncoding.DecodedLen(len(payload)), nonceSize+len(tt.plaintext)+tagSize; got != want {
				t.Errorf("payload is %d bytes, want nonce, plaintext and tag, %d", got, want)
			}
			if bytes.Contains([]byte(sealed), tt.plaintext) && len(tt.plaintext) > 3 {
				t.Errorf("Seal() = %.60q, holds the plaintext", sealed)
			}
			if !IsSealed(sealed) || !kr.Current(sealed) {
				t.Errorf("IsSealed() = %v, Current() = %v, want both true", IsSealed(sealed), kr.Current(sealed))
			}
			got, err := kr.Open(sealed, tt.context)
			if err != nil {
				t.Fatalf("Open() error = %v", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Open() = %.40q, want %.40q", got, tt.plaintext)
			}
		})
	}
}

func TestOpenGolden(t *testing.T) {
	kr := mustParse(t, hex.EncodeToString(testKey))
	got, err := kr.Open(goldenSealed, goldenContext)
	if err != nil {
		t.Fatalf("Open(golden) error = %v", err)
	}
	if string(got) != goldenPlain {
		t.Errorf("Open(golden) = %q, want %q", got, goldenPlain)
	}
	if !kr.Current(goldenSealed) {
		t.Errorf("Current(golden) = false, want true")
	}
}

func TestNonceIsFreshEverySeal(t *testing.T) {
	kr := mustParse(t, GenerateKey())
	const n = 1000
	seen := make(map[string]bool, n)
	nonces := make(map[string]bool, n)
	for range n {
		sealed, err := kr.Seal([]byte("same plaintext"), "same/context")
		if err != nil {
			t.Fatal(err)
		}
		data, err := base64.RawURLEncoding.DecodeString(sealed[strings.LastIndexByte(sealed, ':')+1:])
		if err != nil {
			t.Fatal(err)
		}
		if seen[sealed] || nonces[string(data[:nonceSize])] {
			t.Fatalf("Seal() repeated a value or nonce after %d seals", len(seen))
		}
		seen[sealed] = true
		nonces[string(data[:nonceSize])] = true
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := GenerateKey(), GenerateKey()
	old := mustParse(t, oldKey)
	sealedOld, err := old.Seal([]byte("s1"), "trigger/1/hmac.secret")
	if err != nil {
		t.Fatal(err)
	}

	both := mustParse(t, newKey+", "+oldKey)
	if got, want := both.IDs(), []string{mustParse(t, newKey).ID(), old.ID()}; !equal(got, want) {
		t.Errorf("IDs() = %v, want %v", got, want)
	}
	got, err := both.Open(sealedOld, "trigger/1/hmac.secret")
	if err != nil || string(got) != "s1" {
		t.Fatalf("Open(sealed by old key) = %q, %v; want s1", got, err)
	}
	if both.Current(sealedOld) {
		t.Error("Current(sealed by old key) = true, want false: it needs re-sealing")
	}
	resealed, err := both.Seal(got, "trigger/1/hmac.secret")
	if err != nil {
		t.Fatal(err)
	}
	if !both.Current(resealed) || old.Current(resealed) {
		t.Errorf("Current(resealed) = %v under new keyring and %v under old, want true and false", both.Current(resealed), old.Current(resealed))
	}

	// Once the old key is dropped, what it sealed names it.
	onlyNew := mustParse(t, newKey)
	if got, err := onlyNew.Open(resealed, "trigger/1/hmac.secret"); err != nil || string(got) != "s1" {
		t.Errorf("Open(resealed) = %q, %v; want s1", got, err)
	}
	_, err = onlyNew.Open(sealedOld, "trigger/1/hmac.secret")
	var unknown *UnknownKeyError
	if !errors.As(err, &unknown) {
		t.Fatalf("Open(sealed by dropped key) error = %v, want *UnknownKeyError", err)
	}
	if unknown.ID != old.ID() {
		t.Errorf("UnknownKeyError.ID = %q, want %q", unknown.ID, old.ID())
	}
	if want := "sealed with key " + old.ID() + ", which the keyring does not hold"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestOpenErrors(t *testing.T) {
	kr := mustParse(t, hex.EncodeToString(testKey))
	const ctx = goldenContext
	other := GenerateKey()
	otherSealed, err := mustParse(t, other).Seal([]byte(goldenPlain), ctx)
	if err != nil {
		t.Fatal(err)
	}
	withOther := mustParse(t, hex.EncodeToString(testKey)+","+other)
	otherID := mustParse(t, other).ID()
	head, payload := goldenSealed[:len("sealed:v1:6357fd74:")], goldenSealed[len("sealed:v1:6357fd74:"):]

	type openCase struct {
		name    string
		kr      *Keyring
		sealed  string
		context string
		want    error // ErrNotSealed, ErrTampered, or a *UnknownKeyError
	}
	tests := []openCase{
		{"empty", kr, "", ctx, ErrNotSealed},
		{"plaintext", kr, goldenPlain, ctx, ErrNotSealed},
		{"upper-case prefix", kr, "SEALED" + goldenSealed[6:], ctx, ErrNotSealed},
		{"leading space", kr, " " + goldenSealed, ctx, ErrNotSealed},
		{"prefix only", kr, "sealed:", ctx, ErrTampered},
		{"no key id", kr, "sealed:v1:", ctx, ErrTampered},
		{"unknown version", kr, "sealed:v2:" + goldenSealed[10:], ctx, ErrTampered},
		{"upper-case key id", kr, "sealed:v1:6357FD74:" + payload, ctx, ErrTampered},
		{"short key id", kr, "sealed:v1:6357fd7:" + payload, ctx, ErrTampered},
		{"no payload", kr, head, ctx, ErrTampered},
		{"payload shorter than nonce and tag", kr, head + payload[:36], ctx, ErrTampered},
		{"padding added", kr, goldenSealed + "==", ctx, ErrTampered},
		{"trailing newline", kr, goldenSealed + "\n", ctx, ErrTampered},
		{"inner newline", kr, head + payload[:20] + "\n" + payload[20:], ctx, ErrTampered},
		{"standard alphabet", kr, head + strings.NewReplacer("-", "+", "_", "/").Replace(payload), ctx, ErrTampered},
		{"truncated", kr, goldenSealed[:len(goldenSealed)-4], ctx, ErrTampered},
		{"non-zero trailing bits", kr, goldenSealed[:len(goldenSealed)-1] + "h", ctx, ErrTampered},
		{"wrong context", kr, goldenSealed, "trigger/43/hmac.secret", ErrTampered},
		{"context prefix", kr, goldenSealed, "trigger/4", ErrTampered},
		{"context extended", kr, goldenSealed, ctx + "x", ErrTampered},
		{"empty context", kr, goldenSealed, "", ErrTampered},
		{"relabelled with another held key", withOther, "sealed:v1:" + otherID + ":" + payload, ctx, ErrTampered},
		{"unknown key", kr, otherSealed, ctx, &UnknownKeyError{ID: otherID}},
		{"nil keyring", nil, goldenSealed, ctx, &UnknownKeyError{ID: testKeyID}},
		{"zero keyring", &Keyring{}, goldenSealed, ctx, &UnknownKeyError{ID: testKeyID}},
	}
	// Flipping any bit of the nonce, ciphertext or tag must fail.
	data, _ := base64.RawURLEncoding.DecodeString(payload)
	for i := range data {
		flipped := bytes.Clone(data)
		flipped[i] ^= 0x01
		tests = append(tests, openCase{fmt.Sprintf("flipped byte %d", i), kr, head + base64.RawURLEncoding.EncodeToString(flipped), ctx, ErrTampered})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.kr.Open(tt.sealed, tt.context)
			if err == nil {
				t.Fatalf("Open() = %q, want error %v", got, tt.want)
			}
			if got != nil {
				t.Errorf("Open() = %q with an error, want nil", got)
			}
			if want, ok := tt.want.(*UnknownKeyError); ok {
				var u *UnknownKeyError
				if !errors.As(err, &u) || u.ID != want.ID {
					t.Errorf("Open() error = %v, want unknown key %s", err, want.ID)
				}
			} else if !errors.Is(err, tt.want) {
				t.Errorf("Open() error = %v, want %v", err, tt.want)
			}
			if strings.Contains(err.Error(), goldenPlain) || strings.Contains(err.Error(), payload[:8]) {
				t.Errorf("Open() error = %q, holds the plaintext or the payload", err)
			}
			if got, want := errors.Is(err, ErrNotSealed), !IsSealed(tt.sealed); got != want {
				t.Errorf("errors.Is(err, ErrNotSealed) = %v, want !IsSealed = %v", got, want)
			}
		})
	}
}

func TestCurrentAndIsSealed(t *testing.T) {
	kr := mustParse(t, hex.EncodeToString(testKey))
	tests := []struct {
		in                string
		sealed, isCurrent bool
	}{
		{goldenSealed, true, true},
		{"sealed:v1:00000000:" + goldenSealed[19:], true, false},
		{"sealed:v2:6357fd74:" + goldenSealed[19:], true, false},
		{"sealed:", true, false},
		{"whsec_abc", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		if got := IsSealed(tt.in); got != tt.sealed {
			t.Errorf("IsSealed(%.30q) = %v, want %v", tt.in, got, tt.sealed)
		}
		if got := kr.Current(tt.in); got != tt.isCurrent {
			t.Errorf("Current(%.30q) = %v, want %v", tt.in, got, tt.isCurrent)
		}
	}
}

func TestEmptyKeyring(t *testing.T) {
	for _, kr := range []*Keyring{nil, {}} {
		if _, err := kr.Seal([]byte("x"), "c"); err == nil {
			t.Errorf("(%v).Seal() error = nil, want an error", kr)
		}
		if kr.ID() != "" || len(kr.IDs()) != 0 || kr.Current(goldenSealed) {
			t.Errorf("(%v): ID() = %q, IDs() = %v, Current() = %v; want nothing", kr, kr.ID(), kr.IDs(), kr.Current(goldenSealed))
		}
	}
}

// TestKeyringPrintsNoKey checks that a Keyring printed by mistake, alone or
// inside another struct, shows no form of its keys.
func TestKeyringPrintsNoKey(t *testing.T) {
	kr := mustParse(t, hex.EncodeToString(testKey)+","+collideA)
	rawA, _ := hex.DecodeString(collideA)
	type holder struct {
		kr  *Keyring
		val Keyring
	}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		for _, arg := range []any{kr, *kr, holder{kr, *kr}, &holder{kr, *kr}} {
			out = append(out, fmt.Sprintf(verb, arg))
		}
	}
	if got, want := kr.String(), "secret.Keyring["+testKeyID+" 7f0b1a55]"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for _, raw := range [][]byte{testKey, rawA} {
		forms := []string{
			string(raw), hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw)[:40],
			base64.RawURLEncoding.EncodeToString(raw)[:40], strings.Trim(fmt.Sprint(raw[:6]), "[]"), fmt.Sprintf("%x", raw[:8]),
		}
		for _, o := range out {
			for _, f := range forms {
				if strings.Contains(o, f) {
					t.Errorf("printed Keyring %q shows the key as %q", o, f)
				}
			}
		}
	}
}

func TestKeyringConcurrentUse(t *testing.T) {
	kr := mustParse(t, GenerateKey()+","+GenerateKey())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			ctx := fmt.Sprintf("trigger/%d/hmac.secret", g)
			for i := range 200 {
				want := fmt.Sprintf("secret-%d-%d", g, i)
				sealed, err := kr.Seal([]byte(want), ctx)
				if err != nil {
					errs <- err
					return
				}
				got, err := kr.Open(sealed, ctx)
				if err != nil || string(got) != want {
					errs <- fmt.Errorf("Open() = %q, %v; want %q", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
