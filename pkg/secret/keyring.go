package secret

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length in bytes of every key.
const KeySize = 32

const (
	// sealedPrefix starts every sealed value of any format version.
	sealedPrefix = "sealed:"
	// version is the one format this package writes and reads.
	version = "v1"
	// idLen is the length in hex digits of a key id.
	idLen = 8
	// nonceSize and tagSize are those of AES-GCM with a 96-bit nonce.
	nonceSize = 12
	tagSize   = 16
	// idLabel separates the key id hash from any other use of the key. It
	// must never change: ids name the keys that stored values were sealed
	// with.
	idLabel = "inlet secret key id v1\x00"
)

// payloadEncoding writes and reads the nonce, ciphertext and tag. Strict
// decoding rejects non-zero trailing bits, so that one payload has exactly
// one text form.
var payloadEncoding = base64.RawURLEncoding.Strict()

// ErrNotSealed is returned by Open for a string that does not begin with
// "sealed:" and so is not a sealed value at all (see IsSealed).
var ErrNotSealed = errors.New("not a sealed value")

// ErrTampered is returned by Open, possibly wrapped, for a sealed value that
// does not authenticate: it was altered or truncated, is malformed or of an
// unknown format version, or was sealed for another context.
var ErrTampered = errors.New("sealed value does not authenticate: altered, or sealed for another context")

// UnknownKeyError is returned by Open for a value sealed with a key that the
// Keyring does not hold.
type UnknownKeyError struct {
	// ID is the id of the key the value was sealed with. Ids are safe to
	// show: they reveal nothing about the key.
	ID string
}

// Error names the key id, which a caller may show to say which key is
// missing from INLET_SECRET_KEY.
func (e *UnknownKeyError) Error() string {
	return "sealed with key " + e.ID + ", which the keyring does not hold"
}

// Keyring holds the keys that seal and open secrets: the first key seals,
// every key opens. Build one with ParseKeyring or LoadOrCreateKeyFile. A
// Keyring is immutable and safe for concurrent use. A nil or zero Keyring
// holds no key: Seal fails and Open reports an unknown key.
type Keyring struct {
	// keys holds pointers so that printing a Keyring with fmt, even as an
	// unexported field of another struct, shows addresses and never the
	// expanded AES key.
	keys []*key
}

type key struct {
	id string
	// aead draws a fresh nonce for each Seal and keeps no other state, so it
	// may be used from many goroutines at once.
	aead cipher.AEAD
}

// ParseKeyring parses the value of INLET_SECRET_KEY: one or more keys
// separated by commas, with optional white space around each. Each key is 32
// bytes written as standard or URL-safe base64, padded or not, or as 64 hex
// digits. The first key seals; all of them open. An error names the position
// of the first bad key and what is wrong with it, never its text; repeated
// keys and all-zero keys are errors.
func ParseKeyring(s string) (*Keyring, error) {
	raws, err := parseKeys(strings.Split(s, ","))
	if err != nil {
		return nil, err
	}
	kr := &Keyring{keys: make([]*key, len(raws))}
	for i, raw := range raws {
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("key %d of %d: %w", i+1, len(raws), err)
		}
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("key %d of %d: %w", i+1, len(raws), err)
		}
		kr.keys[i] = &key{id: keyID(raw), aead: aead}
		clear(raw)
	}
	return kr, nil
}

// GenerateKey returns a new random key in the canonical text form: 43
// characters of base64url without padding.
func GenerateKey() string {
	b := make([]byte, KeySize)
	// crypto/rand.Read never returns an error (it crashes the program if the
	// system's randomness fails).
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseKeys decodes every key of parts, trimming white space, and checks
// that none repeats another.
func parseKeys(parts []string) ([][]byte, error) {
	if len(parts) == 0 || (len(parts) == 1 && strings.TrimSpace(parts[0]) == "") {
		return nil, errors.New("no key given")
	}
	n := len(parts)
	raws := make([][]byte, n)
	ids := make([]string, n)
	for i, p := range parts {
		raw, problem := decodeKey(strings.TrimSpace(p))
		if problem != "" {
			return nil, fmt.Errorf("key %d of %d %s", i+1, n, problem)
		}
		ids[i] = keyID(raw)
		for j := range i {
			if bytes.Equal(raw, raws[j]) {
				return nil, fmt.Errorf("key %d of %d repeats key %d", i+1, n, j+1)
			}
			if ids[i] == ids[j] {
				// Two distinct keys whose ids collide (one chance in 2^32)
				// could not be told apart by Open.
				return nil, fmt.Errorf("key %d of %d has the same id as key %d; generate another", i+1, n, j+1)
			}
		}
		raws[i] = raw
	}
	return raws, nil
}

// decodeKey decodes one key, or returns a problem that completes the phrase
// "key 2 of 3 …". Problems never quote s.
func decodeKey(s string) (raw []byte, problem string) {
	if s == "" {
		return nil, "is empty"
	}
	// 43 characters is unpadded base64 of 32 bytes, and odd, so never hex.
	if isHex(s) && len(s) != base64.RawStdEncoding.EncodedLen(KeySize) {
		if len(s)%2 != 0 {
			return nil, fmt.Sprintf("is %d hex digits, want %d", len(s), 2*KeySize)
		}
		raw, _ = hex.DecodeString(s) // cannot fail: even length, hex digits only
	} else {
		var problem string
		if raw, problem = decodeBase64(s); problem != "" {
			return nil, problem
		}
	}
	if len(raw) != KeySize {
		return nil, fmt.Sprintf("is %d bytes, want %d", len(raw), KeySize)
	}
	if bytes.Equal(raw, make([]byte, KeySize)) {
		return nil, "is all zero bytes"
	}
	return raw, ""
}

// decodeBase64 accepts the standard and the URL-safe alphabets, with or
// without padding, but not both alphabets at once.
func decodeBase64(s string) (raw []byte, problem string) {
	for i := 0; i < len(s); i++ {
		if !isBase64(s[i]) {
			return nil, fmt.Sprintf("has a character outside base64 and hex at position %d", i+1)
		}
	}
	if strings.ContainsAny(s, "+/") && strings.ContainsAny(s, "-_") {
		return nil, "mixes the standard and URL-safe base64 alphabets"
	}
	body := strings.TrimRight(s, "=")
	if pad := len(s) - len(body); strings.Contains(body, "=") || pad > 2 || (pad > 0 && len(s)%4 != 0) {
		return nil, "has misplaced base64 padding"
	}
	body = strings.NewReplacer("-", "+", "_", "/").Replace(body)
	raw, err := base64.RawStdEncoding.Strict().DecodeString(body)
	if err != nil {
		return nil, "is not valid base64"
	}
	return raw, ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func isBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '+' || c == '/' || c == '-' || c == '_' || c == '='
}

// keyID names a key by a hash that reveals nothing of it.
func keyID(raw []byte) string {
	h := sha256.New()
	h.Write([]byte(idLabel))
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil))[:idLen]
}

