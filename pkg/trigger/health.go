package trigger

import "time"

// Health statuses of a trigger's webhook.
const (
	HealthOK       = "ok"
	HealthFailing  = "failing"
	HealthIdle     = "idle"
	HealthDisabled = "disabled"
)

// HealthStatuses lists every status, for metrics that export each.
var HealthStatuses = []string{HealthOK, HealthFailing, HealthIdle, HealthDisabled}

// FailingMinRequests is how many requests the last hour must hold before
// a trigger with mostly rejections is failing: a single bad request of a
// quiet trigger is not an outage.
const FailingMinRequests = 10

// Traffic is what a trigger's health is judged from: its last accepted
// request and the requests of the last hour.
type Traffic struct {
	LastAcceptedAt         *time.Time
	Accepted1h, Rejected1h int64
}

// Health judges a trigger's webhook at now: disabled when it is; failing
// when the last hour holds at least FailingMinRequests requests and more
// than half were rejected; idle when it expects a request at least every
// ExpectedIntervalSeconds and none was accepted for longer (counting from
// since, when the webhook was enabled, if none ever was); ok otherwise.
func (t *Trigger) Health(tr Traffic, since, now time.Time) string {
	if !t.WebhookEnabled {
		return HealthDisabled
	}
	if total := tr.Accepted1h + tr.Rejected1h; total >= FailingMinRequests && 2*tr.Rejected1h > total {
		return HealthFailing
	}
	if n := t.Settings.ExpectedIntervalSeconds; n > 0 {
		last := since
		if tr.LastAcceptedAt != nil {
			last = *tr.LastAcceptedAt
		}
		if now.Sub(last) > time.Duration(n)*time.Second {
			return HealthIdle
		}
	}
	return HealthOK
}

// WebhookSince is when t's webhook started to be expected to receive: when
// its key was made, else when the trigger was.
func (t *Trigger) WebhookSince() time.Time {
	if t.WebhookCreatedAt != nil {
		return *t.WebhookCreatedAt
	}
	return t.CreatedAt
}
