package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/inlet-dev/inlet/pkg/destination"
	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
	"github.com/inlet-dev/inlet/pkg/trigger"
)

// The writer creates a delivery with each new event for every destination
// of its trigger enabled at that moment: none for a duplicate, none for a
// disabled destination or another trigger's.
func TestWriterQueuesDeliveries(t *testing.T) {
	db := storetest.New(t)
	s := store.New(db, storetest.Keyring())
	ctx := context.Background()
	newTrigger := func(ref string) trigger.Trigger {
		tr, err := s.CreateTrigger(ctx, store.NewTrigger{Ref: ref, Settings: trigger.DefaultSettings()})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	a, b := newTrigger("test.a"), newTrigger("test.b")
	newDestination := func(tr trigger.Trigger, enabled bool) destination.Destination {
		d := destination.Destination{ID: event.NewPrefixedID("dst_", time.Now()), TriggerID: tr.ID, Name: "d",
			URL: "https://hooks.example.com/", Enabled: enabled, Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
		d.Defaults()
		d, err := s.CreateDestination(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	on, off := newDestination(a, true), newDestination(a, false)

	rec := func(tr trigger.Trigger, did string) *store.Record {
		r := record(tr.ID, did)
		r.Event.TriggerRef = tr.Ref
		return r
	}
	first, dup, plain, other := rec(a, "x"), rec(a, "x"), rec(a, ""), rec(b, "")
	if _, err := s.WriteBatch(ctx, []*store.Record{first, dup, plain, other}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteBatch(ctx, []*store.Record{rec(a, "x")}); err != nil { // a redelivery
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT count(*) FROM deliveries`); n != 2 {
		t.Errorf("deliveries = %d, want 2 (two new events, one enabled destination)", n)
	}
	for _, ev := range []*event.Event{first.Event, plain.Event} {
		ds, err := s.EventDeliveries(ctx, ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].DestinationID != on.ID || ds[0].Status != destination.Pending || ds[0].Attempts != 0 ||
			!event.ValidPrefixedID("dlv_", ds[0].ID) {
			t.Errorf("deliveries of %s = %+v, want one pending to %s", ev.ID, ds, on.ID)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM deliveries WHERE destination_id = $1`, off.ID); n != 0 {
		t.Errorf("the disabled destination got %d deliveries", n)
	}
	due, err := s.DueDestinations(ctx)
	if err != nil || len(due) != 1 || due[0].ID != on.ID || due[0].Probe {
		t.Errorf("DueDestinations = %v, %v; want [%s]", due, err, on.ID)
	}
}
