package event

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestNewIDFormatAndOrder(t *testing.T) {
	re := regexp.MustCompile(`^evt_[0-9A-HJKMNP-TV-Z]{26}$`)
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var ids []string
	for i := 0; i < 100; i++ {
		id, err := NewID(base.Add(time.Duration(i)*time.Millisecond), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if !re.MatchString(id) {
			t.Fatalf("NewID() = %q, want evt_ and 26 Crockford digits", id)
		}
		ids = append(ids, id)
	}
	if !sort.StringsAreSorted(ids) {
		t.Errorf("ids made a millisecond apart do not sort by time: %v", ids)
	}
}

func TestNewIDEncodesTimeAndRandomness(t *testing.T) {
	zero := bytes.NewReader(make([]byte, 10))
	id, err := NewID(time.UnixMilli(0), zero)
	if err != nil {
		t.Fatal(err)
	}
	if want := "evt_00000000000000000000000000"; id != want {
		t.Errorf("NewID(epoch, zeros) = %q, want %q", id, want)
	}
	ones := bytes.NewReader(bytes.Repeat([]byte{0xff}, 10))
	id, _ = NewID(time.UnixMilli(0), ones)
	if want := "evt_0000000000ZZZZZZZZZZZZZZZZ"; id != want {
		t.Errorf("NewID(epoch, ones) = %q, want %q", id, want)
	}
	if _, err := NewID(time.Now(), bytes.NewReader(nil)); err == nil {
		t.Error("NewID with an empty random source succeeded")
	}
}

func TestTimeRoundsToMicroseconds(t *testing.T) {
	in := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	got := Time(in)
	want := time.Date(2026, 1, 2, 2, 4, 5, 123456000, time.UTC)
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("Time(%v) = %v, want %v", in, got, want)
	}
}

func TestAppendJSON(t *testing.T) {
	e := Event{
		ID: "evt_01M82NS00YAH7M2EGRPJ0KK79R", TriggerID: 7, TriggerRef: "myapp.deploy", Source: Source,
		Payload:    []byte(`{"html":"<b>&</b>","n":1.50}`),
		Metadata:   []byte(`{"source":"webhook"}`),
		ReceivedAt: time.Date(2026, 11, 22, 22, 24, 37, 918325000, time.UTC),
	}
	want := `{"id":"evt_01M82NS00YAH7M2EGRPJ0KK79R","trigger_id":7,"trigger_ref":"myapp.deploy","source":"webhook",` +
		`"payload":{"html":"<b>&</b>","n":1.50},"metadata":{"source":"webhook"},"received_at":"2026-11-22T22:24:37.918325Z"}`
	if got := string(e.Marshal()); got != want {
		t.Errorf("Marshal() =\n%s\nwant\n%s", got, want)
	}
	omitted := strings.Replace(want, `{"html":"<b>&</b>","n":1.50}`, "null", 1)
	if got := string(e.AppendJSON(nil, true)); got != omitted {
		t.Errorf("AppendJSON(omitPayload) =\n%s\nwant\n%s", got, omitted)
	}
	var back map[string]any
	if err := json.Unmarshal(e.Marshal(), &back); err != nil {
		t.Fatalf("Marshal() is not JSON: %v", err)
	}
}
