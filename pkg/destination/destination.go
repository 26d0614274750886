// Package destination defines destinations, the HTTP endpoints inlet
// forwards a trigger's events to, and their deliveries: the types, their
// validation, and the retry schedule. It does no I/O; pkg/store keeps
// them and pkg/forward sends them.
package destination

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/sign"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// Defaults and limits of a destination's settings.
const (
	DefaultTimeoutSeconds = 10
	MaxTimeoutSeconds     = 60
	DefaultMaxInFlight    = 10
	MaxMaxInFlight        = 100
	MaxRetries            = 20
	MaxRetryDelaySeconds  = 86400
	MaxHeaders            = 20
	MaxHeaderValue        = 1024
	MaxNameLen            = 100
	MaxURLLen             = 2048
	// DefaultSecretGrace is how long a rotated secret keeps signing.
	DefaultSecretGrace = 24 * time.Hour
	// Jitter is how far each retry's delay may be spread, either way.
	Jitter = 0.1
)

// DefaultRetrySchedule is the delays after the first attempt: 1 minute, 5
// minutes, 30 minutes, then doubling, about a day in all.
var DefaultRetrySchedule = []int{60, 300, 1800, 3600, 7200, 14400, 28800, 28800}

// Delivery statuses.
const (
	Pending   = "pending"
	Succeeded = "succeeded"
	Failed    = "failed"
)

// Destination is an HTTP endpoint that receives every event of one trigger.
type Destination struct {
	ID         string
	TriggerID  int64
	TriggerRef string
	Name       string
	URL        string
	Enabled    bool
	Scheme     sign.Scheme
	// Secret signs requests; PreviousSecret signs too until
	// PreviousSecretExpiresAt, after a rotation.
	Secret                  secret.Value
	PreviousSecret          secret.Value
	PreviousSecretExpiresAt *time.Time
	// Headers are added to every request; their values are never shown.
	Headers        map[string]secret.Value
	TimeoutSeconds int
	RetrySchedule  []int
	MaxInFlight    int
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// Circuit is the state of the destination's circuit breaker, shared by
	// every instance.
	Circuit Circuit
}

// Circuit is a destination's circuit breaker: after Threshold failures in
// a row it opens, holding attempts until OpenUntil; then one attempt at a
// time probes it, and a success closes it.
type Circuit struct {
	ConsecutiveFailures int
	OpenUntil           *time.Time
}

// Circuit breaker settings.
const (
	// CircuitThreshold is how many failed attempts in a row open the
	// circuit.
	CircuitThreshold = 5
	// CircuitMinOpen and CircuitMaxOpen bound how long it stays open: the
	// first time CircuitMinOpen, doubling with each failed probe.
	CircuitMinOpen = 30 * time.Second
	CircuitMaxOpen = 10 * time.Minute
)

// State names the circuit's state at now: "closed", "open" or
// "half_open" (open time over: the next attempt is a probe).
func (c Circuit) State(now time.Time) string {
	switch {
	case c.OpenUntil == nil:
		return "closed"
	case now.Before(*c.OpenUntil):
		return "open"
	}
	return "half_open"
}

// Secrets returns the secrets that sign at now, the newest first.
func (d *Destination) Secrets(now time.Time) []string {
	var out []string
	if d.Secret != "" {
		out = append(out, string(d.Secret))
	}
	if d.PreviousSecret != "" && d.PreviousSecretExpiresAt != nil && now.Before(*d.PreviousSecretExpiresAt) {
		out = append(out, string(d.PreviousSecret))
	}
	return out
}

// Timeout is how long an attempt may take.
func (d *Destination) Timeout() time.Duration { return time.Duration(d.TimeoutSeconds) * time.Second }

// NextDelay is how long after the attempt-th failed attempt (1-based) the
// next one is due, spread by up to Jitter either way with r (a number in
// [0, 1)); false when the schedule has no more attempts.
func NextDelay(schedule []int, attempt int, r float64) (time.Duration, bool) {
	if attempt < 1 || attempt > len(schedule) {
		return 0, false
	}
	base := float64(schedule[attempt-1]) * float64(time.Second)
	spread := 1 + Jitter*(2*r-1)
	return time.Duration(math.Round(base * spread)), true
}

