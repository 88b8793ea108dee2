-- State that several replicas share (issue: several replicas on one PostgreSQL).

-- Failed-login counters and bans, per "a:<address>" and "p:<address> <login>" scope. Every
-- replica counts into the same row and polls rows changed since its last look.
CREATE TABLE login_failures (
    scope           TEXT   NOT NULL PRIMARY KEY,
    failures        BIGINT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    banned_until_ms BIGINT,
    updated_ms      BIGINT NOT NULL
);
CREATE INDEX login_failures_updated ON login_failures (updated_ms);

-- Random keys every replica must agree on (e.g. the REST API's cursor signing key), made by
-- whichever replica starts first.
CREATE TABLE shared_secrets (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

-- Change counters that let replicas know when an in-memory copy is stale.
CREATE TABLE change_counters (
    name  TEXT   NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
