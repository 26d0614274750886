// Package sign signs the requests inlet sends to destinations: the mirror of
// package verify, and as pure. Sign is a function of the scheme, the event
// id, the attempt's time, the body and the secrets: no I/O, no logging, no
// HTTP types, and safe for concurrent use.
//
// The schemes (SPEC.md, "Destinations"):
//
//   - "standard-webhooks", the default: webhook-id, webhook-timestamp (Unix
//     seconds) and webhook-signature "v1,<base64>", HMAC-SHA256 over
//     "<id>.<timestamp>.<body>" keyed with the base64 decoding of the secret
//     after its "whsec_" prefix (Standard Webhooks, spec/standard-webhooks.md).
//   - "hmac-sha256": X-Webhook-ID, X-Webhook-Timestamp and X-Webhook-Signature
//     "sha256=<hex>", HMAC-SHA256 of the body keyed with the secret's bytes.
//   - "hmac-sha1": X-Signature "sha1=<hex>", HMAC-SHA1 of the body keyed with
//     the secret's bytes.
//   - "none": no header at all.
//
// While a rotated secret is in its grace period a request carries one
// signature per secret, newest first: space-separated "v1,<base64>" entries
// for Standard Webhooks, as its specification defines, and values joined by
// ", " ("sha256=<hex>, sha256=<hex>") for the hmac schemes, which have no
// list syntax of their own. A receiver of an hmac scheme that reads a single
// value must split on ", " to verify during a grace period.
//
// Errors never hold a secret or a signature.
package sign

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"
)

// Scheme names how a destination's requests are signed.
type Scheme string

// The schemes a destination can use.
const (
	StandardWebhooks Scheme = "standard-webhooks"
	HMACSHA256       Scheme = "hmac-sha256"
	HMACSHA1         Scheme = "hmac-sha1"
	None             Scheme = "none"
)

// DefaultScheme is the scheme of a destination created without one.
const DefaultScheme = StandardWebhooks

// Schemes returns every scheme, the default first.
func Schemes() []Scheme {
	return []Scheme{StandardWebhooks, HMACSHA256, HMACSHA1, None}
}

// ParseScheme returns the scheme named s, exactly as spelled in Schemes; ""
// is an error, not the default, so that a caller applies DefaultScheme on
// purpose.
func ParseScheme(s string) (Scheme, error) {
	switch sc := Scheme(s); sc {
	case StandardWebhooks, HMACSHA256, HMACSHA1, None:
		return sc, nil
	}
	return "", fmt.Errorf("unknown signing scheme %q: want standard-webhooks, hmac-sha256, hmac-sha1 or none", s)
}

// Header is one request header to set. Names are spelled as the scheme's
// documentation spells them; HTTP header names are case-insensitive, so
// http.Header.Set's canonical form is equally right.
type Header struct {
	Name  string
	Value string
}

// ErrNoSecret is returned by Sign when a scheme that signs gets no secret:
// sending the request unsigned instead would fail every receiver, or worse,
// teach it to accept unsigned requests.
var ErrNoSecret = errors.New("no signing secret")

// MaxSecrets is the most secrets Sign accepts at once. Receivers look at a
// bounded number of signatures (inlet's own at 16), and a rotation needs
// two.
const MaxSecrets = 16

// whsecPrefix starts every Standard Webhooks secret.
const whsecPrefix = "whsec_"

