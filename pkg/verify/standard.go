package verify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// headerNames are the three header names of a Standard Webhooks delivery.
type headerNames struct {
	id, timestamp, signature string
}

var (
	// standardNames is the Standard Webhooks spelling, also GitLab's.
	standardNames = headerNames{id: "webhook-id", timestamp: "webhook-timestamp", signature: "webhook-signature"}
	// svixNames is the spelling Svix sends.
	svixNames = headerNames{id: "svix-id", timestamp: "svix-timestamp", signature: "svix-signature"}
)

// standardSignatures holds the decoded v1 signatures of a webhook-signature
// header.
type standardSignatures struct {
	sigs [maxSignatures][sha256.Size]byte
	n    int
}

// parseStandardSignatures parses a webhook-signature header: space-separated
// "<version>,<base64>" entries. Only v1 entries whose value is the padded
// base64 of 32 bytes are kept, at most 16; other versions (v1a, ed25519) and
// undecodable entries are skipped.
// Format: Standard Webhooks spec/standard-webhooks.md, "Signature scheme".
func parseStandardSignatures(v string) standardSignatures {
	var l standardSignatures
	enc := base64.StdEncoding.Strict()
	want := enc.EncodedLen(sha256.Size)
	for rest := v; rest != "" && l.n < maxSignatures; {
		var entry string
		entry, rest, _ = strings.Cut(rest, " ")
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" || len(sig) != want {
			continue
		}
		// DecodedLen of 44 characters is 33 bytes, one more than the
		// digest, so decode into a buffer of that size.
		var buf [sha256.Size + 1]byte
		n, err := enc.Decode(buf[:], []byte(sig))
		if err != nil || n != sha256.Size {
			continue
		}
		copy(l.sigs[l.n][:], buf[:n])
		l.n++
	}
	return l
}

// standardKey returns the HMAC key for a Standard Webhooks secret: the
// base64 decoding of the secret without its optional "whsec_" prefix, or the
// secret's raw bytes when that is not valid base64.
func standardKey(secret []byte) []byte {
	s := strings.TrimPrefix(string(secret), "whsec_")
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(key) == 0 {
		return secret
	}
	return key
}

// standardSignature returns the v1 signature of a Standard Webhooks message:
// HMAC-SHA256(key, "<id>.<timestamp>.<body>").
func standardSignature(key []byte, id, ts string, body []byte) []byte {
	return sum(algSHA256, key, []byte(id), []byte("."), []byte(ts), []byte("."), body)
}

// verifyStandard checks a Standard Webhooks delivery sent with either the
// webhook- or the svix- header spelling (Svix's libraries accept both:
// https://docs.svix.com/receiving/verifying-payloads/how-manual). The
// webhook- spelling wins when any of its headers is present.
// Source: https://github.com/standard-webhooks/standard-webhooks,
// spec/standard-webhooks.md and libraries/go/webhook.go.
func verifyStandard(c Config, r Request, secrets [][]byte) *Error {
	names := standardNames
	if header(r.Header, standardNames.signature) == "" &&
		header(r.Header, standardNames.id) == "" &&
		header(r.Header, standardNames.timestamp) == "" &&
		(header(r.Header, svixNames.signature) != "" ||
			header(r.Header, svixNames.id) != "" ||
			header(r.Header, svixNames.timestamp) != "") {
		names = svixNames
	}
	return verifyStandardNames(names, c, r, secrets)
}

// verifyStandardNames checks a Standard Webhooks delivery whose headers are
// called names.
func verifyStandardNames(names headerNames, c Config, r Request, secrets [][]byte) *Error {
	sig := header(r.Header, names.signature)
	if sig == "" {
		return fail(ReasonMissing, "missing %s header", names.signature)
	}
	id := header(r.Header, names.id)
	if id == "" {
		return fail(ReasonMissing, "missing %s header", names.id)
	}
	ts := header(r.Header, names.timestamp)
	if ts == "" {
		return fail(ReasonMissing, "missing %s header", names.timestamp)
	}
	// The spec forbids "." in the id: it would make "<id>.<timestamp>."
	// ambiguous.
	if strings.Contains(id, ".") {
		return fail(ReasonMalformed, "%s header must not contain \".\"", names.id)
	}
	t, ok := parseUnix(ts)
	if !ok {
		return fail(ReasonMalformed, "%s header is not a Unix time in seconds", names.timestamp)
	}
	l := parseStandardSignatures(sig)
	if l.n == 0 {
		return fail(ReasonMalformed, "%s header has no v1,<base64> signature", names.signature)
	}
	for _, s := range secrets {
		want := standardSignature(standardKey(s), id, ts, r.Body)
		for i := range l.n {
			if hmac.Equal(want, l.sigs[i][:]) {
				return checkTime(t, r.Now, tolerance(c))
			}
		}
	}
	return errMismatch()
}
