package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/problem"
	"github.com/inlet-dev/inlet/pkg/store/storetest"
)

// BenchmarkWriteBatchForms compares ways of writing a batch of accepted
// requests, to keep the fastest in WriteBatch:
//
//	unnest-tx      BEGIN; INSERT events, outbox, audit_log from unnest($n::type[]); COMMIT
//	               (three statements, each parsed and planned; the form before)
//	copy-tx        BEGIN; INSERT events from unnest; COPY outbox; COPY audit_log; COMMIT
//	statement      writeBatch, one statement, unprepared (parse and plan each time)
//	prepared       writeBatch prepared, as the Writer runs it: one round trip
//
// rows/s counts records (an event, its outbox row and its audit row each).
func BenchmarkWriteBatchForms(b *testing.B) {
	db := storetest.New(b)
	s := New(db)
	ctx := context.Background()
	stmt, err := db.PrepareContext(ctx, writeBatch)
	if err != nil {
		b.Fatal(err)
	}
	defer stmt.Close()
	forms := []struct {
		name  string
		write func([]*Record) error
	}{
		{"unnest-tx", func(recs []*Record) error {
			return s.inTx(ctx, func(tx *sqlx.Tx) error { return unnestTx(ctx, tx, recs) })
		}},
		{"copy-tx", func(recs []*Record) error {
			return s.inTx(ctx, func(tx *sqlx.Tx) error { return copyTx(ctx, tx, recs) })
		}},
		{"statement", func(recs []*Record) error { _, err := s.writeBatch(ctx, nil, recs); return err }},
		{"prepared", func(recs []*Record) error { _, err := s.writeBatch(ctx, stmt, recs); return err }},
	}
	for _, n := range []int{1, 16, 64, 256} {
		for _, f := range forms {
			b.Run(fmt.Sprintf("records=%d/form=%s", n, f.name), func(b *testing.B) {
				b.ReportAllocs()
				recs := make([]*Record, n)
				for b.Loop() {
					for i := range recs {
						recs[i] = formRecord()
					}
					if err := f.write(recs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

var formSeq atomic.Int64

func formRecord() *Record {
	now := event.Time(time.Now())
	tid, ref := int64(1), "myapp.deployment_complete"
	did := fmt.Sprintf("form-%d-%d", time.Now().UnixNano(), formSeq.Add(1))
	return &Record{
		Event: &event.Event{
			ID: event.MustNewID(now), TriggerID: tid, TriggerRef: ref, Source: event.Source,
			Payload:    json.RawMessage(`{"commit":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","environment":"production","pipeline":"https://ci.example.com/pipelines/bench-000-000000001","service":"checkout","status":"succeeded","version":"2.14.0"}`),
			Metadata:   json.RawMessage(`{"source":"webhook","webhook_key_prefix":"wh_AbCdE","received_at":"2026-11-22T12:00:00.123456Z","source_ip":"127.0.0.1","user_agent":"inlet-bench/1","delivery_id":"bench-000-000000001","headers":{"Content-Type":"application/json","X-Webhook-ID":"bench-000-000000001"}}`),
			ReceivedAt: now, DeliveryID: &did,
		},
		Audit: Audit{
			ReceivedAt: now, TriggerID: &tid, TriggerRef: &ref, KeyPrefix: "wh_AbCdE", SourceIP: "127.0.0.1",
			UserAgent: "inlet-bench/1", Status: 200, Outcome: problem.Accepted, BodySize: 1024, DurationMS: 1.25,
		},
	}
}

// The statements of the three-statement forms.
const (
	formInsertEvents = `
INSERT INTO events (id, trigger_id, trigger_ref, source, payload, metadata, delivery_id, received_at)
SELECT u.id, u.tid, u.ref, u.src, u.payload::json, u.metadata::json, u.did, u.at::timestamptz
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
	WITH ORDINALITY AS u(id, tid, ref, src, payload, metadata, did, at, ord)
ORDER BY u.ord
ON CONFLICT (trigger_id, delivery_id) WHERE delivery_id IS NOT NULL DO NOTHING
RETURNING id`
	formInsertOutbox = `
INSERT INTO outbox (event_id)
SELECT u.id FROM unnest($1::text[]) WITH ORDINALITY AS u(id, ord) ORDER BY u.ord`
	formInsertAudit = `
INSERT INTO audit_log (received_at, trigger_id, trigger_ref, key_prefix, source_ip, user_agent,
	status, outcome, detail, body_size, duration_ms, event_id)
SELECT u.at::timestamptz, u.tid, u.ref, u.kp, u.ip, u.ua, u.st, u.oc, u.dt, u.bs, u.ms, u.eid
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
	$7::smallint[], $8::text[], $9::text[], $10::bigint[], $11::float8[], $12::text[])
	WITH ORDINALITY AS u(at, tid, ref, kp, ip, ua, st, oc, dt, bs, ms, eid, ord)
ORDER BY u.ord`
)

// formEvents inserts the events of recs and returns the ids of those
// inserted, in order. The benchmark's delivery ids are unique, so the
// duplicate resolution of the real forms is left out.
func formEvents(ctx context.Context, tx *sqlx.Tx, recs []*Record) ([]string, error) {
	var ids, refs, srcs, payloads, metas, ats []string
	var tids []int64
	var dids []sql.NullString
	for _, r := range recs {
		e := r.Event
		ids, tids, refs, srcs = append(ids, e.ID), append(tids, e.TriggerID), append(refs, e.TriggerRef), append(srcs, e.Source)
		payloads, metas = append(payloads, string(e.Payload)), append(metas, string(e.Metadata))
		ats = append(ats, e.ReceivedAt.UTC().Format(timeFormat))
		dids = append(dids, sql.NullString{String: clean(*e.DeliveryID), Valid: true})
	}
	var inserted []string
	err := tx.SelectContext(ctx, &inserted, formInsertEvents, pq.Array(ids), pq.Array(tids), pq.Array(refs),
		pq.Array(srcs), pq.Array(payloads), pq.Array(metas), pq.Array(dids), pq.Array(ats))
	if err != nil {
		return nil, err
	}
	if len(inserted) != len(recs) {
		return nil, fmt.Errorf("inserted %d of %d events", len(inserted), len(recs))
	}
	return ids, nil
}

func unnestTx(ctx context.Context, tx *sqlx.Tx, recs []*Record) error {
	ids, err := formEvents(ctx, tx, recs)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, formInsertOutbox, pq.Array(ids)); err != nil {
		return err
	}
	n := len(recs)
	ats, refs, kps, ips, uas, ocs, dts := make([]string, n), make([]sql.NullString, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	eids, tids := make([]sql.NullString, n), make([]sql.NullInt64, n)
	sts, bss, mss := make([]int64, n), make([]int64, n), make([]float64, n)
	for i, r := range recs {
		a := &r.Audit
		ats[i] = a.ReceivedAt.UTC().Format(timeFormat)
		tids[i] = sql.NullInt64{Int64: *a.TriggerID, Valid: true}
		refs[i] = sql.NullString{String: *a.TriggerRef, Valid: true}
		kps[i], ips[i], uas[i], ocs[i], dts[i] = clean(a.KeyPrefix), clean(a.SourceIP), clean(a.UserAgent), a.Outcome, clean(a.Detail)
		sts[i], bss[i], mss[i] = int64(a.Status), a.BodySize, a.DurationMS
		eids[i] = sql.NullString{String: ids[i], Valid: true}
	}
	_, err = tx.ExecContext(ctx, formInsertAudit, pq.Array(ats), pq.Array(tids), pq.Array(refs), pq.Array(kps),
		pq.Array(ips), pq.Array(uas), pq.Array(sts), pq.Array(ocs), pq.Array(dts), pq.Array(bss),
		pq.Array(mss), pq.Array(eids))
	return err
}

func copyTx(ctx context.Context, tx *sqlx.Tx, recs []*Record) error {
	ids, err := formEvents(ctx, tx, recs)
	if err != nil {
		return err
	}
	copyIn := func(table string, cols []string, row func(i int) []any, n int) error {
		st, err := tx.PrepareContext(ctx, pq.CopyIn(table, cols...))
		if err != nil {
			return err
		}
		defer st.Close()
		for i := range n {
			if _, err := st.ExecContext(ctx, row(i)...); err != nil {
				return err
			}
		}
		_, err = st.ExecContext(ctx)
		return err
	}
	if err := copyIn("outbox", []string{"event_id"}, func(i int) []any { return []any{ids[i]} }, len(ids)); err != nil {
		return err
	}
	cols := []string{"received_at", "trigger_id", "trigger_ref", "key_prefix", "source_ip", "user_agent",
		"status", "outcome", "detail", "body_size", "duration_ms", "event_id"}
	return copyIn("audit_log", cols, func(i int) []any {
		a := &recs[i].Audit
		return []any{a.ReceivedAt, *a.TriggerID, *a.TriggerRef, clean(a.KeyPrefix), clean(a.SourceIP), clean(a.UserAgent),
			int64(a.Status), a.Outcome, clean(a.Detail), a.BodySize, a.DurationMS, ids[i]}
	}, len(recs))
}
