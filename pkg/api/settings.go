package api

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// settingsFields are the members PATCH /api/v1/triggers/:ref/webhooks
// accepts.
var settingsFields = fieldSet{
	"hmac": {
		"enabled": nil, "algorithm": nil, "secret": nil, "preset": nil, "header": nil,
		"tolerance_seconds": nil, "rotation_grace_seconds": nil,
	},
	"rate_limit":                {"enabled": nil, "requests": nil, "window_seconds": nil},
	"ip_allowlist":              {"enabled": nil, "cidrs": nil},
	"payload_size_limit_kb":     nil,
	"payload_mapping":           nil,
	"delivery_id":               nil,
	"split":                     nil,
	"expected_interval_seconds": nil,
}

// settingsPatch is a partial change of webhook settings. A nil member, or
// a member sent as null, is left as it is, except payload_mapping, where
// null means an empty mapping.
type settingsPatch struct {
	HMAC        *hmacPatch        `json:"hmac"`
	RateLimit   *rateLimitPatch   `json:"rate_limit"`
	IPAllowlist *ipAllowlistPatch `json:"ip_allowlist"`
	// PayloadSizeLimitKB is checked before Normalize, which would turn an
	// explicit 0 into the default.
	PayloadSizeLimitKB *int `json:"payload_size_limit_kb"`
	// PayloadMapping is the member as sent, so that null (empty the
	// mapping) and absent (keep it) differ; decodePatch fills it.
	PayloadMapping json.RawMessage `json:"-"`
	DeliveryID     *string         `json:"delivery_id"`
	Split          *string         `json:"split"`
	// ExpectedIntervalSeconds: 0 removes the expectation.
	ExpectedIntervalSeconds *int `json:"expected_interval_seconds"`
}

// decodePatch decodes a settings patch from raw, a JSON object whose
// members were checked against settingsFields. prefix goes before field
// names in errors.
func decodePatch(raw json.RawMessage, prefix string) (*settingsPatch, error) {
	var p settingsPatch
	if err := unmarshalFields(raw, &p, prefix); err != nil {
		return nil, err
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, err
	}
	if m, ok := members["payload_mapping"]; ok {
		p.PayloadMapping = m
	}
	return &p, nil
}

type hmacPatch struct {
	Enabled          *bool   `json:"enabled"`
	Algorithm        *string `json:"algorithm"`
	Secret           *string `json:"secret"`
	Preset           *string `json:"preset"`
	Header           *string `json:"header"`
	ToleranceSeconds *int    `json:"tolerance_seconds"`
	// RotationGraceSeconds is how long a replaced secret keeps verifying,
	// kept for later changes too; unset means trigger.DefaultRotationGrace.
	RotationGraceSeconds *int `json:"rotation_grace_seconds"`
}

type rateLimitPatch struct {
	Enabled       *bool `json:"enabled"`
	Requests      *int  `json:"requests"`
	WindowSeconds *int  `json:"window_seconds"`
}

type ipAllowlistPatch struct {
	Enabled *bool     `json:"enabled"`
	CIDRs   *[]string `json:"cidrs"`
}

