// Package verify checks webhook signatures. Every scheme is a pure function
// of the request's headers, its raw body, its public URL, the current time and
// the configured secrets: no I/O, no logging, no HTTP types, and safe for
// concurrent use.
//
// Verify fails closed: an unknown preset, an empty secret list, a missing or
// malformed header, a signature that matches no secret and a timestamp outside
// the tolerance all return a *Error, never nil. Signatures are compared in
// constant time. Every secret in Config.Secrets is tried, so a previous secret
// keeps working during a rotation, and where a header carries several
// signatures (Stripe, Standard Webhooks) every one of them is tried, up to
// 16. Zero-length secrets are ignored: a webhook whose only secret is empty
// fails with ReasonNoSecret rather than accepting signatures anyone could
// compute.
//
// The schemes, selected by Config.Preset:
//
//   - "" (alias "hmac"), the default: HMAC-<Config.Algorithm> (sha1, sha256
//     or sha512; sha256 when empty) over the raw body, hex-encoded, with or
//     without an algorithm prefix ("sha256=<hex>" or "<hex>"), read from
//     Config.Header or else from the first present of X-Webhook-Signature,
//     X-Hub-Signature-256, X-Hub-Signature and X-Signature. X-Hub-Signature
//     is GitHub's sha1 header: when the algorithm is sha1 it is looked at
//     before X-Hub-Signature-256, so a GitHub delivery carrying both verifies.
//   - "github": X-Hub-Signature-256 (sha256=<hex>), else the legacy
//     X-Hub-Signature (sha1=<hex>).
//   - "stripe": Stripe-Signature "t=<unix>,v1=<hex>,...", HMAC-SHA256 of
//     "<t>.<body>" keyed with the secret string as is; every v1 is tried,
//     other schemes (v0) are ignored.
//   - "slack": X-Slack-Signature "v0=<hex>", HMAC-SHA256 of
//     "v0:<X-Slack-Request-Timestamp>:<body>".
//   - "shopify": X-Shopify-Hmac-Sha256 (or Shopify-Hmac-Sha256), base64
//     HMAC-SHA256 of the body.
//   - "gitlab": Standard Webhooks when a webhook-signature header is present
//     (GitLab's signing tokens), otherwise X-Gitlab-Token must equal a secret.
//   - "standard-webhooks" (alias "svix"): webhook-id, webhook-timestamp and
//     webhook-signature (or the svix- spelling), "v1,<base64>" entries over
//     "<id>.<timestamp>.<body>". The HMAC key is the secret without its
//     optional "whsec_" prefix, base64-decoded; a secret that is not valid
//     base64 is used as raw bytes, prefix included (a raw secret that happens
//     to be valid base64 is decoded, as the senders' libraries do).
//   - "twilio": X-Twilio-Signature, base64 HMAC-SHA1 of Request.URL followed
//     by the form parameters sorted by name (and value), each as name+value.
//     When the URL carries bodySHA256 (JSON bodies), only the URL is signed
//     and the body must hash to bodySHA256. The URL is tried as given and
//     with the default port added or removed, since Twilio signs either form.
//   - "sendgrid": SendGrid's Signed Event Webhook.
//     X-Twilio-Email-Event-Webhook-Signature is the base64 of a DER ECDSA
//     signature, P-256 with SHA-256, over
//     "<X-Twilio-Email-Event-Webhook-Timestamp><body>". The secrets are
//     verification keys, not shared secrets: each is the public key SendGrid
//     shows (the base64 of a DER SubjectPublicKeyInfo, or the same in PEM),
//     and secrets that are no such key are skipped. Signatures with a high S
//     are accepted, as SendGrid sends them.
//   - "timestamped": inlet's own timestamped style, for senders that can sign
//     a timestamp but have no scheme of their own: X-Webhook-Signature
//     ("sha256=<hex>" or "<hex>") is HMAC-<Config.Algorithm> of
//     "<X-Webhook-Timestamp>.<body>", and X-Webhook-ID is the delivery id.
//
// Schemes with a timestamp (stripe, slack, standard-webhooks, gitlab when
// signed, sendgrid, timestamped) reject a timestamp more than
// Config.Tolerance (5 minutes by default) in the past or in the future.
// SendGrid documents no window and its libraries check none, so for it the
// bound is inlet's alone. The signature is checked before the timestamp, so a
// stale or future error means the signature itself was right.
//
// Error details are meant for the sender: they say what is wrong, never a
// secret, an expected signature or the received signature.
package verify

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// defaultTolerance is the timestamp tolerance used when Config.Tolerance is
// zero or negative.
const defaultTolerance = 5 * time.Minute

// maxSignatures is the most signatures considered in one header (Stripe's v1
// list, Standard Webhooks' space-separated list); later ones are ignored, so
// a long header costs no more than this many HMAC comparisons.
const maxSignatures = 16

// Header is what verify reads of a request's headers. Get must match names
// case-insensitively and return "" for an absent header; http.Header does.
type Header interface {
	Get(key string) string
}

// Request is the part of a webhook delivery that signatures cover.
type Request struct {
	// Header holds the request headers; a nil Header has no headers.
	Header Header
	// Body is the raw body exactly as received.
	Body []byte
	// URL is the full public URL the sender posted to, with its query.
	// Only Twilio signs it.
	URL string
	// Now is the time timestamps are checked against; the zero Time means
	// time.Now().
	Now time.Time
}

