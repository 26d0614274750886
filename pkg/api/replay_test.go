package api

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/store"
)

type eventResp struct {
	Data event.Event `json:"data"`
}

func TestReplayEvent(t *testing.T) {
	v := newEnv(t)
	tr := v.createTrigger("github.push")
	dst := v.createDestination("github.push", `{"name":"ci","url":"https://ci.example.com/hook"}`)
	ids := v.seedEvents(tr, time.Now().Add(-time.Hour), `{"ref":"refs/heads/main"}`)
	var orig eventResp
	v.call(http.MethodGet, "/api/v1/events/"+ids[0], "", http.StatusOK, &orig)

	var got eventResp
	before := time.Now()
	v.call(http.MethodPost, "/api/v1/events/"+ids[0]+"/replay", "", http.StatusCreated, &got)
	e := got.Data
	if e.ID == ids[0] || !event.ValidID(e.ID) || e.Source != event.SourceReplay || e.TriggerID != tr.ID ||
		string(e.Payload) != string(orig.Data.Payload) || e.ReceivedAt.Before(before.Add(-time.Second)) {
		t.Fatalf("replay = %+v", e)
	}
	var md event.Metadata
	if err := json.Unmarshal(e.Metadata, &md); err != nil {
		t.Fatal(err)
	}
	if md.ReplayOf != ids[0] || md.Source != event.SourceReplay || !md.ReceivedAt.Equal(e.ReceivedAt) ||
		md.Headers["X-GitHub-Event"] != "push" || md.SourceIP != "2001:db8::1" {
		t.Errorf("replay metadata = %+v", md)
	}
	// The stored replay is what the answer showed, and waits in the
	// outbox like any new event, with a delivery to the destination.
	var stored eventResp
	v.call(http.MethodGet, "/api/v1/events/"+e.ID, "", http.StatusOK, &stored)
	if string(stored.Data.Marshal()) != string(e.Marshal()) {
		t.Errorf("stored %s\nanswered %s", stored.Data.Marshal(), e.Marshal())
	}
	pending, err := v.store.PendingEvents(context.Background(), store.Position{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if last := pending[len(pending)-1]; last.Event.ID != e.ID {
		t.Errorf("the replay is not waiting to be published: last pending %s", last.Event.ID)
	}
	ds, _ := v.store.EventDeliveries(context.Background(), e.ID)
	if len(ds) != 1 || ds[0].DestinationID != dst.ID {
		t.Errorf("replay deliveries = %+v", ds)
	}
	// A replay can be replayed; an unknown event cannot.
	v.call(http.MethodPost, "/api/v1/events/"+e.ID+"/replay", "", http.StatusCreated, &got)
	if !strings.Contains(string(got.Data.Metadata), `"replay_of":"`+e.ID+`"`) {
		t.Errorf("replay of a replay: %s", got.Data.Metadata)
	}
	for _, id := range []string{"evt_00000000000000000000000000", "nope"} {
		if rec := v.do(http.MethodPost, "/api/v1/events/"+id+"/replay", ""); rec.Code != http.StatusNotFound {
			t.Errorf("replay of %s = %d, want 404", id, rec.Code)
		}
	}
	var act struct {
		Data []store.Activity `json:"data"`
	}
	v.call(http.MethodGet, "/api/v1/activity", "", http.StatusOK, &act)
	if len(act.Data) < 2 || act.Data[0].Action != "event.replay" || act.Data[0].Target != e.ID || act.Data[0].TokenName != "test" {
		t.Errorf("activity = %+v", act.Data)
	}
}

// Delivery ids are left out of a replay's metadata, and the replay has
// none of its own: replaying never collides with de-duplication.
func TestReplayLeavesDeliveryIDOut(t *testing.T) {
	v := newEnv(t)
	tr := v.createTrigger("github.push")
	at := event.Time(time.Now())
	did := "delivery-1"
	ev := &event.Event{ID: event.MustNewID(at), TriggerID: tr.ID, TriggerRef: tr.Ref, Source: event.Source,
		Payload: json.RawMessage(`{}`), Metadata: json.RawMessage(`{"source":"webhook","delivery_id":"delivery-1","headers":{}}`),
		ReceivedAt: at, DeliveryID: &did}
	if _, err := v.store.WriteBatch(context.Background(), []*store.Record{{Event: ev, Audit: store.Audit{ReceivedAt: at, Status: 200, Outcome: "accepted"}}}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		var got eventResp
		v.call(http.MethodPost, "/api/v1/events/"+ev.ID+"/replay", "", http.StatusCreated, &got)
		if strings.Contains(string(got.Data.Metadata), "delivery-1") {
			t.Errorf("replay metadata keeps the delivery id: %s", got.Data.Metadata)
		}
	}
}

func TestReplayRange(t *testing.T) {
	v := newEnv(t)
	tr := v.createTrigger("github.push")
	other := v.createTrigger("github.issues")
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	ids := v.seedEvents(tr, start, `{"n":0}`, `{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`)
	v.seedEvents(other, start, `{"n":"other"}`)

	var res struct {
		Data replayedRange `json:"data"`
	}
	body := `{"trigger":"github.push","since":"` + start.Add(time.Second).UTC().Format(time.RFC3339) +
		`","until":"` + start.Add(4*time.Second).UTC().Format(time.RFC3339) + `"}`
	v.call(http.MethodPost, "/api/v1/events/replay", body, http.StatusOK, &res)
	if res.Data.Replayed != 3 || len(res.Data.EventIDs) != 3 {
		t.Fatalf("replayed = %+v, want events 1 to 3", res.Data)
	}
	// Oldest first, each naming its original, published in that order.
	pending, err := v.store.PendingEvents(context.Background(), store.Position{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, p := range pending {
		if p.Event.Source == event.SourceReplay {
			var md event.Metadata
			_ = json.Unmarshal(p.Event.Metadata, &md)
			order = append(order, md.ReplayOf)
		}
	}
	if !slices.Equal(order, ids[1:4]) {
		t.Errorf("replays publish in order of %v, want %v", order, ids[1:4])
	}
	// The limit, and until defaulting to now.
	body = `{"trigger":"github.push","since":"` + start.UTC().Format(time.RFC3339) + `","limit":2}`
	v.call(http.MethodPost, "/api/v1/events/replay", body, http.StatusOK, &res)
	if res.Data.Replayed != 2 {
		t.Errorf("with limit 2: %+v", res.Data)
	}
	// More than one chunk.
	many := make([]string, 250)
	for i := range many {
		many[i] = `{}`
	}
	v.seedEvents(other, start.Add(time.Minute), many...)
	body = `{"trigger":"github.issues","since":"` + start.Add(time.Minute).UTC().Format(time.RFC3339) + `","limit":10000}`
	v.call(http.MethodPost, "/api/v1/events/replay", body, http.StatusOK, &res)
	if res.Data.Replayed != 250 {
		t.Errorf("250 events replayed as %d", res.Data.Replayed)
	}

	for _, tc := range []struct {
		body string
		code int
	}{
		{`{"since":"2026-01-01T00:00:00Z"}`, http.StatusUnprocessableEntity},
		{`{"trigger":"github.push"}`, http.StatusUnprocessableEntity},
		{`{"trigger":"github.push","since":"yesterday"}`, http.StatusUnprocessableEntity},
		{`{"trigger":"github.push","since":"2026-01-02T00:00:00Z","until":"2026-01-01T00:00:00Z"}`, http.StatusUnprocessableEntity},
		{`{"trigger":"github.push","since":"2026-01-01T00:00:00Z","limit":10001}`, http.StatusUnprocessableEntity},
		{`{"trigger":"nope.nope","since":"2026-01-01T00:00:00Z"}`, http.StatusNotFound},
		{``, http.StatusBadRequest},
	} {
		if rec := v.do(http.MethodPost, "/api/v1/events/replay", tc.body); rec.Code != tc.code {
			t.Errorf("replay %s = %d, want %d", tc.body, rec.Code, tc.code)
		}
	}
}
