package verify

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"
	"time"
)

// algorithm is an HMAC hash a scheme can be configured with.
type algorithm struct {
	name string
	new  func() hash.Hash
	size int
}

// equal reports whether a and b are the same algorithm; algorithm values
// hold functions, so == does not compile.
func (a algorithm) equal(b algorithm) bool { return a.name == b.name }

var (
	algSHA1   = algorithm{name: "sha1", new: sha1.New, size: sha1.Size}
	algSHA256 = algorithm{name: "sha256", new: sha256.New, size: sha256.Size}
	algSHA512 = algorithm{name: "sha512", new: sha512.New, size: sha512.Size}
)

// lookupAlgorithm returns the algorithm called name, case-insensitively.
func lookupAlgorithm(name string) (algorithm, bool) {
	switch strings.ToLower(name) {
	case "sha1":
		return algSHA1, true
	case "sha256":
		return algSHA256, true
	case "sha512":
		return algSHA512, true
	}
	return algorithm{}, false
}

// configuredAlgorithm returns c.Algorithm, sha256 when empty.
func configuredAlgorithm(c Config) (algorithm, *Error) {
	if c.Algorithm == "" {
		return algSHA256, nil
	}
	alg, ok := lookupAlgorithm(c.Algorithm)
	if !ok {
		return algorithm{}, fail(ReasonUnknownPreset, "unknown signature algorithm %q", c.Algorithm)
	}
	return alg, nil
}

