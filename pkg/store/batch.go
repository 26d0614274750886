package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"

	"github.com/inlet-dev/inlet/pkg/event"
	"github.com/inlet-dev/inlet/pkg/outcome"
)

// Record is one answer of the receiver to store: its audit row and, for an
// accepted request, its event, or its events when the trigger splits a
// request into several.
type Record struct {
	Event *event.Event
	// Batch, when set instead of Event, holds the events of one request,
	// stored all or none; each is de-duplicated on its own delivery id.
	Batch []*event.Event
	Audit Audit
}

// events returns r's events in order.
func (r *Record) events() []*event.Event {
	if r.Batch != nil {
		return r.Batch
	}
	if r.Event != nil {
		return []*event.Event{r.Event}
	}
	return nil
}

// Result says what became of a Record's event: of its first event, for a
// batch, whose every event has its own result in Elements.
type Result struct {
	// EventID is the stored event's id, or the id of the event that an
	// earlier delivery with the same delivery id created.
	EventID string
	// Duplicate is set when the record stored nothing new: its event, or
	// every event of its batch, was a duplicate.
	Duplicate bool
	// ReceivedAt is when the event named by EventID was received: for a
	// duplicate, the first delivery's time.
	ReceivedAt time.Time
	// Elements holds a batch's results, one per event in order.
	Elements []Result
}

// writeBatch stores a batch in one statement, which PostgreSQL runs as one
// transaction: one round trip (with a prepared statement), one commit. It
// fails without writing anything when it starts after the deadline $26
// (inlet_before), and adds the batch's requests to the statistics tables
// under the writer's slot $27.
//
// Events ($1-$8, with $21 the ordinal of each one's record) repeating a
// (trigger, delivery id) of an earlier event of the batch are left out by
// WriteBatch. Every other event is inserted; one whose delivery id is
// already stored, by a transaction committed before or concurrently,
// updates that row to itself instead, which returns the stored row's id
// (and waits for a concurrent inserter, as DO NOTHING would). So every
// event row of $1-$8 comes back from ins, and held names the event that
// holds each delivery: the new one, or the first. Every record gets its
// audit row ($9-$20), naming its first event ($20, or ” for none), with
// event_count the number of its events that were new; a record with events
// none of which was new says duplicate ($22). Only the events that
// were not new come back. New events take their publication position (the
// transaction's id and a sequence number) from column defaults, in batch
// order, and a delivery for every destination of their trigger enabled at
// this moment.
const writeBatch = `
WITH ok AS (
	SELECT inlet_before($26) AS ok
), e AS (
	SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $21::int[])
		WITH ORDINALITY AS u(id, tid, ref, src, payload, metadata, did, at, rec, ord)
), ins AS (
	INSERT INTO events (id, trigger_id, trigger_ref, source, payload, metadata, delivery_id, received_at)
	SELECT id, tid, ref, src, payload::json, metadata::json, did, at::timestamptz FROM e, ok WHERE ok.ok ORDER BY ord
	ON CONFLICT (trigger_id, delivery_id) WHERE delivery_id IS NOT NULL
	DO UPDATE SET delivery_id = EXCLUDED.delivery_id
	RETURNING id, trigger_id, delivery_id, received_at
), held AS (
	SELECT e.ord, e.id, e.rec, i.id AS held, i.received_at AS held_at FROM e JOIN ins i ON i.trigger_id = e.tid AND i.delivery_id = e.did
	UNION ALL
	SELECT ord, id, rec, id, at::timestamptz FROM e WHERE did IS NULL
), fresh AS (
	SELECT rec, count(*) AS n FROM held WHERE held = id GROUP BY rec
), queued AS (
	INSERT INTO deliveries (id, event_id, destination_id, status, next_attempt_at)
	SELECT inlet_new_id('dlv_'), h.id, d.id, 'pending', now()
	FROM held h JOIN e ON e.ord = h.ord JOIN destinations d ON d.trigger_id = e.tid AND d.enabled
	WHERE h.held = h.id
), audited AS (
	INSERT INTO audit_log (received_at, trigger_id, trigger_ref, key_prefix, source_ip, user_agent,
		status, outcome, detail, body_size, duration_ms, event_id, "count", key_id, key_label, event_count)
	SELECT a.at::timestamptz, a.tid, a.ref, a.kp, a.ip, a.ua, a.st,
		CASE WHEN a.eid <> '' AND f.n IS NULL THEN $22 ELSE a.oc END, a.dt, a.bs, a.ms, h.held, a.cnt, a.kid, a.kl,
		CASE WHEN a.eid <> '' THEN COALESCE(f.n, 0) END
	FROM unnest($9::text[], $10::bigint[], $11::text[], $12::text[], $13::text[], $14::text[],
		$15::smallint[], $16::text[], $17::text[], $18::bigint[], $19::float8[], $20::text[],
		$23::int[], $24::bigint[], $25::text[])
		WITH ORDINALITY AS a(at, tid, ref, kp, ip, ua, st, oc, dt, bs, ms, eid, cnt, kid, kl, ord)
	CROSS JOIN ok
	LEFT JOIN held h ON h.id = a.eid
	LEFT JOIN fresh f ON f.rec = a.ord
	WHERE ok.ok
	ORDER BY a.ord
	RETURNING trigger_id, key_id, outcome, status, "count", event_count, received_at
), counted AS (
	INSERT INTO usage (trigger_id, key_id, outcome, slot, n, events, last_at)
	SELECT trigger_id, COALESCE(key_id, 0), outcome, $27, sum("count"), COALESCE(sum(event_count), 0), max(received_at)
	FROM audited WHERE trigger_id IS NOT NULL GROUP BY 1, 2, 3
	ON CONFLICT (trigger_id, key_id, outcome, slot) DO UPDATE
	SET n = usage.n + EXCLUDED.n, events = usage.events + EXCLUDED.events, last_at = greatest(usage.last_at, EXCLUDED.last_at)
), minutes AS (
	INSERT INTO usage_minutes (trigger_id, minute, slot, accepted, rejected)
	SELECT trigger_id, date_trunc('minute', received_at), $27,
		COALESCE(sum("count") FILTER (WHERE status = 200), 0), COALESCE(sum("count") FILTER (WHERE status <> 200), 0)
	FROM audited WHERE trigger_id IS NOT NULL GROUP BY 1, 2
	ON CONFLICT (trigger_id, minute, slot) DO UPDATE
	SET accepted = usage_minutes.accepted + EXCLUDED.accepted, rejected = usage_minutes.rejected + EXCLUDED.rejected
)
SELECT id, held, held_at FROM held WHERE held <> id`

