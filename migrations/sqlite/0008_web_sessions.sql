-- Web console sessions: only the SHA-256 digest of the cookie's random 256-bit id is stored.
-- `user_revision` is the user's revision at sign-in (a later change to the user's rights or
-- credentials ends the session); `last_seen_at` drives the idle expiry, `expires_at` is the
-- absolute one. Shared by every replica.
CREATE TABLE web_sessions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    token_digest  TEXT    NOT NULL UNIQUE,
    user_id       BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_revision BIGINT  NOT NULL,
    created_at    BIGINT  NOT NULL,
    last_seen_at  BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
