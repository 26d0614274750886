// Package trigger defines triggers and their webhook settings, validates
// settings, and loads trigger declarations from packs/ YAML.
package trigger

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/inlet-dev/inlet/pkg/payload"
	"github.com/inlet-dev/inlet/pkg/verify"
)

// Trigger is a named kind of event that webhooks deliver.
type Trigger struct {
	ID            int64           `db:"id"`
	Ref           string          `db:"ref"`
	Pack          string          `db:"pack"`
	Name          string          `db:"name"`
	Description   string          `db:"description"`
	PayloadSchema json.RawMessage `db:"-"`
	// WebhookEnabled, Key and Settings are the webhook state that operators
	// own; pack reloads never change them.
	WebhookEnabled   bool       `db:"webhook_enabled"`
	Settings         Settings   `db:"-"`
	Key              Key        `db:"-"`
	WebhookCreatedAt *time.Time `db:"webhook_created_at"`
	CreatedAt        time.Time  `db:"created_at"`
	UpdatedAt        time.Time  `db:"updated_at"`
}

var (
	namePart = `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`
	nameRe   = regexp.MustCompile(`^` + namePart + `$`)
	refRe    = regexp.MustCompile(`^` + namePart + `\.` + namePart + `$`)
	headerRe = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
)

// ValidRef reports whether ref is "<pack>.<name>" with parts that are safe in
// a NATS subject and a URL path.
func ValidRef(ref string) bool { return refRe.MatchString(ref) }

// SplitRef splits a valid ref into pack and name.
func SplitRef(ref string) (pack, name string) {
	pack, name, _ = strings.Cut(ref, ".")
	return pack, name
}

// Normalize fills defaults that an empty field stands for, so that stored
// settings are explicit.
func (s *Settings) Normalize() {
	if s.HMAC.Algorithm == "" {
		s.HMAC.Algorithm = "sha256"
	}
	s.HMAC.Algorithm = strings.ToLower(s.HMAC.Algorithm)
	if s.PayloadSizeLimitKB == 0 {
		s.PayloadSizeLimitKB = DefaultPayloadLimitKB
	}
	if s.PayloadMapping == nil {
		s.PayloadMapping = map[string]string{}
	}
	if s.IPAllowlist.CIDRs == nil {
		s.IPAllowlist.CIDRs = []string{}
	}
}

// Validate reports every invalid setting at once as a *ValidationError.
func (s Settings) Validate() error {
	var v ValidationError
	switch s.HMAC.Algorithm {
	case "sha1", "sha256", "sha512":
	default:
		v.add("hmac.algorithm", "%q is not one of sha1, sha256, sha512", s.HMAC.Algorithm)
	}
	if !verify.KnownPreset(s.HMAC.Preset) {
		v.add("hmac.preset", "unknown preset %q; known: %s", s.HMAC.Preset, strings.Join(verify.Presets(), ", "))
	}
	if s.HMAC.Header != "" && !headerRe.MatchString(s.HMAC.Header) {
		v.add("hmac.header", "%q is not a valid header name", s.HMAC.Header)
	}
	if s.HMAC.ToleranceSeconds < 0 || s.HMAC.ToleranceSeconds > 86400 {
		v.add("hmac.tolerance_seconds", "must be between 1 and 86400 (0 means the default of %d)", DefaultToleranceSeconds)
	}
	if g := s.HMAC.RotationGraceSeconds; g != nil && (*g < 0 || *g > MaxGraceSeconds) {
		v.add("hmac.rotation_grace_seconds", "must be between 0 and %d", MaxGraceSeconds)
	}
	if len(s.HMAC.Secret) > 1024 {
		v.add("hmac.secret", "must be at most 1024 bytes")
	}
	if s.RateLimit.Requests <= 0 {
		v.add("rate_limit.requests", "must be a positive number of requests")
	}
	if s.RateLimit.WindowSeconds <= 0 {
		v.add("rate_limit.window_seconds", "must be a positive number of seconds")
	}
	for i, c := range s.IPAllowlist.CIDRs {
		if _, err := ParseCIDR(c); err != nil {
			v.add(fmt.Sprintf("ip_allowlist.cidrs[%d]", i), "%v", err)
		}
	}
	if s.IPAllowlist.Enabled && len(s.IPAllowlist.CIDRs) == 0 {
		v.add("ip_allowlist.cidrs", "an enabled allowlist needs at least one CIDR")
	}
	if s.PayloadSizeLimitKB <= 0 || s.PayloadSizeLimitKB > MaxPayloadLimitKB {
		v.add("payload_size_limit_kb", "must be between 1 and %d", MaxPayloadLimitKB)
	}
	if _, err := payload.CompileMapping(s.PayloadMapping); err != nil {
		v.add("payload_mapping", "%v", err)
	}
	if d := s.DeliveryID; d != "" {
		if strings.HasPrefix(d, "$") {
			if _, err := payload.CompilePath(d); err != nil {
				v.add("delivery_id", "%v", err)
			}
		} else if !headerRe.MatchString(d) {
			v.add("delivery_id", "%q is neither a header name nor a JSONPath starting with $", d)
		}
	}
	if s.Split != "" {
		if _, err := payload.CompileSplit(s.Split); err != nil {
			v.add("split", "%v", err)
		}
	}
	if n := s.ExpectedIntervalSeconds; n != 0 && (n < MinExpectedIntervalSeconds || n > MaxExpectedIntervalSeconds) {
		v.add("expected_interval_seconds", "must be 0 (no expectation) or between %d and %d", MinExpectedIntervalSeconds, MaxExpectedIntervalSeconds)
	}
	return v.err()
}

// ValidateSchema checks that a payload schema compiles.
func ValidateSchema(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if _, err := payload.CompileSchema(raw); err != nil {
		return &ValidationError{Fields: []FieldError{{Field: "payload_schema", Message: err.Error()}}}
	}
	return nil
}
