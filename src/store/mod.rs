//! The store: every durable row filegate keeps, in SQLite (default) or PostgreSQL.
//!
//! [`Store`] holds one of two pools and runs the same SQL (with `$1` placeholders) on
//! either; the [`on_pool!`] macro expands a query once per backend so both are type-checked.
//! Migrations live in `migrations/sqlite` and `migrations/postgres` and run at connect. This
//! module holds SQL only: no permission rules, no secrets in the clear.

mod audit;
mod auth_impl;
mod keys;
mod ldap;
mod live;
mod locks;
mod props;
mod sessions;
mod shared;
mod totp;
mod users;
mod web_sessions;
mod webhooks;

pub use audit::{AuditQuery, AuditSearch};
pub use keys::{KeyChanges, KeyOwnerFilter, NewKey};
pub use live::{Change, ChangeListener, LiveRow};
pub use users::{NewUser, UserChanges};
pub use webhooks::{AttemptResult, BehaviorRow, DeliveryRow};

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL {0:?} is neither sqlite: nor postgres:")]
    UnsupportedUrl(String),
    #[error("a record with this {0} already exists")]
    Conflict(&'static str),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    fn from_write(err: sqlx::Error, what: &'static str) -> StoreError {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
            _ => StoreError::Database(err),
        }
    }

    /// True when the database could not be reached (as opposed to a bad query or row).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Database(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
            )
        )
    }
}

#[derive(Clone, Debug)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend is in use.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            crate::store::Pool::Sqlite($pool) => $body,
            crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    /// Webhook rules in memory and the worker's wake-up (`webhooks`).
    hooks: std::sync::Arc<webhooks::HookCache>,
}

impl Store {
    /// Connects to `url` (`sqlite://path` / `sqlite:path`, or `postgres://…`), creating a
    /// SQLite file if needed, and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Store {
                pool: Pool::Sqlite(pool),
                hooks: Default::default(),
            }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            Store {
                pool: Pool::Postgres(pool),
                hooks: Default::default(),
            }
        } else {
            return Err(StoreError::UnsupportedUrl(url.chars().take(40).collect()));
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations of the backend in use (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Pool::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Closes every connection (waits for queries in flight).
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

#[cfg(test)]
mod tests;
