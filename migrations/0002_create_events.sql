-- +goose Up
-- Events outlive their trigger, so trigger_id is not a foreign key. payload
-- and metadata are json (not jsonb) so that the stored text is exactly what
-- was published.
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    trigger_id  BIGINT NOT NULL,
    trigger_ref TEXT NOT NULL,
    source      TEXT NOT NULL DEFAULT 'webhook',
    payload     JSON NOT NULL,
    metadata    JSON NOT NULL,
    delivery_id TEXT,
    received_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX events_received ON events (received_at DESC, id DESC);
CREATE INDEX events_trigger_received ON events (trigger_id, received_at DESC, id DESC);
CREATE UNIQUE INDEX events_delivery ON events (trigger_id, delivery_id) WHERE delivery_id IS NOT NULL;

-- The transactional outbox: a row per committed, not yet published event.
-- seq orders publication; claimed_until keeps two publishers off one row.
CREATE TABLE outbox (
    seq           BIGSERIAL PRIMARY KEY,
    event_id      TEXT NOT NULL UNIQUE REFERENCES events (id) ON DELETE CASCADE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_until TIMESTAMPTZ NOT NULL DEFAULT '-infinity'
);

-- One notification per statement that queues events wakes the publisher.
-- +goose StatementBegin
CREATE FUNCTION inlet_notify_outbox() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('inlet_outbox', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION inlet_notify_outbox();