const timeFormat = "2006-01-02T15:04:05.999999Z07:00"

// WriteBatch stores every record in one transaction: new events, then the
// audit rows. An event whose (trigger, delivery id)
// is already stored, by this batch or any earlier transaction on any
// instance, is not stored again: its Result names the first event and its
// audit row says duplicate. Either every record is stored or none is.
func (s *Store) WriteBatch(ctx context.Context, recs []*Record) ([]Result, error) {
	return s.writeBatch(ctx, nil, recs, 0, time.Time{})
}

// writeBatch runs WriteBatch through stmt, the prepared writeBatch, or
// without preparing when stmt is nil, counting the statistics under slot,
// and not at all once deadline (when set) has passed.
func (s *Store) writeBatch(ctx context.Context, stmt *sql.Stmt, recs []*Record, slot int32, deadline time.Time) ([]Result, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	b := newBatch(recs)
	b.slot = slot
	if !deadline.IsZero() {
		b.deadline = &deadline
	}
	results, err := b.write(ctx, s.db.DB, stmt)
	if err != nil {
		return nil, fmt.Errorf("write batch of %d: %w", len(recs), err)
	}
	return results, nil
}

// batch is the parameters of writeBatch for a group of records.
type batch struct {
	recs []*Record
	// elems are the records' events in order; lead[k] is the index in
	// elems of the first event of the batch with elems[k]'s (trigger,
	// delivery id): k itself, or an earlier one that k duplicates.
	elems []*event.Event
	lead  []int
	// first[i] is the index in elems of record i's first event, -1 for a
	// record without one.
	first []int

	// events, one per element that leads, with its record's ordinal
	ids, refs, srcs, payloads, metas, ats []string
	tids, recOrds                         []int64
	dids                                  nullStrings

	// audit rows, one per record
	aAts, kps, ips, uas, ocs, dts, eids []string
	aTids                               nullInt64s
	aRefs                               nullStrings
	sts, bss, cnts                      []int64
	mss                                 []float64
	kids                                nullInt64s
	kls                                 []string

	slot     int32
	deadline *time.Time
}

