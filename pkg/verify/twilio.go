package verify

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// maxFormParams bounds the parameters read from a Twilio form body. Twilio
// sends a few dozen; the body size limit bounds the rest.
const maxFormParams = 1000

// formParam is one decoded name=value pair of a form body.
type formParam struct {
	name, value string
}

// parseTwilioForm decodes an application/x-www-form-urlencoded body into its
// parameters, sorted by name and then by value, with repeated identical pairs
// kept once, which is the order Twilio signs them in. Empty pairs are
// skipped; a pair without "=" has an empty value.
// Sources: https://www.twilio.com/docs/usage/security; twilio-python
// twilio/request_validator.py (compute_signature: sorted(set(values)));
// twilio-node lib/webhooks/webhooks.ts (toFormUrlEncodedParam: new Set).
func parseTwilioForm(body []byte) ([]formParam, error) {
	var params []formParam
	for rest := string(body); rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" {
			continue
		}
		if len(params) == maxFormParams {
			return nil, fmt.Errorf("more than %d parameters", maxFormParams)
		}
		name, value, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(name)
		if err != nil {
			return nil, errors.New("bad %-escape in a parameter name")
		}
		value, err = url.QueryUnescape(value)
		if err != nil {
			return nil, errors.New("bad %-escape in a parameter value")
		}
		params = append(params, formParam{name: name, value: value})
	}
	slices.SortFunc(params, func(a, b formParam) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.value, b.value)
	})
	return slices.Compact(params), nil
}

// queryParam returns the value of the query parameter name in rawURL.
// found reports whether it is present; ok is false when it is present more
// than once or its value is badly escaped.
func queryParam(rawURL, name string) (value string, found, ok bool) {
	_, query, _ := strings.Cut(rawURL, "?")
	query, _, _ = strings.Cut(query, "#")
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k, err := url.QueryUnescape(k); err != nil || k != name {
			continue
		}
		if found {
			return "", true, false
		}
		v, err := url.QueryUnescape(v)
		if err != nil {
			return "", true, false
		}
		value, found = v, true
	}
	return value, found, true
}

// twilioURLs returns rawURL and, for http and https URLs, the same URL with
// its default port (:80, :443) added when absent or removed when present:
// Twilio computes signatures either way (twilio-python
// twilio/request_validator.py validate, "check signature of uri with and
// without port"). The string is edited in place rather than re-serialized so
// that the path and query stay byte for byte as sent.
func twilioURLs(rawURL string) (urls [2]string, n int) {
	urls[0], n = rawURL, 1
	i := strings.Index(rawURL, "://")
	if i < 0 {
		return urls, n
	}
	var port string
	switch strings.ToLower(rawURL[:i]) {
	case "https":
		port = ":443"
	case "http":
		port = ":80"
	default:
		return urls, n
	}
	start := i + len("://")
	end := len(rawURL)
	if j := strings.IndexAny(rawURL[start:], "/?#"); j >= 0 {
		end = start + j
	}
	// The host follows any userinfo and may be a bracketed IPv6 address.
	hostStart := start + strings.LastIndexByte(rawURL[start:end], '@') + 1
	hostport := rawURL[hostStart:end]
	if hostport == "" {
		return urls, n
	}
	colon := strings.LastIndexByte(hostport, ':')
	if colon > strings.LastIndexByte(hostport, ']') {
		if hostport[colon:] != port {
			return urls, n
		}
		urls[1] = rawURL[:hostStart+colon] + rawURL[end:]
		return urls, 2
	}
	urls[1] = rawURL[:end] + port + rawURL[end:]
	return urls, 2
}

// verifyTwilio checks X-Twilio-Signature: base64 HMAC-SHA1, keyed with the
// auth token, of the URL followed by the form parameters (name then value,
// no separators). When the URL has a bodySHA256 query parameter (JSON
// bodies), only the URL is signed and the body's SHA-256 must equal it.
// Source: https://www.twilio.com/docs/usage/security
func verifyTwilio(_ Config, r Request, secrets [][]byte) *Error {
	sig := header(r.Header, "X-Twilio-Signature")
	if sig == "" {
		return fail(ReasonMissing, "missing X-Twilio-Signature header")
	}
	digest, ok := decodeBase64Digest(sig, sha1.Size)
	if !ok {
		return fail(ReasonMalformed, "X-Twilio-Signature header is not a base64 HMAC-SHA1")
	}
	if r.URL == "" {
		return fail(ReasonMissing, "request URL is unknown, and Twilio signatures cover it")
	}
	bodyHash, hashed, ok := queryParam(r.URL, "bodySHA256")
	if !ok {
		return fail(ReasonMalformed, "URL has more than one or a badly escaped bodySHA256 parameter")
	}
	var params []formParam
	if !hashed {
		var err error
		if params, err = parseTwilioForm(r.Body); err != nil {
			return fail(ReasonMalformed, "body is not a valid form: %v", err)
		}
	}
	if !twilioMatch(secrets, digest, r.URL, params) {
		return errMismatch()
	}
	if hashed {
		want, err := hex.DecodeString(bodyHash)
		if err != nil || len(want) != sha256.Size {
			return fail(ReasonMalformed, "bodySHA256 in the URL is not a hex SHA-256")
		}
		got := sha256.Sum256(r.Body)
		if subtle.ConstantTimeCompare(got[:], want) != 1 {
			return fail(ReasonMismatch, "body does not match bodySHA256 in the URL")
		}
	}
	return nil
}

// twilioMatch reports whether digest is the Twilio signature of rawURL (with
// or without its default port) and params under any secret.
func twilioMatch(secrets [][]byte, digest []byte, rawURL string, params []formParam) bool {
	urls, n := twilioURLs(rawURL)
	for _, s := range secrets {
		for _, u := range urls[:n] {
			m := hmac.New(sha1.New, s)
			m.Write([]byte(u))
			for _, p := range params {
				m.Write([]byte(p.name))
				m.Write([]byte(p.value))
			}
			if hmac.Equal(m.Sum(nil), digest) {
				return true
			}
		}
	}
	return false
}
