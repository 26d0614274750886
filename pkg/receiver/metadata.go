package receiver

import (
	"time"
	"unicode/utf8"

	"github.com/inlet-dev/inlet/pkg/event"
)

// metadata is an event's metadata as the receiver gathers it: the fields of
// event.Metadata, with the kept headers as a sorted list instead of a map.
type metadata struct {
	keyPrefix  string
	receivedAt time.Time
	sourceIP   string
	userAgent  string
	deliveryID string
	headers    []keptHeader // sorted by name
}

// appendMetadata appends md in exactly the bytes json.Marshal gives for the
// equivalent event.Metadata (field order, omitempty delivery_id, sorted
// header keys, HTML-safe escaping, RFC 3339 time), without reflection or a
// map per request. TestAppendMetadata holds it to that.
func appendMetadata(dst []byte, md *metadata) []byte {
	dst = append(dst, `{"source":`...)
	dst = appendJSONString(dst, event.Source)
	dst = append(dst, `,"webhook_key_prefix":`...)
	dst = appendJSONString(dst, md.keyPrefix)
	dst = append(dst, `,"received_at":"`...)
	dst = md.receivedAt.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","source_ip":`...)
	dst = appendJSONString(dst, md.sourceIP)
	dst = append(dst, `,"user_agent":`...)
	dst = appendJSONString(dst, md.userAgent)
	if md.deliveryID != "" {
		dst = append(dst, `,"delivery_id":`...)
		dst = appendJSONString(dst, md.deliveryID)
	}
	dst = append(dst, `,"headers":{`...)
	for i, h := range md.headers {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, h.name)
		dst = append(dst, ':')
		dst = appendJSONString(dst, h.value)
	}
	return append(dst, "}}"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json does by default: <, >
// and & and control characters as \u00XX (except \b \f \n \r \t), invalid
// UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += n
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += n
			start = i
			continue
		}
		i += n
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