// ID returns the id of the sealing key, or "" for a Keyring without keys.
func (kr *Keyring) ID() string {
	if kr == nil || len(kr.keys) == 0 {
		return ""
	}
	return kr.keys[0].id
}

// IDs returns the ids of all keys, the sealing key first.
func (kr *Keyring) IDs() []string {
	if kr == nil {
		return nil
	}
	ids := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		ids[i] = k.id
	}
	return ids
}

// String lists the key ids, the sealing key first; it never shows a key.
func (kr *Keyring) String() string {
	return "secret.Keyring[" + strings.Join(kr.IDs(), " ") + "]"
}

// Seal encrypts plaintext with the sealing key under a fresh random nonce
// and returns it in the sealed text form. context names where the value will
// be stored (for example "trigger/42/hmac.secret"); Open must be given the
// same context. The only error is a Keyring without keys.
func (kr *Keyring) Seal(plaintext []byte, context string) (string, error) {
	if kr == nil || len(kr.keys) == 0 {
		return "", errors.New("seal: the keyring holds no key")
	}
	k := kr.keys[0]
	h := header(k.id)
	out := k.aead.Seal(nil, nil, plaintext, additionalData(h, context))
	return h + payloadEncoding.EncodeToString(out), nil
}

// Open decrypts a value made by Seal with the same context, under whichever
// key of the Keyring sealed it. It returns ErrNotSealed for a string that is
// not a sealed value, an *UnknownKeyError for a value sealed with a key the
// Keyring does not hold, and ErrTampered (possibly wrapped) for anything
// else that does not authenticate, including a wrong context. No error
// holds any part of the value but the key id.
func (kr *Keyring) Open(sealed, context string) ([]byte, error) {
	id, payload, err := split(sealed)
	if err != nil {
		return nil, err
	}
	// The decoder skips newlines; the length check insists on the one text
	// form that Seal writes.
	data, err := payloadEncoding.DecodeString(payload)
	if err != nil || len(payload) != payloadEncoding.EncodedLen(len(data)) || len(data) < nonceSize+tagSize {
		return nil, fmt.Errorf("malformed payload: %w", ErrTampered)
	}
	var k *key
	if kr != nil {
		for _, c := range kr.keys {
			if c.id == id {
				k = c
				break
			}
		}
	}
	if k == nil {
		return nil, &UnknownKeyError{ID: id}
	}
	plaintext, err := k.aead.Open(nil, nil, data, additionalData(header(id), context))
	if err != nil {
		return nil, ErrTampered
	}
	return plaintext, nil
}

// Current reports whether sealed is a well-formed sealed value whose key id
// is that of the sealing key, so that re-sealing it would change nothing but
// the nonce. It does not check that the value opens.
func (kr *Keyring) Current(sealed string) bool {
	id, _, err := split(sealed)
	return err == nil && id == kr.ID()
}

// IsSealed reports whether s is meant to be a sealed value, that is whether
// it begins with "sealed:". It does not check that s is well formed or opens:
// Open does. A plaintext that happens to begin so is taken for a sealed
// value, so a column should hold sealed values only, never a mix.
func IsSealed(s string) bool { return strings.HasPrefix(s, sealedPrefix) }

// split takes a sealed value apart into its key id and its payload text.
func split(sealed string) (id, payload string, err error) {
	rest, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return "", "", ErrNotSealed
	}
	v, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return "", "", fmt.Errorf("malformed sealed value: %w", ErrTampered)
	}
	if v != version {
		// A later version of inlet may write a format this one cannot read.
		return "", "", fmt.Errorf("unsupported sealed format version: %w", ErrTampered)
	}
	id, payload, ok = strings.Cut(rest, ":")
	if !ok || len(id) != idLen || !isLowerHex(id) {
		return "", "", fmt.Errorf("malformed key id: %w", ErrTampered)
	}
	return id, payload, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// header is the text that precedes the payload of a value sealed with the
// key of this id.
func header(id string) string { return sealedPrefix + version + ":" + id + ":" }

// additionalData binds the header (and so the format version and key id)
// and the caller's context to the ciphertext. The header has a fixed length,
// so the two cannot be confused.
func additionalData(header, context string) []byte {
	return append([]byte(header), context...)
}
