-- +goose Up
-- Management API bearer tokens, stored as SHA-256 hashes only.
CREATE TABLE api_tokens (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    hash       BYTEA NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ
);
