package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/inlet-dev/inlet/pkg/event"
)

// Limits of a replay.
const (
	DefaultReplayLimit = 1000
	MaxReplayLimit     = 10000
	// replayChunk is how many events a replay reads and writes at a time,
	// so that its memory does not grow with the events' sizes times the
	// limit.
	replayChunk = 100
)

// ReplayFilter selects the events a range replay stores again: those of
// one trigger received in [Since, Until), oldest first, at most Limit.
type ReplayFilter struct {
	TriggerID    int64
	Since, Until time.Time
	Limit        int
}

// ReplayEvent stores event id again as a new event, and returns it.
func (s *Store) ReplayEvent(ctx context.Context, id string, now time.Time) (event.Event, error) {
	var out []replayed
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var err error
		out, err = replay(ctx, tx, `SELECT `+eventColumns+` FROM events WHERE id = $1`, []any{id}, now)
		if err != nil {
			return err
		}
		if len(out) == 0 {
			return ErrNotFound
		}
		return record(ctx, tx, "event.replay", id, "new event "+out[0].ID)
	})
	if err != nil {
		return event.Event{}, fmt.Errorf("replay %s: %w", id, mapErr(err))
	}
	return out[0].Event, nil
}

// ReplayRange stores again, as new events, the events f selects, oldest
// first, in one transaction, and returns the new events' ids in that
// order.
func (s *Store) ReplayRange(ctx context.Context, f ReplayFilter, now time.Time) ([]string, error) {
	ids := []string{}
	// The replays are received now: a range reaching now must not take
	// them for events to replay.
	until := f.Until
	if at := event.Time(now); until.After(at) {
		until = at
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var after Cursor
		for len(ids) < f.Limit {
			args := []any{f.TriggerID, f.Since, until, min(replayChunk, f.Limit-len(ids))}
			q := `SELECT ` + eventColumns + ` FROM events WHERE trigger_id = $1 AND received_at >= $2 AND received_at < $3`
			if !after.IsZero() {
				q += ` AND (received_at, id) > ($5, $6)`
				args = append(args, after.At, after.ID)
			}
			q += ` ORDER BY received_at, id LIMIT $4`
			evs, err := replay(ctx, tx, q, args, now)
			if err != nil {
				return err
			}
			for _, e := range evs {
				ids = append(ids, e.ID)
			}
			if len(evs) < replayChunk {
				break
			}
			after = Cursor{At: evs[len(evs)-1].replayedAt, ID: evs[len(evs)-1].replayOf}
		}
		return record(ctx, tx, "event.replay", fmt.Sprintf("trigger %d from %s to %s", f.TriggerID,
			f.Since.UTC().Format(time.RFC3339), f.Until.UTC().Format(time.RFC3339)), "replayed "+strconv.Itoa(len(ids)))
	})
	if err != nil {
		return nil, fmt.Errorf("replay events of trigger %d: %w", f.TriggerID, err)
	}
	return ids, nil
}

// replayed is a new event and where its original sits in the replay's
// order.
type replayed struct {
	event.Event
	replayOf   string
	replayedAt time.Time // the original's received_at
}

// replay reads the events q selects and inserts a replay of each, with
// a delivery for every enabled destination of its trigger, as the writer
// does for new events. The replays go through the outbox like any event.
func replay(ctx context.Context, tx *sqlx.Tx, q string, args []any, now time.Time) ([]replayed, error) {
	var originals []event.Event
	if err := tx.SelectContext(ctx, &originals, q, args...); err != nil {
		return nil, err
	}
	if len(originals) == 0 {
		return nil, nil
	}
	at := event.Time(now)
	out := make([]replayed, len(originals))
	cols := struct {
		ids, refs, payloads, metas pq.StringArray
		triggers                   pq.Int64Array
	}{}
	for i, o := range originals {
		md, err := replayMetadata(o, at)
		if err != nil {
			return nil, err
		}
		e := event.Event{ID: event.MustNewID(at), TriggerID: o.TriggerID, TriggerRef: o.TriggerRef,
			Source: event.SourceReplay, Payload: o.Payload, Metadata: md, ReceivedAt: at}
		out[i] = replayed{Event: e, replayOf: o.ID, replayedAt: o.ReceivedAt.UTC()}
		cols.ids = append(cols.ids, e.ID)
		cols.triggers = append(cols.triggers, e.TriggerID)
		cols.refs = append(cols.refs, e.TriggerRef)
		cols.payloads = append(cols.payloads, string(e.Payload))
		cols.metas = append(cols.metas, string(e.Metadata))
	}
	_, err := tx.ExecContext(ctx, `WITH ins AS (
			INSERT INTO events (id, trigger_id, trigger_ref, source, payload, metadata, received_at)
			SELECT id, tid, ref, 'replay', p::json, m::json, $6 FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[])
				WITH ORDINALITY AS u (id, tid, ref, p, m, ord) ORDER BY ord
			RETURNING id, trigger_id
		)
		INSERT INTO deliveries (id, event_id, destination_id, status, next_attempt_at)
		SELECT inlet_new_id('dlv_'), ins.id, d.id, 'pending', now()
		FROM ins JOIN destinations d ON d.trigger_id = ins.trigger_id AND d.enabled`,
		cols.ids, cols.triggers, cols.refs, cols.payloads, cols.metas, at)
	if err != nil {
		return nil, fmt.Errorf("store replays: %w", err)
	}
	return out, nil
}

// replayMetadata is o's metadata for its replay at: source "replay",
// replay_of o's id, received_at the replay's. The sender's delivery id is
// left out, so that a consumer de-duplicating on it does not drop the
// replay.
func replayMetadata(o event.Event, at time.Time) (json.RawMessage, error) {
	var md event.Metadata
	if err := json.Unmarshal(o.Metadata, &md); err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", o.ID, err)
	}
	md.Source, md.ReplayOf, md.ReceivedAt, md.DeliveryID = event.SourceReplay, o.ID, at, ""
	if md.Headers == nil {
		md.Headers = map[string]string{}
	}
	return json.Marshal(md)
}
