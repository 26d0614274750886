// Package event defines the Event that inlet stores and publishes, its evt_
// identifier, and the one JSON form shared by the API and NATS messages.
package event

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/inlet-dev/inlet/pkg/jsontext"
)

// Sources of events: a webhook delivery, or an operator's replay of an
// earlier event.
const (
	Source       = "webhook"
	SourceReplay = "replay"
)

// Event is a received webhook. Its JSON form is what GET /api/v1/events/:id
// returns inside data and what is published to NATS, byte for byte.
type Event struct {
	ID         string          `json:"id" db:"id"`
	TriggerID  int64           `json:"trigger_id" db:"trigger_id"`
	TriggerRef string          `json:"trigger_ref" db:"trigger_ref"`
	Source     string          `json:"source" db:"source"`
	Payload    json.RawMessage `json:"payload" db:"payload"`
	Metadata   json.RawMessage `json:"metadata" db:"metadata"`
	ReceivedAt time.Time       `json:"received_at" db:"received_at"`
	// DeliveryID is the sender's delivery id, used for de-duplication; it is
	// also part of Metadata.
	DeliveryID *string `json:"-" db:"delivery_id"`
}

// Metadata describes how an event arrived. It never holds a full key, a
// signature, a token or an authorization header.
type Metadata struct {
	Source           string            `json:"source"`
	WebhookKeyPrefix string            `json:"webhook_key_prefix"`
	KeyLabel         string            `json:"key_label"`
	ReceivedAt       time.Time         `json:"received_at"`
	SourceIP         string            `json:"source_ip"`
	UserAgent        string            `json:"user_agent"`
	DeliveryID       string            `json:"delivery_id,omitempty"`
	Headers          map[string]string `json:"headers"`
	// ReplayOf is the id of the event this one replays (Source "replay").
	ReplayOf string `json:"replay_of,omitempty"`
}

// Time truncates t to what PostgreSQL stores (microseconds, UTC), so that an
// event rendered before and after a round trip through the database is the
// same text.
func Time(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Marshal returns the event's JSON form: the object GET /api/v1/events/:id
// returns inside data and the body of its NATS message, byte for byte.
func (e *Event) Marshal() []byte {
	return e.AppendJSON(make([]byte, 0, len(e.Payload)+len(e.Metadata)+200), false)
}

// AppendJSON appends the event's JSON form to dst. Payload and Metadata
// are written as they are, so they must hold compact JSON, which is how
// the receiver stores them; text in them keeps the characters the sender
// sent ("<" stays "<"). With omitPayload the payload is written as null,
// for a bus that cannot carry it.
func (e *Event) AppendJSON(dst []byte, omitPayload bool) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsontext.AppendString(dst, e.ID)
	dst = append(dst, `,"trigger_id":`...)
	dst = strconv.AppendInt(dst, e.TriggerID, 10)
	dst = append(dst, `,"trigger_ref":`...)
	dst = jsontext.AppendString(dst, e.TriggerRef)
	dst = append(dst, `,"source":`...)
	dst = jsontext.AppendString(dst, e.Source)
	dst = append(dst, `,"payload":`...)
	dst = appendRaw(dst, e.Payload, omitPayload)
	dst = append(dst, `,"metadata":`...)
	dst = appendRaw(dst, e.Metadata, false)
	dst = append(dst, `,"received_at":"`...)
	dst = e.ReceivedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, `"}`...)
}

func appendRaw(dst []byte, raw json.RawMessage, omit bool) []byte {
	if omit || len(raw) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewID returns "evt_" and 26 characters: 48 bits of milliseconds since the
// Unix epoch and 80 random bits in Crockford base32, so ids sort by time.
func NewID(now time.Time, rnd io.Reader) (string, error) {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(now.UnixMilli())<<16)
	if _, err := io.ReadFull(rnd, b[6:]); err != nil {
		return "", err
	}
	return "evt_" + encode(b), nil
}

// MustNewID is NewID with crypto/rand, which does not fail on Linux.
func MustNewID(now time.Time) string { return NewPrefixedID("evt_", now) }

// NewPrefixedID returns prefix and 26 characters made as NewID makes them,
// with crypto/rand: the ids of destinations ("dst_") and deliveries
// ("dlv_") have the form of event ids.
func NewPrefixedID(prefix string, now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:8], uint64(now.UnixMilli())<<16)
	if _, err := io.ReadFull(rand.Reader, b[6:]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return prefix + encode(b)
}

// ValidID reports whether id has the form NewID gives it.
func ValidID(id string) bool { return ValidPrefixedID("evt_", id) }

// ValidPrefixedID reports whether id is prefix and 26 characters of
// Crockford base32, the form NewPrefixedID gives it.
func ValidPrefixedID(prefix, id string) bool {
	if len(id) != len(prefix)+26 || !strings.HasPrefix(id, prefix) {
		return false
	}
	for i := len(prefix); i < len(id); i++ {
		if !strings.ContainsRune(crockford, rune(id[i])) {
			return false
		}
	}
	return true
}

// encode writes 128 bits as 26 base32 digits, most significant first.
func encode(b [16]byte) string {
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [26]byte
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
