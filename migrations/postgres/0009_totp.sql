-- TOTP second factor (RFC 6238). `secret_sealed` is the shared secret sealed with the
-- gateway's TOTP key (ChaCha20-Poly1305, nonce prepended, the user id as associated data):
-- never stored in clear. A row with `confirmed` false is an enrolment waiting for its first
-- code. `last_step` is the replay guard: a code is accepted only for a time step after the
-- last one used, moved forward by one conditional UPDATE (shared by every replica).
CREATE TABLE user_totp (
    user_id       BIGINT  PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret_sealed TEXT    NOT NULL,
    confirmed     BOOLEAN NOT NULL DEFAULT FALSE,
    last_step     BIGINT  NOT NULL DEFAULT 0,
    created_at    BIGINT  NOT NULL,
    -- Wrong codes for this account from any address since `code_failures_since` (seconds):
    -- past the per-account limit, TOTP codes are not checked until the window ends.
    code_failures       BIGINT NOT NULL DEFAULT 0,
    code_failures_since BIGINT NOT NULL DEFAULT 0
);
-- Single-use recovery codes, stored as SHA-256 digests; a used code's row is deleted.
CREATE TABLE totp_recovery_codes (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    digest  TEXT   NOT NULL,
    PRIMARY KEY (user_id, digest)
);
