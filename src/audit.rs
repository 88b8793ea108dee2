//! The audit log: one record per login, file operation and account change (DESIGN §5).
//!
//! Layers describe what happened as an [`AuditEvent`] and hand it to an [`AuditSink`]. The
//! [`AuditLog`] sink mirrors every event to `tracing` and queues it for a background writer
//! that persists events in batches through [`AuditPersist`] (implemented by the store). The
//! queue is bounded; when it is full, events go to one overflow buffer of the same size that
//! the writer also drains (no task per event). Past that second bound events are dropped,
//! counted (`filegate_audit_dropped_total`) and logged: a bounded loss under a flood or a
//! stalled store, rather than unbounded memory. [`AuditLog::shutdown`] drains and flushes
//! everything queued or in the overflow, so a clean stop loses nothing that was accepted. A
//! batch the store refuses is retried until it is written or the log stops. Paths are capped
//! at [`PATH_CAP`] bytes in records and log lines.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::identity::{Principal, Protocol};

/// What an audit record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Login,
    List,
    Stat,
    Download,
    Upload,
    Delete,
    Mkdir,
    Rmdir,
    Rename,
    Copy,
    SetAttributes,
    /// Making an upload durable before it is closed (SFTP `fsync@openssh.com`).
    Fsync,
    /// Asking for the storage's free space (SFTP `statvfs@openssh.com`).
    Statvfs,
    UserCreate,
    UserUpdate,
    UserDelete,
    GrantCreate,
    GrantDelete,
    PublicKeyCreate,
    KeyCreate,
    KeyUpdate,
    KeyDelete,
    /// A REST API call (`path` holds the method and route).
    ApiCall,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::List => "list",
            Action::Stat => "stat",
            Action::Download => "read",
            Action::Upload => "create",
            Action::Delete => "destroy",
            Action::Mkdir => "mkdir",
            Action::Rmdir => "rmdir",
            Action::Rename => "move",
            Action::Copy => "copy",
            Action::SetAttributes => "update",
            Action::Fsync => "fsync",
            Action::Statvfs => "statvfs",
            Action::UserCreate => "user_create",
            Action::UserUpdate => "user_update",
            Action::UserDelete => "user_delete",
            Action::GrantCreate => "permission_create",
            Action::GrantDelete => "permission_delete",
            Action::PublicKeyCreate => "public_key_create",
            Action::KeyCreate => "api_key_create",
            Action::KeyUpdate => "api_key_update",
            Action::KeyDelete => "api_key_delete",
            Action::ApiCall => "api_call",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Denied,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// One audit record, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Unique per event (made when it happens): writing a batch twice stores it once.
    pub event_key: String,
    /// Unix milliseconds.
    pub at_ms: i64,
    pub session_id: Option<String>,
    /// The acting user or the key's owner; `None` for a site-wide key.
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub key_id: Option<i64>,
    pub protocol: Protocol,
    pub action: Action,
    pub path: Option<String>,
    pub destination: Option<String>,
    pub bytes: Option<i64>,
    pub outcome: Outcome,
    /// Why it was denied or failed (never shown to the client).
    pub reason: Option<String>,
    pub remote_addr: Option<String>,
}

/// A process-wide random prefix and a counter: unique across replicas and restarts.
fn new_event_key() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| crate::secret::random_hex(12));
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The longest path (in bytes) kept in an audit record or a log line; longer ones are cut
/// at a character boundary and end in `…`.
pub const PATH_CAP: usize = 1024;

/// `path`, cut to [`PATH_CAP`] bytes (at a character boundary) plus `…` when longer.
pub fn capped(path: &str) -> Cow<'_, str> {
    if path.len() <= PATH_CAP {
        return Cow::Borrowed(path);
    }
    let mut end = PATH_CAP;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &path[..end]))
}

fn capped_owned(path: String) -> String {
    match capped(&path) {
        Cow::Borrowed(_) => path,
        Cow::Owned(cut) => cut,
    }
}

impl AuditEvent {
    /// The same event as a new record: a fresh key and the current time.
    pub fn renewed(mut self) -> Self {
        self.event_key = new_event_key();
        self.at_ms = chrono::Utc::now().timestamp_millis();
        self
    }

    /// An event acted by `principal`.
    pub fn by(principal: &Principal, action: Action, outcome: Outcome) -> AuditEvent {
        AuditEvent {
            event_key: new_event_key(),
            at_ms: chrono::Utc::now().timestamp_millis(),
            session_id: Some(principal.client.session_id.clone()),
            user_id: principal.user.as_ref().map(|u| u.id),
            username: principal.user.as_ref().map(|u| u.username.clone()),
            key_id: principal.key.as_ref().map(|k| k.id),
            protocol: principal.protocol,
            action,
            path: None,
            destination: None,
            bytes: None,
            outcome,
            reason: None,
            remote_addr: principal.client.ip.map(|ip| ip.to_string()),
        }
    }

    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(capped_owned(path.into()));
        self
    }

    pub fn destination(mut self, destination: impl Into<String>) -> Self {
        self.destination = Some(capped_owned(destination.into()));
        self
    }

    pub fn bytes(mut self, bytes: u64) -> Self {
        self.bytes = Some(i64::try_from(bytes).unwrap_or(i64::MAX));
        self
    }

    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// Where layers send audit events. Never blocks and never fails the caller.
