//! Webhook rules (`behaviors`) and the delivery outbox (`webhook_deliveries`): SQL only.
//!
//! - Rules change rarely and are read for every audit batch holding a file event, so each
//!   replica keeps them in memory ([`HookCache`]) and reloads them when the `behaviors`
//!   change counter (bumped in every rule change's own transaction) moves: a rule made on
//!   one replica is matched by all of them from their next batch on.
//! - Outbox rows are written by `append_audit` in the audit batch's transaction, one per
//!   `(event_key, rule)`, `ON CONFLICT DO NOTHING`: a replayed journal batch adds none.
//! - Workers claim due rows by setting a lease (`claimed_until_ms`, `claimed_by`) in one
//!   statement; on PostgreSQL the rows are picked `FOR UPDATE SKIP LOCKED`, so replicas
//!   claiming at once take disjoint rows; SQLite has one writer, so the same `UPDATE …
//!   RETURNING` is already exclusive. Results are written only by the lease holder.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

use super::{Store, StoreError, on_pool};
use crate::audit::AuditEvent;
use crate::webhooks::guard::Allow;
use crate::webhooks::{Rule, WebhookValue};

/// The change counter every rule change bumps.
pub const BEHAVIORS_COUNTER: &str = "behaviors";

const BUMP: &str = "INSERT INTO change_counters (name, value) VALUES ('behaviors', 1) \
     ON CONFLICT (name) DO UPDATE SET value = change_counters.value + 1";

const DELIVERY_COLUMNS: &str = "id, event_key, behavior_id, action, path, payload, state, \
     created_ms, next_attempt_ms, attempts, last_status, last_error, last_url, done_ms";

/// An outbox row to write: `(event_key, rule id, action, path, payload, at_ms)`.
pub(super) type OutboxRow = (String, i64, &'static str, Option<String>, String, i64);

/// A replica's copy of the rules, and a wake-up for its worker.
#[derive(Debug, Default)]
pub struct HookCache {
    rules: Mutex<Option<(i64, Arc<Vec<Rule>>)>>,
    /// Told when this replica wrote outbox rows (other replicas poll).
    pub wake: tokio::sync::Notify,
}

/// A behavior row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BehaviorRow {
    pub id: i64,
    pub path: String,
    pub behavior: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub value: String,
    pub secret: String,
    pub created_ms: i64,
}

impl BehaviorRow {
    /// The rule, when the row is a readable webhook behavior.
    pub fn rule(&self) -> Option<Rule> {
        if self.behavior != "webhook" {
            return None;
        }
        let value: Value = serde_json::from_str(&self.value).ok()?;
        let value = WebhookValue::parse(&value, &Allow::all()).ok()?;
        Some(Rule {
            id: self.id,
            path: self.path.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            value,
            secret: self.secret.clone(),
            created_ms: self.created_ms,
        })
    }
}

/// An outbox row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub event_key: String,
    pub behavior_id: i64,
    pub action: String,
    pub path: Option<String>,
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub created_ms: i64,
    pub next_attempt_ms: i64,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub last_url: Option<String>,
    pub done_ms: Option<i64>,
}

/// The outcome of one attempt, as the worker reports it.
#[derive(Debug, Clone)]
pub enum AttemptResult {
    Delivered,
    /// Try again at this time (Unix ms).
    Retry(i64),
    Failed,
}

