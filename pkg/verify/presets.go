package verify

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// verifySlack checks X-Slack-Signature, "v0=" + hex HMAC-SHA256 of
// "v0:<X-Slack-Request-Timestamp>:<body>".
// Source: https://api.slack.com/authentication/verifying-requests-from-slack
func verifySlack(c Config, r Request, secrets [][]byte) *Error {
	sig := header(r.Header, "X-Slack-Signature")
	if sig == "" {
		return fail(ReasonMissing, "missing X-Slack-Signature header")
	}
	ts := header(r.Header, "X-Slack-Request-Timestamp")
	if ts == "" {
		return fail(ReasonMissing, "missing X-Slack-Request-Timestamp header")
	}
	t, ok := parseUnix(ts)
	if !ok {
		return fail(ReasonMalformed, "X-Slack-Request-Timestamp header is not a Unix time in seconds")
	}
	hexPart, found := strings.CutPrefix(sig, "v0=")
	if !found || len(hexPart) != 2*sha256.Size {
		return fail(ReasonMalformed, "X-Slack-Signature header is not v0=<64 hex digits>")
	}
	digest, err := hex.DecodeString(hexPart)
	if err != nil {
		return fail(ReasonMalformed, "X-Slack-Signature header is not v0=<64 hex digits>")
	}
	if !matchAny(algSHA256, secrets, digest, []byte("v0:"), []byte(ts), []byte(":"), r.Body) {
		return errMismatch()
	}
	return checkTime(t, r.Now, tolerance(c))
}

// verifyShopify checks X-Shopify-Hmac-Sha256 (or Shopify-Hmac-Sha256, used
// by Shopify's newer Events delivery), base64 HMAC-SHA256 of the body.
// Source: https://shopify.dev/docs/apps/build/webhooks/verify-deliveries
func verifyShopify(_ Config, r Request, secrets [][]byte) *Error {
	name := "X-Shopify-Hmac-Sha256"
	sig := header(r.Header, name)
	if sig == "" {
		name = "Shopify-Hmac-Sha256"
		sig = header(r.Header, name)
	}
	if sig == "" {
		return fail(ReasonMissing, "missing X-Shopify-Hmac-Sha256 header")
	}
	digest, ok := decodeBase64Digest(sig, sha256.Size)
	if !ok {
		return fail(ReasonMalformed, "%s header is not a base64 HMAC-SHA256", name)
	}
	if !matchAny(algSHA256, secrets, digest, r.Body) {
		return errMismatch()
	}
	return nil
}

// verifyGitLab checks a Standard Webhooks signature when GitLab sent one (a
// signing token is configured), else the plain X-Gitlab-Token. GitLab sends
// webhook-id and webhook-timestamp on every delivery, so only
// webhook-signature tells a signed delivery apart. Sources: GitLab docs,
// "Webhooks" (X-Gitlab-Token); GitLab 19.0 release notes, "Secure webhooks
// with HMAC signing tokens" (merge requests !230944 and !231325).
func verifyGitLab(c Config, r Request, secrets [][]byte) *Error {
	if header(r.Header, "webhook-signature") != "" {
		return verifyStandardNames(standardNames, c, r, secrets)
	}
	token := header(r.Header, "X-Gitlab-Token")
	if token == "" {
		return fail(ReasonMissing, "missing X-Gitlab-Token header")
	}
	// Comparing digests keeps the comparison constant-time in the token's
	// length too.
	got := sha256.Sum256([]byte(token))
	for _, s := range secrets {
		want := sha256.Sum256(s)
		if subtle.ConstantTimeCompare(got[:], want[:]) == 1 {
			return nil
		}
	}
	return fail(ReasonMismatch, "X-Gitlab-Token does not match")
}