// Sign returns the headers that sign body under scheme: the delivery id id
// (the same on every attempt, so that receivers can drop duplicates), the
// attempt's time at (sent as Unix seconds) and one signature per secret,
// newest secret first. With None it returns no headers and ignores the
// secrets.
//
// Sign fails, and nothing should be sent, when the scheme is unknown, a
// signing scheme has no secret (ErrNoSecret) or more than MaxSecrets, a
// secret is empty or, for Standard Webhooks, not "whsec_<base64>", at is
// before 1970, or a scheme that sends the id gets one that is empty or has
// a character a header cannot carry (Standard Webhooks also forbids ".", as
// its specification does).
func Sign(scheme Scheme, id string, at time.Time, body []byte, secrets []string) ([]Header, error) {
	switch scheme {
	case None:
		return nil, nil
	case StandardWebhooks, HMACSHA256, HMACSHA1:
	default:
		return nil, fmt.Errorf("unknown signing scheme %q", scheme)
	}
	if len(secrets) == 0 {
		return nil, fmt.Errorf("sign with %s: %w", scheme, ErrNoSecret)
	}
	if len(secrets) > MaxSecrets {
		return nil, fmt.Errorf("sign with %s: %d secrets, at most %d", scheme, len(secrets), MaxSecrets)
	}
	for i, s := range secrets {
		if s == "" {
			return nil, fmt.Errorf("sign with %s: secret %d of %d is empty", scheme, i+1, len(secrets))
		}
	}
	if scheme != HMACSHA1 {
		if err := checkID(scheme, id); err != nil {
			return nil, err
		}
	}
	if at.Unix() < 0 {
		return nil, fmt.Errorf("sign with %s: time %s is before 1970", scheme, at.UTC().Format(time.RFC3339))
	}
	ts := strconv.FormatInt(at.Unix(), 10)

	switch scheme {
	case StandardWebhooks:
		sig, err := standardSignatures(id, ts, body, secrets)
		if err != nil {
			return nil, err
		}
		return []Header{
			{Name: "webhook-id", Value: id},
			{Name: "webhook-timestamp", Value: ts},
			{Name: "webhook-signature", Value: sig},
		}, nil
	case HMACSHA256:
		return []Header{
			{Name: "X-Webhook-ID", Value: id},
			{Name: "X-Webhook-Timestamp", Value: ts},
			{Name: "X-Webhook-Signature", Value: hexSignatures("sha256=", sha256.New, body, secrets)},
		}, nil
	default: // HMACSHA1
		return []Header{
			{Name: "X-Signature", Value: hexSignatures("sha1=", sha1.New, body, secrets)},
		}, nil
	}
}

// checkID rejects an id the scheme cannot send.
func checkID(scheme Scheme, id string) error {
	if id == "" {
		return fmt.Errorf("sign with %s: empty delivery id", scheme)
	}
	for i := 0; i < len(id); i++ {
		// Control characters would split or corrupt the header, and a
		// receiver may trim what is not ASCII (a Unicode space) from the
		// value; the event ids inlet makes are visible ASCII.
		if c := id[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("sign with %s: delivery id %q has a character a header cannot carry", scheme, id)
		}
	}
	// "<id>.<timestamp>.<body>" would be ambiguous, and the Standard
	// Webhooks specification forbids it.
	if scheme == StandardWebhooks && strings.Contains(id, ".") {
		return fmt.Errorf("sign with %s: delivery id %q contains \".\"", scheme, id)
	}
	return nil
}

