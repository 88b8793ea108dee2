-- One session registry across replicas, and the change log its revocation watcher reads.

-- Changes to what a user or key may do, in order. Written by triggers, so that every writer
-- (accounts, store, CLI, another replica) records them; a replica's watcher asks "changes
-- since seq N" once a second and re-checks only the sessions of the users/keys named.
-- A row with session_id asks the replica holding that live session to end it.
CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    BIGINT,
    key_id     BIGINT,
    session_id BIGINT,
    at         BIGINT NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
);

CREATE TRIGGER changes_user_rights AFTER UPDATE OF revision, disabled ON users
WHEN NEW.revision IS NOT OLD.revision OR NEW.disabled IS NOT OLD.disabled
BEGIN
    INSERT INTO changes (user_id) VALUES (NEW.id);
END;

CREATE TRIGGER changes_user_deleted AFTER DELETE ON users
BEGIN
    INSERT INTO changes (user_id) VALUES (OLD.id);
END;

CREATE TRIGGER changes_key_rights AFTER UPDATE OF revision, expires_at, user_id ON api_keys
WHEN NEW.revision IS NOT OLD.revision OR NEW.expires_at IS NOT OLD.expires_at
  OR NEW.user_id IS NOT OLD.user_id
BEGIN
    INSERT INTO changes (key_id) VALUES (NEW.id);
END;

CREATE TRIGGER changes_key_deleted AFTER DELETE ON api_keys
BEGIN
    INSERT INTO changes (key_id) VALUES (OLD.id);
END;

-- Replicas alive: each writes its heartbeat (one statement per period, with its sessions).
CREATE TABLE replicas (
    id           TEXT   NOT NULL PRIMARY KEY,
    node         TEXT   NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- One row per live session (SFTP connection, FTP control connection) of a live replica,
-- rewritten by its replica at each heartbeat; rows of a replica silent for long are dead.
CREATE TABLE live_sessions (
    id         BIGINT NOT NULL PRIMARY KEY,
    replica    TEXT   NOT NULL,
    protocol   TEXT   NOT NULL,
    username   TEXT,
    user_id    BIGINT,
    key_id     BIGINT,
    client_ip  TEXT,
    started_at BIGINT NOT NULL,
    bytes_in   BIGINT NOT NULL,
    bytes_out  BIGINT NOT NULL
);
CREATE INDEX live_sessions_replica ON live_sessions (replica);
