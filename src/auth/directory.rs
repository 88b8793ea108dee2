//! The seam between the authenticator and the store: what a login needs to read and write.
//!
//! Defined here, next to its consumer, and implemented by `store::Store`. Tests may supply
//! their own implementation.

use crate::model::{GrantRecord, KeyRecord, PublicKeyRecord, TotpRecord, UserRecord};

/// The store could not answer (unreachable, or a broken query).
#[derive(Debug, thiserror::Error)]
#[error("credential store unavailable: {0}")]
pub struct DirectoryError(pub String);

/// Read access to identities, and the two bookkeeping writes a login makes.
#[async_trait::async_trait]
pub trait Directory: Send + Sync {
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, DirectoryError>;
    async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, DirectoryError>;
    async fn key_by_id(&self, id: i64) -> Result<Option<KeyRecord>, DirectoryError>;
    async fn key_by_name(&self, name: &str) -> Result<Option<KeyRecord>, DirectoryError>;
    async fn key_by_digest(&self, digest: &str) -> Result<Option<KeyRecord>, DirectoryError>;
    async fn grants_of(&self, user_id: i64) -> Result<Vec<GrantRecord>, DirectoryError>;
    async fn public_keys_of(&self, user_id: i64) -> Result<Vec<PublicKeyRecord>, DirectoryError>;
    /// Records a key's use unless it was recorded less than `min_interval` seconds ago.
    async fn touch_key(&self, id: i64, at: i64, min_interval: i64) -> Result<(), DirectoryError>;
    async fn touch_user_login(&self, id: i64, at: i64) -> Result<(), DirectoryError>;
    /// The user's TOTP row, if any (none by default: a directory without second factors).
    async fn totp_of(&self, _user_id: i64) -> Result<Option<TotpRecord>, DirectoryError> {
        Ok(None)
    }
    /// The replay guard: true when `step` is later than the last step used (and is now it).
    async fn use_totp_step(&self, _user_id: i64, _step: i64) -> Result<bool, DirectoryError> {
        Ok(false)
    }
    /// Counts a wrong code for the user's account (any address); returns the count in the
    /// current window of `window` seconds.
    async fn totp_code_failed(
        &self,
        _user_id: i64,
        _at: i64,
        _window: i64,
    ) -> Result<i64, DirectoryError> {
        Ok(0)
    }
    /// Spends a recovery code given as its digest: true when it was there.
    async fn use_recovery_code(
        &self,
        _user_id: i64,
        _digest: &str,
    ) -> Result<bool, DirectoryError> {
        Ok(false)
    }
}
