package receiver

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/inlet-dev/inlet/pkg/payload"
	"github.com/inlet-dev/inlet/pkg/trigger"
	"github.com/inlet-dev/inlet/pkg/verify"
)

// keptHeaders are the informative provider headers stored in an event's
// metadata. Nothing that authenticates (signatures, tokens, cookies,
// authorization) is on the list, and only listed headers are kept.
var keptHeaders = []string{
	"Content-Type",
	"X-GitHub-Event", "X-GitHub-Delivery", "X-GitHub-Hook-ID",
	"X-GitHub-Hook-Installation-Target-ID", "X-GitHub-Hook-Installation-Target-Type",
	"X-Gitlab-Event", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID", "X-Gitlab-Instance", "Idempotency-Key",
	"X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Event-Id", "X-Shopify-Webhook-Id",
	"X-Shopify-Triggered-At", "X-Shopify-API-Version",
	"X-Slack-Retry-Num", "X-Slack-Retry-Reason",
	"Webhook-Id", "Webhook-Timestamp", "Svix-Id", "Svix-Timestamp",
	"X-Webhook-ID", "X-Webhook-Timestamp", "X-Webhook-Event", "X-Event-Type",
	"I-Twilio-Idempotency-Token",
}

// maxHeaderValue bounds what one kept header may add to an event.
const maxHeaderValue = 256

func keptHeaderValues(h http.Header) map[string]string {
	out := make(map[string]string, 4)
	for _, name := range keptHeaders {
		if v := h.Get(name); v != "" {
			if len(v) > maxHeaderValue {
				v = v[:maxHeaderValue]
			}
			out[name] = strings.ToValidUTF8(v, "\uFFFD")
		}
	}
	return out
}

// deliveryHeaders are tried in order when neither the trigger nor its
// preset names where delivery ids come from.
var deliveryHeaders = []string{
	"X-GitHub-Delivery", "Webhook-Id", "Svix-Id", "X-Webhook-ID", "Idempotency-Key",
	"X-Shopify-Event-Id", "I-Twilio-Idempotency-Token",
}

// maxDeliveryID is the longest delivery id kept as is; longer ones are
// replaced by their SHA-256, so an id costs bounded space but still dedupes.
const maxDeliveryID = 200

func (w *webhook) setDeliveryID(s trigger.Settings) error {
	src := s.DeliveryID
	if src == "" && s.HMAC.Enabled {
		src = verify.DefaultDeliveryID(s.HMAC.Preset)
	}
	if strings.HasPrefix(src, "$") {
		p, err := payload.CompilePath(src)
		if err != nil {
			return err
		}
		w.deliveryPath = p
		return nil
	}
	w.deliveryHdr = src
	return nil
}

// deliveryID finds a delivery's id: at the trigger's JSONPath in the body,
// in its header, or else in the first well-known delivery header present.
func (w *webhook) deliveryID(h http.Header, body any) string {
	var id string
	switch {
	case w.deliveryPath != nil:
		id, _ = w.deliveryPath.String(body)
	case w.deliveryHdr != "":
		id = h.Get(w.deliveryHdr)
	default:
		for _, name := range deliveryHeaders {
			if id = h.Get(name); id != "" {
				break
			}
		}
	}
	id = strings.TrimSpace(id)
	if len(id) > maxDeliveryID {
		sum := sha256.Sum256([]byte(id))
		id = "sha256:" + hex.EncodeToString(sum[:])
	}
	return id
}
