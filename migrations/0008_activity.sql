-- +goose Up
-- Every management change, with the token that made it: who disabled a
-- trigger, who rotated a key. changes names the fields a change touched,
-- never their values.
CREATE TABLE activity (
    id         BIGSERIAL PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    token_id   BIGINT,
    token_name TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    changes    TEXT[] NOT NULL DEFAULT '{}'
);
CREATE INDEX activity_at ON activity (at DESC, id DESC);
