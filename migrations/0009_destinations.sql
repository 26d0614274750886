-- +goose Up
-- Destinations: HTTP endpoints that receive every event of one trigger.
-- Secrets and header values are sealed like the triggers' (headers holds
-- name -> sealed value). The circuit breaker's state is here so that every
-- instance holds attempts while a destination is down.
CREATE TABLE destinations (
    id                         TEXT PRIMARY KEY,
    trigger_id                 BIGINT NOT NULL REFERENCES triggers (id) ON DELETE CASCADE,
    name                       TEXT NOT NULL,
    url                        TEXT NOT NULL,
    enabled                    BOOLEAN NOT NULL DEFAULT TRUE,
    scheme                     TEXT NOT NULL,
    secret_sealed              TEXT NOT NULL DEFAULT '',
    previous_secret_sealed     TEXT NOT NULL DEFAULT '',
    previous_secret_expires_at TIMESTAMPTZ,
    headers                    JSONB NOT NULL DEFAULT '{}',
    timeout_seconds            INT NOT NULL,
    retry_schedule_seconds     INT[] NOT NULL,
    max_in_flight              INT NOT NULL,
    consecutive_failures       INT NOT NULL DEFAULT 0,
    circuit_open_until         TIMESTAMPTZ,
    circuit_probe_until        TIMESTAMPTZ,
    created_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                 TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX destinations_trigger ON destinations (trigger_id) WHERE enabled;

-- Delivery ids are made in the writer's statement, for each destination
-- enabled when the event commits: "dlv_" and 26 Crockford base32 digits of
-- 48 bits of milliseconds and 80 random bits, like every other id.
-- +goose StatementBegin
CREATE FUNCTION inlet_new_id(prefix TEXT) RETURNS TEXT AS $$
DECLARE
    digits CONSTANT TEXT := '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    ms BIGINT := floor(extract(epoch FROM clock_timestamp()) * 1000);
    u BYTEA := uuid_send(gen_random_uuid());
    -- Bytes 0-5 and 10-15 of a version 4 UUID are random; 10 of them.
    b BIT(130) := (B'00' || lpad(ms::bit(48)::text, 48, '0')::bit(48)
        || ('x' || encode(substr(u, 1, 6) || substr(u, 11, 4), 'hex'))::bit(80))::bit(130);
    out TEXT := prefix;
BEGIN
    FOR i IN 0..25 LOOP
        out := out || substr(digits, substring(b FROM 1 + 5 * i FOR 5)::int + 1, 1);
    END LOOP;
    RETURN out;
END;
$$ LANGUAGE plpgsql VOLATILE;
-- +goose StatementEnd

-- A delivery is created with its event for every destination enabled at
-- that moment, and attempted until it succeeds or the schedule runs out.
-- locked_until is the lease of the instance attempting it: another may
-- take it over once it has passed.
CREATE TABLE deliveries (
    id               TEXT PRIMARY KEY,
    event_id         TEXT NOT NULL,
    destination_id   TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         INT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    locked_until     TIMESTAMPTZ,
    last_status_code INT,
    last_error       TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
) WITH (fillfactor = 80); -- room on each page for a claim's update to stay HOT
CREATE INDEX deliveries_due ON deliveries (destination_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_destination ON deliveries (destination_id, created_at DESC, id DESC);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_created_brin ON deliveries USING brin (created_at);

CREATE TABLE delivery_attempts (
    delivery_id      TEXT NOT NULL,
    attempt          INT NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    duration_ms      DOUBLE PRECISION NOT NULL,
    status_code      INT,
    error            TEXT NOT NULL DEFAULT '',
    response_excerpt TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (delivery_id, attempt)
);

-- Adding, removing, enabling or disabling a destination is announced like a
-- change to its trigger, so that every instance's receiver knows whether to
-- wake the forwarder after a commit. (Not the circuit breaker's updates,
-- which are frequent and concern no receiver.)
CREATE TRIGGER destinations_notify AFTER INSERT OR DELETE OR UPDATE OF enabled, trigger_id ON destinations
    FOR EACH ROW EXECUTE FUNCTION inlet_notify_trigger_change();

-- Deliveries that succeeded and that ran out of retries, per destination,
-- kept by the forwarder in the transaction of each attempt (slot spreads
-- concurrent attempts over rows of their own); readers sum over slots.
CREATE TABLE destination_usage (
    destination_id  TEXT NOT NULL,
    slot            INT NOT NULL,
    succeeded       BIGINT NOT NULL DEFAULT 0,
    failed          BIGINT NOT NULL DEFAULT 0,
    last_success_at TIMESTAMPTZ,
    last_failure_at TIMESTAMPTZ,
    PRIMARY KEY (destination_id, slot)
);
