package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// payloads exercise what a re-encoding could change: HTML characters,
// escapes, non-ASCII text, line separators, number forms and spacing.
var payloads = []string{
	`{"ref":"refs/heads/main","html":"<a href=\"x\">&amp;</a>"}`,
	`{"text":"caf\u00e9 é 日本 \u2028 \ud83d\ude00","esc":"\"\\\/\b\f\n\r\t"}`,
	`{"n":[1, 1.0, 1e3, -0, 12345678901234567890, 0.1]}`,
	`  {  "spaced" :  { "a" : [ ] , "b" : { } }  }  `,
	`[{"array":"payload"}]`,
	`{"deep":{"a":{"b":{"c":{"d":null,"e":true,"f":false}}}}}`,
}

func TestGetEventIsByteIdenticalToMarshal(t *testing.T) {
	v := newEnv(t)
	tr := v.createTrigger("github.push")
	ids := v.seedEvents(tr, time.Now().Add(-time.Hour), payloads...)
	ctx := context.Background()

	for i, id := range ids {
		ev, err := v.store.GetEvent(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := ev.Marshal()
		raw := v.call(http.MethodGet, "/api/v1/events/"+id, "", http.StatusOK, nil)
		wantBody := append(append([]byte(`{"data":`), want...), "}\n"...)
		if !bytes.Equal(raw, wantBody) {
			t.Errorf("payload %d: GET /events/%s =\n%s\nwant\n%s", i, id, raw, wantBody)
		}
	}

	// The list carries the same bytes.
	var list struct{ Data []json.RawMessage }
	v.call(http.MethodGet, "/api/v1/events", "", http.StatusOK, &list)
	if len(list.Data) != len(ids) {
		t.Fatalf("list has %d events, want %d", len(list.Data), len(ids))
	}
	for i, got := range list.Data {
		id := ids[len(ids)-1-i] // newest first
		ev, err := v.store.GetEvent(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := ev.Marshal()
		if !bytes.Equal(got, want) {
			t.Errorf("list item %d =\n%s\nwant\n%s", i, got, want)
		}
	}

	rec := v.do(http.MethodGet, "/api/v1/events/evt_01J00000000000000000000000", "")
	if rec.Code != http.StatusNotFound || decodeProblem(t, rec).Code != "not_found" {
		t.Errorf("missing event = %d %s, want 404 not_found", rec.Code, rec.Body)
	}
}

func TestListEventsPages(t *testing.T) {
	v := newEnv(t)
	push := v.createTrigger("github.push")
	issues := v.createTrigger("github.issues")
	start := time.Now().Add(-time.Hour)
	var pushIDs []string
	for i := 0; i < 7; i++ {
		pushIDs = append(pushIDs, v.seedEvents(push, start.Add(time.Duration(i)*time.Minute), `{"i":1}`)...)
	}
	v.seedEvents(issues, start, `{"x":1}`, `{"x":2}`, `{"x":3}`)

	type page struct {
		Data []struct {
			ID         string    `json:"id"`
			TriggerRef string    `json:"trigger_ref"`
			ReceivedAt time.Time `json:"received_at"`
		} `json:"data"`
		NextCursor *string `json:"next_cursor"`
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		var p page
		v.call(http.MethodGet, "/api/v1/events?trigger=github.push&limit=3&cursor="+cursor, "", http.StatusOK, &p)
		if len(p.Data) > 3 {
			t.Fatalf("page of %d, limit 3", len(p.Data))
		}
		for _, e := range p.Data {
			if e.TriggerRef != "github.push" {
				t.Errorf("trigger filter let %s through", e.TriggerRef)
			}
			got = append(got, e.ID)
		}
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
	}
	if len(got) != len(pushIDs) {
		t.Fatalf("walked %d events, want %d", len(got), len(pushIDs))
	}
	for i, id := range got {
		if want := pushIDs[len(pushIDs)-1-i]; id != want {
			t.Errorf("event %d = %s, want %s (newest first)", i, id, want)
		}
	}

	var all page
	v.call(http.MethodGet, "/api/v1/events", "", http.StatusOK, &all)
	if len(all.Data) != 10 || all.NextCursor != nil {
		t.Errorf("unfiltered list: %d events, next %v", len(all.Data), all.NextCursor)
	}
	var none page
	raw := v.call(http.MethodGet, "/api/v1/events?trigger=gitlab.push", "", http.StatusOK, &none)
	if len(none.Data) != 0 || !bytes.Contains(raw, []byte(`"data":[]`)) {
		t.Errorf("events of an unknown trigger: %s", raw)
	}

	for _, q := range []string{"limit=0", "limit=1001", "limit=ten", "cursor=!!!", "cursor=abc", "trigger=not%20a%20ref", "trigger=a.b.c"} {
		if rec := v.do(http.MethodGet, "/api/v1/events?"+q, ""); rec.Code != http.StatusBadRequest {
			t.Errorf("events?%s = %d %s, want 400", q, rec.Code, rec.Body)
		}
	}
}
