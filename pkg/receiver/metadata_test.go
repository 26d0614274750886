package receiver

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/event"
)

// reference builds the metadata the way the receiver did before it
// encoded it by hand: a map of h.Get values and encoding/json.
func reference(t *testing.T, md *metadata, h http.Header) []byte {
	t.Helper()
	headers := make(map[string]string)
	for _, name := range keptHeaders {
		if v := h.Get(name); v != "" {
			if len(v) > maxHeaderValue {
				v = v[:maxHeaderValue]
			}
			headers[name] = strings.ToValidUTF8(v, "\uFFFD")
		}
	}
	return encode(t, event.Metadata{
		Source: event.Source, WebhookKeyPrefix: md.keyPrefix, KeyLabel: md.keyLabel, ReceivedAt: md.receivedAt,
		SourceIP: md.sourceIP, UserAgent: md.userAgent, DeliveryID: md.deliveryID, Headers: headers,
	})
}

// encode is encoding/json without HTML escaping, which event JSON follows,
// and without the Encoder's final newline.
func encode(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func TestAppendMetadata(t *testing.T) {
	at := event.Time(time.Date(2026, 11, 22, 12, 0, 0, 123456789, time.UTC))
	tests := []struct {
		name string
		md   metadata
		h    http.Header
	}{
		{
			name: "plain",
			md:   metadata{keyPrefix: "wh_AbCdE", keyLabel: "primary", receivedAt: at, sourceIP: "192.0.2.1", userAgent: "GitHub-Hookshot/abc", deliveryID: "d-1"},
			h: http.Header{
				"Content-Type": {"application/json"}, "X-Github-Event": {"push"}, "X-Github-Delivery": {"d-1"},
				"X-Hub-Signature-256": {"sha256=secret-looking"}, "Authorization": {"Bearer x"},
			},
		},
		{
			name: "no delivery id, no headers, whole second",
			md:   metadata{keyPrefix: "wh_x", receivedAt: at.Truncate(time.Second), sourceIP: "::1"},
			h:    http.Header{},
		},
		{
			name: "escapes",
			md: metadata{keyPrefix: "wh_<&>", keyLabel: "ci \"eu\" <1>", receivedAt: at, sourceIP: "1.2.3.4",
				userAgent: "a\"b\\c\b\f\n\r\t\x00\x01\x1f<script>&\u2028\u2029\xff\xfe é 😀", deliveryID: "\xc3"},
			h: http.Header{
				"X-Event-Type":    {"<b>&amp;</b>", "second value is ignored"},
				"Idempotency-Key": {strings.Repeat("é", 200)}, // cut inside a character
				"Webhook-Id":      {""},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.md.headers = keptHeaderValues(tt.h, nil)
			got := appendMetadata(nil, &tt.md)
			want := reference(t, &tt.md, tt.h)
			if string(got) != string(want) {
				t.Errorf("appendMetadata() =\n%s\nwant (json.Marshal)\n%s", got, want)
			}
		})
	}
}

func TestAppendAccepted(t *testing.T) {
	at := event.Time(time.Date(2026, 11, 22, 12, 0, 0, 120000000, time.UTC))
	for _, d := range []acceptedData{
		{Duplicate: false, EventID: "evt_01JD3ZQ7B1XKQ2W5M8N9P0R4ST", ReceivedAt: at, TriggerRef: "github.push"},
		{Duplicate: true, EventID: "evt_x", ReceivedAt: at.Truncate(time.Second), TriggerRef: "a<b>&c\"\\"},
	} {
		want := append(encode(t, accepted{Data: d}), '\n') // c.JSON ends with a newline
		if got := appendAccepted(nil, &d); string(got) != string(want) {
			t.Errorf("appendAccepted(%+v) = %s, want %s", d, got, want)
		}
	}
}
