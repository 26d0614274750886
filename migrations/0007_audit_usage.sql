-- +goose Up
-- An audit record may stand for several identical rejections from one
-- source (count), answered before the key lookup during a flood. It names
-- the key by its label as well as its prefix.
ALTER TABLE audit_log ADD COLUMN count INT NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN key_id BIGINT;
ALTER TABLE audit_log ADD COLUMN key_label TEXT NOT NULL DEFAULT '';
-- How many events the request stored (a batch stores one per element; a
-- duplicate stores none); NULL for requests that were refused.
ALTER TABLE audit_log ADD COLUMN event_count INT;
-- The global audit view pages by id; a BRIN index finds where a time range
-- starts, and retention deletes by it, for the cost of a few pages.
CREATE INDEX audit_log_received_brin ON audit_log USING brin (received_at);

-- Request counts per trigger, key and outcome, kept by the writer in the
-- transaction that stores the audit records, so that statistics never
-- count the audit table. slot spreads concurrent writers over rows of
-- their own, so that they never wait for each other's row locks; readers
-- sum over slots. key_id 0 stands for requests without a key.
CREATE TABLE usage (
    trigger_id BIGINT NOT NULL,
    key_id     BIGINT NOT NULL,
    outcome    TEXT NOT NULL,
    slot       INT NOT NULL,
    n          BIGINT NOT NULL,
    events     BIGINT NOT NULL DEFAULT 0,
    last_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (trigger_id, key_id, outcome, slot)
);
CREATE INDEX usage_key ON usage (key_id) WHERE key_id <> 0;

-- The same per minute, answered 200 or not, for the health of the last
-- hour; rows older than two hours are pruned.
CREATE TABLE usage_minutes (
    trigger_id BIGINT NOT NULL,
    minute     TIMESTAMPTZ NOT NULL,
    slot       INT NOT NULL,
    accepted   BIGINT NOT NULL,
    rejected   BIGINT NOT NULL,
    PRIMARY KEY (trigger_id, minute, slot)
);

INSERT INTO usage (trigger_id, key_id, outcome, slot, n, last_at)
SELECT trigger_id, 0, outcome, 0, count(*), max(received_at)
FROM audit_log WHERE trigger_id IS NOT NULL GROUP BY trigger_id, outcome;
UPDATE usage u SET events = e.n
FROM (SELECT trigger_id, count(*) AS n FROM events GROUP BY trigger_id) e
WHERE u.trigger_id = e.trigger_id AND u.outcome = 'accepted';
INSERT INTO usage_minutes (trigger_id, minute, slot, accepted, rejected)
SELECT trigger_id, date_trunc('minute', received_at), 0,
       count(*) FILTER (WHERE status = 200), count(*) FILTER (WHERE status <> 200)
FROM audit_log WHERE trigger_id IS NOT NULL AND received_at > now() - interval '2 hours'
GROUP BY trigger_id, date_trunc('minute', received_at);

-- A batch of the writer must not commit once the requests it answers have
-- been told it failed: when a database that stopped answering (a frozen
-- host) resumes, the statements waiting for it fail here instead of
-- storing events whose senders were answered 503 and will send them again.
-- +goose StatementBegin
CREATE FUNCTION inlet_before(deadline TIMESTAMPTZ) RETURNS BOOLEAN AS $$
BEGIN
    IF deadline IS NOT NULL AND clock_timestamp() > deadline THEN
        RAISE EXCEPTION 'batch reached the database after its deadline %', deadline
            USING ERRCODE = '57014'; -- query_canceled
    END IF;
    RETURN TRUE;
END;
$$ LANGUAGE plpgsql VOLATILE;
-- +goose StatementEnd
