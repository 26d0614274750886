package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/problem"
)

// Record is one answer of the receiver to store: its audit row and, for an
// accepted request, its event.
type Record struct {
	Event *event.Event
	Audit Audit
}

// Result says what became of a Record's event.
type Result struct {
	// EventID is the stored event's id, or the id of the event that an
	// earlier delivery with the same delivery id created.
	EventID   string
	Duplicate bool
}

const insertEvents = `
INSERT INTO events (id, trigger_id, trigger_ref, source, payload, metadata, delivery_id, received_at)
SELECT u.id, u.tid, u.ref, u.src, u.payload::json, u.metadata::json, u.did, u.at::timestamptz
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
	WITH ORDINALITY AS u(id, tid, ref, src, payload, metadata, did, at, ord)
ORDER BY u.ord
ON CONFLICT (trigger_id, delivery_id) WHERE delivery_id IS NOT NULL DO NOTHING
RETURNING id`

const selectDuplicates = `
SELECT e.trigger_id, e.delivery_id, e.id FROM events e
JOIN unnest($1::bigint[], $2::text[]) AS u(tid, did) ON e.trigger_id = u.tid AND e.delivery_id = u.did`

const insertOutbox = `
INSERT INTO outbox (event_id)
SELECT u.id FROM unnest($1::text[]) WITH ORDINALITY AS u(id, ord) ORDER BY u.ord`

const insertAudit = `
INSERT INTO audit_log (received_at, trigger_id, trigger_ref, key_prefix, source_ip, user_agent,
	status, outcome, detail, body_size, duration_ms, event_id)
SELECT u.at::timestamptz, u.tid, u.ref, u.kp, u.ip, u.ua, u.st, u.oc, u.dt, u.bs, u.ms, u.eid
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
	$7::smallint[], $8::text[], $9::text[], $10::bigint[], $11::float8[], $12::text[])
	WITH ORDINALITY AS u(at, tid, ref, kp, ip, ua, st, oc, dt, bs, ms, eid, ord)
ORDER BY u.ord`

const timeFormat = "2006-01-02T15:04:05.999999Z07:00"

// WriteBatch stores every record in one transaction: new events with their
// outbox rows, then the audit rows. An event whose (trigger, delivery id)
// is already stored, by this batch or any earlier transaction on any
// instance, is not stored again: its Result names the first event and its
// audit row says duplicate. Either every record is stored or none is.
func (s *Store) WriteBatch(ctx context.Context, recs []*Record) ([]Result, error) {
	results := make([]Result, len(recs))
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if err := writeEvents(ctx, tx, recs, results); err != nil {
			return err
		}
		return writeAudit(ctx, tx, recs, results)
	})
	if err != nil {
		return nil, fmt.Errorf("write batch of %d: %w", len(recs), err)
	}
	return results, nil
}

