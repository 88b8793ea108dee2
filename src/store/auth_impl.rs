//! The store as the authenticator's [`Directory`].

use super::{Store, StoreError};
use crate::auth::{Directory, DirectoryError};
use crate::model::{GrantRecord, KeyRecord, PublicKeyRecord, TotpRecord, UserRecord};

impl From<StoreError> for DirectoryError {
    fn from(err: StoreError) -> Self {
        DirectoryError(err.to_string())
    }
}

#[async_trait::async_trait]
impl Directory for Store {
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, DirectoryError> {
        Ok(Store::user_by_name(self, username).await?)
    }
    async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, DirectoryError> {
        Ok(Store::user_by_id(self, id).await?)
    }
    async fn key_by_id(&self, id: i64) -> Result<Option<KeyRecord>, DirectoryError> {
        Ok(Store::key_by_id(self, id).await?)
    }
    async fn key_by_name(&self, name: &str) -> Result<Option<KeyRecord>, DirectoryError> {
        Ok(Store::key_by_name(self, name).await?)
    }
    async fn key_by_digest(&self, digest: &str) -> Result<Option<KeyRecord>, DirectoryError> {
        Ok(Store::key_by_digest(self, digest).await?)
    }
    async fn grants_of(&self, user_id: i64) -> Result<Vec<GrantRecord>, DirectoryError> {
        Ok(Store::grants_of(self, user_id).await?)
    }
    async fn public_keys_of(&self, user_id: i64) -> Result<Vec<PublicKeyRecord>, DirectoryError> {
        Ok(Store::public_keys_of(self, user_id).await?)
    }
    async fn touch_key(&self, id: i64, at: i64, min_interval: i64) -> Result<(), DirectoryError> {
        Store::touch_key(self, id, at, min_interval).await?;
        Ok(())
    }
    async fn touch_user_login(&self, id: i64, at: i64) -> Result<(), DirectoryError> {
        Ok(Store::touch_user_login(self, id, at).await?)
    }
    async fn totp_of(&self, user_id: i64) -> Result<Option<TotpRecord>, DirectoryError> {
        Ok(Store::totp_of(self, user_id).await?)
    }
    async fn use_totp_step(&self, user_id: i64, step: i64) -> Result<bool, DirectoryError> {
        Ok(Store::use_totp_step(self, user_id, step).await?)
    }
    async fn totp_code_failed(
        &self,
        user_id: i64,
        at: i64,
        window: i64,
    ) -> Result<i64, DirectoryError> {
        Ok(Store::totp_code_failed(self, user_id, at, window).await?)
    }
    async fn use_recovery_code(&self, user_id: i64, digest: &str) -> Result<bool, DirectoryError> {
        Ok(Store::use_recovery_code(self, user_id, digest).await?)
    }
}
