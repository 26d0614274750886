package trigger

import (
	"crypto/rand"
	"log/slog"
	"math/big"

	"github.com/inlet-dev/inlet/pkg/secret"
)

// Key is a webhook key. It logs as its 8-character prefix only.
type Key string

// KeyPrefixLen is how many leading characters of a key may be shown.
const KeyPrefixLen = 8

// Prefix returns the first KeyPrefixLen characters, safe to log and store.
func (k Key) Prefix() string { return KeyPrefix(string(k)) }

// String returns the prefix followed by an ellipsis.
func (k Key) String() string { return k.Prefix() + "…" }

// LogValue implements slog.LogValuer.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.Prefix()) }

// KeyPrefix returns the first KeyPrefixLen bytes of s.
func KeyPrefix(s string) string {
	if len(s) > KeyPrefixLen {
		return s[:KeyPrefixLen]
	}
	return s
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// RandomString returns n characters from [A-Za-z0-9] drawn from crypto/rand.
func RandomString(n int) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("crypto/rand: " + err.Error()) // the OS entropy source is gone; nothing is safe
		}
		b[i] = alphabet[v.Int64()]
	}
	return string(b)
}

// NewKey returns a fresh webhook key: "wh_" and 32 characters from [A-Za-z0-9].
func NewKey() Key { return Key("wh_" + RandomString(32)) }

// NewSecret returns a fresh HMAC secret of 40 characters from [A-Za-z0-9].
func NewSecret() secret.Value { return secret.Value("whsec_" + RandomString(40)) }