func newBatch(recs []*Record) *batch {
	n := len(recs)
	b := &batch{
		recs: recs, first: make([]int, n), elems: make([]*event.Event, 0, n), lead: make([]int, 0, n),
		ids: make([]string, 0, n), refs: make([]string, 0, n), srcs: make([]string, 0, n),
		payloads: make([]string, 0, n), metas: make([]string, 0, n), ats: make([]string, 0, n),
		tids: make([]int64, 0, n), recOrds: make([]int64, 0, n), dids: make(nullStrings, 0, n),
		aAts: make([]string, n), kps: make([]string, n), ips: make([]string, n), uas: make([]string, n),
		ocs: make([]string, n), dts: make([]string, n), eids: make([]string, n),
		aTids: make(nullInt64s, n), aRefs: make(nullStrings, n),
		sts: make([]int64, n), bss: make([]int64, n), mss: make([]float64, n),
		cnts: make([]int64, n), kids: make(nullInt64s, n), kls: make([]string, n),
	}
	type delivery struct {
		tid int64
		did string
	}
	var seen map[delivery]int
	for i, r := range recs {
		b.first[i] = -1
		for j, e := range r.events() {
			k := len(b.elems)
			if j == 0 {
				b.first[i] = k
			}
			b.elems = append(b.elems, e)
			b.lead = append(b.lead, k)
			var did sql.NullString
			if e.DeliveryID != nil {
				did = sql.NullString{String: clean(*e.DeliveryID), Valid: true}
				key := delivery{e.TriggerID, did.String}
				if first, ok := seen[key]; ok {
					b.lead[k] = first
				} else {
					if seen == nil {
						seen = make(map[delivery]int)
					}
					seen[key] = k
				}
			}
			if b.lead[k] == k {
				b.ids = append(b.ids, e.ID)
				b.tids = append(b.tids, e.TriggerID)
				b.refs = append(b.refs, e.TriggerRef)
				b.srcs = append(b.srcs, e.Source)
				b.payloads = append(b.payloads, string(e.Payload))
				b.metas = append(b.metas, string(e.Metadata))
				b.ats = append(b.ats, e.ReceivedAt.UTC().Format(timeFormat))
				b.dids = append(b.dids, did)
				b.recOrds = append(b.recOrds, int64(i+1))
			}
		}
		if f := b.first[i]; f >= 0 {
			b.eids[i] = b.elems[b.lead[f]].ID
		}
		a := &r.Audit
		b.aAts[i] = a.ReceivedAt.UTC().Format(timeFormat)
		if a.TriggerID != nil {
			b.aTids[i] = sql.NullInt64{Int64: *a.TriggerID, Valid: true}
		}
		if a.TriggerRef != nil {
			b.aRefs[i] = sql.NullString{String: *a.TriggerRef, Valid: true}
		}
		b.kps[i], b.ips[i], b.uas[i], b.ocs[i], b.dts[i] = clean(a.KeyPrefix), clean(a.SourceIP), clean(a.UserAgent), a.Outcome, clean(a.Detail)
		b.sts[i], b.bss[i], b.mss[i] = int64(a.Status), a.BodySize, a.DurationMS
		b.cnts[i], b.kls[i] = int64(max(a.Count, 1)), clean(a.KeyLabel)
		if a.KeyID != nil {
			b.kids[i] = sql.NullInt64{Int64: *a.KeyID, Valid: true}
		}
	}
	return b
}