// Defaults fills what a new destination leaves unset.
func (d *Destination) Defaults() {
	if d.Scheme == "" {
		d.Scheme = sign.DefaultScheme
	}
	if d.TimeoutSeconds == 0 {
		d.TimeoutSeconds = DefaultTimeoutSeconds
	}
	if d.MaxInFlight == 0 {
		d.MaxInFlight = DefaultMaxInFlight
	}
	if d.RetrySchedule == nil {
		d.RetrySchedule = append([]int(nil), DefaultRetrySchedule...)
	}
	if d.Headers == nil {
		d.Headers = map[string]secret.Value{}
	}
}

var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")

// reservedHeaders are set by inlet on every request; a destination may
// not set them.
var reservedHeaders = []string{
	"host", "content-type", "content-length", "transfer-encoding", "connection", "user-agent",
	"webhook-id", "webhook-timestamp", "webhook-signature",
	"x-webhook-id", "x-webhook-timestamp", "x-webhook-signature", "x-signature",
}

// Validate reports every invalid setting of d at once, as a
// *trigger.ValidationError naming the fields; nil when d is usable.
func (d *Destination) Validate() error {
	var errs []trigger.FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, trigger.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if n := strings.TrimSpace(d.Name); n == "" || len(n) > MaxNameLen {
		bad("name", "must be 1 to %d characters", MaxNameLen)
	}
	if msg := checkURL(d.URL); msg != "" {
		bad("url", "%s", msg)
	}
	if _, err := sign.ParseScheme(string(d.Scheme)); err != nil {
		bad("signing.scheme", "must be one of %s", strings.Join(schemeNames(), ", "))
	} else if err := sign.ValidSecret(d.Scheme, string(d.Secret)); err != nil {
		bad("signing.secret", "%v", err)
	}
	if d.TimeoutSeconds < 1 || d.TimeoutSeconds > MaxTimeoutSeconds {
		bad("timeout_seconds", "must be between 1 and %d", MaxTimeoutSeconds)
	}
	if d.MaxInFlight < 1 || d.MaxInFlight > MaxMaxInFlight {
		bad("max_in_flight", "must be between 1 and %d", MaxMaxInFlight)
	}
	if len(d.RetrySchedule) > MaxRetries {
		bad("retry_schedule_seconds", "must have at most %d delays", MaxRetries)
	}
	for i, s := range d.RetrySchedule {
		if s < 1 || s > MaxRetryDelaySeconds {
			bad(fmt.Sprintf("retry_schedule_seconds[%d]", i), "must be between 1 and %d seconds", MaxRetryDelaySeconds)
		}
	}
	if len(d.Headers) > MaxHeaders {
		bad("headers", "must have at most %d headers", MaxHeaders)
	}
	for name, v := range d.Headers {
		field := "headers." + name
		switch {
		case !headerName.MatchString(name):
			bad(field, "is not a valid header name")
		case isReserved(name):
			bad(field, "is set by inlet and cannot be set here")
		case len(v) > MaxHeaderValue:
			bad(field, "must be at most %d bytes", MaxHeaderValue)
		case strings.ContainsAny(string(v), "\r\n\x00"):
			bad(field, "must not contain line breaks or NUL")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &trigger.ValidationError{Fields: errs}
}

func isReserved(name string) bool {
	for _, r := range reservedHeaders {
		if strings.EqualFold(name, r) {
			return true
		}
	}
	return false
}

func schemeNames() []string {
	var out []string
	for _, s := range sign.Schemes() {
		out = append(out, string(s))
	}
	return out
}

// checkURL returns why u cannot be a destination, or "".
func checkURL(u string) string {
	if u == "" {
		return "must not be empty"
	}
	if len(u) > MaxURLLen {
		return fmt.Sprintf("must be at most %d characters", MaxURLLen)
	}
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return "is not a URL"
	case p.Scheme != "http" && p.Scheme != "https":
		return "must be an http or https URL"
	case p.User != nil:
		return "must not carry a user name or password; send credentials as a header"
	case p.Hostname() == "":
		return "must name a host"
	case p.Fragment != "":
		return "must not have a fragment"
	}
	return ""
}
