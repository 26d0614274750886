package receiver

import (
	"time"

	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/jsontext"
)

// metadata is an event's metadata as the receiver gathers it: the fields of
// event.Metadata, with the kept headers as a sorted list instead of a map.
type metadata struct {
	keyPrefix  string
	keyLabel   string
	receivedAt time.Time
	sourceIP   string
	userAgent  string
	deliveryID string
	headers    []keptHeader // sorted by name
}

// appendMetadata appends md in exactly the bytes an encoding/json Encoder
// with HTML escaping off gives for the equivalent event.Metadata (field
// order, omitempty delivery_id, sorted header keys, RFC 3339 time), without
// reflection or a map per request. TestAppendMetadata holds it to that.
func appendMetadata(dst []byte, md *metadata) []byte {
	dst = append(dst, `{"source":`...)
	dst = jsontext.AppendString(dst, event.Source)
	dst = append(dst, `,"webhook_key_prefix":`...)
	dst = jsontext.AppendString(dst, md.keyPrefix)
	dst = append(dst, `,"key_label":`...)
	dst = jsontext.AppendString(dst, md.keyLabel)
	dst = append(dst, `,"received_at":"`...)
	dst = md.receivedAt.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","source_ip":`...)
	dst = jsontext.AppendString(dst, md.sourceIP)
	dst = append(dst, `,"user_agent":`...)
	dst = jsontext.AppendString(dst, md.userAgent)
	if md.deliveryID != "" {
		dst = append(dst, `,"delivery_id":`...)
		dst = jsontext.AppendString(dst, md.deliveryID)
	}
	dst = append(dst, `,"headers":{`...)
	for i, h := range md.headers {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsontext.AppendString(dst, h.name)
		dst = append(dst, ':')
		dst = jsontext.AppendString(dst, h.value)
	}
	return append(dst, "}}"...)
}
