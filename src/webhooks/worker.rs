//! One delivery worker per replica: claims due outbox rows (a lease in the store, so with N
//! replicas each row is attempted by one at a time), sends each through [`Sender`] with at
//! most `webhooks.per_host_concurrency` requests per host and `webhooks.batch` in all, and
//! writes the outcome: a 2xx ends a row (`delivered`); anything else is retried after
//! `retry_base_ms · 2^attempts` (capped at `retry_max_ms`, ±50 % jitter) until
//! `max_age_seconds` after the event, then `failed`.
//!
//! At start the worker gives back the leases its node held (a crash or `kill -9` left them),
//! so rows are not stuck behind a dead lease; at stop it aborts requests in flight and gives
//! back its leases. Delivery is at least once: a crash after the receiver's 2xx and before
//! the row is marked sends it again, with the same `X-Filegate-Delivery` id (the event key).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::send::Sender;
use super::{Outgoing, Rule};
use crate::config::WebhooksConfig;
use crate::metrics::Metrics;
use crate::store::{AttemptResult, DeliveryRow, Store};

/// A replica's delivery worker.
pub struct Worker {
    store: Store,
    node: String,
    sender: Sender,
    config: WebhooksConfig,
    metrics: Arc<Metrics>,
    hosts: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A uniformly random factor in [0.5, 1.5).
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    0.5 + f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

/// Milliseconds to wait before attempt `attempts + 1`.
pub fn backoff_ms(config: &WebhooksConfig, attempts: i64) -> i64 {
    let exp = attempts.clamp(0, 40) as u32;
    let base = (config.retry_base_ms as f64) * 2f64.powi(exp as i32);
    (base.min(config.retry_max_ms as f64) * jitter()) as i64
}

impl Worker {
    pub fn new(
        store: Store,
        node: &str,
        sender: Sender,
        config: WebhooksConfig,
        metrics: Arc<Metrics>,
    ) -> Arc<Worker> {
        Arc::new(Worker {
            store,
            node: node.to_owned(),
            sender,
            config,
            metrics,
            hosts: Default::default(),
        })
    }

    /// How long a claim stays this replica's: longer than one attempt can take (each URL of
    /// a rule waits at most the timeout for its host's gate and at most the timeout for its
    /// answer), so a row is never claimed again while its attempt still runs.
    fn lease_ms(&self) -> i64 {
        (self.config.timeout_seconds as i64 * 2 * super::MAX_URLS as i64 + 30) * 1000
    }

