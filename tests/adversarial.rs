//! The adversarial suite (issue 11): everything here attacks a whole gateway over real
//! sockets on 127.0.0.1 (and 127.0.0.2 for a second, innocent client).
//!
//! - `matrix`: (a) every principal kind × every operation × every protocol, expected
//!   outcomes from one table, checked against the disk.
//! - `webdav_locks`, `sessions`, `exhaustion`, `ftp_data`, `ftp_sendfile`, `api_keys`, `sftp_extensions`: (b) and (d),
//!   one named test per reproduction of the classes.
//! - `console`: the web console's CSRF, rights, key-id and traversal defences.
//! - `ldap`: LDAP filter injection, empty passwords, directory names shadowing local users.
//! - `two_factor`: codes alone, empty, lettered or overlong; a stolen password alone on
//!   every protocol; the console's code page from another address or with a forged token.
//! - `webhooks`: who may manage webhook behaviors, and URLs/headers aimed inside.
//!
//! (c), the fuzz targets, live in `fuzz/` (run by `.ci/run`).

mod support;

#[path = "adversarial/api_keys.rs"]
mod api_keys;
#[path = "adversarial/clients.rs"]
mod clients;
#[path = "adversarial/console.rs"]
mod console;
#[path = "adversarial/exhaustion.rs"]
mod exhaustion;
#[path = "adversarial/ftp_data.rs"]
mod ftp_data;
#[path = "adversarial/ftp_sendfile.rs"]
mod ftp_sendfile;
#[path = "adversarial/ldap.rs"]
mod ldap;
#[path = "adversarial/matrix.rs"]
mod matrix;
#[path = "adversarial/sessions.rs"]
mod sessions;
#[path = "adversarial/sftp_extensions.rs"]
mod sftp_extensions;
#[path = "adversarial/two_factor.rs"]
mod two_factor;
#[path = "adversarial/webdav_locks.rs"]
mod webdav_locks;
#[path = "adversarial/webhooks.rs"]
mod webhooks;
