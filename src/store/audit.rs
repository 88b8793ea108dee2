//! Audit records: batched inserts and reads for the CLI and the API.

use super::{Store, StoreError, on_pool};
use crate::audit::{AuditEvent, AuditPersist, AuditRecord, PersistError};

const AUDIT_COLUMNS: &str = "id, at_ms, node, session_id, user_id, username, key_id, protocol, \
     action, path, destination, bytes, result, reason, remote_addr";

/// Which audit records to read.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only records of this user.
    pub user_id: Option<i64>,
    /// Only login records.
    pub logins_only: bool,
    /// Records with `id < before` (newest first) when set.
    pub before: Option<i64>,
    pub limit: i64,
}

/// A filtered, key-set paginated read of the audit log (the API's `/history`).
#[derive(Debug, Clone, Default)]
pub struct AuditSearch {
    pub user_id: Option<i64>,
    pub logins_only: bool,
    /// Exact path (`/history/files/{path}`).
    pub path: Option<String>,
    /// Path prefix (`/history/folders/{path}`, `filter_prefix[path]`).
    pub path_prefix: Option<String>,
    /// Only records made with this API key.
    pub key_id: Option<i64>,
    /// Only records of this protocol (`sftp`, `web`, …), action (`create`, `read`, …) and
    /// result (`ok`, `denied`, `failed`).
    pub protocol: Option<String>,
    pub action: Option<String>,
    pub result: Option<String>,
    /// Unix milliseconds, inclusive.
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Oldest first when true.
    pub ascending: bool,
    /// Continue after this id (in the chosen direction).
    pub after_id: Option<i64>,
    pub limit: i64,
}

impl Store {
    /// Audit records matching `q`, in id order (ascending or descending).
    pub async fn search_audit(&self, q: &AuditSearch) -> Result<Vec<AuditRecord>, StoreError> {
        let (cmp, order) = if q.ascending {
            (">", "ASC")
        } else {
            ("<", "DESC")
        };
        let after = q.after_id.unwrap_or(if q.ascending { 0 } else { i64::MAX });
        let prefix = q.path_prefix.as_ref().map(|p| {
            format!(
                "{}%",
                p.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        });
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE id {cmp} $1 \
             AND ($2 IS NULL OR user_id = $2) AND ($3 = FALSE OR action = 'login') \
             AND ($4 IS NULL OR path = $4) AND ($5 IS NULL OR path LIKE $5 ESCAPE '\\') \
             AND ($6 IS NULL OR at_ms >= $6) AND ($7 IS NULL OR at_ms <= $7) \
             AND ($9 IS NULL OR key_id = $9) AND ($10 IS NULL OR protocol = $10) \
             AND ($11 IS NULL OR action = $11) AND ($12 IS NULL OR result = $12) \
             ORDER BY id {order} LIMIT $8"
        ));
        Ok(
            on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.0.clone()))
            .bind(after).bind(q.user_id).bind(q.logins_only).bind(&q.path).bind(&prefix)
            .bind(q.start_ms).bind(q.end_ms).bind(q.limit)
            .bind(q.key_id).bind(&q.protocol).bind(&q.action).bind(&q.result)
            .fetch_all(pool).await)?,
        )
    }

    /// Inserts `events` in one transaction; events already stored (same `event_key`, from a
    /// batch retried after its acknowledgement was lost) are skipped.
    /// The outbox rows of the webhook rules the events match are written in the same
    /// transaction, one per `(event_key, rule)` (see `store::webhooks`).
    pub async fn append_audit(&self, node: &str, events: &[AuditEvent]) -> Result<(), StoreError> {
        let outbox = if events
            .iter()
            .any(|e| crate::webhooks::trigger_of(e).is_some())
        {
            Store::outbox_rows(&self.webhook_rules().await?, events)
        } else {
            Vec::new()
        };
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for e in events {
                sqlx::query(
                    "INSERT INTO audit_events (at_ms, node, session_id, user_id, username, key_id, \
                     protocol, action, path, destination, bytes, result, reason, remote_addr, \
                     event_key) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                     ON CONFLICT (event_key) DO NOTHING")
                    .bind(e.at_ms).bind(node).bind(&e.session_id).bind(e.user_id)
                    .bind(&e.username).bind(e.key_id).bind(e.protocol.as_str())
                    .bind(e.action.as_str()).bind(&e.path).bind(&e.destination).bind(e.bytes)
                    .bind(e.outcome.as_str()).bind(&e.reason).bind(&e.remote_addr).bind(&e.event_key)
                    .execute(&mut *tx).await?;
            }
            for (key, rule, action, path, payload, at_ms) in &outbox {
                sqlx::query(
                    "INSERT INTO webhook_deliveries (event_key, behavior_id, action, path, payload, \
                     created_ms, next_attempt_ms) VALUES ($1, $2, $3, $4, $5, $6, $6) \
                     ON CONFLICT (event_key, behavior_id) DO NOTHING")
                    .bind(key).bind(rule).bind(*action).bind(path).bind(payload).bind(at_ms)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        if !outbox.is_empty() {
            self.wake_webhooks();
        }
        Ok(())
    }

    /// Audit records, newest first.
    pub async fn read_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let before = q.before.unwrap_or(i64::MAX);
        let user = q.user_id;
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE id < $1 \
             AND ($2 IS NULL OR user_id = $2) AND ($3 = FALSE OR action = 'login') \
             ORDER BY id DESC LIMIT $4"
        ));
        Ok(
            on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.0.clone()))
            .bind(before).bind(user).bind(q.logins_only).bind(q.limit)
            .fetch_all(pool).await)?,
        )
    }

    pub async fn count_audit(&self) -> Result<i64, StoreError> {
        Ok(
            on_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM audit_events")
            .fetch_one(pool).await)?,
        )
    }
}

#[async_trait::async_trait]
impl AuditPersist for Store {
    async fn persist(&self, node: &str, events: &[AuditEvent]) -> Result<(), PersistError> {
        self.append_audit(node, events)
            .await
            .map_err(|e| PersistError(e.to_string()))
    }
}
