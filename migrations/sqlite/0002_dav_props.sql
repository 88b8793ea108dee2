-- WebDAV dead properties (PROPPATCH), kept with the store so they survive restarts.
CREATE TABLE dav_props (
    path      TEXT NOT NULL,
    namespace TEXT NOT NULL DEFAULT '',
    name      TEXT NOT NULL,
    prefix    TEXT,
    xml       BLOB,
    PRIMARY KEY (path, namespace, name)
);
