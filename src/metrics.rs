//! Counters for `/metrics` (Prometheus text): logins and operations by protocol and result,
//! bytes in and out, live sessions, and the audit backlog.
//!
//! Fed by [`MeteredSink`], which sits in front of the audit log: every audit event is also a
//! metric, so no layer counts twice or forgets to count.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::audit::{Action, AuditEvent, AuditLog, AuditSink, AuditStats, NotDurable};
use crate::identity::Protocol;

/// Process-wide counters.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, &'static str, &'static str), u64>>,
    sftp_sessions: AtomicI64,
    /// Bytes plain HTTP connections sent with `sendfile(2)` (WebDAV GETs of local files).
    pub http_sendfile_bytes: AtomicU64,
    /// Webhook deliveries (fed by `webhooks::worker`).
    pub webhooks: WebhookMetrics,
}

/// Upper bounds (seconds) of the webhook latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

/// Webhook delivery counters and the latency (event to 2xx) histogram.
#[derive(Default)]
pub struct WebhookMetrics {
    /// Outbox rows waiting (as last counted by this replica's worker).
    pub pending: AtomicI64,
    pub delivered: AtomicU64,
    /// Deliveries given up (retry window over, or rule deleted).
    pub failed: AtomicU64,
    /// Attempts that did not get a 2xx (each is retried or failed).
    pub attempts_failed: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_ms_sum: AtomicU64,
}

impl WebhookMetrics {
    /// Counts a delivery that took `ms` from the event to the receiver's 2xx.
    pub fn delivered_after(&self, ms: u64) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        self.latency_ms_sum.fetch_add(ms, Ordering::Relaxed);
        let secs = ms as f64 / 1000.0;
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let delivered = load(&self.delivered);
        let _ = writeln!(
            out,
            "# TYPE filegate_webhook_pending gauge\nfilegate_webhook_pending {}\n\
             # TYPE filegate_webhook_delivered_total counter\nfilegate_webhook_delivered_total {delivered}\n\
             # TYPE filegate_webhook_failed_total counter\nfilegate_webhook_failed_total {}\n\
             # TYPE filegate_webhook_attempts_failed_total counter\nfilegate_webhook_attempts_failed_total {}\n\
             # TYPE filegate_webhook_latency_seconds histogram",
            self.pending.load(Ordering::Relaxed),
            load(&self.failed),
            load(&self.attempts_failed),
        );
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += load(count);
            let _ = writeln!(
                out,
                "filegate_webhook_latency_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "filegate_webhook_latency_seconds_bucket{{le=\"+Inf\"}} {delivered}\n\
             filegate_webhook_latency_seconds_sum {}\n\
             filegate_webhook_latency_seconds_count {delivered}",
            load(&self.latency_ms_sum) as f64 / 1000.0
        );
    }
}

/// Decrements a live-session gauge when dropped.
pub struct SessionGauge(Arc<Metrics>);

impl Drop for SessionGauge {
    fn drop(&mut self) {
        self.0.sftp_sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    fn add(&self, name: &'static str, protocol: &'static str, result: &'static str, n: u64) {
        *self
            .counters
            .lock()
            .expect("metrics lock")
            .entry((name, protocol, result))
            .or_insert(0) += n;
    }

    /// Counts one event.
    pub fn observe(&self, e: &AuditEvent) {
        let protocol = e.protocol.as_str();
        let result = e.outcome.as_str();
        match e.action {
            Action::Login => self.add("filegate_logins_total", protocol, result, 1),
            _ => self.add("filegate_operations_total", protocol, result, 1),
        }
        if let Some(bytes) = e.bytes.filter(|b| *b > 0) {
            match e.action {
                Action::Upload => self.add("filegate_bytes_in_total", protocol, "", bytes as u64),
                Action::Download => {
                    self.add("filegate_bytes_out_total", protocol, "", bytes as u64)
                }
                _ => {}
            }
        }
    }

    /// Counts a live session until the returned guard is dropped.
    pub fn session(self: &Arc<Self>, protocol: Protocol) -> SessionGauge {
        debug_assert_eq!(protocol, Protocol::Sftp);
        self.sftp_sessions.fetch_add(1, Ordering::Relaxed);
        SessionGauge(self.clone())
    }

    /// The Prometheus text exposition. `unrecorded_refusals`: refusals of banned clients
    /// counted but not audited (the authenticator audits one per address and login a minute).
    pub fn render(&self, audit: &AuditStats, unrecorded_refusals: u64) -> String {
        let mut out = String::new();
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut last = "";
        for ((name, protocol, result), value) in counters.iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            if result.is_empty() {
                let _ = writeln!(out, "{name}{{protocol=\"{protocol}\"}} {value}");
            } else {
                let _ = writeln!(
                    out,
                    "{name}{{protocol=\"{protocol}\",result=\"{result}\"}} {value}"
                );
            }
        }
        let _ = writeln!(out, "# TYPE filegate_sessions gauge");
        let _ = writeln!(
            out,
            "filegate_sessions{{protocol=\"sftp\"}} {}",
            self.sftp_sessions.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE filegate_http_sendfile_bytes_total counter\n\
             filegate_http_sendfile_bytes_total {}",
            self.http_sendfile_bytes.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# TYPE filegate_lockout_refusals_unrecorded_total counter\n\
             filegate_lockout_refusals_unrecorded_total {unrecorded_refusals}"
        );
        for (name, kind, value) in [
            ("filegate_audit_backlog", "gauge", audit.backlog),
            ("filegate_audit_backlog_limit", "gauge", audit.limit),
            (
                "filegate_audit_journal_records",
                "gauge",
                audit.journal_records,
            ),
            ("filegate_audit_journal_bytes", "gauge", audit.journal_bytes),
            ("filegate_audit_journaled_total", "counter", audit.journaled),
            ("filegate_audit_spilled_total", "counter", audit.spilled),
            ("filegate_audit_replayed_total", "counter", audit.replayed),
            (
                "filegate_audit_journal_corrupt_total",
                "counter",
                audit.journal_corrupt,
            ),
            ("filegate_audit_dropped_total", "counter", audit.dropped),
            (
                "filegate_file_denials_unrecorded_total",
                "counter",
                crate::files::denials::unrecorded_total(),
            ),
            ("filegate_audit_written_total", "counter", audit.written),
            (
                "filegate_audit_write_failures_total",
                "counter",
                audit.write_failures,
            ),
        ] {
            let _ = writeln!(out, "# TYPE {name} {kind}\n{name} {value}");
        }
        self.webhooks.render(&mut out);
        out
    }
}

/// The audit sink every layer writes to: counts, then hands over to the audit log.
pub struct MeteredSink {
    pub metrics: Arc<Metrics>,
    pub log: Arc<AuditLog>,
}

#[async_trait::async_trait]
impl AuditSink for MeteredSink {
    fn record(&self, event: AuditEvent) {
        self.metrics.observe(&event);
        self.log.record(event);
    }

