//! WebDAV locks: the store side of `webdav::LockStore`. The rules (conflicts, caps, who may
//! unlock) are the front-end's; this is SQL only.
//!
//! Taking a lock runs in one transaction that first bumps the `dav_locks` change counter:
//! that row lock serialises every lock taken, on every replica, so that the conflicts and
//! counts read in the transaction stay true until it commits.

use super::{Store, StoreError, on_pool};
use crate::webdav::{Decide, LockCounts, LockRecord, LockStore, LockStoreError};

const COLUMNS: &str = "token, path, dav_path, deep, shared, owner, user_id, user_revision, \
     key_id, key_revision, site_admin, client_ip, owner_xml, timeout_ms, expires_ms";

const BUMP: &str = "INSERT INTO change_counters (name, value) VALUES ('dav_locks', 1) \
     ON CONFLICT (name) DO UPDATE SET value = change_counters.value + 1";

#[derive(sqlx::FromRow)]
struct Row {
    token: String,
    path: String,
    dav_path: String,
    deep: bool,
    shared: bool,
    owner: String,
    user_id: Option<i64>,
    user_revision: Option<i64>,
    key_id: Option<i64>,
    key_revision: Option<i64>,
    site_admin: bool,
    client_ip: Option<String>,
    owner_xml: Option<Vec<u8>>,
    timeout_ms: i64,
    expires_ms: i64,
}

impl From<Row> for LockRecord {
    fn from(r: Row) -> LockRecord {
        LockRecord {
            token: r.token,
            path: r.path,
            dav_path: r.dav_path,
            deep: r.deep,
            shared: r.shared,
            owner: r.owner,
            user_id: r.user_id,
            user_revision: r.user_revision,
            key_id: r.key_id,
            key_revision: r.key_revision,
            site_admin: r.site_admin,
            client_ip: r.client_ip,
            owner_xml: r.owner_xml,
            timeout_ms: r.timeout_ms,
            expires_ms: r.expires_ms,
        }
    }
}

/// `SELECT` of the live locks (`$1`: now) on any of `paths` (`$3`…) and, with `below`,
/// under `$2`.
fn live_query(paths: usize, below: bool) -> String {
    let list: Vec<String> = (0..paths).map(|i| format!("${}", i + 3)).collect();
    let mut which = Vec::new();
    if !list.is_empty() {
        which.push(format!("path IN ({})", list.join(", ")));
    }
    if below {
        which.push("path = $2 OR substr(path, 1, length($2) + 1) = $2 || '/' OR $2 = '/'".into());
    }
    if which.is_empty() {
        which.push("FALSE".into());
    }
    format!(
        "SELECT {COLUMNS} FROM dav_locks WHERE expires_ms > $1 AND ($2 = $2) AND ({}) \
         ORDER BY path, token",
        which.join(" OR ")
    )
}

fn seam(err: impl std::fmt::Display) -> LockStoreError {
    LockStoreError(err.to_string())
}

impl Store {
    async fn lock_rows(
        &self,
        paths: &[String],
        below: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<LockRecord>, StoreError> {
        let sql = live_query(paths.len(), below.is_some());
        let rows: Vec<Row> = on_pool!(self, pool => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(now_ms).bind(below.unwrap_or(""));
            for p in paths {
                query = query.bind(p);
            }
            query.fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(LockRecord::from).collect())
    }
}

#[async_trait::async_trait]
impl LockStore for Store {
    async fn live_locks(
        &self,
        paths: &[String],
        below: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<LockRecord>, LockStoreError> {
        self.lock_rows(paths, below, now_ms).await.map_err(seam)
    }

    async fn live_lock(
        &self,
        token: &str,
        now_ms: i64,
    ) -> Result<Option<LockRecord>, LockStoreError> {
        let sql = format!("SELECT {COLUMNS} FROM dav_locks WHERE token = $1 AND expires_ms > $2");
        let row: Option<Row> =
            on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(token).bind(now_ms).fetch_optional(pool).await)
            .map_err(seam)?;
        Ok(row.map(LockRecord::from))
    }