pub trait AuditSink: Send + Sync {
    fn record(&self, event: AuditEvent);
}

/// A stored audit record, as read back.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: i64,
    pub at_ms: i64,
    pub node: String,
    pub session_id: Option<String>,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub key_id: Option<i64>,
    pub protocol: String,
    pub action: String,
    pub path: Option<String>,
    pub destination: Option<String>,
    pub bytes: Option<i64>,
    pub result: String,
    pub reason: Option<String>,
    pub remote_addr: Option<String>,
}

/// The store could not take a batch.
#[derive(Debug, thiserror::Error)]
#[error("audit store refused the batch: {0}")]
pub struct PersistError(pub String);

/// Durable storage for audit batches (implemented by the store).
#[async_trait::async_trait]
pub trait AuditPersist: Send + Sync {
    /// Writes all events or none, tagged with the writing replica's name.
    async fn persist(&self, node: &str, events: &[AuditEvent]) -> Result<(), PersistError>;
}

/// Settings of the batching writer.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// This replica's name, stored with every record.
    pub node: String,
    /// Events queued for the writer; as many again wait in the overflow buffer, and events
    /// past both are dropped (counted and logged).
    pub queue: usize,
    /// Largest batch written in one transaction.
    pub batch: usize,
}

/// The batching audit writer. Cheap to share (`Arc`).
pub struct AuditLog {
    tx: mpsc::Sender<AuditEvent>,
    stop: Arc<Notify>,
    counts: Arc<Counts>,
    overflow: Arc<Overflow>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Events that found the queue full, oldest first, drained by the writer. Bounded.
struct Overflow {
    events: Mutex<VecDeque<AuditEvent>>,
    cap: usize,
    /// Wakes the writer when events are added.
    added: Notify,
}

impl Overflow {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<AuditEvent>> {
        self.events.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `event` if there is room and says how many wait; `None` (event dropped) when full.
    fn push(&self, event: AuditEvent) -> Option<usize> {
        let mut events = self.lock();
        if events.len() >= self.cap {
            return None;
        }
        events.push_back(event);
        Some(events.len())
    }

    /// Moves up to `max` of the oldest events into `batch`.
    fn take(&self, batch: &mut Vec<AuditEvent>, max: usize) -> usize {
        let mut events = self.lock();
        let n = max.min(events.len());
        batch.extend(events.drain(..n));
        n
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// What the writer has done, for `/metrics` and the log.
#[derive(Default)]
struct Counts {
    written: AtomicU64,
    /// Events that found both the queue and the overflow buffer full.
    dropped: AtomicU64,
    /// Batches the store refused (each retried).
    write_failures: AtomicU64,
    /// Set while the backlog is above `NEAR_BOUND` of the queue (one log line per crossing).
    near_bound: std::sync::atomic::AtomicBool,
}

/// A snapshot of the writer's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Events queued or in the overflow buffer, not yet written.
    pub backlog: u64,
    /// The queue's bound; as many again wait in the overflow buffer (`overflow`).
    pub limit: u64,
    pub overflow: u64,
    /// Events dropped because the queue and the overflow buffer were both full.
    pub dropped: u64,
    pub written: u64,
    pub write_failures: u64,
}

/// The share of the queue above which the backlog is logged as near its bound.
const NEAR_BOUND: f64 = 0.8;

impl AuditLog {
    /// Starts the writer task on the current runtime.
    pub fn start(persist: Arc<dyn AuditPersist>, settings: AuditSettings) -> Arc<AuditLog> {
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        let stop = Arc::new(Notify::new());
        let counts = Arc::new(Counts::default());
        let overflow = Arc::new(Overflow {
            events: Mutex::new(VecDeque::new()),
            cap: settings.queue.max(1),
            added: Notify::new(),
        });
        let task = tokio::spawn(write_loop(
            rx,
            persist,
            settings,
            stop.clone(),
            counts.clone(),
            overflow.clone(),
        ));
        Arc::new(AuditLog {
            tx,
            stop,
            counts,
            overflow,
            task: Mutex::new(Some(task)),
        })
    }

    /// Events persisted so far.
    pub fn written(&self) -> u64 {
        self.counts.written.load(Ordering::Relaxed)
    }

    /// Events waiting to be written (queued, or in the overflow buffer).
    pub fn backlog(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity() + self.overflow.len()
    }

    /// Events dropped because the queue and the overflow buffer were both full.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    /// The writer's counters.
    pub fn stats(&self) -> AuditStats {
        AuditStats {
            backlog: self.backlog() as u64,
            limit: self.tx.max_capacity() as u64,
            overflow: self.overflow.len() as u64,
            dropped: self.dropped(),
            written: self.written(),
            write_failures: self.counts.write_failures.load(Ordering::Relaxed),
        }
    }

