-- +goose Up
-- One row per request to the receiver, accepted or not.
CREATE TABLE audit_log (
    id          BIGSERIAL PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL,
    trigger_id  BIGINT,
    trigger_ref TEXT,
    key_prefix  TEXT NOT NULL DEFAULT '',
    source_ip   TEXT NOT NULL DEFAULT '',
    user_agent  TEXT NOT NULL DEFAULT '',
    status      SMALLINT NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    body_size   BIGINT NOT NULL DEFAULT 0,
    duration_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
    event_id    TEXT
);
CREATE INDEX audit_log_trigger ON audit_log (trigger_id, received_at DESC, id DESC);
CREATE INDEX audit_log_trigger_outcome ON audit_log (trigger_id, outcome, received_at DESC, id DESC);
