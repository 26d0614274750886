package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/inlet-dev/inlet/pkg/destination"
	"github.com/inlet-dev/inlet/pkg/secret"
	"github.com/inlet-dev/inlet/pkg/sign"
)

type destRow struct {
	ID                      string        `db:"id"`
	TriggerID               int64         `db:"trigger_id"`
	TriggerRef              string        `db:"trigger_ref"`
	Name                    string        `db:"name"`
	URL                     string        `db:"url"`
	Enabled                 bool          `db:"enabled"`
	Scheme                  string        `db:"scheme"`
	SecretSealed            string        `db:"secret_sealed"`
	PreviousSecretSealed    string        `db:"previous_secret_sealed"`
	PreviousSecretExpiresAt *time.Time    `db:"previous_secret_expires_at"`
	Headers                 []byte        `db:"headers"`
	TimeoutSeconds          int           `db:"timeout_seconds"`
	RetrySchedule           pq.Int64Array `db:"retry_schedule_seconds"`
	MaxInFlight             int           `db:"max_in_flight"`
	ConsecutiveFailures     int           `db:"consecutive_failures"`
	CircuitOpenUntil        *time.Time    `db:"circuit_open_until"`
	CreatedAt               time.Time     `db:"created_at"`
	UpdatedAt               time.Time     `db:"updated_at"`
}

const destColumns = `d.id, d.trigger_id, t.ref AS trigger_ref, d.name, d.url, d.enabled, d.scheme,
	d.secret_sealed, d.previous_secret_sealed, d.previous_secret_expires_at, d.headers,
	d.timeout_seconds, d.retry_schedule_seconds, d.max_in_flight, d.consecutive_failures,
	d.circuit_open_until, d.created_at, d.updated_at`

const destFrom = ` FROM destinations d JOIN triggers t ON t.id = d.trigger_id`

func destContext(id, field string) string { return "destination/" + id + "/" + field }

func (s *Store) decodeDestination(r destRow) (destination.Destination, error) {
	d := destination.Destination{
		ID: r.ID, TriggerID: r.TriggerID, TriggerRef: r.TriggerRef, Name: r.Name, URL: r.URL, Enabled: r.Enabled,
		Scheme: sign.Scheme(r.Scheme), PreviousSecretExpiresAt: utcPtr(r.PreviousSecretExpiresAt),
		TimeoutSeconds: r.TimeoutSeconds, MaxInFlight: r.MaxInFlight, Headers: map[string]secret.Value{},
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		Circuit: destination.Circuit{ConsecutiveFailures: r.ConsecutiveFailures, OpenUntil: utcPtr(r.CircuitOpenUntil)},
	}
	d.RetrySchedule = make([]int, len(r.RetrySchedule))
	for i, v := range r.RetrySchedule {
		d.RetrySchedule[i] = int(v)
	}
	for _, f := range []struct {
		dst    *secret.Value
		sealed string
		field  string
	}{
		{&d.Secret, r.SecretSealed, "secret"},
		{&d.PreviousSecret, r.PreviousSecretSealed, "previous_secret"},
	} {
		if f.sealed == "" {
			continue
		}
		v, err := s.open(f.sealed, destContext(r.ID, f.field))
		if err != nil {
			return d, err
		}
		*f.dst = secret.Value(v)
	}
	var headers map[string]string
	if err := json.Unmarshal(r.Headers, &headers); err != nil {
		return d, fmt.Errorf("headers of destination %s: %w", r.ID, err)
	}
	for name, sealed := range headers {
		v, err := s.open(sealed, destContext(r.ID, "header/"+name))
		if err != nil {
			return d, err
		}
		d.Headers[name] = secret.Value(v)
	}
	return d, nil
}

// sealedDestination is what a destination stores of its secrets.
type sealedDestination struct {
	secret, previous string
	headers          []byte
}

func (s *Store) sealDestination(d destination.Destination) (sealedDestination, error) {
	var out sealedDestination
	var err error
	if d.Secret != "" {
		if out.secret, err = s.seal(string(d.Secret), destContext(d.ID, "secret")); err != nil {
			return out, err
		}
	}
	if d.PreviousSecret != "" {
		if out.previous, err = s.seal(string(d.PreviousSecret), destContext(d.ID, "previous_secret")); err != nil {
			return out, err
		}
	}
	headers := make(map[string]string, len(d.Headers))
	for name, v := range d.Headers {
		if headers[name], err = s.seal(string(v), destContext(d.ID, "header/"+name)); err != nil {
			return out, err
		}
	}
	out.headers, err = json.Marshal(headers)
	return out, err
}