func (b *batch) args() []any {
	return []any{
		pq.StringArray(b.ids), pq.Int64Array(b.tids), pq.StringArray(b.refs), pq.StringArray(b.srcs),
		pq.StringArray(b.payloads), pq.StringArray(b.metas), b.dids, pq.StringArray(b.ats),
		pq.StringArray(b.aAts), b.aTids, b.aRefs, pq.StringArray(b.kps), pq.StringArray(b.ips), pq.StringArray(b.uas),
		pq.Int64Array(b.sts), pq.StringArray(b.ocs), pq.StringArray(b.dts), pq.Int64Array(b.bss),
		pq.Float64Array(b.mss), pq.StringArray(b.eids), pq.Int64Array(b.recOrds), outcome.Duplicate,
		pq.Int64Array(b.cnts), b.kids, pq.StringArray(b.kls), b.deadline, b.slot,
	}
}

// write runs the statement and works out each record's result from the
// events that hold its deliveries. It also completes the records' audit
// rows as they were stored (outcome, event id, event count).
func (b *batch) write(ctx context.Context, db *sql.DB, stmt *sql.Stmt) ([]Result, error) {
	var rows *sql.Rows
	var err error
	if stmt != nil {
		rows, err = stmt.QueryContext(ctx, b.args()...)
	} else {
		rows, err = db.QueryContext(ctx, writeBatch, b.args()...)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	// held maps the events that were not new to the events holding their
	// deliveries; every other event was inserted.
	type holder struct {
		id string
		at time.Time
	}
	var held map[string]holder
	for rows.Next() {
		if held == nil {
			held = make(map[string]holder)
		}
		var id string
		var h holder
		if err := rows.Scan(&id, &h.id, &h.at); err != nil {
			return nil, err
		}
		held[id] = h
	}
	// The implicit transaction commits before the statement's last
	// message, so no error here means committed.
	if err := rows.Err(); err != nil {
		return nil, err
	}
	element := func(k int) Result {
		lead := b.elems[b.lead[k]]
		h, ok := held[lead.ID]
		if !ok {
			h = holder{lead.ID, lead.ReceivedAt}
		}
		return Result{EventID: h.id, Duplicate: b.lead[k] != k || h.id != lead.ID, ReceivedAt: h.at.UTC()}
	}
	results := make([]Result, len(b.recs))
	for i, r := range b.recs {
		f := b.first[i]
		if f < 0 {
			continue
		}
		res := element(f)
		fresh := 0
		if r.Batch != nil {
			res.Elements = make([]Result, len(r.Batch))
			for j := range r.Batch {
				res.Elements[j] = element(f + j)
				if !res.Elements[j].Duplicate {
					fresh++
				}
			}
			res.Duplicate = fresh == 0
		} else if !res.Duplicate {
			fresh = 1
		}
		results[i] = res
		a := &r.Audit
		a.EventID, a.EventCount = &res.EventID, &fresh
		if res.Duplicate {
			a.Outcome = outcome.Duplicate
		}
	}
	return results, nil
}

// nullStrings is a text[] parameter whose invalid elements are NULL.
type nullStrings []sql.NullString

// Value implements driver.Valuer.
func (a nullStrings) Value() (driver.Value, error) {
	n := 2
	for _, s := range a {
		n += len(s.String) + 3
	}
	buf := make([]byte, 0, n)
	buf = append(buf, '{')
	for i, s := range a {
		if i > 0 {
			buf = append(buf, ',')
		}
		if !s.Valid {
			buf = append(buf, "NULL"...)
			continue
		}
		buf = append(buf, '"')
		for j := 0; j < len(s.String); j++ {
			if c := s.String[j]; c == '"' || c == '\\' {
				buf = append(buf, '\\')
			}
			buf = append(buf, s.String[j])
		}
		buf = append(buf, '"')
	}
	return string(append(buf, '}')), nil
}

// nullInt64s is a bigint[] parameter whose invalid elements are NULL.
type nullInt64s []sql.NullInt64

// Value implements driver.Valuer.
func (a nullInt64s) Value() (driver.Value, error) {
	buf := make([]byte, 0, 2+8*len(a))
	buf = append(buf, '{')
	for i, v := range a {
		if i > 0 {
			buf = append(buf, ',')
		}
		if !v.Valid {
			buf = append(buf, "NULL"...)
			continue
		}
		buf = strconv.AppendInt(buf, v.Int64, 10)
	}
	return string(append(buf, '}')), nil
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
