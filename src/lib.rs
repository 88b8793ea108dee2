//! filegate: one server for SFTP, FTP/FTPS and WebDAV, with users, folder grants and
//! Files.com-style API keys, managed through a REST API and a CLI.
//!
//! Codemap, in the order a request flows (see ARCHITECTURE.md for the invariants):
//!
//! - [`config`]: settings from `config/filegate.toml` and `FILEGATE_*`, validated up front.
//! - [`gateway`]: the one place that wires concrete types together and runs the listeners.
//! - [`auth`]: the one authenticator — credentials → [`identity::Principal`] or a refusal.
//! - [`identity`]: plain data — principals, protocols, grant levels, permission sets.
//! - [`path`]: site paths — the one normaliser of client path strings.
//! - [`files`]: the policy-checked, audited file layer over a confined [`files::Storage`].
//! - [`accounts`]: rules for creating and changing users, grants, SSH keys and API keys.
//! - [`audit`]: audit events and the batching writer.
//! - [`store`]: sqlx on SQLite or PostgreSQL; SQL lives here and nowhere else.
//! - [`model`]: the store's rows as plain data.
//! - [`secret`]: random secrets and their digests.
//! - [`cli`]: the `filegate` command line.

/// Declares a fieldless enum whose variants each have a fixed name, with `as_str` and `ALL`
/// generated from one list, so a variant can never be missing from `ALL` (records read back by
/// name — the audit journal — would otherwise drop it silently).
#[macro_export]
macro_rules! named_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+
    }) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The fixed name of this variant.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The variant with this name, if any.
            pub fn named(text: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }
    };
}

pub mod accounts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod files;
pub mod ftp;
pub mod gateway;
pub mod http_serve;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod path;
pub mod rights;
pub mod secret;
pub mod serve;
pub mod sessions;
pub mod sftp;
pub mod store;
#[doc(hidden)]
pub mod test_support;
pub mod web;
pub mod webdav;
pub mod webhooks;
