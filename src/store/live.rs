//! The live-session table and the change log (migration 0006): what the session registry
//! (`crate::sessions`) shares between replicas.
//!
//! Each replica rewrites its own rows in one transaction per heartbeat (upsert its replica
//! row, delete its sessions, insert them again in multi-row statements, drop dead replicas),
//! so the statements per heartbeat do not grow with the session count (one more per
//! [`INSERT_CHUNK`] sessions). The change log is written by triggers on `users` and
//! `api_keys`; readers ask for changes after a sequence number.

use super::{Store, StoreError, on_pool};

/// One live session as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRow {
    pub id: i64,
    pub replica: String,
    pub protocol: String,
    pub username: Option<String>,
    pub user_id: Option<i64>,
    pub key_id: Option<i64>,
    pub client_ip: Option<String>,
    /// Unix seconds.
    pub started_at: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub user_id: Option<i64>,
    pub key_id: Option<i64>,
    /// A request to end this live session (wherever it is).
    pub session_id: Option<i64>,
}

/// Sessions per multi-row INSERT (10 parameters each; well under SQLite's 32 766).
pub const INSERT_CHUNK: usize = 1000;

/// Wakes a reader of the change log early (PostgreSQL `LISTEN filegate_changes`).
pub struct ChangeListener(sqlx::postgres::PgListener);

/// A row of the `changes` log: (seq, user_id, key_id, session_id).
type ChangeRow = (i64, Option<i64>, Option<i64>, Option<i64>);
impl ChangeListener {
    /// Waits for the next notification.
    pub async fn next(&mut self) -> Result<(), StoreError> {
        self.0.recv().await?;
        Ok(())
    }
}

/// A `live_sessions` row as read.
type LiveTuple = (
    i64,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    i64,
    i64,
    i64,
);

macro_rules! select_live {
    ($where:literal) => {
        concat!(
            "SELECT s.id, s.replica, s.protocol, s.username, s.user_id, s.key_id, s.client_ip, \
             s.started_at, s.bytes_in, s.bytes_out \
             FROM live_sessions s JOIN replicas r ON r.id = s.replica WHERE r.heartbeat_at >= $1 ",
            $where
        )
    };
}

fn live_row(t: LiveTuple) -> LiveRow {
    let (
        id,
        replica,
        protocol,
        username,
        user_id,
        key_id,
        client_ip,
        started_at,
        bytes_in,
        bytes_out,
    ) = t;
    LiveRow {
        id,
        replica,
        protocol,
        username,
        user_id,
        key_id,
        client_ip,
        started_at,
        bytes_in,
        bytes_out,
    }
}

impl Store {
    /// Writes this replica's heartbeat and its whole session list, and forgets replicas (and
    /// their sessions) whose last heartbeat is older than `dead_before`. One transaction.
    pub async fn heartbeat(
        &self,
        replica: &str,
        node: &str,
        now: i64,
        dead_before: i64,
        sessions: &[LiveRow],
    ) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO replicas (id, node, heartbeat_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = $3")
                .bind(replica).bind(node).bind(now).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM live_sessions WHERE replica = $1")
                .bind(replica).execute(&mut *tx).await?;
            for chunk in sessions.chunks(INSERT_CHUNK) {
                let mut insert = sqlx::QueryBuilder::new(
                    "INSERT INTO live_sessions (id, replica, protocol, username, user_id, key_id, \
                     client_ip, started_at, bytes_in, bytes_out) ");
                insert.push_values(chunk, |mut row, s| {
                    row.push_bind(s.id).push_bind(replica).push_bind(&s.protocol)
                        .push_bind(&s.username).push_bind(s.user_id).push_bind(s.key_id)
                        .push_bind(&s.client_ip).push_bind(s.started_at)
                        .push_bind(s.bytes_in).push_bind(s.bytes_out);
                });
                insert.build().execute(&mut *tx).await?;
            }
            sqlx::query(
                "DELETE FROM live_sessions WHERE replica IN \
                 (SELECT id FROM replicas WHERE heartbeat_at < $1)")
                .bind(dead_before).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM replicas WHERE heartbeat_at < $1")
                .bind(dead_before).execute(&mut *tx).await?;
            tx.commit().await
        })?;
        Ok(())
    }

    /// Removes this replica and its sessions (at a clean stop).
    pub async fn forget_replica(&self, replica: &str) -> Result<(), StoreError> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM live_sessions WHERE replica = $1")
                .bind(replica).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM replicas WHERE id = $1")
                .bind(replica).execute(&mut *tx).await?;
            tx.commit().await
        })?;
        Ok(())
    }

    /// Live sessions of replicas heard from since `alive_since`, oldest first (then by id),
    /// after `(started_at, id)` when given, at most `limit`.
    pub async fn live_sessions(
        &self,
        alive_since: i64,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<LiveRow>, StoreError> {
        let (after_at, after_id) = after.unwrap_or((i64::MIN, i64::MIN));
        let rows: Vec<LiveTuple> = on_pool!(self, pool => sqlx::query_as(select_live!(
            "AND (s.started_at > $2 OR (s.started_at = $2 AND s.id > $3)) \
             ORDER BY s.started_at, s.id LIMIT $4"))
            .bind(alive_since).bind(after_at).bind(after_id).bind(limit)
            .fetch_all(pool).await)?;
        Ok(rows.into_iter().map(live_row).collect())
    }

    /// One live session of a live replica.
    pub async fn live_session(
        &self,
        alive_since: i64,
        id: i64,
    ) -> Result<Option<LiveRow>, StoreError> {
        let row: Option<LiveTuple> = on_pool!(self, pool => sqlx::query_as(select_live!("AND s.id = $2"))
            .bind(alive_since).bind(id).fetch_optional(pool).await)?;
        Ok(row.map(live_row))
    }

    /// Asks whichever replica holds live session `id` to end it (through the change log).
    pub async fn request_session_end(&self, id: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("INSERT INTO changes (session_id) VALUES ($1)")
            .bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The newest change's sequence number (0 when none).
    pub async fn latest_change(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT MAX(seq) FROM changes").fetch_one(pool).await)?;
        Ok(seq.unwrap_or(0))
    }

    /// Changes after `seq`, in order, at most `limit`.
    pub async fn changes_since(&self, seq: i64, limit: i64) -> Result<Vec<Change>, StoreError> {
        let rows: Vec<ChangeRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT seq, user_id, key_id, session_id FROM changes WHERE seq > $1 \
             ORDER BY seq LIMIT $2")
            .bind(seq).bind(limit).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(seq, user_id, key_id, session_id)| Change {
                seq,
                user_id,
                key_id,
                session_id,
            })
            .collect())
    }

    /// Keys whose expiry fell in `(after, until]` (Unix seconds): their sessions must end.
    pub async fn keys_expiring(&self, after: i64, until: i64) -> Result<Vec<i64>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM api_keys WHERE expires_at > $1 AND expires_at <= $2")
            .bind(after).bind(until).fetch_all(pool).await)?)
    }

    /// Drops change-log entries older than `before` (Unix seconds).
    pub async fn prune_changes(&self, before: i64) -> Result<(), StoreError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM changes WHERE at < $1")
            .bind(before).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A listener woken at each change (PostgreSQL only; `None` on SQLite).
    pub async fn listen_changes(&self) -> Result<Option<ChangeListener>, StoreError> {
        match &self.pool {
            super::Pool::Sqlite(_) => Ok(None),
            super::Pool::Postgres(pool) => {
                let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                listener.listen("filegate_changes").await?;
                Ok(Some(ChangeListener(listener)))
            }
        }
    }
}
