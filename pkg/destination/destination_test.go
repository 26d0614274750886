package destination

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/sign"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

func valid() Destination {
	d := Destination{Name: "ci", URL: "https://ci.example.com/hook", Enabled: true, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	d.Defaults()
	return d
}

func TestDefaults(t *testing.T) {
	d := valid()
	if d.Scheme != sign.StandardWebhooks || d.TimeoutSeconds != 10 || d.MaxInFlight != 10 {
		t.Errorf("defaults = %s %d %d", d.Scheme, d.TimeoutSeconds, d.MaxInFlight)
	}
	if !slices.Equal(d.RetrySchedule, []int{60, 300, 1800, 3600, 7200, 14400, 28800, 28800}) {
		t.Errorf("schedule = %v", d.RetrySchedule)
	}
	// The default schedule is about a day, as the contract says.
	total := 0
	for _, s := range d.RetrySchedule {
		total += s
	}
	if total < 20*3600 || total > 26*3600 {
		t.Errorf("default schedule spans %v", time.Duration(total)*time.Second)
	}
	// The default slice is not shared: changing one destination's
	// schedule leaves the next one's alone.
	d.RetrySchedule[0] = 1
	if valid().RetrySchedule[0] != 60 {
		t.Error("Defaults shares DefaultRetrySchedule")
	}
	if v := valid(); v.Validate() != nil {
		t.Errorf("Validate(valid) = %v", v.Validate())
	}
}

func TestValidateReportsEveryField(t *testing.T) {
	d := valid()
	d.Name = " "
	d.URL = "ftp://x.example.com"
	d.TimeoutSeconds = 61
	d.MaxInFlight = 0
	d.RetrySchedule = []int{60, 0, 86401}
	d.Headers = map[string]secret.Value{
		"Bad Name":          "x",
		"Webhook-Signature": "forged",
		"X-Long":            secret.Value(strings.Repeat("a", MaxHeaderValue+1)),
		"X-Split":           "a\r\nInjected: 1",
		"Authorization":     "Bearer fine",
	}
	d.Secret = "not-whsec"
	err := d.Validate()
	var ve *trigger.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v, want a *trigger.ValidationError", err)
	}
	var fields []string
	for _, f := range ve.Fields {
		fields = append(fields, f.Field)
		if strings.Contains(f.Message, "forged") || strings.Contains(f.Message, "not-whsec") {
			t.Errorf("message %q repeats a value", f.Message)
		}
	}
	slices.Sort(fields)
	want := []string{
		"headers.Bad Name", "headers.Webhook-Signature", "headers.X-Long", "headers.X-Split",
		"max_in_flight", "name", "retry_schedule_seconds[1]", "retry_schedule_seconds[2]",
		"signing.secret", "timeout_seconds", "url",
	}
	if !slices.Equal(fields, want) {
		t.Errorf("invalid fields = %v\nwant %v", fields, want)
	}
}

func TestValidateURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://hooks.example.com/a?b=c", true},
		{"http://127.0.0.1:8080/x", true}, // refused at dial time, not here
		{"", false},
		{"hooks.example.com/a", false},
		{"https://user:pw@hooks.example.com/", false},
		{"https://hooks.example.com/#frag", false},
		{"https:///path-only", false},
		{"javascript:alert(1)", false},
		{"https://" + strings.Repeat("a", MaxURLLen) + ".example.com/", false},
	} {
		d := valid()
		d.URL = tc.url
		if err := d.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(url %.40q) = %v, want ok %v", tc.url, err, tc.ok)
		}
	}
}

func TestValidateSchemes(t *testing.T) {
	d := valid()
	d.Scheme, d.Secret = sign.None, ""
	if err := d.Validate(); err != nil {
		t.Errorf("none without a secret: %v", err)
	}
	d.Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	if err := d.Validate(); err == nil {
		t.Error("none with a secret was accepted")
	}
	d.Scheme, d.Secret = sign.HMACSHA256, "short"
	if err := d.Validate(); err == nil {
		t.Error("hmac-sha256 with a 5-byte secret was accepted")
	}
	d.Scheme = "hmac-md5"
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "signing.scheme") {
		t.Errorf("unknown scheme: %v", err)
	}
}

func TestNextDelay(t *testing.T) {
	schedule := []int{60, 300}
	for _, tc := range []struct {
		attempt int
		r       float64
		want    time.Duration
		more    bool
	}{
		{1, 0.5, time.Minute, true},
		{1, 0, 54 * time.Second, true},        // -10%
		{1, 0.999999, 66 * time.Second, true}, // just under +10%
		{2, 0.5, 5 * time.Minute, true},
		{3, 0.5, 0, false}, // the schedule is over
		{0, 0.5, 0, false},
	} {
		got, more := NextDelay(schedule, tc.attempt, tc.r)
		if more != tc.more || (got-tc.want).Abs() > time.Millisecond {
			t.Errorf("NextDelay(%v, %d, %v) = %v, %v; want %v, %v", schedule, tc.attempt, tc.r, got, more, tc.want, tc.more)
		}
	}
	if _, more := NextDelay(nil, 1, 0.5); more {
		t.Error("an empty schedule retries")
	}
}

func TestSecretsDuringGrace(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)
	d := valid()
	d.PreviousSecret, d.PreviousSecretExpiresAt = "whsec_old", &later
	if got := d.Secrets(now); !slices.Equal(got, []string{string(d.Secret), "whsec_old"}) {
		t.Errorf("during grace: %d secrets, newest first expected", len(got))
	}
	if got := d.Secrets(later); !slices.Equal(got, []string{string(d.Secret)}) {
		t.Errorf("after grace: %d secrets, want the new one only", len(got))
	}
}

func TestCircuitState(t *testing.T) {
	now := time.Now()
	soon, past := now.Add(time.Minute), now.Add(-time.Second)
	for _, tc := range []struct {
		c    Circuit
		want string
	}{
		{Circuit{}, "closed"},
		{Circuit{ConsecutiveFailures: 3}, "closed"},
		{Circuit{ConsecutiveFailures: 5, OpenUntil: &soon}, "open"},
		{Circuit{ConsecutiveFailures: 5, OpenUntil: &past}, "half_open"},
	} {
		if got := tc.c.State(now); got != tc.want {
			t.Errorf("%+v.State = %s, want %s", tc.c, got, tc.want)
		}
	}
}
