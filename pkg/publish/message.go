package publish

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/inlet-dev/inlet/pkg/event"
)

// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id in a stream
// that EnsureStream creates. It is far longer than a claim lease, so an event
// published again after a publisher lost its claim or its lease is dropped as
// a duplicate.
const DuplicateWindow = 10 * time.Minute

// Message builds the NATS message for e on subject "<prefix>.<trigger_ref>".
// The body is e.Marshal(), the event exactly as the API returns it. Headers
// carry Nats-Msg-Id (the event id, for JetStream de-duplication),
// Content-Type and the CloudEvents binary-mode attributes ce-specversion,
// ce-id, ce-type, ce-source and ce-time. It fails when the trigger ref
// cannot be part of a NATS subject.
func Message(prefix string, e *event.Event) (*nats.Msg, error) {
	if !validSubject(e.TriggerRef) {
		return nil, fmt.Errorf("event %s: trigger ref %q is not a valid subject", e.ID, e.TriggerRef)
	}
	body, err := e.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshal event %s: %w", e.ID, err)
	}
	m := nats.NewMsg(prefix + "." + e.TriggerRef)
	m.Data = body
	// Set, not Header.Add: nats.Header keeps keys as given, and CloudEvents'
	// NATS binding spells its attributes in lower case.
	m.Header.Set(jetstream.MsgIDHeader, e.ID)
	m.Header.Set("Content-Type", "application/json")
	m.Header.Set("ce-specversion", "1.0")
	m.Header.Set("ce-id", e.ID)
	m.Header.Set("ce-type", e.TriggerRef)
	m.Header.Set("ce-source", "/inlet/triggers/"+e.TriggerRef)
	m.Header.Set("ce-time", e.ReceivedAt.UTC().Format(time.RFC3339Nano))
	return m, nil
}

// validSubject reports whether s can be published to as part of a subject:
// non-empty dot-separated tokens without whitespace or wildcards.
func validSubject(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n\x00") {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
	}
	return true
}

// EnsureStream creates the stream named stream, capturing "<prefix>.>" in
// file storage with a DuplicateWindow de-duplication window, unless it exists.
// An existing stream's configuration is left alone, but EnsureStream fails if
// its subjects do not cover "<prefix>.>", since events would then be
// rejected. It is idempotent and safe to call from several instances at
// once.
func EnsureStream(ctx context.Context, js jetstream.JetStream, stream, prefix string) error {
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:       stream,
			Subjects:   []string{prefix + ".>"},
			Storage:    jetstream.FileStorage,
			Duplicates: DuplicateWindow,
		})
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("create stream %s: %w", stream, err)
		}
		// Another instance created it first, maybe differently: check it.
		s, err = js.Stream(ctx, stream)
	}
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", stream, err)
	}
	subjects := s.CachedInfo().Config.Subjects
	for _, sub := range subjects {
		if covers(sub, prefix) {
			return nil
		}
	}
	return fmt.Errorf("stream %s captures %q, not %s.>", stream, subjects, prefix)
}

// covers reports whether the subject filter matches every subject under
// "<prefix>.".
func covers(filter, prefix string) bool {
	ft := strings.Split(filter, ".")
	pt := strings.Split(prefix, ".")
	for i, t := range ft {
		if t == ">" {
			return true
		}
		if i >= len(pt) || (t != "*" && t != pt[i]) {
			return false
		}
	}
	return false
}
