-- WebDAV locks, shared by every replica (a lock taken on one is honoured by all). Times are
-- milliseconds since the Unix epoch; rows whose expires_ms has passed are ignored and swept.
CREATE TABLE dav_locks (
    token         TEXT    NOT NULL PRIMARY KEY,
    path          TEXT    NOT NULL,
    dav_path      TEXT    NOT NULL,
    deep          BOOLEAN NOT NULL,
    shared        BOOLEAN NOT NULL,
    owner         TEXT    NOT NULL,
    user_id       BIGINT,
    user_revision BIGINT,
    key_id        BIGINT,
    key_revision  BIGINT,
    site_admin    BOOLEAN NOT NULL,
    client_ip     TEXT,
    owner_xml     BLOB,
    timeout_ms    BIGINT  NOT NULL,
    expires_ms    BIGINT  NOT NULL
);
CREATE INDEX dav_locks_path ON dav_locks (path);
CREATE INDEX dav_locks_owner ON dav_locks (owner);
CREATE INDEX dav_locks_expires ON dav_locks (expires_ms);
