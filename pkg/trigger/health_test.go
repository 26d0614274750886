package trigger

import (
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { x := now.Add(-d); return &x }
	since := now.Add(-24 * time.Hour)
	for _, tt := range []struct {
		name     string
		enabled  bool
		interval int
		traffic  Traffic
		want     string
	}{
		{"disabled wins", false, 60, Traffic{Rejected1h: 100}, HealthDisabled},
		{"quiet and fine", true, 0, Traffic{}, HealthOK},
		{"mostly rejected", true, 0, Traffic{Accepted1h: 4, Rejected1h: 6}, HealthFailing},
		{"half rejected is not failing", true, 0, Traffic{Accepted1h: 5, Rejected1h: 5}, HealthOK},
		{"too few to judge", true, 0, Traffic{Rejected1h: 9}, HealthOK},
		{"failing before idle", true, 60, Traffic{Rejected1h: 50, LastAcceptedAt: ago(48 * time.Hour)}, HealthFailing},
		{"idle", true, 3600, Traffic{LastAcceptedAt: ago(2 * time.Hour)}, HealthIdle},
		{"within the interval", true, 3600, Traffic{LastAcceptedAt: ago(59 * time.Minute)}, HealthOK},
		{"never accepted, enabled long ago", true, 3600, Traffic{}, HealthIdle},
		{"no interval, never idle", true, 0, Traffic{LastAcceptedAt: ago(720 * time.Hour)}, HealthOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := Trigger{WebhookEnabled: tt.enabled}
			tr.Settings.ExpectedIntervalSeconds = tt.interval
			if got := tr.Health(tt.traffic, since, now); got != tt.want {
				t.Errorf("Health = %s, want %s", got, tt.want)
			}
		})
	}
	// Never accepted but enabled a minute ago: not idle yet.
	tr := Trigger{WebhookEnabled: true}
	tr.Settings.ExpectedIntervalSeconds = 3600
	if got := tr.Health(Traffic{}, now.Add(-time.Minute), now); got != HealthOK {
		t.Errorf("freshly enabled = %s, want ok", got)
	}
}
