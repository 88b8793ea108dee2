-- Users from an LDAP directory / Active Directory (src/auth/ldap). A user row with a row here
-- has `source = ldap`: its password is checked by binding to the directory as `dn`, and its
-- admin flag and grants are rewritten from the directory's groups at each sign-in and check.
-- Users without a row here are local and never looked up in the directory.
-- `gone`: the directory no longer found the user, so the row was disabled (a later successful
-- sign-in enables it again; a `disabled` set by an admin is never lifted by the directory).
-- `checked_at`: last sign-in or directory check by any replica (the periodic check takes the
-- oldest first).
CREATE TABLE ldap_users (
    user_id    BIGINT  NOT NULL PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    dn         TEXT    NOT NULL,
    gone       BOOLEAN NOT NULL DEFAULT FALSE,
    checked_at BIGINT  NOT NULL
);
CREATE INDEX ldap_users_checked ON ldap_users (checked_at);