    /// Runs until `stop` is cancelled.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        if let Err(err) = self.store.release_deliveries(&self.node).await {
            tracing::warn!(error = %err, "webhooks: cannot release this node's old leases");
        }
        let poll = Duration::from_millis(self.config.poll_ms);
        let mut in_flight: JoinSet<()> = JoinSet::new();
        let mut last_count: Option<tokio::time::Instant> = None;
        let mut failing = false;
        while !stop.is_cancelled() {
            let room = self.config.batch.saturating_sub(in_flight.len()) as i64;
            let mut claimed = 0;
            if room > 0 {
                let now = now_ms();
                match self
                    .store
                    .claim_deliveries(&self.node, now, now + self.lease_ms(), room)
                    .await
                {
                    Ok(rows) => {
                        if failing {
                            tracing::info!("webhooks: the outbox is reachable again");
                            failing = false;
                        }
                        claimed = rows.len();
                        for row in rows {
                            let me = self.clone();
                            in_flight.spawn(async move { me.deliver(row).await });
                        }
                    }
                    Err(err) => {
                        if !failing {
                            tracing::warn!(error = %err, "webhooks: cannot claim deliveries");
                            failing = true;
                        }
                    }
                }
            }
            if last_count.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
                last_count = Some(tokio::time::Instant::now());
                if let Ok(n) = self.store.pending_deliveries().await {
                    self.metrics
                        .webhooks
                        .pending
                        .store(n, std::sync::atomic::Ordering::Relaxed);
                }
            }
            if claimed > 0 && (claimed as i64) == room {
                // A full claim: there may be more due; go on once a slot frees up.
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = in_flight.join_next() => {}
                }
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = self.store.webhooks_written() => {}
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
        in_flight.abort_all();
        while in_flight.join_next().await.is_some() {}
        if let Err(err) = self.store.release_deliveries(&self.node).await {
            tracing::warn!(error = %err, "webhooks: cannot release leases at stop");
        }
    }

    fn host_gate(&self, url: &str) -> Arc<Semaphore> {
        let key = super::guard::Target::parse(url)
            .map(|t| format!("{}:{}", t.host.to_ascii_lowercase(), t.port))
            .unwrap_or_default();
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if hosts.len() > 10_000 {
            hosts.retain(|_, s| Arc::strong_count(s) > 1);
        }
        hosts
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_host_concurrency)))
            .clone()
    }

    /// One attempt at `row` (every URL of its rule in turn), then its outcome in the store.
    async fn deliver(&self, row: DeliveryRow) {
        let rule: Option<Rule> = match self.store.webhook_rules().await {
            Ok(rules) => rules.iter().find(|r| r.id == row.behavior_id).cloned(),
            Err(err) => {
                tracing::warn!(error = %err, "webhooks: cannot read rules; retrying later");
                let at = now_ms() + backoff_ms(&self.config, row.attempts);
                self.finish(
                    &row,
                    AttemptResult::Retry(at),
                    None,
                    Some("store unavailable"),
                    None,
                )
                .await;
                return;
            }
        };
        let Some(rule) = rule else {
            self.finish(
                &row,
                AttemptResult::Failed,
                None,
                Some("behavior deleted"),
                None,
            )
            .await;
            return;
        };
        let payload: serde_json::Value =
            serde_json::from_str(&row.payload).unwrap_or(serde_json::Value::Null);
        let mut status = None;
        let mut error = String::new();
        let mut url_used = None;
        for url in &rule.value.urls {
            let request: Outgoing = super::outgoing(
                &rule.value,
                &rule.secret,
                url,
                &payload,
                &row.event_key,
                now_ms() / 1000,
            );
            // Bounded: a host busy with other deliveries (a slow receiver with a backlog)
            // makes this an attempt that failed, retried with back-off, instead of holding
            // a claim slot other rules' deliveries need, or outliving the lease.
            let gate = self.host_gate(url);
            let _permit =
                match tokio::time::timeout(self.config.timeout(), gate.acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) => continue,
                    Err(_) => {
                        status = None;
                        error = "the receiver's host is busy with other deliveries".into();
                        continue;
                    }
                };
            url_used = Some(url.clone());
            match self.sender.send(&request).await {
                Ok(answer) if (200..300).contains(&answer.status) => {
                    let ms = (now_ms() - row.created_ms).max(0) as u64;
                    self.metrics.webhooks.delivered_after(ms);
                    self.finish(
                        &row,
                        AttemptResult::Delivered,
                        Some(answer.status.into()),
                        None,
                        Some(url),
                    )
                    .await;
                    return;
                }
                Ok(answer) => {
                    status = Some(i64::from(answer.status));
                    error = format!("HTTP {}", answer.status);
                }
                Err(err) => {
                    status = None;
                    error = err.to_string();
                }
            }
        }
        self.metrics
            .webhooks
            .attempts_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let next = now_ms() + backoff_ms(&self.config, row.attempts);
        let deadline = row.created_ms + (self.config.max_age_seconds as i64) * 1000;
        let result = if next > deadline {
            AttemptResult::Failed
        } else {
            AttemptResult::Retry(next)
        };
        tracing::debug!(id = row.id, error = %error, "webhook attempt failed");
        self.finish(&row, result, status, Some(&error), url_used.as_deref())
            .await;
    }

    async fn finish(
        &self,
        row: &DeliveryRow,
        result: AttemptResult,
        status: Option<i64>,
        error: Option<&str>,
        url: Option<&str>,
    ) {
        if matches!(result, AttemptResult::Failed) {
            self.metrics
                .webhooks
                .failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(id = row.id, event_key = %row.event_key, error = error.unwrap_or(""), "webhook delivery failed for good");
        }
        // The store may be down for a moment: keep trying while the lease holds.
        for wait in [0u64, 200, 1000, 5000] {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            match self
                .store
                .finish_attempt(row.id, &self.node, &result, status, error, url, now_ms())
                .await
            {
                Ok(_) => return,
                Err(err) => tracing::warn!(error = %err, "webhooks: cannot record an attempt"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_with_jitter_and_is_capped() {
        let c = WebhooksConfig {
            retry_base_ms: 1000,
            retry_max_ms: 60_000,
            ..Default::default()
        };
        for attempts in 0..6 {
            let d = backoff_ms(&c, attempts);
            let nominal = 1000 * (1 << attempts);
            assert!(d >= nominal / 2 && d < nominal * 3 / 2, "{attempts}: {d}");
        }
        for _ in 0..50 {
            assert!(backoff_ms(&c, 30) < 90_000);
            assert!(backoff_ms(&c, i64::MAX) < 90_000);
        }
    }
}
