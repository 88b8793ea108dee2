-- filegate schema (SQLite). Keep in step with migrations/postgres/0001_init.sql.
-- Timestamps are Unix seconds (UTC), audit times Unix milliseconds.

CREATE TABLE users (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    username           TEXT    NOT NULL,
    username_key       TEXT    NOT NULL UNIQUE,
    password_hash      TEXT,
    site_admin         BOOLEAN NOT NULL DEFAULT FALSE,
    disabled           BOOLEAN NOT NULL DEFAULT FALSE,
    sftp_permission    BOOLEAN NOT NULL DEFAULT TRUE,
    ftp_permission     BOOLEAN NOT NULL DEFAULT TRUE,
    dav_permission     BOOLEAN NOT NULL DEFAULT TRUE,
    restapi_permission BOOLEAN NOT NULL DEFAULT TRUE,
    allowed_ips        TEXT    NOT NULL DEFAULT '',
    name               TEXT,
    email              TEXT,
    revision           BIGINT  NOT NULL DEFAULT 1,
    created_at         BIGINT  NOT NULL,
    last_login_at      BIGINT
);

CREATE TABLE grants (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    path       TEXT    NOT NULL,
    level      TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    UNIQUE (user_id, path, level)
);
CREATE INDEX grants_user ON grants (user_id);

CREATE TABLE api_keys (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT    NOT NULL,
    name_key           TEXT    NOT NULL UNIQUE,
    description        TEXT,
    user_id            BIGINT  REFERENCES users(id) ON DELETE CASCADE,
    secret_digest      TEXT    NOT NULL UNIQUE,
    path               TEXT,
    permission_set     TEXT    NOT NULL,
    platform           TEXT,
    created_at         BIGINT  NOT NULL,
    expires_at         BIGINT,
    last_use_at        BIGINT,
    created_by_user_id BIGINT
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE public_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title      TEXT    NOT NULL,
    public_key TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    UNIQUE (user_id, public_key)
);

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    token_digest TEXT    NOT NULL UNIQUE,
    user_id      BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL
);

CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms       BIGINT  NOT NULL,
    node        TEXT    NOT NULL,
    session_id  TEXT,
    user_id     BIGINT,
    username    TEXT,
    key_id      BIGINT,
    protocol    TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    path        TEXT,
    destination TEXT,
    bytes       BIGINT,
    result      TEXT    NOT NULL,
    reason      TEXT,
    remote_addr TEXT
);
CREATE INDEX audit_events_user ON audit_events (user_id, id);
