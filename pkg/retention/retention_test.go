package retention_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	dto "github.com/prometheus/client_model/go"

	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/metrics"
	"github.com/inlet-dev/inlet/pkg/retention"
	"github.com/inlet-dev/inlet/pkg/store"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const day = 24 * time.Hour

// fixture writes rows straight into a fresh database, with the times a
// test needs.
type fixture struct {
	t   *testing.T
	db  *sqlx.DB
	st  *store.Store
	now time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	db := storetest.New(t)
	return &fixture{t: t, db: db, st: store.New(db, nil), now: time.Now().UTC().Truncate(time.Microsecond)}
}

func (f *fixture) exec(q string, args ...any) {
	f.t.Helper()
	if _, err := f.db.Exec(q, args...); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
}

func (f *fixture) count(q string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.db.Get(&n, q, args...); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// event stores an event received age ago and returns its id.
func (f *fixture) event(age time.Duration) string {
	f.t.Helper()
	at := f.now.Add(-age)
	id := event.MustNewID(at)
	f.exec(`INSERT INTO events (id, trigger_id, trigger_ref, payload, metadata, received_at) VALUES ($1, 1, 'test.a', '{}', '{}', $2)`, id, at)
	return id
}

// publishAll moves the publish position past every event stored so far.
func (f *fixture) publishAll() {
	f.t.Helper()
	f.exec(`UPDATE publish_position SET xid = pg_current_xact_id(), seq = 0`)
}

// delivery stores a delivery of eventID created age ago, in status, with
// two attempts, and returns its id.
func (f *fixture) delivery(eventID, status string, age time.Duration) string {
	f.t.Helper()
	at := f.now.Add(-age)
	id := event.NewPrefixedID("dlv_", at)
	f.exec(`INSERT INTO deliveries (id, event_id, destination_id, status, attempts, next_attempt_at, created_at)
		VALUES ($1, $2, 'dst_x', $3, 2, $4, $4)`, id, eventID, status, at)
	f.exec(`INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms) VALUES ($1, 1, $2, 1), ($1, 2, $2, 1)`, id, at)
	return id
}

// audit stores n audit records received age ago.
func (f *fixture) audit(n int, age time.Duration) {
	f.t.Helper()
	f.exec(`INSERT INTO audit_log (received_at, status, outcome) SELECT $1, 200, 'accepted' FROM generate_series(1, $2)`, f.now.Add(-age), n)
}

func (f *fixture) exists(table, id string) bool {
	f.t.Helper()
	return f.count(`SELECT count(*) FROM `+table+` WHERE id = $1`, id) == 1
}

func counter(t *testing.T, m *metrics.Metrics, table string) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.RetentionDeleted.WithLabelValues(table).Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetCounter().GetValue()
}

