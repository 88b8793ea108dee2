//! State that replicas share through the store: failed-login counters and bans, secrets
//! every replica must agree on, and change counters that tell a replica its in-memory copy
//! of something is stale.

use super::{Store, StoreError, on_pool};
use crate::auth::{FailureState, LedgerError, LockoutLedger, LockoutWindow};

impl Store {
    /// A random 256-bit secret (hex) named `name`, made by the first replica that asks and
    /// the same for every replica after it.
    pub async fn shared_secret(&self, name: &str) -> Result<String, StoreError> {
        let fresh = crate::secret::random_hex(32);
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO shared_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name).bind(&fresh).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT value FROM shared_secrets WHERE name = $1")
            .bind(name).fetch_one(pool).await)?)
    }

    /// Adds one to the counter `name` (created at 1).
    pub async fn bump_counter(&self, name: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO change_counters (name, value) VALUES ($1, 1) \
             ON CONFLICT (name) DO UPDATE SET value = change_counters.value + 1")
            .bind(name).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The counter `name` (0 when never bumped).
    pub async fn counter(&self, name: &str) -> Result<i64, StoreError> {
        let value: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT value FROM change_counters WHERE name = $1")
            .bind(name).fetch_optional(pool).await)?;
        Ok(value.unwrap_or(0))
    }
}

fn ledger_error(err: sqlx::Error) -> LedgerError {
    LedgerError(err.to_string())
}

/// `(failures, window_start_ms, banned_until_ms)` of a row.
type FailureRow = (i64, i64, Option<i64>);

fn state((failures, window_start_ms, banned_until_ms): FailureRow) -> FailureState {
    FailureState {
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        window_start_ms,
        banned_until_ms,
    }
}

/// One statement, so that failures counted at once by several replicas all count. A row
/// whose window has passed, or whose ban has ended, starts again at one failure.
const RECORD_FAILURE: &str = "\
INSERT INTO login_failures (scope, failures, window_start_ms, banned_until_ms, updated_ms) \
VALUES ($1, 1, $2, CASE WHEN $4 <= 1 THEN $2 + $5 ELSE NULL END, $2) \
ON CONFLICT (scope) DO UPDATE SET \
  failures = CASE WHEN login_failures.window_start_ms <= $2 - $3 \
                    OR login_failures.banned_until_ms <= $2 \
             THEN 1 ELSE login_failures.failures + 1 END, \
  window_start_ms = CASE WHEN login_failures.window_start_ms <= $2 - $3 \
                           OR login_failures.banned_until_ms <= $2 \
                    THEN $2 ELSE login_failures.window_start_ms END, \
  banned_until_ms = CASE \
      WHEN (login_failures.window_start_ms <= $2 - $3 OR login_failures.banned_until_ms <= $2) \
           THEN CASE WHEN $4 <= 1 THEN $2 + $5 ELSE NULL END \
      WHEN login_failures.failures + 1 >= $4 THEN $2 + $5 \
      ELSE login_failures.banned_until_ms END, \
  updated_ms = $2 \
RETURNING failures, window_start_ms, banned_until_ms";

#[async_trait::async_trait]
impl LockoutLedger for Store {
    async fn record_failure(
        &self,
        scope: &str,
        at_ms: i64,
        window: &LockoutWindow,
    ) -> Result<FailureState, LedgerError> {
        let row: FailureRow = on_pool!(self, pool => sqlx::query_as(RECORD_FAILURE)
            .bind(scope)
            .bind(at_ms)
            .bind(window.window_ms)
            .bind(i64::from(window.max_failures))
            .bind(window.ban_ms)
            .fetch_one(pool).await)
        .map_err(ledger_error)?;
        Ok(state(row))
    }

    async fn clear_failures(&self, scope: &str, at_ms: i64) -> Result<(), LedgerError> {
        on_pool!(self, pool => sqlx::query(
            "DELETE FROM login_failures WHERE scope = $1 \
             AND (banned_until_ms IS NULL OR banned_until_ms <= $2)")
            .bind(scope).bind(at_ms).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(ledger_error)?;
        Ok(())
    }

    async fn changed_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<(String, FailureState)>, LedgerError> {
        let rows: Vec<(String, i64, i64, Option<i64>)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT scope, failures, window_start_ms, banned_until_ms FROM login_failures \
             WHERE updated_ms >= $1")
            .bind(since_ms).fetch_all(pool).await)
        .map_err(ledger_error)?;
        Ok(rows
            .into_iter()
            .map(|(scope, f, w, b)| (scope, state((f, w, b))))
            .collect())
    }

    async fn forget_before(&self, before_ms: i64) -> Result<(), LedgerError> {
        on_pool!(self, pool => sqlx::query(
            "DELETE FROM login_failures WHERE updated_ms < $1 \
             AND (banned_until_ms IS NULL OR banned_until_ms < $1)")
            .bind(before_ms).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(ledger_error)?;
        Ok(())
    }
}
