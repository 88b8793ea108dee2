//! Web console sessions: only the digest of the cookie's random id is stored, so a copy of
//! the table signs nobody in. Every replica reads the same rows.

use super::{Store, StoreError, on_pool};
use crate::model::WebSessionRecord;

const COLUMNS: &str =
    "id, token_digest, user_id, user_revision, created_at, last_seen_at, expires_at";

impl Store {
    pub async fn insert_web_session(
        &self,
        token_digest: &str,
        user_id: i64,
        user_revision: i64,
        created_at: i64,
        expires_at: i64,
    ) -> Result<WebSessionRecord, StoreError> {
        let sql = || {
            sqlx::AssertSqlSafe(format!(
                "INSERT INTO web_sessions (token_digest, user_id, user_revision, created_at, \
             last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $4, $5) RETURNING {COLUMNS}"
            ))
        };
        Ok(on_pool!(self, pool => sqlx::query_as(sql())
            .bind(token_digest).bind(user_id).bind(user_revision).bind(created_at).bind(expires_at)
            .fetch_one(pool).await)?)
    }

    pub async fn web_session_by_digest(
        &self,
        token_digest: &str,
    ) -> Result<Option<WebSessionRecord>, StoreError> {
        let sql = || {
            sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM web_sessions WHERE token_digest = $1"
            ))
        };
        Ok(on_pool!(self, pool => sqlx::query_as(sql())
            .bind(token_digest).fetch_optional(pool).await)?)
    }

    /// Marks the session used at `at` (its idle expiry starts again).
    pub async fn touch_web_session(&self, token_digest: &str, at: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE web_sessions SET last_seen_at = $2 WHERE token_digest = $1")
            .bind(token_digest).bind(at).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Moves the session to the user's current revision, after a change the session's own
    /// user made to themselves (an SSH key added, a grant of their own) that should not sign
    /// them out.
    pub async fn set_web_session_revision(
        &self,
        token_digest: &str,
        user_revision: i64,
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE web_sessions SET user_revision = $2 WHERE token_digest = $1")
            .bind(token_digest).bind(user_revision).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn delete_web_session(&self, token_digest: &str) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(
            "DELETE FROM web_sessions WHERE token_digest = $1")
            .bind(token_digest).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// Removes sessions past their absolute expiry or idle since before `idle_before`.
    pub async fn purge_web_sessions(&self, now: i64, idle_before: i64) -> Result<u64, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(
            "DELETE FROM web_sessions WHERE expires_at < $1 OR last_seen_at < $2")
            .bind(now).bind(idle_before).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done)
    }
}