func schedule(d destination.Destination) pq.Int64Array {
	out := make(pq.Int64Array, len(d.RetrySchedule))
	for i, v := range d.RetrySchedule {
		out[i] = int64(v)
	}
	return out
}

// CreateDestination stores d, a validated destination whose ID is set.
func (s *Store) CreateDestination(ctx context.Context, d destination.Destination) (destination.Destination, error) {
	sealed, err := s.sealDestination(d)
	if err != nil {
		return d, err
	}
	var out destination.Destination
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO destinations (id, trigger_id, name, url, enabled, scheme,
				secret_sealed, headers, timeout_seconds, retry_schedule_seconds, max_in_flight)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			d.ID, d.TriggerID, d.Name, d.URL, d.Enabled, string(d.Scheme), sealed.secret, sealed.headers,
			d.TimeoutSeconds, schedule(d), d.MaxInFlight); err != nil {
			return err
		}
		if err := record(ctx, tx, "destination.create", d.ID+" ("+d.Name+")"); err != nil {
			return err
		}
		var err error
		out, err = s.getDestination(ctx, tx, d.ID)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("create destination: %w", mapErr(err))
	}
	return out, nil
}

// GetDestination returns one destination.
func (s *Store) GetDestination(ctx context.Context, id string) (destination.Destination, error) {
	return s.getDestination(ctx, s.db, id)
}

func (s *Store) getDestination(ctx context.Context, q sqlx.QueryerContext, id string) (destination.Destination, error) {
	var r destRow
	if err := sqlx.GetContext(ctx, q, &r, `SELECT `+destColumns+destFrom+` WHERE d.id = $1`, id); err != nil {
		return destination.Destination{}, mapErr(err)
	}
	return s.decodeDestination(r)
}

