//! Account management: the rules for creating and changing users, grants, SSH keys and API
//! keys, shared by the CLI and the REST API.
//!
//! Validation lives here (usernames, passwords, key names and paths, permission sets,
//! expiry), as does the audit record of every change. Who may call what is decided by the
//! caller (the CLI is a site admin; the REST API checks rights first); this module enforces
//! only the rules that hold whoever asks, such as "a key never exceeds its owner".

mod keys;
mod totp;
mod users;

use std::sync::Arc;

pub use keys::{CreatedKey, KeyOwner, KeySpec, KeyUpdate, MAX_KEYS_PER_USER};
pub use totp::{TotpEnrolment, TotpState};
pub use users::{UserSpec, validate_username};

use crate::audit::AuditSink;
use crate::auth::{PasswordError, Passwords};
use crate::files::{Files, FsError};
use crate::identity::Principal;
use crate::path::SitePath;
use crate::store::{Store, StoreError};

/// Why an account change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The request itself is wrong; the message says how, for the client.
    #[error("{0}")]
    Invalid(String),
    /// A name that must be unique is taken.
    #[error("{0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    /// The change would give a key more than the rules let this actor give it (only site
    /// admins widen keys; a key may only narrow itself); the message says which rule.
    #[error("{0}")]
    Widening(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Password(#[from] PasswordError),
}

impl From<StoreError> for AccountError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => {
                AccountError::Conflict(format!("that {what} is already taken"))
            }
            other => AccountError::Store(other),
        }
    }
}

fn invalid<T>(message: impl Into<String>) -> Result<T, AccountError> {
    Err(AccountError::Invalid(message.into()))
}

/// The account service. Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
    passwords: Passwords,
    audit: Arc<dyn AuditSink>,
    /// The file layer, to make the folders grants and key paths name (see
    /// [`Accounts::with_folders`]).
    folders: Option<Arc<Files>>,
    /// The key TOTP secrets are sealed with (see [`Accounts::with_totp`]).
    totp: Option<Arc<crate::auth::totp::Sealer>>,
}

impl Accounts {
    pub fn new(store: Store, passwords: Passwords, audit: Arc<dyn AuditSink>) -> Accounts {
        Accounts {
            store,
            passwords,
            audit,
            folders: None,
            totp: None,
        }
    }

    /// Makes the folder a new grant or a new key's path names when it is missing, through
    /// `files` (so as the actor, checked and audited like any mkdir).
    pub fn with_folders(mut self, files: Arc<Files>) -> Accounts {
        self.folders = Some(files);
        self
    }

    /// Makes `path` and its missing parents, as `actor`. Best effort: a folder the actor
    /// may not make, or a file in the way, is logged and left; the grant or key stands
    /// (its owner sees a missing folder as an empty one).
    async fn ensure_folder(&self, actor: &Principal, path: &SitePath) {
        let Some(files) = &self.folders else { return };
        let mut at = SitePath::root();
        for segment in path.segments() {
            at = match at.join(segment) {
                Ok(next) => next,
                Err(_) => return,
            };
            let missing = match files.stat(actor, &at).await {
                Ok(_) => false,
                Err(FsError::NotFound) => true,
                Err(err) => {
                    tracing::warn!(path = %at.as_str(), error = %err, "cannot make the folder a grant or key names");
                    return;
                }
            };
            if missing {
                match files.make_dir(actor, &at).await {
                    Ok(()) | Err(FsError::AlreadyExists) => {}
                    Err(err) => {
                        tracing::warn!(path = %at.as_str(), error = %err, "cannot make the folder a grant or key names");
                        return;
                    }
                }
            }
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}
