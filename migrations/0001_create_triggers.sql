-- +goose Up
-- Triggers come from packs (pack_owned) or from the API. Webhook state (key,
-- enabled flag, settings) lives beside the pack-owned columns and is never
-- touched by a pack reload.
CREATE TABLE triggers (
    id               BIGSERIAL PRIMARY KEY,
    ref              TEXT NOT NULL UNIQUE,
    pack             TEXT NOT NULL,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    payload_schema   JSONB,
    webhook_enabled  BOOLEAN NOT NULL DEFAULT FALSE,
    webhook_settings JSONB NOT NULL,
    webhook_created_at TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Keys are unique across all triggers. The current key has no expiry; a
-- regenerated key's predecessor keeps working until expires_at.
CREATE TABLE webhook_keys (
    key        TEXT PRIMARY KEY,
    trigger_id BIGINT NOT NULL REFERENCES triggers (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ
);
CREATE INDEX webhook_keys_trigger ON webhook_keys (trigger_id);
CREATE UNIQUE INDEX webhook_keys_current ON webhook_keys (trigger_id) WHERE expires_at IS NULL;

-- Every change to a trigger or its keys is announced on channel
-- inlet_triggers with the trigger id, so each instance drops its cached copy
-- on the next request, whoever made the change.
-- +goose StatementBegin
CREATE FUNCTION inlet_notify_trigger_change() RETURNS trigger AS $$
BEGIN
    IF TG_TABLE_NAME = 'triggers' THEN
        PERFORM pg_notify('inlet_triggers', COALESCE(NEW.id, OLD.id)::text);
    ELSE
        PERFORM pg_notify('inlet_triggers', COALESCE(NEW.trigger_id, OLD.trigger_id)::text);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

CREATE TRIGGER triggers_notify AFTER INSERT OR UPDATE OR DELETE ON triggers
    FOR EACH ROW EXECUTE FUNCTION inlet_notify_trigger_change();
CREATE TRIGGER webhook_keys_notify AFTER INSERT OR UPDATE OR DELETE ON webhook_keys
    FOR EACH ROW EXECUTE FUNCTION inlet_notify_trigger_change();