    async fn record_durable(&self, event: AuditEvent) -> Result<(), NotDurable> {
        self.metrics.observe(&event);
        self.log.record_durable(event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Outcome;
    use crate::identity::Principal;

    #[test]
    fn events_become_labelled_counters() {
        let m = Arc::new(Metrics::default());
        let mut p = Principal::cli();
        p.protocol = Protocol::Sftp;
        m.observe(&AuditEvent::by(&p, Action::Login, Outcome::Ok));
        m.observe(&AuditEvent::by(&p, Action::Login, Outcome::Denied));
        m.observe(&AuditEvent::by(&p, Action::Upload, Outcome::Ok).bytes(10));
        let _live = m.session(Protocol::Sftp);
        let stats = AuditStats {
            backlog: 3,
            limit: 10,
            write_failures: 2,
            journal_records: 4,
            replayed: 5,
            ..Default::default()
        };
        let text = m.render(&stats, 7);
        assert!(
            text.contains("filegate_logins_total{protocol=\"sftp\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("filegate_logins_total{protocol=\"sftp\",result=\"denied\"} 1"));
        assert!(text.contains("filegate_bytes_in_total{protocol=\"sftp\"} 10"));
        assert!(text.contains("filegate_sessions{protocol=\"sftp\"} 1"));
        assert!(text.contains("filegate_audit_backlog 3\n"));
        assert!(text.contains("filegate_audit_backlog_limit 10\n"));
        assert!(text.contains("filegate_audit_write_failures_total 2\n"));
        assert!(text.contains("filegate_audit_journal_records 4\n"));
        assert!(text.contains("filegate_audit_replayed_total 5\n"));
        assert!(text.contains("filegate_lockout_refusals_unrecorded_total 7\n"));
        assert!(text.contains("filegate_webhook_pending 0\n"));
    }

    #[test]
    fn webhook_latencies_fill_a_cumulative_histogram() {
        let m = Metrics::default();
        m.webhooks.delivered_after(30);
        m.webhooks.delivered_after(700);
        m.webhooks.delivered_after(7_200_000);
        let text = m.render(&AuditStats::default(), 0);
        assert!(
            text.contains("filegate_webhook_delivered_total 3\n"),
            "{text}"
        );
        assert!(text.contains("filegate_webhook_latency_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(text.contains("filegate_webhook_latency_seconds_bucket{le=\"1\"} 2\n"));
        assert!(text.contains("filegate_webhook_latency_seconds_bucket{le=\"3600\"} 2\n"));
        assert!(text.contains("filegate_webhook_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("filegate_webhook_latency_seconds_count 3\n"));
    }
}
