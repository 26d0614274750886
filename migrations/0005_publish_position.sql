-- +goose Up
-- Publishing follows a position over the events table instead of an outbox
-- table: an accepted event costs one row, not an outbox row inserted and
-- then deleted.
--
-- Every event records the id of the transaction that wrote it (xid) and a
-- sequence number (seq). The publisher takes events in (xid, seq) order, but
-- only those whose transaction is older than every transaction still running
-- (pg_snapshot_xmin of the current snapshot): such transactions have ended,
-- so no event can appear later below that point. publish_position holds how
-- far the publisher got; everything above it is waiting to be published.
ALTER TABLE events ADD COLUMN seq BIGSERIAL;
ALTER TABLE events ADD COLUMN xid xid8 NOT NULL DEFAULT '1';

-- Events published before this migration sort first, at xid 1; those still
-- in the outbox follow at xid 2, in outbox order, and are published after
-- it. Transactions from now on have real ids, which are larger.
UPDATE events e SET xid = '2', seq = m.top + o.seq
FROM outbox o, (SELECT COALESCE(max(seq), 0) AS top FROM events) m
WHERE o.event_id = e.id;
SELECT setval(pg_get_serial_sequence('events', 'seq'), GREATEST((SELECT max(seq) FROM events), 1));
ALTER TABLE events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX events_position ON events (xid, seq);

CREATE TABLE publish_position (
    id         BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    xid        xid8 NOT NULL,
    seq        BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO publish_position (xid, seq) VALUES ('1', 9223372036854775807);

-- Messages NATS refused for a reason retrying cannot fix. They are kept for
-- an operator, who can ask for another attempt once the cause is fixed; the
-- events behind them were published meanwhile.
CREATE TABLE publish_set_aside (
    event_id           TEXT PRIMARY KEY,
    trigger_ref        TEXT NOT NULL,
    reason             TEXT NOT NULL,
    set_aside_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts           INT NOT NULL DEFAULT 1,
    retry_requested_at TIMESTAMPTZ
);

DROP TABLE outbox;
DROP FUNCTION inlet_notify_outbox();
