//! REST API sessions (`POST /sessions`): only the digest of a session token is stored.

use super::{Store, StoreError, on_pool};
use crate::model::SessionRecord;

impl Store {
    pub async fn insert_session(
        &self,
        token_digest: &str,
        user_id: i64,
        created_at: i64,
        expires_at: i64,
    ) -> Result<SessionRecord, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "INSERT INTO sessions (token_digest, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4) RETURNING id, token_digest, user_id, created_at, expires_at")
            .bind(token_digest).bind(user_id).bind(created_at).bind(expires_at)
            .fetch_one(pool).await)?)
    }

    pub async fn session_by_digest(
        &self,
        token_digest: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT id, token_digest, user_id, created_at, expires_at FROM sessions \
             WHERE token_digest = $1")
            .bind(token_digest).fetch_optional(pool).await)?)
    }

    pub async fn delete_session(&self, token_digest: &str) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query("DELETE FROM sessions WHERE token_digest = $1")
            .bind(token_digest).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// Removes sessions that expired before `now`; returns how many.
    pub async fn purge_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let done = on_pool!(self, pool => sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done)
    }
}