// ListDestinations returns a trigger's destinations, oldest first.
func (s *Store) ListDestinations(ctx context.Context, triggerID int64) ([]destination.Destination, error) {
	var rows []destRow
	if err := s.db.SelectContext(ctx, &rows, `SELECT `+destColumns+destFrom+` WHERE d.trigger_id = $1 ORDER BY d.created_at, d.id`, triggerID); err != nil {
		return nil, fmt.Errorf("list destinations: %w", err)
	}
	out := make([]destination.Destination, 0, len(rows))
	for _, r := range rows {
		d, err := s.decodeDestination(r)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// UpdateDestination changes a destination under a row lock: fn edits it
// and returns an error to change nothing. The activity log records the
// names of the fields that changed, and action (destination.update,
// destination.rotate_secret, ...).
func (s *Store) UpdateDestination(ctx context.Context, id, action string, fn func(*destination.Destination) error) (destination.Destination, error) {
	var out destination.Destination
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var r destRow
		if err := tx.GetContext(ctx, &r, `SELECT `+destColumns+destFrom+` WHERE d.id = $1 FOR UPDATE OF d`, id); err != nil {
			return err
		}
		d, err := s.decodeDestination(r)
		if err != nil {
			return err
		}
		old := d
		old.Headers = maps(d.Headers)
		if err := fn(&d); err != nil {
			return err
		}
		sealed, err := s.sealDestination(d)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE destinations SET name = $2, url = $3, enabled = $4, secret_sealed = $5,
				previous_secret_sealed = $6, previous_secret_expires_at = $7, headers = $8, timeout_seconds = $9,
				retry_schedule_seconds = $10, max_in_flight = $11, updated_at = now() WHERE id = $1`,
			d.ID, d.Name, d.URL, d.Enabled, sealed.secret, sealed.previous, d.PreviousSecretExpiresAt, sealed.headers,
			d.TimeoutSeconds, schedule(d), d.MaxInFlight); err != nil {
			return err
		}
		if err := record(ctx, tx, action, d.ID+" ("+d.Name+")", changedFields(old, d)...); err != nil {
			return err
		}
		out, err = s.getDestination(ctx, tx, id)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("update destination %s: %w", id, mapErr(err))
	}
	return out, nil
}

func maps(m map[string]secret.Value) map[string]secret.Value {
	out := make(map[string]secret.Value, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// changedFields names the settings that differ between a and b, never
// their values.
func changedFields(a, b destination.Destination) []string {
	var out []string
	add := func(name string, changed bool) {
		if changed {
			out = append(out, name)
		}
	}
	add("name", a.Name != b.Name)
	add("url", a.URL != b.URL)
	add("enabled", a.Enabled != b.Enabled)
	add("signing.secret", a.Secret != b.Secret)
	add("timeout_seconds", a.TimeoutSeconds != b.TimeoutSeconds)
	add("retry_schedule_seconds", !slices.Equal(a.RetrySchedule, b.RetrySchedule))
	add("max_in_flight", a.MaxInFlight != b.MaxInFlight)
	var headers []string
	for name, v := range b.Headers {
		if w, ok := a.Headers[name]; !ok || w != v {
			headers = append(headers, "headers."+name)
		}
	}
	for name := range a.Headers {
		if _, ok := b.Headers[name]; !ok {
			headers = append(headers, "headers."+name)
		}
	}
	sort.Strings(headers)
	return append(out, headers...)
}

// cancelDeliveries fails pending deliveries, as a deleted destination's;
// callers add the condition that picks them.
const cancelDeliveries = `UPDATE deliveries SET status = 'failed', last_error = 'canceled: the destination was deleted',
	updated_at = now() WHERE status = 'pending'`

// CancelOrphanDeliveries fails the pending deliveries of destinations
// that are gone: those a batch committed beside the deletion of their
// destination, whose snapshot still showed it (DestinationStates finds
// them).
func (s *Store) CancelOrphanDeliveries(ctx context.Context, destIDs []string) (int64, error) {
	res, err := s.db.ExecContext(ctx, cancelDeliveries+` AND destination_id = ANY($1)
		AND NOT EXISTS (SELECT 1 FROM destinations d WHERE d.id = deliveries.destination_id)`, pq.StringArray(destIDs))
	if err != nil {
		return 0, fmt.Errorf("cancel orphan deliveries: %w", err)
	}
	return res.RowsAffected()
}

// DeleteDestination removes a destination. Its pending deliveries are
// canceled: they fail with a last_error saying so, and stay in the
// history with their attempts.
func (s *Store) DeleteDestination(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var name string
		if err := tx.GetContext(ctx, &name, `DELETE FROM destinations WHERE id = $1 RETURNING name`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, cancelDeliveries+` AND destination_id = $1`, id); err != nil {
			return err
		}
		return record(ctx, tx, "destination.delete", id+" ("+name+")")
	})
	if err != nil {
		return fmt.Errorf("delete destination %s: %w", id, mapErr(err))
	}
	return nil
}

// DestinationStats is what GET /api/v1/destinations/:id shows of a
// destination's deliveries.
type DestinationStats struct {
	Pending       int64      `json:"pending"`
	Succeeded     int64      `json:"succeeded"`
	Failed        int64      `json:"failed"`
	LastSuccessAt *time.Time `json:"last_success_at"`
	LastFailureAt *time.Time `json:"last_failure_at"`
	// OldestPendingAt is when the oldest pending delivery was created.
	OldestPendingAt *time.Time `json:"oldest_pending_at"`
}

// Stats returns a destination's delivery statistics: counters the
// forwarder keeps, and the pending deliveries (as many as wait).
func (s *Store) DestinationStats(ctx context.Context, id string) (DestinationStats, error) {
	var st DestinationStats
	err := s.db.QueryRowxContext(ctx, `SELECT COALESCE(sum(succeeded), 0)::bigint, COALESCE(sum(failed), 0)::bigint,
			max(last_success_at), max(last_failure_at)
		FROM destination_usage WHERE destination_id = $1`, id).Scan(&st.Succeeded, &st.Failed, &st.LastSuccessAt, &st.LastFailureAt)
	if err != nil {
		return st, fmt.Errorf("destination stats: %w", err)
	}
	err = s.db.QueryRowxContext(ctx, `SELECT count(*), min(created_at) FROM deliveries WHERE destination_id = $1 AND status = 'pending'`,
		id).Scan(&st.Pending, &st.OldestPendingAt)
	if err != nil {
		return st, fmt.Errorf("destination stats: %w", err)
	}
	st.LastSuccessAt, st.LastFailureAt, st.OldestPendingAt = utcPtr(st.LastSuccessAt), utcPtr(st.LastFailureAt), utcPtr(st.OldestPendingAt)
	return st, nil
}