// standardSignatures returns the webhook-signature value: one "v1,<base64>"
// entry per secret, space-separated.
func standardSignatures(id, ts string, body []byte, secrets []string) (string, error) {
	enc := base64.StdEncoding
	var b strings.Builder
	b.Grow(len(secrets) * (len("v1,") + enc.EncodedLen(sha256.Size) + 1))
	for i, s := range secrets {
		key, err := standardKey(s)
		if err != nil {
			return "", fmt.Errorf("sign with %s: secret %d of %d %w", StandardWebhooks, i+1, len(secrets), err)
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write([]byte(ts))
		m.Write([]byte{'.'})
		m.Write(body)
		var sum [sha256.Size]byte
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(enc.EncodeToString(m.Sum(sum[:0])))
	}
	return b.String(), nil
}

// standardKey returns the HMAC key of a Standard Webhooks secret: the
// standard, padded base64 decoding of what follows "whsec_", as the
// specification's reference libraries decode it. The error completes
// "secret N of M".
func standardKey(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, whsecPrefix)
	if !ok {
		return nil, errors.New("does not start with whsec_")
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(key) == 0 {
		return nil, errors.New("is not whsec_ followed by standard base64")
	}
	return key, nil
}

// hexSignatures returns prefix + hex HMAC of body for every secret, joined
// by ", ".
func hexSignatures(prefix string, h func() hash.Hash, body []byte, secrets []string) string {
	var b strings.Builder
	for i, s := range secrets {
		m := hmac.New(h, []byte(s))
		m.Write(body)
		var sum [sha256.Size]byte
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(prefix)
		b.WriteString(hex.EncodeToString(m.Sum(sum[:0])))
	}
	return b.String()
}

// Secret sizes.
const (
	// standardSecretBytes is the size of the random key NewSecret makes
	// for Standard Webhooks.
	standardSecretBytes = 32
	// standardMinBytes and standardMaxBytes bound a Standard Webhooks key:
	// "at least 24 bytes (192 bits, 512 maximum)" (Standard Webhooks spec,
	// "Symmetric signature").
	standardMinBytes, standardMaxBytes = 24, 64
	// hmacSecretLen is the length of the secrets NewSecret makes for the
	// hmac schemes, as for inbound secrets (trigger.NewSecret).
	hmacSecretLen = 40
	// hmacMinBytes is the shortest secret ValidSecret accepts for the
	// hmac schemes.
	hmacMinBytes = 16
)

// alphabet is what the hmac schemes' generated secrets are made of: letters
// and digits survive every configuration file and shell unquoted.
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// NewSecret returns a fresh secret for scheme from crypto/rand: for Standard
// Webhooks "whsec_" and the base64 of 32 random bytes, for the hmac schemes
// 40 characters of [A-Za-z0-9], for None "". It fails only for an unknown
// scheme.
func NewSecret(scheme Scheme) (string, error) {
	switch scheme {
	case StandardWebhooks:
		key := make([]byte, standardSecretBytes)
		rand.Read(key) // never fails; it crashes the program if it cannot read
		return whsecPrefix + base64.StdEncoding.EncodeToString(key), nil
	case HMACSHA256, HMACSHA1:
		return randomString(hmacSecretLen), nil
	case None:
		return "", nil
	}
	return "", fmt.Errorf("unknown signing scheme %q", scheme)
}

// randomString returns n characters of alphabet, uniformly: bytes at or
// above the largest multiple of len(alphabet) are drawn again rather than
// folded, which would favour the first characters.
func randomString(n int) string {
	const limit = 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4)
	for len(out) < n {
		rand.Read(buf)
		for _, c := range buf {
			if int(c) < limit && len(out) < n {
				out = append(out, alphabet[int(c)%len(alphabet)])
			}
		}
	}
	return string(out)
}

// ValidSecret returns nil when secret suits scheme, else an error saying
// what a secret must be (never the secret itself): for Standard Webhooks
// "whsec_" followed by the padded standard base64 of 24 to 64 bytes, for the
// hmac schemes at least 16 bytes, for None the empty string.
func ValidSecret(scheme Scheme, secret string) error {
	switch scheme {
	case StandardWebhooks:
		rest, ok := strings.CutPrefix(secret, whsecPrefix)
		if !ok {
			return errors.New("a standard-webhooks secret must start with whsec_")
		}
		// The decoder skips CR and LF; a secret holding them is a paste
		// error that receivers would read differently.
		if i := strings.IndexFunc(rest, func(r rune) bool { return !isBase64(r) }); i >= 0 {
			return errors.New("a standard-webhooks secret must be whsec_ followed by standard base64 (A-Z, a-z, 0-9, +, / and = padding)")
		}
		key, err := base64.StdEncoding.Strict().DecodeString(rest)
		if err != nil {
			return errors.New("a standard-webhooks secret must be whsec_ followed by padded standard base64")
		}
		if len(key) < standardMinBytes || len(key) > standardMaxBytes {
			return fmt.Errorf("a standard-webhooks secret must decode to %d to %d bytes, not %d", standardMinBytes, standardMaxBytes, len(key))
		}
		return nil
	case HMACSHA256, HMACSHA1:
		if len(secret) < hmacMinBytes {
			return fmt.Errorf("an %s secret must be at least %d bytes, not %d", scheme, hmacMinBytes, len(secret))
		}
		return nil
	case None:
		if secret != "" {
			return errors.New("scheme none takes no secret")
		}
		return nil
	}
	return fmt.Errorf("unknown signing scheme %q", scheme)
}

// isBase64 reports whether r belongs to the standard base64 alphabet or is
// its padding.
func isBase64(r rune) bool {
	return 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '+' || r == '/' || r == '='
}