// sum returns HMAC-alg(key, the concatenation of parts).
func sum(alg algorithm, key []byte, parts ...[]byte) []byte {
	m := hmac.New(alg.new, key)
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

// matchAny reports whether HMAC-alg of parts under any secret equals got.
func matchAny(alg algorithm, secrets [][]byte, got []byte, parts ...[]byte) bool {
	for _, s := range secrets {
		if hmac.Equal(sum(alg, s, parts...), got) {
			return true
		}
	}
	return false
}

// maxHexDigest is the length of the longest hex digest accepted (sha512), so
// that parsing never decodes more than this.
const maxHexDigest = 2 * sha512.Size

// parsePrefixedHex splits a signature of the form "<algorithm>=<hex>" or
// "<hex>" into its prefix ("" when bare) and its decoded digest. ok is false
// when the value is not of that form, the hex is invalid or longer than a
// sha512 digest. Hex digits may be of either case.
func parsePrefixedHex(v string) (prefix string, digest []byte, ok bool) {
	hexPart := v
	if i := strings.IndexByte(v, '='); i >= 0 {
		prefix, hexPart = v[:i], v[i+1:]
		if prefix == "" {
			return "", nil, false
		}
	}
	if hexPart == "" || len(hexPart) > maxHexDigest || len(hexPart)%2 != 0 {
		return prefix, nil, false
	}
	digest, err := hex.DecodeString(hexPart)
	if err != nil {
		return prefix, nil, false
	}
	return prefix, digest, true
}

// verifyPrefixedHex checks the value of header name, "<algorithm>=<hex>" or
// "<hex>", against HMAC-alg of the concatenated parts under every secret.
//
// The value may list several signatures separated by commas, as inlet's
// own forwarding sends while a destination's secret is rotated ("sha256=new,
// sha256=old"); one that matches is enough, and at most maxSignatures are
// tried.
func verifyPrefixedHex(name, value string, alg algorithm, secrets [][]byte, parts ...[]byte) *Error {
	if !strings.Contains(value, ",") {
		return verifyOnePrefixedHex(name, value, alg, secrets, parts...)
	}
	var first *Error
	for i, v := range strings.Split(value, ",") {
		if i == maxSignatures {
			break
		}
		err := verifyOnePrefixedHex(name, strings.TrimSpace(v), alg, secrets, parts...)
		if err == nil {
			return nil
		}
		// A mismatch says more than a malformed neighbour.
		if first == nil || (first.Reason != ReasonMismatch && err.Reason == ReasonMismatch) {
			first = err
		}
	}
	return first
}

func verifyOnePrefixedHex(name, value string, alg algorithm, secrets [][]byte, parts ...[]byte) *Error {
	prefix, digest, ok := parsePrefixedHex(value)
	if !ok {
		return fail(ReasonMalformed, "%s header is not %s=<hex> or <hex>", name, alg.name)
	}
	if prefix != "" {
		got, known := lookupAlgorithm(prefix)
		if !known {
			return fail(ReasonMalformed, "%s header names an unknown algorithm, want %s=<hex>", name, alg.name)
		}
		if !got.equal(alg) {
			return fail(ReasonMismatch, "%s header carries a %s signature, but %s is expected", name, got.name, alg.name)
		}
	}
	if len(digest) != alg.size {
		return fail(ReasonMalformed, "%s header has %d hex digits, a %s signature has %d", name, 2*len(digest), alg.name, 2*alg.size)
	}
	if !matchAny(alg, secrets, digest, parts...) {
		return errMismatch()
	}
	return nil
}

// decodeBase64Digest decodes a padded standard base64 digest of size bytes.
func decodeBase64Digest(s string, size int) ([]byte, bool) {
	enc := base64.StdEncoding.Strict()
	if len(s) != enc.EncodedLen(size) {
		return nil, false
	}
	digest, err := enc.DecodeString(s)
	if err != nil || len(digest) != size {
		return nil, false
	}
	return digest, true
}

// verifyDefault checks the default scheme: HMAC-<Algorithm> over the body.
func verifyDefault(c Config, r Request, secrets [][]byte) *Error {
	alg, err := configuredAlgorithm(c)
	if err != nil {
		return err
	}
	if c.Header != "" {
		v := header(r.Header, c.Header)
		if v == "" {
			return fail(ReasonMissing, "missing %s header", c.Header)
		}
		return verifyPrefixedHex(c.Header, v, alg, secrets, r.Body)
	}
	names := [...]string{"X-Webhook-Signature", "X-Hub-Signature-256", "X-Hub-Signature", "X-Signature"}
	if alg.equal(algSHA1) {
		// GitHub sends both headers; X-Hub-Signature is its sha1 one.
		names[1], names[2] = names[2], names[1]
	}
	for _, name := range names {
		if v := header(r.Header, name); v != "" {
			return verifyPrefixedHex(name, v, alg, secrets, r.Body)
		}
	}
	return fail(ReasonMissing, "missing signature header: send one of %s, %s, %s or %s", names[0], names[1], names[2], names[3])
}

// verifyGitHub checks X-Hub-Signature-256, or else the legacy
// X-Hub-Signature (sha1). A delivery carrying both is judged by
// X-Hub-Signature-256 alone.
// Source: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
func verifyGitHub(_ Config, r Request, secrets [][]byte) *Error {
	if v := header(r.Header, "X-Hub-Signature-256"); v != "" {
		return verifyPrefixedHex("X-Hub-Signature-256", v, algSHA256, secrets, r.Body)
	}
	if v := header(r.Header, "X-Hub-Signature"); v != "" {
		return verifyPrefixedHex("X-Hub-Signature", v, algSHA1, secrets, r.Body)
	}
	return fail(ReasonMissing, "missing X-Hub-Signature-256 header")
}

// verifyTimestamped checks inlet's own timestamped style: X-Webhook-Signature
// over "<X-Webhook-Timestamp>.<body>".
func verifyTimestamped(c Config, r Request, secrets [][]byte) *Error {
	alg, err := configuredAlgorithm(c)
	if err != nil {
		return err
	}
	sig := header(r.Header, "X-Webhook-Signature")
	if sig == "" {
		return fail(ReasonMissing, "missing X-Webhook-Signature header")
	}
	ts := header(r.Header, "X-Webhook-Timestamp")
	if ts == "" {
		return fail(ReasonMissing, "missing X-Webhook-Timestamp header")
	}
	t, ok := parseUnix(ts)
	if !ok {
		return fail(ReasonMalformed, "X-Webhook-Timestamp header is not a Unix time in seconds")
	}
	if err := verifyPrefixedHex("X-Webhook-Signature", sig, alg, secrets, []byte(ts), []byte("."), r.Body); err != nil {
		return err
	}
	return checkTime(t, r.Now, tolerance(c))
}

// maxUnixDigits bounds a timestamp's length so that it always fits an int64.
const maxUnixDigits = 18

// parseUnix parses a Unix time in seconds written as plain decimal digits:
// no sign, no spaces, at most 18 digits.
func parseUnix(s string) (time.Time, bool) {
	if s == "" || len(s) > maxUnixDigits {
		return time.Time{}, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return time.Time{}, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// checkTime rejects a signed timestamp t more than tol before or after now.
func checkTime(t, now time.Time, tol time.Duration) *Error {
	if age := now.Sub(t); age > tol {
		secs := (age + time.Second - 1) / time.Second
		return fail(ReasonStale, "timestamp is %ds older than the %s tolerance", int64(secs), formatSeconds(tol))
	}
	if ahead := t.Sub(now); ahead > tol {
		return fail(ReasonFuture, "timestamp is in the future by %s, beyond the %s tolerance", ahead.Round(time.Second), formatSeconds(tol))
	}
	return nil
}

// formatSeconds writes d in seconds, as "300s" or "1.5s".
func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}
