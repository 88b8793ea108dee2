-- Webhooks as Files.com folder behaviors (issue 19). Keep in step with
-- migrations/postgres/0011_webhooks.sql.
-- behaviors: one rule per row; `path` is a site path ("/" or "/a/b"), `value` the behavior's
-- JSON settings, `secret` the HMAC key deliveries are signed with (needed in the clear to
-- sign; shown once, at creation). Changes bump change_counters('behaviors').
CREATE TABLE behaviors (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    path        TEXT    NOT NULL,
    behavior    TEXT    NOT NULL,
    name        TEXT,
    description TEXT,
    value       TEXT    NOT NULL,
    secret      TEXT    NOT NULL,
    created_ms  BIGINT  NOT NULL
);

-- The outbox: one row per (audit event, matching rule), written in the audit batch's
-- transaction; a replayed batch finds its rows and adds none. Times in milliseconds.
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key        TEXT    NOT NULL,
    behavior_id      BIGINT  NOT NULL,
    action           TEXT    NOT NULL,
    path             TEXT,
    payload          TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'pending',
    created_ms       BIGINT  NOT NULL,
    next_attempt_ms  BIGINT  NOT NULL,
    claimed_until_ms BIGINT  NOT NULL DEFAULT 0,
    claimed_by       TEXT,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    last_status      BIGINT,
    last_error       TEXT,
    last_url         TEXT,
    done_ms          BIGINT,
    UNIQUE (event_key, behavior_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_ms);
