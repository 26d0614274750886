// Package event defines the Event that inlet stores and publishes, its evt_
// identifier, and the one JSON form shared by the API and NATS messages.
package event

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"io"
	"time"
)

// Source is the only event source inlet produces.
const Source = "webhook"

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
	ReceivedAt       time.Time         `json:"received_at"`
	SourceIP         string            `json:"source_ip"`
	UserAgent        string            `json:"user_agent"`
	DeliveryID       string            `json:"delivery_id,omitempty"`
	Headers          map[string]string `json:"headers"`
}

// Time truncates t to what PostgreSQL stores (microseconds, UTC), so that an
// event rendered before and after a round trip through the database is the
// same text.
func Time(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Marshal returns the event's JSON form.
func (e *Event) Marshal() ([]byte, error) { return json.Marshal(e) }

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
func MustNewID(now time.Time) string {
	id, err := NewID(now, rand.Reader)
	if err != nil {
		panic("crypto/rand: " + err.Error())
	}
	return id
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