    async fn lock_counts(&self, owner: &str, now_ms: i64) -> Result<LockCounts, LockStoreError> {
        let (total, mine): (i64, i64) = on_pool!(self, pool => sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN owner = $1 THEN 1 ELSE 0 END), 0) \
             FROM dav_locks WHERE expires_ms > $2")
            .bind(owner).bind(now_ms).fetch_one(pool).await)
        .map_err(seam)?;
        Ok(LockCounts {
            total: u64::try_from(total).unwrap_or(0),
            owner: u64::try_from(mine).unwrap_or(0),
        })
    }

    async fn insert_lock(
        &self,
        new: &LockRecord,
        along: &[String],
        now_ms: i64,
        decide: Decide<'_>,
    ) -> Result<Result<(), Option<LockRecord>>, LockStoreError> {
        let sql = live_query(along.len(), true);
        let verdict = on_pool!(self, pool => {
            let mut tx = pool.begin().await.map_err(seam)?;
            sqlx::query(BUMP).execute(&mut *tx).await.map_err(seam)?;
            sqlx::query("DELETE FROM dav_locks WHERE expires_ms <= $1")
                .bind(now_ms).execute(&mut *tx).await.map_err(seam)?;
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(now_ms).bind(&new.path);
            for p in along {
                query = query.bind(p);
            }
            let rows: Vec<Row> = query.fetch_all(&mut *tx).await.map_err(seam)?;
            let locks: Vec<LockRecord> = rows.into_iter().map(LockRecord::from).collect();
            let (total, mine): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN owner = $1 THEN 1 ELSE 0 END), 0) \
                 FROM dav_locks WHERE expires_ms > $2")
                .bind(&new.owner).bind(now_ms).fetch_one(&mut *tx).await.map_err(seam)?;
            let counts = LockCounts {
                total: u64::try_from(total).unwrap_or(0),
                owner: u64::try_from(mine).unwrap_or(0),
            };
            let verdict = decide(&locks, counts);
            if verdict.is_ok() {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO dav_locks ({COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)")))
                    .bind(&new.token).bind(&new.path).bind(&new.dav_path)
                    .bind(new.deep).bind(new.shared).bind(&new.owner)
                    .bind(new.user_id).bind(new.user_revision)
                    .bind(new.key_id).bind(new.key_revision)
                    .bind(new.site_admin).bind(&new.client_ip).bind(&new.owner_xml)
                    .bind(new.timeout_ms).bind(new.expires_ms)
                    .execute(&mut *tx).await.map_err(seam)?;
            }
            tx.commit().await.map_err(seam)?;
            verdict
        });
        Ok(verdict)
    }

    async fn remove_lock(&self, token: &str) -> Result<bool, LockStoreError> {
        let n = on_pool!(self, pool => sqlx::query("DELETE FROM dav_locks WHERE token = $1")
            .bind(token).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(seam)?;
        Ok(n > 0)
    }

    async fn refresh_lock(
        &self,
        token: &str,
        timeout_ms: i64,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<bool, LockStoreError> {
        let n = on_pool!(self, pool => sqlx::query(
            "UPDATE dav_locks SET timeout_ms = $2, expires_ms = $3 \
             WHERE token = $1 AND expires_ms > $4")
            .bind(token).bind(timeout_ms).bind(expires_ms).bind(now_ms)
            .execute(pool).await.map(|r| r.rows_affected()))
        .map_err(seam)?;
        Ok(n > 0)
    }

    async fn remove_locks_under(&self, path: &str) -> Result<(), LockStoreError> {
        on_pool!(self, pool => sqlx::query(
            "DELETE FROM dav_locks WHERE path = $1 OR $1 = '/' \
             OR substr(path, 1, length($1) + 1) = $1 || '/'")
            .bind(path).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(seam)?;
        Ok(())
    }
}
