package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func record(triggerID int64, deliveryID string) *store.Record {
	now := event.Time(time.Now())
	ref := fmt.Sprintf("test.t%d", triggerID)
	ev := &event.Event{
		ID: event.MustNewID(now), TriggerID: triggerID, TriggerRef: ref, Source: event.Source,
		Payload: json.RawMessage(`{"n":1}`), Metadata: json.RawMessage(`{}`), ReceivedAt: now,
	}
	if deliveryID != "" {
		ev.DeliveryID = &deliveryID
	}
	return &store.Record{Event: ev, Audit: store.Audit{ReceivedAt: now, TriggerID: &triggerID, TriggerRef: &ref, Status: 200, Outcome: "accepted"}}
}

func count(t *testing.T, db *sqlx.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Get(&n, q, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWriteBatchDeduplicates(t *testing.T) {
	db := storetest.New(t)
	s := store.New(db, storetest.Keyring())
	ctx := context.Background()
	first, second, other, plain := record(1, "d-1"), record(1, "d-1"), record(2, "d-1"), record(1, "")
	res, err := s.WriteBatch(ctx, []*store.Record{first, second, other, plain})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || !res[1].Duplicate || res[1].EventID != first.Event.ID {
		t.Errorf("same delivery id twice in one batch: results %+v, want the second a duplicate of %s", res[:2], first.Event.ID)
	}
	if res[2].Duplicate {
		t.Error("the same delivery id on another trigger was taken for a duplicate")
	}
	// A later batch, as a redelivery.
	again := record(1, "d-1")
	res, err = s.WriteBatch(ctx, []*store.Record{again})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Duplicate || res[0].EventID != first.Event.ID {
		t.Errorf("redelivery: %+v, want duplicate of %s", res[0], first.Event.ID)
	}
	if n := count(t, db, `SELECT count(*) FROM events`); n != 3 {
		t.Errorf("events = %d, want 3", n)
	}
	// The new events wait to be published, in batch order.
	pending, err := s.PendingEvents(ctx, store.Position{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range pending {
		ids = append(ids, p.Event.ID)
	}
	if want := []string{first.Event.ID, other.Event.ID, plain.Event.ID}; !slices.Equal(ids, want) {
		t.Errorf("pending events = %v, want %v", ids, want)
	}
	if n := count(t, db, `SELECT count(*) FROM audit_log WHERE outcome = 'duplicate' AND event_id = $1`, first.Event.ID); n != 2 {
		t.Errorf("duplicate audit rows = %d, want 2", n)
	}
}

func TestWriterCommitsBeforeAnswering(t *testing.T) {
	db := storetest.New(t)
	w := store.NewWriter(store.New(db, storetest.Keyring()), store.WriterOptions{}, slog.New(slog.DiscardHandler))
	defer w.Close()
	const goroutines, each = 32, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				rec := record(int64(g), fmt.Sprintf("g%d-%d", g, i))
				res, err := w.Submit(context.Background(), rec)
				if err != nil {
					errs <- err
					continue
				}
				// Acknowledged means committed: another connection sees it.
				var n int
				if err := db.Get(&n, `SELECT count(*) FROM events WHERE id = $1`, res.EventID); err != nil || n != 1 {
					errs <- fmt.Errorf("event %s acknowledged but not visible (n=%d, err=%v)", res.EventID, n, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := count(t, db, `SELECT count(*) FROM events`); n != goroutines*each {
		t.Errorf("events = %d, want %d", n, goroutines*each)
	}
	if n := count(t, db, `SELECT count(*) FROM audit_log`); n != goroutines*each {
		t.Errorf("audit rows = %d, want %d", n, goroutines*each)
	}
}

func TestWriterIsolatesABadRecord(t *testing.T) {
	db := storetest.New(t)
	w := store.NewWriter(store.New(db, storetest.Keyring()), store.WriterOptions{Workers: 1}, slog.New(slog.DiscardHandler))
	defer w.Close()
	// Hold the only worker on a row lock so the next three records queue
	// up and are written as one batch.
	tx := db.MustBegin()
	tx.MustExec(`INSERT INTO events (id, trigger_id, trigger_ref, payload, metadata, delivery_id, received_at) VALUES ('evt_lock', 1, 'x.y', '{}', '{}', 'held', now())`)
	held := make(chan error, 1)
	go func() { _, err := w.Submit(context.Background(), record(1, "held")); held <- err }()
	waitLockWait(t, db) // the worker has taken it and waits on the lock

	bad := record(1, "")
	bad.Event.Payload = json.RawMessage(`{not json`) // PostgreSQL's json input refuses it
	recs := []*store.Record{record(1, ""), bad, record(1, "")}
	var wg sync.WaitGroup
	errs := make([]error, len(recs))
	for i, r := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.Submit(context.Background(), r)
		}()
	}
	waitQueued(t, w, 3)
	tx.Rollback()
	<-held
	wg.Wait()
	if errs[1] == nil {
		t.Error("the record PostgreSQL refuses was acknowledged")
	}
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("good records failed with the bad one: %v, %v", errs[0], errs[2])
	}
	if n := count(t, db, `SELECT count(*) FROM events WHERE id <> 'evt_lock' AND delivery_id IS DISTINCT FROM 'held'`); n != 2 {
		t.Errorf("events = %d, want the 2 good ones", n)
	}
}

// waitLockWait waits until a session of db's database waits on a lock.
func waitLockWait(t *testing.T, db *sqlx.DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for count(t, db, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no session ever waited on the held lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitQueued waits until exactly n records wait in w's queue.
func waitQueued(t *testing.T, w *store.Writer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for w.Queued() != n {
		if time.Now().After(deadline) {
			t.Fatalf("queue length %d, want %d", w.Queued(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWriterFailsEveryRecordWhenTheDatabaseIsGone(t *testing.T) {
	gone, err := sqlx.Open("postgres", "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Close()
	w := store.NewWriter(store.New(gone, storetest.Keyring()), store.WriterOptions{Timeout: 2 * time.Second}, slog.New(slog.DiscardHandler))
	defer w.Close()
	var wg sync.WaitGroup
	failures := make(chan error, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := w.Submit(context.Background(), record(1, "")); err != nil {
				failures <- err
			}
		}()
	}
	wg.Wait()
	close(failures)
	n := 0
	for err := range failures {
		n++
		if !store.IsUnavailable(err) {
			t.Errorf("error %v is not reported as unavailable (the receiver answers 503 for those)", err)
		}
	}
	if n != 10 {
		t.Errorf("%d of 10 submits failed, want all", n)
	}
}

func TestWriterShedsWhenFull(t *testing.T) {
	db := storetest.New(t)
	// Hold the writer's only worker on a locked row so the queue fills.
	s := store.New(db, storetest.Keyring())
	ctx := context.Background()
	tx := db.MustBegin()
	defer tx.Rollback()
	w := store.NewWriter(s, store.WriterOptions{Workers: 1, QueueLen: 2, MaxBatch: 1}, slog.New(slog.DiscardHandler))
	defer w.Close()
	tx.MustExec(`INSERT INTO events (id, trigger_id, trigger_ref, payload, metadata, delivery_id, received_at) VALUES ('evt_lock', 1, 'x.y', '{}', '{}', 'held', now())`)
	results := make(chan error, 5)
	for i := 0; i < 4; i++ {
		go func() {
			_, err := w.Submit(ctx, record(1, "held")) // waits on the uncommitted unique key
			results <- err
		}()
	}
	deadline := time.After(10 * time.Second)
	for w.Queued() < 2 {
		select {
		case <-deadline:
			t.Fatal("the queue never filled")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, err := w.Submit(ctx, record(1, "")); !errors.Is(err, store.ErrOverloaded) {
		t.Errorf("Submit on a full queue = %v, want ErrOverloaded at once", err)
	}
	tx.Rollback()
}

// TestPendingEventsWaitForRunningTransactions: an event is not handed to
// the publisher while a transaction of this database that began before it
// could still commit an event behind it; a transaction in another database
// on the same server does not hold it back.
func TestPendingEventsWaitForRunningTransactions(t *testing.T) {
	db := storetest.New(t)
	other := storetest.New(t) // another database of the same server
	s := store.New(db, nil)
	ctx := context.Background()
	pending := func() int {
		t.Helper()
		p, err := s.PendingEvents(ctx, store.Position{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(p)
	}

	elsewhere := other.MustBegin()
	elsewhere.MustExec(`CREATE TABLE busy (n int)`) // takes a transaction id
	defer elsewhere.Rollback()
	if _, err := s.WriteBatch(ctx, []*store.Record{record(1, "")}); err != nil {
		t.Fatal(err)
	}
	if n := pending(); n != 1 {
		t.Errorf("%d events pending while another database has a transaction open, want 1", n)
	}

	here := db.MustBegin()
	here.MustExec(`SELECT pg_current_xact_id()`) // this database, older than the next event
	if _, err := s.WriteBatch(ctx, []*store.Record{record(1, "")}); err != nil {
		t.Fatal(err)
	}
	if n := pending(); n != 1 {
		t.Errorf("%d events pending while an older transaction of this database runs, want 1", n)
	}
	here.Rollback()
	if n := pending(); n != 2 {
		t.Errorf("%d events pending once it ended, want 2", n)
	}
}

// A batch record stores its events together, each de-duplicated on its
// own; its one audit row counts the new ones.
func TestWriteBatchOfEvents(t *testing.T) {
	db := storetest.New(t)
	s := store.New(db, storetest.Keyring())
	ctx := context.Background()
	if _, err := s.WriteBatch(ctx, []*store.Record{record(1, "b")}); err != nil {
		t.Fatal(err)
	}
	batchOf := func(dids ...string) *store.Record {
		r := record(1, "")
		r.Event = nil
		for _, d := range dids {
			r.Batch = append(r.Batch, record(1, d).Event)
		}
		return r
	}
	// a is new, b was stored before, a again repeats the batch's own,
	// the last has no delivery id.
	rec := batchOf("a", "b", "a", "")
	res, err := s.WriteBatch(ctx, []*store.Record{rec})
	if err != nil {
		t.Fatal(err)
	}
	els := res[0].Elements
	if len(els) != 4 {
		t.Fatalf("elements = %+v", els)
	}
	want := []bool{false, true, true, false}
	for i, e := range els {
		if e.Duplicate != want[i] {
			t.Errorf("element %d duplicate = %v, want %v", i, e.Duplicate, want[i])
		}
	}
	if els[2].EventID != els[0].EventID || els[0].EventID != rec.Batch[0].ID || res[0].Duplicate {
		t.Errorf("results = %+v", res[0])
	}
	var a struct {
		Outcome    string `db:"outcome"`
		EventCount int    `db:"event_count"`
		EventID    string `db:"event_id"`
	}
	if err := db.Get(&a, `SELECT outcome, event_count, event_id FROM audit_log ORDER BY id DESC LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if a.Outcome != "accepted" || a.EventCount != 2 || a.EventID != rec.Batch[0].ID {
		t.Errorf("audit row = %+v, want accepted with 2 events", a)
	}
	if *rec.Audit.EventCount != 2 || rec.Audit.Outcome != "accepted" {
		t.Errorf("record's audit = %+v", rec.Audit)
	}
	// The same batch again: every element is a duplicate.
	res, err = s.WriteBatch(ctx, []*store.Record{batchOf("a", "b")})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Duplicate || !res[0].Elements[0].Duplicate || !res[0].Elements[1].Duplicate {
		t.Errorf("repeated batch = %+v, want every element a duplicate", res[0])
	}
	if err := db.Get(&a, `SELECT outcome, event_count, event_id FROM audit_log ORDER BY id DESC LIMIT 1`); err != nil {
		t.Fatal(err)
	}
	if a.Outcome != "duplicate" || a.EventCount != 0 {
		t.Errorf("repeated batch's audit row = %+v, want duplicate with 0 events", a)
	}
	if n := count(t, db, `SELECT count(*) FROM events`); n != 3 {
		t.Errorf("events = %d, want 3 (b, a and the one without an id)", n)
	}
	if n := count(t, db, `SELECT events FROM usage WHERE outcome = 'accepted'`); n != 3 {
		t.Errorf("usage counts %d events, want 3", n)
	}
}