func writeEvents(ctx context.Context, tx *sqlx.Tx, recs []*Record, results []Result) error {
	var ids, refs, srcs, payloads, metas, ats []string
	var tids []int64
	var dids []sql.NullString
	for _, r := range recs {
		e := r.Event
		if e == nil {
			continue
		}
		ids = append(ids, e.ID)
		tids = append(tids, e.TriggerID)
		refs = append(refs, e.TriggerRef)
		srcs = append(srcs, e.Source)
		payloads = append(payloads, string(e.Payload))
		metas = append(metas, string(e.Metadata))
		ats = append(ats, e.ReceivedAt.UTC().Format(timeFormat))
		if e.DeliveryID != nil {
			dids = append(dids, sql.NullString{String: clean(*e.DeliveryID), Valid: true})
		} else {
			dids = append(dids, sql.NullString{})
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var inserted []string
	if err := tx.SelectContext(ctx, &inserted, insertEvents, pq.Array(ids), pq.Array(tids), pq.Array(refs),
		pq.Array(srcs), pq.Array(payloads), pq.Array(metas), pq.Array(dids), pq.Array(ats)); err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	if len(inserted) < len(ids) {
		if err := resolveDuplicates(ctx, tx, recs, inserted, results); err != nil {
			return err
		}
	}
	fresh := make([]string, 0, len(ids))
	for i, r := range recs {
		if r.Event != nil && !results[i].Duplicate {
			results[i].EventID = r.Event.ID
			fresh = append(fresh, r.Event.ID)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, insertOutbox, pq.Array(fresh)); err != nil {
		return fmt.Errorf("insert outbox: %w", err)
	}
	return nil
}

// resolveDuplicates marks the records whose event was not inserted and finds
// the event that holds their delivery id.
func resolveDuplicates(ctx context.Context, tx *sqlx.Tx, recs []*Record, inserted []string, results []Result) error {
	ok := make(map[string]bool, len(inserted))
	for _, id := range inserted {
		ok[id] = true
	}
	var tids []int64
	var dids []string
	for _, r := range recs {
		if r.Event != nil && !ok[r.Event.ID] && r.Event.DeliveryID != nil {
			tids = append(tids, r.Event.TriggerID)
			dids = append(dids, clean(*r.Event.DeliveryID))
		}
	}
	var rows []struct {
		TriggerID  int64  `db:"trigger_id"`
		DeliveryID string `db:"delivery_id"`
		ID         string `db:"id"`
	}
	if err := tx.SelectContext(ctx, &rows, selectDuplicates, pq.Array(tids), pq.Array(dids)); err != nil {
		return fmt.Errorf("find duplicates: %w", err)
	}
	type dk struct {
		tid int64
		did string
	}
	first := make(map[dk]string, len(rows))
	for _, r := range rows {
		first[dk{r.TriggerID, r.DeliveryID}] = r.ID
	}
	for i, r := range recs {
		if r.Event == nil || ok[r.Event.ID] {
			continue
		}
		if r.Event.DeliveryID == nil {
			return fmt.Errorf("event %s was not inserted and has no delivery id", r.Event.ID)
		}
		id, found := first[dk{r.Event.TriggerID, clean(*r.Event.DeliveryID)}]
		if !found {
			return fmt.Errorf("event %s was not inserted and no event holds its delivery id", r.Event.ID)
		}
		results[i] = Result{EventID: id, Duplicate: true}
	}
	return nil
}

func writeAudit(ctx context.Context, tx *sqlx.Tx, recs []*Record, results []Result) error {
	n := len(recs)
	ats, refs, kps, ips, uas, ocs, dts := make([]string, n), make([]sql.NullString, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	eids := make([]sql.NullString, n)
	tids := make([]sql.NullInt64, n)
	sts := make([]int64, n)
	bss := make([]int64, n)
	mss := make([]float64, n)
	for i, r := range recs {
		a := &r.Audit
		if results[i].Duplicate {
			a.Outcome = problem.Duplicate
		}
		if results[i].EventID != "" {
			id := results[i].EventID
			a.EventID = &id
		}
		ats[i] = a.ReceivedAt.UTC().Format(timeFormat)
		if a.TriggerID != nil {
			tids[i] = sql.NullInt64{Int64: *a.TriggerID, Valid: true}
		}
		if a.TriggerRef != nil {
			refs[i] = sql.NullString{String: *a.TriggerRef, Valid: true}
		}
		kps[i], ips[i], uas[i], ocs[i], dts[i] = clean(a.KeyPrefix), clean(a.SourceIP), clean(a.UserAgent), a.Outcome, clean(a.Detail)
		sts[i], bss[i], mss[i] = int64(a.Status), a.BodySize, a.DurationMS
		if a.EventID != nil {
			eids[i] = sql.NullString{String: *a.EventID, Valid: true}
		}
	}
	if _, err := tx.ExecContext(ctx, insertAudit, pq.Array(ats), pq.Array(tids), pq.Array(refs), pq.Array(kps),
		pq.Array(ips), pq.Array(uas), pq.Array(sts), pq.Array(ocs), pq.Array(dts), pq.Array(bss),
		pq.Array(mss), pq.Array(eids)); err != nil {
		return fmt.Errorf("insert audit: %w", err)
	}
	return nil
}

// clean makes s storable in a PostgreSQL text column: valid UTF-8, no NUL,
// at most 1024 bytes.
func clean(s string) string {
	if len(s) > 1024 {
		s = s[:1024]
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// Since returns the duration from t in milliseconds, for Audit.DurationMS.
func Since(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }
