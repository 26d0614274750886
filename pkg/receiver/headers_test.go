package receiver

import (
	"net/http"
	"strings"
	"testing"

	"github.com/inlet-dev/inlet/pkg/trigger"
)

func TestDeliveryIDSources(t *testing.T) {
	withPreset := func(preset, deliveryID string) trigger.Settings {
		s := trigger.DefaultSettings()
		s.HMAC.Enabled, s.HMAC.Preset, s.DeliveryID = true, preset, deliveryID
		return s
	}
	body := map[string]any{"id": "evt_body", "event_id": "Ev1"}
	tests := []struct {
		name     string
		settings trigger.Settings
		header   http.Header
		want     string
	}{
		{"preset header", withPreset("standard-webhooks", ""), http.Header{"Webhook-Id": {"msg_1"}}, "msg_1"},
		{"preset spelled the other way", withPreset("standard-webhooks", ""), http.Header{"Svix-Id": {"msg_2"}}, "msg_2"},
		{"preset path", withPreset("stripe", ""), http.Header{"Idempotency-Key": {"k"}}, "evt_body"},
		{"no preset: well-known headers", trigger.DefaultSettings(), http.Header{"X-Webhook-Id": {"w1"}}, "w1"},
		{"operator header is exact", withPreset("", "X-Request-Id"), http.Header{"X-Webhook-Id": {"w1"}}, ""},
		{"operator header", withPreset("", "X-Request-Id"), http.Header{"X-Request-Id": {"r1"}}, "r1"},
		{"operator path", withPreset("github", "$.event_id"), http.Header{"X-Github-Delivery": {"g"}}, "Ev1"},
		{"long ids are hashed", trigger.DefaultSettings(), http.Header{"X-Webhook-Id": {strings.Repeat("x", 500)}},
			"sha256:"}, // the digest is checked by shape
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w webhook
			if err := w.setDeliveryID(tt.settings); err != nil {
				t.Fatal(err)
			}
			got := w.deliveryID(tt.header, body)
			if strings.HasPrefix(tt.want, "sha256:") {
				if !strings.HasPrefix(got, "sha256:") || len(got) != len("sha256:")+64 {
					t.Errorf("deliveryID = %q, want sha256: and 64 hex digits", got)
				}
				return
			}
			if got != tt.want {
				t.Errorf("deliveryID = %q, want %q", got, tt.want)
			}
		})
	}
}
