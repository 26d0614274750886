package publish

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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

// OmittedHeader marks a message whose event was too large for the server:
// its payload is null, and the header's value is the size in bytes of the
// payload left out. Consumers read the whole event from the API.
const OmittedHeader = "Inlet-Payload-Omitted"

// Message builds the NATS message for e on subject "<prefix>.<trigger_ref>".
// The body is the event exactly as the API returns it (e.AppendJSON), with
// a null payload when omitPayload is set; headers carry Nats-Msg-Id (the
// event id, for JetStream de-duplication), Content-Type, the CloudEvents
// binary-mode attributes ce-specversion, ce-id, ce-type, ce-source and
// ce-time, and OmittedHeader when the payload is left out. It fails when
// the trigger ref cannot be part of a NATS subject.
func Message(prefix string, e *event.Event, omitPayload bool) (*nats.Msg, error) {
	if !validSubject(e.TriggerRef) {
		return nil, fmt.Errorf("trigger ref %q is not a valid NATS subject", e.TriggerRef)
	}
	m := nats.NewMsg(Subject(prefix, e.TriggerRef))
	m.Data = e.AppendJSON(make([]byte, 0, len(e.Payload)+len(e.Metadata)+200), omitPayload)
	// Set, not Header.Add: nats.Header keeps keys as given, and CloudEvents'
	// NATS binding spells its attributes in lower case.
	m.Header.Set(jetstream.MsgIDHeader, e.ID)
	m.Header.Set("Content-Type", "application/json")
	m.Header.Set("ce-specversion", "1.0")
	m.Header.Set("ce-id", e.ID)
	m.Header.Set("ce-type", e.TriggerRef)
	m.Header.Set("ce-source", "/inlet/triggers/"+e.TriggerRef)
	m.Header.Set("ce-time", e.ReceivedAt.UTC().Format(time.RFC3339Nano))
	if omitPayload {
		m.Header.Set(OmittedHeader, strconv.Itoa(len(e.Payload)))
	}
	return m, nil
}

// Size is how many bytes of a server's max_payload m takes: its body and
// its headers as the client writes them ("NATS/1.0\r\n", a "key: value\r\n"
// line per value, a blank line).
func Size(m *nats.Msg) int64 {
	n := len(m.Data)
	if len(m.Header) > 0 {
		n += len("NATS/1.0\r\n") + len("\r\n")
		for k, vs := range m.Header {
			for _, v := range vs {
				n += len(k) + len(": ") + len(v) + len("\r\n")
			}
		}
	}
	return int64(n)
}

// Subject is the subject the events of trigger ref are published on.
func Subject(prefix, ref string) string { return prefix + "." + ref }

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
// file storage with a DuplicateWindow de-duplication window and replicas
// copies (0 means 1; more than 1 needs a JetStream cluster of at least that
// many servers), unless it exists. An existing stream's configuration,
// replicas included, is left alone, but EnsureStream fails if its subjects
// do not cover "<prefix>.>", since events would then be rejected. It is
// idempotent and safe to call from several instances at once.
func EnsureStream(ctx context.Context, js jetstream.JetStream, stream, prefix string, replicas int) error {
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:       stream,
			Subjects:   []string{prefix + ".>"},
			Storage:    jetstream.FileStorage,
			Duplicates: DuplicateWindow,
			Replicas:   max(replicas, 1),
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