// A pass deletes what is old and may go, and keeps what is recent, what
// still waits to be published or delivered, and what is set aside.
func TestPrune(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()

	oldEvent := f.event(100 * day)
	oldDone := f.event(95 * day) // its deliveries finished: they go with it
	doneOK, doneFailed := f.delivery(oldDone, "succeeded", 95*day), f.delivery(oldDone, "failed", 95*day)
	oldPending := f.event(94 * day) // a delivery still to make: both stay
	pendingDelivery := f.delivery(oldPending, "pending", 94*day)
	setAside := f.event(93 * day) // never published: kept for the operator
	f.exec(`INSERT INTO publish_set_aside (event_id, trigger_ref, reason) VALUES ($1, 'test.a', 'refused')`, setAside)
	recent := f.event(89 * day)
	recentOldDelivery := f.delivery(recent, "succeeded", 40*day) // the delivery's retention is shorter
	recentFailed := f.delivery(recent, "failed", 31*day)
	recentPending := f.delivery(recent, "pending", 35*day)
	recentDelivery := f.delivery(recent, "succeeded", 29*day)
	f.publishAll()
	unpublished := f.event(99 * day) // stored after the position: not yet published
	f.audit(5, 31*day)
	f.audit(3, 29*day)
	f.exec(`INSERT INTO usage_minutes (trigger_id, minute, slot, accepted, rejected) VALUES
		(1, date_trunc('minute', now() - interval '3 hours'), 0, 1, 0), (1, date_trunc('minute', now()), 0, 1, 0)`)

	m := metrics.New(func() float64 { return 0 })
	p := retention.New(f.st, retention.Options{Events: 90 * day, Audit: 30 * day, Deliveries: 30 * day,
		Batch: 2, Pause: time.Millisecond, Metrics: m, Now: func() time.Time { return f.now }}, nil)
	n, err := p.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := store.Pruned{Events: 2, Deliveries: 4, DeliveryAttempts: 8, Audit: 5, UsageMinutes: 1}
	if n != want {
		t.Errorf("Prune = %+v, want %+v", n, want)
	}

	for _, c := range []struct {
		table, id string
		kept      bool
	}{
		{"events", oldEvent, false},
		{"events", oldDone, false},
		{"deliveries", doneOK, false},
		{"deliveries", doneFailed, false},
		{"events", oldPending, true},
		{"deliveries", pendingDelivery, true},
		{"events", setAside, true},
		{"events", unpublished, true},
		{"events", recent, true},
		{"deliveries", recentOldDelivery, false},
		{"deliveries", recentFailed, false},
		{"deliveries", recentPending, true},
		{"deliveries", recentDelivery, true},
	} {
		if got := f.exists(c.table, c.id); got != c.kept {
			t.Errorf("%s %s kept = %v, want %v", c.table, c.id, got, c.kept)
		}
	}
	if got := f.count(`SELECT count(*) FROM delivery_attempts`); got != 2*3 {
		t.Errorf("attempts left = %d, want 6 (those of the three deliveries kept)", got)
	}
	if got := f.count(`SELECT count(*) FROM delivery_attempts WHERE delivery_id NOT IN (SELECT id FROM deliveries)`); got != 0 {
		t.Errorf("%d attempts outlived their delivery", got)
	}
	if got := f.count(`SELECT count(*) FROM audit_log`); got != 3 {
		t.Errorf("audit records left = %d, want the 3 recent ones", got)
	}
	if got := f.count(`SELECT count(*) FROM usage_minutes`); got != 1 {
		t.Errorf("usage minutes left = %d, want 1", got)
	}
	for table, want := range map[string]float64{"events": 2, "deliveries": 4, "delivery_attempts": 8, "audit_log": 5, "usage_minutes": 1} {
		if got := counter(t, m, table); got != want {
			t.Errorf("inlet_retention_deleted_total{table=%q} = %v, want %v", table, got, want)
		}
	}

	// Once published, and once its delivery finished, an old event goes.
	f.publishAll()
	f.exec(`UPDATE deliveries SET status = 'succeeded' WHERE id = $1`, pendingDelivery)
	n, err = p.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.Pruned{Events: 2, Deliveries: 1, DeliveryAttempts: 2}); n != want {
		t.Errorf("second Prune = %+v, want %+v (the published event, the delivered one and its delivery)", n, want)
	}
	if !f.exists("events", setAside) {
		t.Errorf("the set-aside event was deleted")
	}
	if n, err = p.Prune(ctx); err != nil || n.Total() != 0 {
		t.Errorf("third Prune = %+v, %v; want nothing left to delete", n, err)
	}
}

// A retention of 0 keeps rows forever.
func TestPruneForever(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.event(3650 * day)
	dl := f.delivery(id, "succeeded", 3650*day)
	f.publishAll()
	f.audit(4, 3650*day)
	p := retention.New(f.st, retention.Options{Pause: time.Millisecond}, nil)
	n, err := p.Prune(context.Background())
	if err != nil || n.Total() != 0 {
		t.Fatalf("Prune = %+v, %v; want nothing deleted", n, err)
	}
	if !f.exists("events", id) || !f.exists("deliveries", dl) || f.count(`SELECT count(*) FROM audit_log`) != 4 {
		t.Errorf("rows deleted with retentions of 0")
	}

	// Deliveries kept forever do not keep their event: they go with it.
	p = retention.New(f.st, retention.Options{Events: day, Pause: time.Millisecond}, nil)
	if n, err := p.Prune(context.Background()); err != nil || n.Events != 1 || n.Deliveries != 1 || n.Audit != 0 {
		t.Errorf("Prune with an event retention only = %+v, %v; want the event and its delivery", n, err)
	}
}

