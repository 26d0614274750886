package receiver

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"slices"
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

// header is a header name as spelled in the metadata, with the canonical
// form net/http files it under.
type header struct {
	name, canonical string
}

// canonicalHeaders returns names with their canonical forms, in the order
// of names, so that a lookup is a map access rather than a
// canonicalisation (an allocation for names like X-GitHub-Event) per name
// per request.
func canonicalHeaders(names []string) []header {
	out := make([]header, len(names))
	for i, n := range names {
		out[i] = header{n, textproto.CanonicalMIMEHeaderKey(n)}
	}
	return out
}

// keptSorted is keptHeaders sorted by name: the order in which
// encoding/json writes the keys of the metadata's headers object.
var keptSorted = func() []header {
	h := canonicalHeaders(keptHeaders)
	slices.SortFunc(h, func(a, b header) int { return strings.Compare(a.name, b.name) })
	return h
}()

// maxHeaderValue bounds what one kept header may add to an event.
const maxHeaderValue = 256

// keptHeader is one kept header of a request with its stored value.
type keptHeader struct {
	name, value string
}

// keptHeaderValues returns the kept headers present in h, sorted by name,
// each value cut to maxHeaderValue bytes and made valid UTF-8. As with
// h.Get, the first value of a repeated header counts.
func keptHeaderValues(h http.Header, dst []keptHeader) []keptHeader {
	for _, k := range keptSorted {
		vs := h[k.canonical]
		if len(vs) == 0 || vs[0] == "" {
			continue
		}
		v := vs[0]
		if len(v) > maxHeaderValue {
			v = v[:maxHeaderValue]
		}
		dst = append(dst, keptHeader{k.name, strings.ToValidUTF8(v, "\uFFFD")})
	}
	return dst
}

// deliveryHeaders are tried in order when neither the trigger nor its
// preset names where delivery ids come from.
var deliveryHeaders = canonicalHeaders([]string{
	"X-GitHub-Delivery", "Webhook-Id", "Svix-Id", "X-Webhook-ID", "Idempotency-Key",
	"X-Shopify-Event-Id", "I-Twilio-Idempotency-Token",
})

// maxDeliveryID is the longest delivery id kept as is; longer ones are
// replaced by their SHA-256, so an id costs bounded space but still dedupes.
const maxDeliveryID = 200

func (w *webhook) setDeliveryID(s trigger.Settings) error {
	src := s.DeliveryID
	// A header the operator names is the only one read. A preset's default
	// header is tried first, then the well-known ones, because one scheme
	// can arrive in two spellings (webhook-id and svix-id).
	w.deliveryExact = src != ""
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
// in the header the operator named, or in the preset's header and else the
// first well-known delivery header present.
func (w *webhook) deliveryID(h http.Header, body any) string {
	var id string
	switch {
	case w.deliveryPath != nil:
		id, _ = w.deliveryPath.String(body)
	case w.deliveryHdr != "":
		id = h.Get(w.deliveryHdr)
	}
	if id == "" && w.deliveryPath == nil && !w.deliveryExact {
		for _, k := range deliveryHeaders {
			if vs := h[k.canonical]; len(vs) > 0 && vs[0] != "" {
				id = vs[0]
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