// apply merges p into s, then normalises and validates the result, at time
// now. prefix is put before every field name in errors ("webhook." when
// creating a trigger). It returns the secret it generated, if HMAC ends up
// enabled without one, and every invalid field at once.
//
// A new secret that replaces a different one moves the old one to
// PreviousSecret, which keeps verifying for the rotation grace (default
// trigger.DefaultRotationGrace; 0 drops it at once).
func (p *settingsPatch) apply(s *trigger.Settings, now time.Time, prefix string) (secret.Value, []trigger.FieldError) {
	var errs []trigger.FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, trigger.FieldError{Field: prefix + field, Message: fmt.Sprintf(format, args...)})
	}
	oldSecret := s.HMAC.Secret
	if h := p.HMAC; h != nil {
		setIf(&s.HMAC.Enabled, h.Enabled)
		setIf(&s.HMAC.Algorithm, h.Algorithm)
		setIf(&s.HMAC.Preset, h.Preset)
		setIf(&s.HMAC.Header, h.Header)
		setIf(&s.HMAC.ToleranceSeconds, h.ToleranceSeconds)
		if h.Secret != nil {
			s.HMAC.Secret = secret.Value(*h.Secret)
		}
		if h.RotationGraceSeconds != nil {
			s.HMAC.RotationGraceSeconds = h.RotationGraceSeconds
		}
	}
	grace := s.HMAC.RotationGrace()
	if r := p.RateLimit; r != nil {
		setIf(&s.RateLimit.Enabled, r.Enabled)
		setIf(&s.RateLimit.Requests, r.Requests)
		setIf(&s.RateLimit.WindowSeconds, r.WindowSeconds)
	}
	if l := p.IPAllowlist; l != nil {
		setIf(&s.IPAllowlist.Enabled, l.Enabled)
		if l.CIDRs != nil {
			s.IPAllowlist.CIDRs = *l.CIDRs
		}
	}
	if n := p.PayloadSizeLimitKB; n != nil {
		if *n == 0 {
			// Normalize would read 0 as "default"; a client that sends it
			// means a limit of nothing, which is invalid. Negative values
			// are left to Validate.
			bad("payload_size_limit_kb", "must be between 1 and %d", trigger.MaxPayloadLimitKB)
		}
		s.PayloadSizeLimitKB = *n
	}
	if p.PayloadMapping != nil {
		var m map[string]string
		if err := json.Unmarshal(p.PayloadMapping, &m); err != nil {
			bad("payload_mapping", "must be an object of output field to JSONPath expression")
		}
		s.PayloadMapping = m
	}
	setIf(&s.DeliveryID, p.DeliveryID)
	setIf(&s.Split, p.Split)
	setIf(&s.ExpectedIntervalSeconds, p.ExpectedIntervalSeconds)

	// Only a change to hmac generates a secret: one that turns it on
	// without a secret, or clears the secret while it is on. Another
	// change leaves a trigger without a secret as it was (refusing every
	// request), rather than answering with a secret nobody asked for.
	var generated secret.Value
	if p.HMAC != nil && s.HMAC.Enabled && s.HMAC.Secret == "" {
		generated = trigger.NewSecret()
		s.HMAC.Secret = generated
	}
	if s.HMAC.Secret != oldSecret && oldSecret != "" {
		if s.HMAC.Secret != "" && grace > 0 {
			exp := now.Add(grace).UTC()
			s.HMAC.PreviousSecret, s.HMAC.PreviousSecretExpiresAt = oldSecret, &exp
		} else {
			s.HMAC.PreviousSecret, s.HMAC.PreviousSecretExpiresAt = "", nil
		}
	}
	if s.HMAC.PreviousSecret != "" && (s.HMAC.PreviousSecretExpiresAt == nil || !now.Before(*s.HMAC.PreviousSecretExpiresAt)) {
		// An expired previous secret verifies nothing; do not keep it.
		s.HMAC.PreviousSecret, s.HMAC.PreviousSecretExpiresAt = "", nil
	}

	s.Normalize()
	for _, f := range fieldErrors(s.Validate()) {
		bad(f.Field, "%s", f.Message)
	}
	return generated, errs
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Settings is the JSON form of webhook settings in the contract: the names
// PATCH accepts, and never a secret but the one just generated.
type Settings struct {
	HMAC               HMACSettings      `json:"hmac"`
	RateLimit          trigger.RateLimit `json:"rate_limit"`
	IPAllowlist        IPAllowlist       `json:"ip_allowlist"`
	PayloadSizeLimitKB int               `json:"payload_size_limit_kb"`
	PayloadMapping     map[string]string `json:"payload_mapping"`
	DeliveryID         string            `json:"delivery_id"`
	Split              string            `json:"split"`
	// ExpectedIntervalSeconds is 0 when no interval is expected.
	ExpectedIntervalSeconds int `json:"expected_interval_seconds"`
}

// HMACSettings is the JSON form of a webhook's signature checks.
type HMACSettings struct {
	Enabled          bool   `json:"enabled"`
	Algorithm        string `json:"algorithm"`
	Preset           string `json:"preset"`
	Header           string `json:"header"`
	ToleranceSeconds int    `json:"tolerance_seconds"`
	// RotationGraceSeconds is how long a replaced secret keeps verifying.
	RotationGraceSeconds int  `json:"rotation_grace_seconds"`
	SecretSet            bool `json:"secret_set"`
	// Secret is shown only in the answer to the request that generated it.
	Secret                  string     `json:"secret,omitempty"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
}

// IPAllowlist is the JSON form of the networks a webhook accepts.
type IPAllowlist struct {
	Enabled bool     `json:"enabled"`
	CIDRs   []string `json:"cidrs"`
}

// viewSettings renders s as of now, without its secrets.
func viewSettings(s trigger.Settings, now time.Time) Settings {
	v := Settings{
		HMAC: HMACSettings{
			Enabled:              s.HMAC.Enabled,
			Algorithm:            s.HMAC.Algorithm,
			Preset:               s.HMAC.Preset,
			Header:               s.HMAC.Header,
			ToleranceSeconds:     int(s.HMAC.Tolerance() / time.Second),
			RotationGraceSeconds: int(s.HMAC.RotationGrace() / time.Second),
			SecretSet:            s.HMAC.Secret != "",
		},
		RateLimit:               s.RateLimit,
		IPAllowlist:             IPAllowlist{Enabled: s.IPAllowlist.Enabled, CIDRs: s.IPAllowlist.CIDRs},
		PayloadSizeLimitKB:      s.PayloadSizeLimitKB,
		PayloadMapping:          s.PayloadMapping,
		DeliveryID:              s.DeliveryID,
		Split:                   s.Split,
		ExpectedIntervalSeconds: s.ExpectedIntervalSeconds,
	}
	if exp := s.HMAC.PreviousSecretExpiresAt; s.HMAC.PreviousSecret != "" && exp != nil && now.Before(*exp) {
		e := exp.UTC()
		v.HMAC.PreviousSecretExpiresAt = &e
	}
	if v.IPAllowlist.CIDRs == nil {
		v.IPAllowlist.CIDRs = []string{}
	}
	if v.PayloadMapping == nil {
		v.PayloadMapping = map[string]string{}
	}
	return v
}