    /// Logs once when the backlog crosses `NEAR_BOUND` of the queue, and once when it is
    /// back under.
    fn watch_bound(&self) {
        let queued = self.tx.max_capacity() - self.tx.capacity();
        let near = queued as f64 >= self.tx.max_capacity() as f64 * NEAR_BOUND;
        if self.counts.near_bound.swap(near, Ordering::Relaxed) != near {
            if near {
                tracing::warn!(
                    backlog = self.backlog(),
                    limit = self.tx.max_capacity(),
                    "audit backlog is near its bound: the audit store is slow or unreachable; records are kept and written when it answers"
                );
            } else {
                tracing::info!(
                    backlog = self.backlog(),
                    "audit backlog is back under its bound"
                );
            }
        }
    }

    /// Stops taking events, writes everything queued, and waits for the writer to finish.
    pub async fn shutdown(&self) {
        self.stop.notify_one();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && let Err(err) = task.await
        {
            tracing::error!(error = %err, "audit writer ended abnormally");
        }
    }
}

impl AuditSink for AuditLog {
    fn record(&self, event: AuditEvent) {
        trace_event(&event);
        match self.tx.try_send(event) {
            Ok(()) => self.watch_bound(),
            Err(mpsc::error::TrySendError::Full(event)) => match self.overflow.push(event) {
                // One buffer drained by the writer: no task or memory per waiting event.
                Some(held) => {
                    if held == 1 {
                        tracing::error!(
                            limit = self.tx.max_capacity(),
                            "audit queue is full; further records wait in the overflow buffer until the audit store answers"
                        );
                    }
                    self.overflow.added.notify_one();
                }
                None => {
                    // Bounded loss: one error line per power of two, not one per event.
                    let dropped = self.counts.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    if dropped.is_power_of_two() {
                        tracing::error!(
                            dropped,
                            limit = self.overflow.cap,
                            "audit queue and overflow buffer are full: audit records dropped"
                        );
                    }
                }
            },
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("audit event lost: the audit log has stopped");
            }
        }
    }
}

fn trace_event(e: &AuditEvent) {
    tracing::info!(
        target: "filegate::audit",
        protocol = e.protocol.as_str(),
        op = e.action.as_str(),
        result = e.outcome.as_str(),
        user = e.username.as_deref().unwrap_or("-"),
        key_id = e.key_id,
        path = &*capped(e.path.as_deref().unwrap_or("")),
        destination = &*capped(e.destination.as_deref().unwrap_or("")),
        bytes = e.bytes,
        reason = e.reason.as_deref().unwrap_or(""),
        client.ip = e.remote_addr.as_deref().unwrap_or(""),
        session = e.session_id.as_deref().unwrap_or(""),
        "audit"
    );
}

async fn write_loop(
    mut rx: mpsc::Receiver<AuditEvent>,
    persist: Arc<dyn AuditPersist>,
    settings: AuditSettings,
    stop: Arc<Notify>,
    counts: Arc<Counts>,
    overflow: Arc<Overflow>,
) {
    let batch_size = settings.batch.max(1);
    let mut batch = Vec::with_capacity(batch_size);
    loop {
        tokio::select! {
            biased;
            _ = stop.notified() => {
                rx.close();
                while rx.recv_many(&mut batch, batch_size).await > 0 {
                    write_batch(&*persist, &settings.node, &mut batch, &counts, Some(5)).await;
                }
                while overflow.take(&mut batch, batch_size) > 0 {
                    write_batch(&*persist, &settings.node, &mut batch, &counts, Some(5)).await;
                }
                break;
            }
            n = rx.recv_many(&mut batch, batch_size) => {
                if n == 0 {
                    break;
                }
                write_batch(&*persist, &settings.node, &mut batch, &counts, None).await;
            }
            _ = overflow.added.notified() => {}
        }
        // Then write what waits in the overflow buffer, oldest first.
        while overflow.take(&mut batch, batch_size) > 0 {
            write_batch(&*persist, &settings.node, &mut batch, &counts, None).await;
        }
    }
}

/// Writes `batch`, retrying with backoff; `attempts` bounds the retries (none = forever).
async fn write_batch(
    persist: &dyn AuditPersist,
    node: &str,
    batch: &mut Vec<AuditEvent>,
    counts: &Counts,
    attempts: Option<u32>,
) {
    let mut delay = Duration::from_millis(50);
    let mut tried = 0u32;
    loop {
        match persist.persist(node, batch).await {
            Ok(()) => {
                counts
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                if tried > 0 {
                    tracing::info!(
                        written = batch.len(),
                        attempts = tried + 1,
                        "audit store is back; held records written"
                    );
                }
                batch.clear();
                return;
            }
            Err(err) => {
                counts.write_failures.fetch_add(1, Ordering::Relaxed);
                tried += 1;
                if attempts.is_some_and(|max| tried >= max) {
                    tracing::error!(error = %err, lost = batch.len(), "audit records could not be written");
                    batch.clear();
                    return;
                }
                tracing::warn!(error = %err, pending = batch.len(), "audit write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests;
