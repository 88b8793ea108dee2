//! TOTP rows: each user's sealed secret (never in clear: `auth::totp` seals it before it
//! gets here), the replay guard (`last_step`, moved by one conditional UPDATE so that two
//! replicas cannot both accept a code) and the digests of single-use recovery codes.

use super::{Store, StoreError, on_pool};
use crate::model::{TotpRecord, now};

impl Store {
    pub async fn totp_of(&self, user_id: i64) -> Result<Option<TotpRecord>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT user_id, secret_sealed, confirmed, last_step, created_at, code_failures, \
             code_failures_since FROM user_totp WHERE user_id = $1")
            .bind(user_id).fetch_optional(pool).await)?)
    }

    /// Starts (or restarts) an enrolment: an unconfirmed secret. Refused (`Conflict`) while
    /// a confirmed one exists: disable it first.
    pub async fn begin_totp(&self, user_id: i64, sealed: &str) -> Result<(), StoreError> {
        let done = on_pool!(self, pool => sqlx::query(
            "INSERT INTO user_totp (user_id, secret_sealed, confirmed, last_step, created_at) \
             VALUES ($1, $2, FALSE, 0, $3) \
             ON CONFLICT (user_id) DO UPDATE SET secret_sealed = $2, created_at = $3, last_step = 0 \
             WHERE user_totp.confirmed = FALSE")
            .bind(user_id).bind(sealed).bind(now())
            .execute(pool).await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::Conflict("two-factor enrolment"));
        }
        Ok(())
    }

    /// Confirms a pending enrolment whose first code was for `step`, replacing the user's
    /// recovery codes with `recovery_digests`, in one transaction. False when there was no
    /// pending enrolment (or it was confirmed meanwhile).
    pub async fn confirm_totp(
        &self,
        user_id: i64,
        step: i64,
        recovery_digests: &[String],
    ) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE user_totp SET confirmed = TRUE, last_step = $2 \
                 WHERE user_id = $1 AND confirmed = FALSE")
                .bind(user_id).bind(step).execute(&mut *tx).await?.rows_affected();
            if done == 0 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM totp_recovery_codes WHERE user_id = $1")
                .bind(user_id).execute(&mut *tx).await?;
            for digest in recovery_digests {
                sqlx::query("INSERT INTO totp_recovery_codes (user_id, digest) VALUES ($1, $2)")
                    .bind(user_id).bind(digest).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Removes the user's TOTP secret and recovery codes. True when there was one.
    pub async fn delete_totp(&self, user_id: i64) -> Result<bool, StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("DELETE FROM user_totp WHERE user_id = $1")
                .bind(user_id).execute(&mut *tx).await?.rows_affected();
            sqlx::query("DELETE FROM totp_recovery_codes WHERE user_id = $1")
                .bind(user_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(done > 0)
        })
    }

    /// The replay guard: moves the user's last used step to `step` if it is later, in one
    /// statement. True when this call moved it (the code may be accepted); false when that
    /// step or a later one was already used, here or on another replica.
    pub async fn use_totp_step(&self, user_id: i64, step: i64) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(
            "UPDATE user_totp SET last_step = $2, code_failures = 0 \
             WHERE user_id = $1 AND confirmed = TRUE AND last_step < $2")
            .bind(user_id).bind(step).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Counts a wrong code for the account (from any address) and returns how many there
    /// were in the current window of `window` seconds (a new window starts when it is over).
    pub async fn totp_code_failed(
        &self,
        user_id: i64,
        at: i64,
        window: i64,
    ) -> Result<i64, StoreError> {
        let count: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "UPDATE user_totp SET \
               code_failures = CASE WHEN code_failures_since <= $2 - $3 THEN 1 \
                               ELSE code_failures + 1 END, \
               code_failures_since = CASE WHEN code_failures_since <= $2 - $3 THEN $2 \
                                     ELSE code_failures_since END \
             WHERE user_id = $1 RETURNING code_failures")
            .bind(user_id).bind(at).bind(window).fetch_optional(pool).await)?;
        Ok(count.unwrap_or(0))
    }

    /// Spends a recovery code: true when its digest was there (and is now gone).
    pub async fn use_recovery_code(&self, user_id: i64, digest: &str) -> Result<bool, StoreError> {
        let done = on_pool!(self, pool => sqlx::query(
            "DELETE FROM totp_recovery_codes WHERE user_id = $1 AND digest = $2")
            .bind(user_id).bind(digest).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Recovery codes the user has left.
    pub async fn recovery_codes_left(&self, user_id: i64) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM totp_recovery_codes WHERE user_id = $1")
            .bind(user_id).fetch_one(pool).await)?)
    }

    /// Ids of users with a confirmed second factor (for listings).
    pub async fn users_with_totp(&self) -> Result<Vec<i64>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT user_id FROM user_totp WHERE confirmed = TRUE ORDER BY user_id")
            .fetch_all(pool).await)?)
    }
}
