//! libunftp's authentication seam over the one authenticator.
//!
//! Each FTP connection gets its own [`FtpLogin`] holding a slot: the login puts the
//! principal there (and registers the session), the user-detail provider hands it to
//! libunftp, and the login-timeout watcher reads it. libunftp only ever sees a display name.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use unftp_core::auth::{
    AuthenticationError, Authenticator as FtpAuthenticator, ChannelEncryptionState, Credentials,
    Principal as FtpPrincipal, UserDetailError, UserDetailProvider,
};

use super::backend::FtpUser;
use crate::auth::{AuthError, Authenticator, Proof};
use crate::files::Files;
use crate::identity::{ClientInfo, Principal, Protocol};

/// The principal signed in on one connection, once there is one.
pub type Slot = Arc<Mutex<Option<Arc<Principal>>>>;

/// The principal in `slot`, if any. Only an `Option` is stored under the lock, so a poisoned
/// lock still holds a consistent value.
pub fn signed_in(slot: &Slot) -> Option<Arc<Principal>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Authenticates one connection's `USER`/`PASS`.
pub struct FtpLogin {
    pub auth: Arc<Authenticator>,
    pub slot: Slot,
    /// Refuse logins on a plaintext control channel.
    pub require_tls: bool,
    /// Registers the signed-in session in the session registry.
    pub register: Box<dyn Fn(Arc<Principal>) + Send + Sync>,
}

impl fmt::Debug for FtpLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FtpLogin")
    }
}

#[async_trait::async_trait]
impl FtpAuthenticator for FtpLogin {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<FtpPrincipal, AuthenticationError> {
        if self.require_tls && creds.command_channel_security != ChannelEncryptionState::Tls {
            return Err(AuthenticationError::new(
                "TLS is required before login (AUTH TLS)",
            ));
        }
        let password = creds.password.as_deref().unwrap_or("");
        let client = ClientInfo::new(Some(creds.source_ip));
        match self
            .auth
            .login(username, Proof::Password(password), Protocol::Ftp, client)
            .await
        {
            Ok(principal) => {
                let name = principal.display_name();
                let principal = Arc::new(principal);
                *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(principal.clone());
                (self.register)(principal);
                Ok(FtpPrincipal { username: name })
            }
            Err(AuthError::Refused | AuthError::LockedOut) => Err(AuthenticationError::BadPassword),
            Err(AuthError::Unavailable) => Err(AuthenticationError::new(
                "authentication is temporarily unavailable",
            )),
        }
    }
}

/// Hands libunftp the principal the login found, with its start folder as home (its scope
/// roots made first when missing).
pub struct SlotUsers {
    pub slot: Slot,
    pub files: Arc<Files>,
}

impl fmt::Debug for SlotUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SlotUsers")
    }
}

#[async_trait::async_trait]
impl UserDetailProvider for SlotUsers {
    type User = FtpUser;

    async fn provide_user_detail(
        &self,
        principal: &FtpPrincipal,
    ) -> Result<FtpUser, UserDetailError> {
        match signed_in(&self.slot) {
            Some(p) => {
                self.files.ensure_roots(&p).await;
                let home = PathBuf::from(self.files.start_dir(&p).as_str());
                Ok(FtpUser(p, home))
            }
            None => Err(UserDetailError::UserNotFound {
                username: principal.username.clone(),
            }),
        }
    }
}
