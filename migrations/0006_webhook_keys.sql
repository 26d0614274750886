-- +goose Up
-- Several keys per trigger, and keys that a copy of the database does not
-- reveal. The receiver looks a key up by its SHA-256 (a key carries 190
-- random bits, so the hash cannot be reversed by guessing); the key itself
-- is kept sealed (AES-256-GCM, INLET_SECRET_KEY) so that the API can show
-- it to operators. Keys carried over from the old table are stored as
-- 'plain:<key>' until inlet's next start seals them.
--
-- role: the trigger's one primary key (the one regenerate replaces), extra
-- keys made through the API, and replaced primary keys that keep working
-- until expires_at (a regenerate with a grace period).
CREATE TABLE webhook_keys_v2 (
    id         BIGSERIAL PRIMARY KEY,
    trigger_id BIGINT NOT NULL REFERENCES triggers (id) ON DELETE CASCADE,
    hash       BYTEA NOT NULL UNIQUE,
    sealed     TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    label      TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('primary', 'extra', 'replaced')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ
);
INSERT INTO webhook_keys_v2 (trigger_id, hash, sealed, prefix, label, role, created_at, expires_at)
SELECT trigger_id, sha256(convert_to(key, 'UTF8')), 'plain:' || key, left(key, 8),
       CASE WHEN expires_at IS NULL THEN 'primary' ELSE 'replaced' END,
       CASE WHEN expires_at IS NULL THEN 'primary' ELSE 'replaced' END,
       created_at, expires_at
FROM webhook_keys;
DROP TABLE webhook_keys;
ALTER TABLE webhook_keys_v2 RENAME TO webhook_keys;
ALTER SEQUENCE webhook_keys_v2_id_seq RENAME TO webhook_keys_id_seq;
ALTER INDEX webhook_keys_v2_pkey RENAME TO webhook_keys_pkey;
ALTER INDEX webhook_keys_v2_hash_key RENAME TO webhook_keys_hash_key;
CREATE INDEX webhook_keys_trigger ON webhook_keys (trigger_id);
CREATE UNIQUE INDEX webhook_keys_primary ON webhook_keys (trigger_id) WHERE role = 'primary';
CREATE UNIQUE INDEX webhook_keys_label ON webhook_keys (trigger_id, label) WHERE role <> 'replaced';

CREATE TRIGGER webhook_keys_notify AFTER INSERT OR UPDATE OR DELETE ON webhook_keys
    FOR EACH ROW EXECUTE FUNCTION inlet_notify_trigger_change();

-- Management API tokens know where they came from, so that a restart can
-- retire the value INLET_ADMIN_TOKEN no longer holds, and the token
-- generated at first start once a configured one replaces it.
ALTER TABLE api_tokens ADD COLUMN origin TEXT NOT NULL DEFAULT 'cli'
    CHECK (origin IN ('generated', 'env', 'cli'));
UPDATE api_tokens SET origin = 'env' WHERE name = 'INLET_ADMIN_TOKEN';
UPDATE api_tokens SET origin = 'generated'
WHERE id = (SELECT min(id) FROM api_tokens WHERE name = 'admin');