impl Store {
    /// Every behavior, by id.
    pub async fn behaviors(&self) -> Result<Vec<BehaviorRow>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT id, path, behavior, name, description, value, secret, created_ms \
             FROM behaviors ORDER BY id")
            .fetch_all(pool).await)?)
    }

    pub async fn behavior(&self, id: i64) -> Result<Option<BehaviorRow>, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT id, path, behavior, name, description, value, secret, created_ms \
             FROM behaviors WHERE id = $1")
            .bind(id).fetch_optional(pool).await)?)
    }

    /// Adds a behavior; returns its id.
    pub async fn create_behavior(
        &self,
        path: &str,
        behavior: &str,
        name: Option<&str>,
        description: Option<&str>,
        value: &str,
        secret: &str,
    ) -> Result<i64, StoreError> {
        let now = chrono::Utc::now().timestamp_millis();
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(BUMP).execute(&mut *tx).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO behaviors (path, behavior, name, description, value, secret, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
                .bind(path).bind(behavior).bind(name).bind(description).bind(value)
                .bind(secret).bind(now).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            id
        }))
    }

    /// Changes a behavior's name, description and value; false when there is no such row.
    pub async fn update_behavior(
        &self,
        id: i64,
        name: Option<&str>,
        description: Option<&str>,
        value: &str,
    ) -> Result<bool, StoreError> {
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(BUMP).execute(&mut *tx).await?;
            let n = sqlx::query(
                "UPDATE behaviors SET name = $2, description = $3, value = $4 WHERE id = $1")
                .bind(id).bind(name).bind(description).bind(value)
                .execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            n > 0
        }))
    }

    /// Removes a behavior (its pending deliveries fail when their turn comes).
    pub async fn delete_behavior(&self, id: i64) -> Result<bool, StoreError> {
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(BUMP).execute(&mut *tx).await?;
            let n = sqlx::query("DELETE FROM behaviors WHERE id = $1")
                .bind(id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            n > 0
        }))
    }

    /// The webhook rules, from memory unless the `behaviors` counter moved.
    pub async fn webhook_rules(&self) -> Result<Arc<Vec<Rule>>, StoreError> {
        let counter = self.counter(BEHAVIORS_COUNTER).await?;
        if let Some((seen, rules)) = self
            .hooks
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            && *seen == counter
        {
            return Ok(rules.clone());
        }
        let rules: Arc<Vec<Rule>> = Arc::new(
            self.behaviors()
                .await?
                .iter()
                .filter_map(BehaviorRow::rule)
                .collect(),
        );
        *self
            .hooks
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((counter, rules.clone()));
        Ok(rules)
    }

    /// The outbox rows `events` make under `rules`: `(event_key, rule id, action, path,
    /// payload, at_ms)`.
    pub(super) fn outbox_rows(rules: &[Rule], events: &[AuditEvent]) -> Vec<OutboxRow> {
        let mut out = Vec::new();
        for e in events {
            let Some(trigger) = crate::webhooks::trigger_of(e) else {
                continue;
            };
            for rule in rules.iter().filter(|r| r.matches(e, trigger)) {
                let payload = crate::webhooks::payload(e, trigger).to_string();
                out.push((
                    e.event_key.clone(),
                    rule.id,
                    trigger,
                    e.path.clone(),
                    payload,
                    e.at_ms,
                ));
            }
        }
        out
    }

    /// Wakes this replica's worker (outbox rows were written).
    pub(super) fn wake_webhooks(&self) {
        self.hooks.wake.notify_one();
    }

    /// Waits until this replica writes outbox rows.
    pub async fn webhooks_written(&self) {
        self.hooks.wake.notified().await
    }

    /// Leases up to `limit` due rows to `node` until `lease_until_ms`.
    pub async fn claim_deliveries(
        &self,
        node: &str,
        now_ms: i64,
        lease_until_ms: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let lock = match self.backend() {
            "postgres" => "FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let sql = format!(
            "UPDATE webhook_deliveries SET claimed_until_ms = $1, claimed_by = $2 \
             WHERE id IN (SELECT id FROM webhook_deliveries WHERE state = 'pending' \
             AND next_attempt_ms <= $3 AND claimed_until_ms <= $3 \
             ORDER BY next_attempt_ms, id LIMIT $4 {lock}) \
             RETURNING {DELIVERY_COLUMNS}"
        );
        Ok(
            on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(lease_until_ms).bind(node).bind(now_ms).bind(limit)
            .fetch_all(pool).await)?,
        )
    }

    /// Records an attempt on a row leased to `node`; false when the lease was lost.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_attempt(
        &self,
        id: i64,
        node: &str,
        result: &AttemptResult,
        status: Option<i64>,
        error: Option<&str>,
        url: Option<&str>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (state, next, done) = match result {
            AttemptResult::Delivered => ("delivered", now_ms, Some(now_ms)),
            AttemptResult::Retry(at) => ("pending", *at, None),
            AttemptResult::Failed => ("failed", now_ms, Some(now_ms)),
        };
        let error: Option<String> = error.map(|e| e.chars().take(500).collect());
        Ok(on_pool!(self, pool => sqlx::query(
            "UPDATE webhook_deliveries SET state = $3, next_attempt_ms = $4, done_ms = $5, \
             attempts = attempts + 1, last_status = $6, last_error = $7, last_url = $8, \
             claimed_until_ms = 0, claimed_by = NULL \
             WHERE id = $1 AND claimed_by = $2 AND state = 'pending'")
            .bind(id).bind(node).bind(state).bind(next).bind(done).bind(status)
            .bind(&error).bind(url)
            .execute(pool).await.map(|r| r.rows_affected()))?
            > 0)
    }

    /// Gives back every lease `node` holds (at start, after a crash, and at stop).
    pub async fn release_deliveries(&self, node: &str) -> Result<u64, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query(
            "UPDATE webhook_deliveries SET claimed_until_ms = 0, claimed_by = NULL \
             WHERE claimed_by = $1 AND state = 'pending'")
            .bind(node).execute(pool).await.map(|r| r.rows_affected()))?)
    }

    /// Rows waiting to be delivered.
    pub async fn pending_deliveries(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'")
            .fetch_one(pool).await)?)
    }

    /// Outbox rows, newest first, with `id < before`; optionally one rule's or one state's.
    pub async fn deliveries(
        &self,
        before: Option<i64>,
        behavior_id: Option<i64>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id < $1 \
             AND ($2 IS NULL OR behavior_id = $2) AND ($3 IS NULL OR state = $3) \
             ORDER BY id DESC LIMIT $4"
        );
        Ok(
            on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(before.unwrap_or(i64::MAX)).bind(behavior_id).bind(state).bind(limit)
            .fetch_all(pool).await)?,
        )
    }
}
