-- One session registry across replicas, and the change log its revocation watcher reads.

-- Changes to what a user or key may do, in order. Written by triggers, so that every writer
-- (accounts, store, CLI, another replica) records them; a replica's watcher asks "changes
-- since seq N" once a second (woken early by NOTIFY filegate_changes) and re-checks only the
-- sessions of the users/keys named. A row with session_id asks the replica holding that live
-- session to end it.
CREATE TABLE changes (
    seq        BIGSERIAL PRIMARY KEY,
    user_id    BIGINT,
    key_id     BIGINT,
    session_id BIGINT,
    at         BIGINT NOT NULL DEFAULT (EXTRACT(EPOCH FROM now())::BIGINT)
);

CREATE FUNCTION filegate_notify_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('filegate_changes', NEW.seq::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER changes_notify AFTER INSERT ON changes
FOR EACH ROW EXECUTE FUNCTION filegate_notify_change();

CREATE FUNCTION filegate_user_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO changes (user_id) VALUES (OLD.id);
    ELSIF NEW.revision IS DISTINCT FROM OLD.revision OR NEW.disabled IS DISTINCT FROM OLD.disabled THEN
        INSERT INTO changes (user_id) VALUES (NEW.id);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER changes_user AFTER UPDATE OR DELETE ON users
FOR EACH ROW EXECUTE FUNCTION filegate_user_changed();

CREATE FUNCTION filegate_key_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO changes (key_id) VALUES (OLD.id);
    ELSIF NEW.revision IS DISTINCT FROM OLD.revision OR NEW.expires_at IS DISTINCT FROM OLD.expires_at
       OR NEW.user_id IS DISTINCT FROM OLD.user_id THEN
        INSERT INTO changes (key_id) VALUES (NEW.id);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER changes_key AFTER UPDATE OR DELETE ON api_keys
FOR EACH ROW EXECUTE FUNCTION filegate_key_changed();

-- Replicas alive: each writes its heartbeat (one transaction per period, with its sessions).
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