// Each statement examines at most the batch's rows, passing over those it
// keeps, and a pass goes on until the walk meets young rows.
func TestPruneBatches(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	var kept []string
	for range 5 {
		id := f.event(200 * day)
		f.delivery(id, "pending", 200*day)
		kept = append(kept, id)
	}
	for range 12 {
		f.event(100 * day)
	}
	f.event(day)
	f.publishAll()
	f.audit(25, 40*day)
	f.audit(5, day)

	before := f.now.Add(-30 * day)
	var steps []store.Pruned
	c := store.Cursor{}
	for {
		st, err := f.st.PruneEvents(ctx, before, c, 10)
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, st.Pruned)
		if st.Done {
			break
		}
		c = st.Next
		if len(steps) > 10 {
			t.Fatal("the walk over events does not end")
		}
	}
	// 5 kept then 12 to delete, by tens: 5 in the first batch, 7 in the
	// second, which is short and ends the walk.
	if len(steps) != 2 || steps[0].Events != 5 || steps[1].Events != 7 {
		t.Errorf("PruneEvents by tens = %+v, want 5 then 7 events", steps)
	}
	for _, id := range kept {
		if !f.exists("events", id) {
			t.Errorf("event %s with a pending delivery was deleted", id)
		}
	}

	var got []int64
	var after int64
	for {
		st, err := f.st.PruneAudit(ctx, before, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, st.Audit)
		if st.Done {
			break
		}
		after = st.Next
		if len(got) > 10 {
			t.Fatal("the walk over audit records does not end")
		}
	}
	if len(got) != 3 || got[0] != 10 || got[1] != 10 || got[2] != 5 {
		t.Errorf("PruneAudit by tens deleted %v, want [10 10 5]", got)
	}
	if n := f.count(`SELECT count(*) FROM audit_log`); n != 5 {
		t.Errorf("audit records left = %d, want 5", n)
	}
}

// Only one instance prunes at a time: a pass that finds the lease taken
// deletes nothing.
func TestPruneOneAtATime(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.audit(40, 40*day)
	opts := retention.Options{Audit: 30 * day, Batch: 10, Pause: 40 * time.Millisecond, Now: func() time.Time { return f.now }}

	other, err := f.st.AcquireLease(ctx, retention.LeaseID)
	if err != nil {
		t.Fatal(err)
	}
	n, err := retention.New(f.st, opts, nil).Prune(ctx)
	if !errors.Is(err, store.ErrNotLeader) || n.Total() != 0 {
		t.Errorf("Prune while another holds the lease = %+v, %v; want ErrNotLeader", n, err)
	}
	other.Release()

	// Two instances at once: one prunes (four batches, with pauses
	// between), the other finds the lease taken.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	counts := make([]store.Pruned, 2)
	for i := range 2 {
		p := retention.New(store.New(f.db, nil), opts, nil)
		wg.Go(func() { counts[i], errs[i] = p.Prune(ctx) })
	}
	wg.Wait()
	leaders := 0
	for i := range 2 {
		switch {
		case errs[i] == nil:
			leaders++
			if counts[i].Audit != 40 {
				t.Errorf("the pruning instance deleted %d audit records, want 40", counts[i].Audit)
			}
		case errors.Is(errs[i], store.ErrNotLeader):
			if counts[i].Total() != 0 {
				t.Errorf("the instance without the lease deleted %+v", counts[i])
			}
		default:
			t.Errorf("Prune: %v", errs[i])
		}
	}
	if leaders != 1 {
		t.Errorf("%d instances pruned, want 1 (errors %v)", leaders, errs)
	}
}
