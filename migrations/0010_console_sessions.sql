-- +goose Up
-- Sessions of the operator console. Only a hash of the session id (the
-- cookie's value) is stored; a session belongs to the token it was signed
-- in with and dies with it. flash is a one-time message for the next page,
-- sealed like every secret, since it may carry a generated one.
CREATE TABLE console_sessions (
    id_hash     BYTEA PRIMARY KEY,
    token_id    BIGINT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    csrf_secret BYTEA NOT NULL,
    flash       TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
CREATE INDEX console_sessions_token ON console_sessions (token_id);