// Config says how a webhook's requests are signed.
type Config struct {
	// Preset names the scheme: "" for the default HMAC scheme, or one of
	// Presets().
	Preset string
	// Algorithm is the HMAC hash of the default and timestamped schemes:
	// "sha1", "sha256" or "sha512" (case-insensitive); "" means "sha256".
	// Other presets ignore it.
	Algorithm string
	// Header is the signature header of the default scheme, when the
	// operator chose one; other presets ignore it.
	Header string
	// Secrets holds every secret that verifies right now: the current one
	// and, during a rotation, the previous one. Empty secrets are skipped;
	// with none left Verify fails with ReasonNoSecret.
	Secrets [][]byte
	// Tolerance is how far a signed timestamp may be from Request.Now,
	// either way; zero or negative means 5 minutes.
	Tolerance time.Duration
}

// Reason classifies why a request failed verification. Its values are
// stable and fit metrics labels and audit records.
type Reason string

// The reasons Verify reports.
const (
	// ReasonMissing: a header (or the URL) the scheme needs is absent.
	ReasonMissing Reason = "missing"
	// ReasonMalformed: a header is present but cannot be parsed.
	ReasonMalformed Reason = "malformed"
	// ReasonMismatch: no signature matches any secret.
	ReasonMismatch Reason = "mismatch"
	// ReasonStale: the signature matches but its timestamp is too old.
	ReasonStale Reason = "stale"
	// ReasonFuture: the signature matches but its timestamp is too far
	// ahead.
	ReasonFuture Reason = "future"
	// ReasonNoSecret: the configuration holds no usable secret.
	ReasonNoSecret Reason = "no_secret"
	// ReasonUnknownPreset: the configuration names an unknown preset or
	// algorithm.
	ReasonUnknownPreset Reason = "unknown_preset"
)

// Error is the error Verify returns. Detail is safe to show to the sender:
// it never holds a secret or a signature.
type Error struct {
	Reason Reason
	Detail string
}

// Error returns e.Detail.
func (e *Error) Error() string {
	return e.Detail
}

func fail(reason Reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// errMismatch is returned, as a fresh copy, when no signature matches.
func errMismatch() *Error {
	return &Error{Reason: ReasonMismatch, Detail: "signature does not match"}
}

// scheme is one preset: its verifier and where its delivery id comes from.
type scheme struct {
	verify     func(c Config, r Request, secrets [][]byte) *Error
	deliveryID string
}

// schemes maps every accepted preset name, aliases included, to its scheme.
// It is never modified.
var schemes = map[string]scheme{
	"":                  {verify: verifyDefault},
	"hmac":              {verify: verifyDefault},
	"github":            {verify: verifyGitHub, deliveryID: "X-GitHub-Delivery"},
	"stripe":            {verify: verifyStripe, deliveryID: "$.id"},
	"slack":             {verify: verifySlack, deliveryID: "$.event_id"},
	"shopify":           {verify: verifyShopify, deliveryID: "X-Shopify-Event-Id"},
	"gitlab":            {verify: verifyGitLab, deliveryID: "Idempotency-Key"},
	"standard-webhooks": {verify: verifyStandard, deliveryID: "webhook-id"},
	"svix":              {verify: verifyStandard, deliveryID: "svix-id"},
	"twilio":            {verify: verifyTwilio, deliveryID: "I-Twilio-Idempotency-Token"},
	"sendgrid":          {verify: verifySendGrid},
	"timestamped":       {verify: verifyTimestamped, deliveryID: "X-Webhook-ID"},
}

// Verify returns nil when r carries a valid signature under c, else a
// *Error whose Reason says why. It never returns nil for an unknown preset,
// an empty secret list, or a missing or malformed signature.
func Verify(c Config, r Request) error {
	s, ok := schemes[c.Preset]
	if !ok {
		return fail(ReasonUnknownPreset, "unknown signature preset %q", c.Preset)
	}
	secrets := make([][]byte, 0, len(c.Secrets))
	for _, secret := range c.Secrets {
		if len(secret) > 0 {
			secrets = append(secrets, secret)
		}
	}
	if len(secrets) == 0 {
		return fail(ReasonNoSecret, "no signing secret is configured")
	}
	if r.Header == nil {
		r.Header = noHeader{}
	}
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	if err := s.verify(c, r, secrets); err != nil {
		return err
	}
	return nil
}

// KnownPreset reports whether name is a preset Verify accepts; "" (the
// default scheme) is known.
func KnownPreset(name string) bool {
	_, ok := schemes[name]
	return ok
}

// Presets returns the preset names Verify accepts, aliases included and ""
// left out, sorted.
func Presets() []string {
	names := make([]string, 0, len(schemes))
	for name := range schemes {
		if name != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// DefaultDeliveryID returns where the preset's delivery id, used to drop
// duplicates, comes from: a header name, or a JSONPath into the body starting
// with "$" (Stripe's "$.id", Slack's "$.event_id"). It returns "" when the
// preset has none, as for the default scheme and sendgrid (SendGrid posts
// batches of events and names no delivery; each event carries its own
// sg_event_id), or is unknown. The svix alias names "svix-id", the header
// Svix sends; standard-webhooks names "webhook-id".
func DefaultDeliveryID(preset string) string {
	return schemes[preset].deliveryID
}

// noHeader stands in for a nil Request.Header.
type noHeader struct{}

func (noHeader) Get(string) string { return "" }

// header returns the named header's value without surrounding spaces.
func header(h Header, name string) string {
	return strings.TrimSpace(h.Get(name))
}

// tolerance returns c's timestamp tolerance.
func tolerance(c Config) time.Duration {
	if c.Tolerance <= 0 {
		return defaultTolerance
	}
	return c.Tolerance
}
