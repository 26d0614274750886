package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/inlet-dev/inlet/pkg/secret"
)

// Defaults for webhook settings.
const (
	DefaultPayloadLimitKB   = 1024
	MaxPayloadLimitKB       = 25 * 1024 // GitHub's own cap on a delivery
	DefaultToleranceSeconds = 300
	DefaultRotationGrace    = 24 * time.Hour
	// MaxGraceSeconds bounds the grace periods of key regeneration and
	// secret rotation: seven days.
	MaxGraceSeconds = 7 * 24 * 60 * 60
)

// Settings are a trigger's webhook security and mapping settings. The JSON
// field names are the ones the management API's PATCH accepts.
type Settings struct {
	HMAC               HMAC              `json:"hmac"`
	RateLimit          RateLimit         `json:"rate_limit"`
	IPAllowlist        IPAllowlist       `json:"ip_allowlist"`
	PayloadSizeLimitKB int               `json:"payload_size_limit_kb"`
	PayloadMapping     map[string]string `json:"payload_mapping"`
	// DeliveryID says where a delivery's id comes from for de-duplication: a
	// header name, or a JSONPath into the body when it starts with "$". Empty
	// means the preset's default, then a list of well-known headers.
	DeliveryID string `json:"delivery_id"`
	// Split, a JSONPath naming an array ("$[*]", "$.events[*]"), makes
	// each element of a request's body an event of its own; empty stores
	// the body as one event.
	Split string `json:"split"`
	// ExpectedIntervalSeconds is the longest a sender may stay silent
	// before the trigger's health says idle; 0 expects nothing.
	ExpectedIntervalSeconds int `json:"expected_interval_seconds"`
}

// Limits of ExpectedIntervalSeconds: a minute to thirty days.
const (
	MinExpectedIntervalSeconds = 60
	MaxExpectedIntervalSeconds = 30 * 86400
)

// HMAC configures signature verification.
type HMAC struct {
	Enabled   bool         `json:"enabled"`
	Algorithm string       `json:"algorithm"` // sha1, sha256 or sha512
	Secret    secret.Value `json:"-"`
	// Preset names a sender's native scheme; empty is the default scheme.
	Preset string `json:"preset,omitempty"`
	// Header is the signature header for the default scheme when the sender
	// uses a name of its own.
	Header           string `json:"header,omitempty"`
	ToleranceSeconds int    `json:"tolerance_seconds,omitempty"`
	// PreviousSecret keeps verifying until PreviousSecretExpiresAt, so a
	// sender can be switched to a new secret without losing deliveries.
	PreviousSecret secret.Value `json:"-"`
	// RotationGraceSeconds is how long a replaced secret keeps verifying
	// after a new one is set; nil means DefaultRotationGrace, 0 at once.
	RotationGraceSeconds    *int       `json:"rotation_grace_seconds,omitempty"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at,omitempty"`
}

// RateLimit is a token bucket: Requests per WindowSeconds, bursting to Requests.
type RateLimit struct {
	Enabled       bool `json:"enabled"`
	Requests      int  `json:"requests"`
	WindowSeconds int  `json:"window_seconds"`
}

// IPAllowlist lists the networks a sender may post from.
type IPAllowlist struct {
	Enabled bool     `json:"enabled"`
	CIDRs   []string `json:"cidrs"`
}

// DefaultSettings returns the settings of a trigger nobody has configured.
func DefaultSettings() Settings {
	return Settings{
		HMAC:               HMAC{Algorithm: "sha256"},
		RateLimit:          RateLimit{Requests: 60, WindowSeconds: 60},
		IPAllowlist:        IPAllowlist{CIDRs: []string{}},
		PayloadSizeLimitKB: DefaultPayloadLimitKB,
		PayloadMapping:     map[string]string{},
	}
}

// RotationGrace is how long a replaced secret keeps verifying.
func (h HMAC) RotationGrace() time.Duration {
	if h.RotationGraceSeconds == nil {
		return DefaultRotationGrace
	}
	return time.Duration(*h.RotationGraceSeconds) * time.Second
}

// Tolerance is how far a signed timestamp may be from now.
func (h HMAC) Tolerance() time.Duration {
	if h.ToleranceSeconds <= 0 {
		return DefaultToleranceSeconds * time.Second
	}
	return time.Duration(h.ToleranceSeconds) * time.Second
}

// Secrets returns the secrets that verify at time now: the current one and,
// until it expires, the previous one.
func (h HMAC) Secrets(now time.Time) [][]byte {
	var out [][]byte
	if h.Secret != "" {
		out = append(out, []byte(h.Secret))
	}
	if h.PreviousSecret != "" && h.PreviousSecretExpiresAt != nil && now.Before(*h.PreviousSecretExpiresAt) {
		out = append(out, []byte(h.PreviousSecret))
	}
	return out
}

// PayloadLimit is the largest accepted body in bytes.
func (s Settings) PayloadLimit() int64 {
	kb := s.PayloadSizeLimitKB
	if kb <= 0 {
		kb = DefaultPayloadLimitKB
	}
	return int64(kb) * 1024
}

// Prefixes parses the allowlist. Call it on validated settings only.
func (a IPAllowlist) Prefixes() ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(a.CIDRs))
	for _, c := range a.CIDRs {
		p, err := ParseCIDR(c)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ParseCIDR accepts an IPv4 or IPv6 network in CIDR form, or a single address
// (taken as /32 or /128).
func ParseCIDR(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR", s)
	}
	if p.Addr().Is4In6() {
		// ::ffff:a.b.c.d/n is the IPv4 network a.b.c.d/(n-96); shorter
		// prefixes reach beyond the mapped range and mean nothing here.
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped network shorter than /96", s)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// FieldError names one invalid setting.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every invalid setting found.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return strings.Join(parts, "; ")
}

func (e *ValidationError) add(field, format string, args ...any) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (e *ValidationError) err() error {
	if len(e.Fields) == 0 {
		return nil
	}
	return e
}

// IsValidationError reports whether err is a *ValidationError.
func IsValidationError(err error) bool {
	var v *ValidationError
	return errors.As(err, &v)
}

// Changed names the settings that differ between old and new, as dotted
// JSON field names ("hmac.enabled", "rate_limit.requests"), sorted: what
// the activity log records of a change, never the values.
func Changed(old, new Settings) []string {
	var names []string
	a, b := flatten(old), flatten(new)
	for k, v := range b {
		if w, ok := a[k]; !ok || w != v {
			names = append(names, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			names = append(names, k)
		}
	}
	if old.HMAC.Secret != new.HMAC.Secret {
		names = append(names, "hmac.secret")
	}
	sort.Strings(names)
	return names
}

// flatten maps each leaf of s's JSON form (secrets are not part of it) to
// its JSON text; objects nest with dots, arrays and maps of strings are
// leaves as a whole.
func flatten(s Settings) map[string]string {
	raw, _ := json.Marshal(s)
	var doc map[string]any
	_ = json.Unmarshal(raw, &doc)
	out := make(map[string]string)
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok && prefix != "payload_mapping" {
			for k, w := range m {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, w)
			}
			return
		}
		b, _ := json.Marshal(v)
		out[prefix] = string(b)
	}
	walk("", doc)
	return out
}
