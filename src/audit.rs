//! The audit log: one record per login, file operation and account change (DESIGN §5).
//!
//! Layers describe what happened as an [`AuditEvent`] and hand it to an [`AuditSink`]. The
//! [`AuditLog`] sink mirrors every event to `tracing` and queues it for one background
//! writer that persists events in batches through [`AuditPersist`] (implemented by the
//! store). Paths are capped at [`PATH_CAP`] bytes in records and log lines.
//!
//! # Never losing a record, in bounded memory
//!
//! - **Store, else journal.** The writer sends each batch to the store with a timeout
//!   (`audit.store_timeout_ms`). When the store refuses or is too slow, the batch is appended
//!   to this replica's local [`Journal`] (`<data_dir>/audit-journal/`, one `fsync` per
//!   batch) instead, and later batches go straight there while the store is down. Each
//!   replica has its own data folder, so its own journal.
//! - **Replay.** The journal is replayed into the store at start and whenever the store
//!   answers again (tried with back-off, 0.2 s doubling to 5 s), oldest segment first, a
//!   segment deleted only once all its records are in. The store keeps one row per
//!   `event_key` (migration 0004), so a crash between an insert and the segment's deletion
//!   replays the segment without duplicates. Torn or corrupt journal lines are skipped with a
//!   warning (see [`journal`]). Replayed records reach the store later than newer ones: row
//!   ids do not follow event time after an outage (`at_ms` does).
//! - **Bounded memory, no task per event.** The queue (`audit.queue`) is the only buffer.
//!   When it is full, [`AuditSink::record`] appends the event to the journal itself, from the
//!   caller's thread (back-pressure: the caller waits for the local disk); nothing else holds
//!   records in memory.
//! - **Acknowledged means durable.** Operations whose record matters (an upload's commit,
//!   delete, rename, mkdir, rmdir, copy, attribute changes; see `files`) call
//!   [`AuditSink::record_durable`]: it waits for room in the queue and then for a receipt
//!   that the batch holding the event is in the store or `fsync`'d in the journal, at most
//!   `audit.durable_wait_ms` (after which, or when the queue stays full, the caller writes
//!   the record to the journal itself). So `kill -9` during a store outage loses nothing that
//!   was acknowledged to a client. Reads, listings, sign-ins and refusals use `record` (no
//!   wait); they are lost only on `kill -9` while still in the queue.
//! - **Disk full too.** When the store and the journal both refuse a batch, the writer keeps
//!   it and retries both with back-off; meanwhile the queue fills, operations that need a
//!   durable record are answered with an error (the upload is refused rather than its record
//!   lost; the file layer reports it as failed), and events that only needed `record` are
//!   dropped and counted (`filegate_audit_dropped_total`) — the only case of loss.
//! - **Shutdown.** [`AuditLog::shutdown`] ends within its grace period
//!   (`audit.shutdown_grace_ms`): it writes what is queued to the store during the first
//!   three quarters of it, then to the journal, which the next start replays.
//!
//! Metrics: `filegate_audit_backlog` (queue), `filegate_audit_journal_records` /
//! `_bytes` (waiting in the journal), `filegate_audit_journaled_total`,
//! `filegate_audit_spilled_total` (written to the journal by callers facing a full queue),
//! `filegate_audit_replayed_total`, `filegate_audit_journal_corrupt_total`,
//! `filegate_audit_dropped_total`.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

pub mod journal;
pub use journal::Journal;

use crate::identity::{Principal, Protocol};

crate::named_enum! {
    /// What an audit record is about.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Action {
        Login => "login",
        List => "list",
        Stat => "stat",
        Download => "read",
        Upload => "create",
        Delete => "destroy",
        Mkdir => "mkdir",
        Rmdir => "rmdir",
        Rename => "move",
        Copy => "copy",
        SetAttributes => "update",
        /// Making an upload durable before it is closed (SFTP `fsync@openssh.com`).
        Fsync => "fsync",
        /// Asking for the storage's free space (SFTP `statvfs@openssh.com`).
        Statvfs => "statvfs",
        UserCreate => "user_create",
        UserUpdate => "user_update",
        UserDelete => "user_delete",
        GrantCreate => "permission_create",
        GrantDelete => "permission_delete",
        PublicKeyCreate => "public_key_create",
        PublicKeyDelete => "public_key_delete",
        KeyCreate => "api_key_create",
        KeyUpdate => "api_key_update",
        KeyDelete => "api_key_delete",
        /// A REST API call (`path` holds the method and route).
        ApiCall => "api_call",
    }
}

crate::named_enum! {
    /// How it ended.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Outcome {
        Ok => "ok",
        Denied => "denied",
        Failed => "failed",
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

/// Where layers send audit events.
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync {
    /// Hands `event` over without waiting for it to be durable. Never fails the caller; it
    /// may wait for the local disk when the queue is full (back-pressure, see [`AuditLog`]).
    fn record(&self, event: AuditEvent);

    /// Hands `event` over and waits (a bounded time) until it is durable: in the store, or
    /// `fsync`'d in the local journal. Operations whose record matters call this before
    /// they answer the client; an error means the client must not be told it succeeded.
    async fn record_durable(&self, event: AuditEvent) -> Result<(), NotDurable> {
        self.record(event);
        Ok(())
    }
}

/// An audit record that could not be made durable in time.
#[derive(Debug, thiserror::Error)]
pub enum NotDurable {
    #[error(
        "audit record not durable within {0:?} (audit store and local journal both slow or failing)"
    )]
    Timeout(Duration),
    #[error("audit record could not be written to the local journal: {0}")]
    Journal(std::io::Error),
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
    /// Events queued in memory for the writer; past that, callers write to the journal
    /// themselves (back-pressure), never to an unbounded buffer.
    pub queue: usize,
    /// Largest batch written in one transaction (and one journal `fsync`).
    pub batch: usize,
    /// This replica's journal folder (`<data_dir>/audit-journal`).
    pub journal_dir: PathBuf,
    /// How long one store write may take before the batch goes to the journal instead.
    pub store_timeout: Duration,
    /// How long [`AuditSink::record_durable`] waits at most.
    pub durable_wait: Duration,
}

/// Why the audit log could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the audit journal at {path}: {source}")]
pub struct JournalOpenError {
    pub path: String,
    pub source: std::io::Error,
}

/// An event on its way to the writer, with the receipt its caller may wait for.
struct Queued {
    event: AuditEvent,
    durable: Option<oneshot::Sender<()>>,
}

/// The batching audit writer. Cheap to share (`Arc`).
pub struct AuditLog {
    tx: mpsc::Sender<Queued>,
    /// The deadline for store writes once shutdown has begun.
    stop: watch::Sender<Option<Instant>>,
    counts: Arc<Counts>,
    journal: Arc<Journal>,
    durable_wait: Duration,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// What the writer has done, for `/metrics` and the log.
#[derive(Default)]
struct Counts {
    /// Events written to the store straight from the queue.
    written: AtomicU64,
    /// Events written to the journal (by the writer, or by callers facing a full queue).
    journaled: AtomicU64,
    /// Of those, events callers wrote to the journal themselves because the queue was full.
    spilled: AtomicU64,
    /// Events moved from the journal into the store.
    replayed: AtomicU64,
    /// Events lost: the store and the local disk both refused them.
    dropped: AtomicU64,
    /// Store writes that failed or timed out.
    write_failures: AtomicU64,
    /// Set while the queue is above `NEAR_BOUND` (one log line per crossing).
    near_bound: AtomicBool,
}

/// A snapshot of the writer's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Events queued in memory, not yet written.
    pub backlog: u64,
    /// The queue's bound.
    pub limit: u64,
    /// Records waiting in the local journal, and its size on disk.
    pub journal_records: u64,
    pub journal_bytes: u64,
    /// Events written to the journal so far; of those, by callers facing a full queue.
    pub journaled: u64,
    pub spilled: u64,
    /// Events moved from the journal into the store.
    pub replayed: u64,
    /// Journal lines skipped at replay as torn or corrupt.
    pub journal_corrupt: u64,
    /// Events lost because the store and the local disk both refused them.
    pub dropped: u64,
    pub written: u64,
    pub write_failures: u64,
}

/// The share of the queue above which the backlog is logged as near its bound.
const NEAR_BOUND: f64 = 0.8;
/// Retry delays for the store (replay attempts) and for a failing disk.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

impl AuditLog {
    /// Opens the journal and starts the writer task on the current runtime; what earlier
    /// runs left in the journal is replayed into the store first.
    pub fn start(
        persist: Arc<dyn AuditPersist>,
        settings: AuditSettings,
    ) -> Result<Arc<AuditLog>, JournalOpenError> {
        let journal = Journal::open(&settings.journal_dir).map_err(|source| JournalOpenError {
            path: settings.journal_dir.display().to_string(),
            source,
        })?;
        if journal.records() > 0 {
            tracing::info!(
                records = journal.records(),
                bytes = journal.bytes(),
                "audit journal holds records from an earlier run; replaying them into the store"
            );
        }
        let journal = Arc::new(journal);
        let (tx, rx) = mpsc::channel(settings.queue.max(1));
        let (stop, stop_rx) = watch::channel(None);
        let counts = Arc::new(Counts::default());
        let durable_wait = settings.durable_wait;
        let writer = Writer {
            persist,
            journal: journal.clone(),
            counts: counts.clone(),
            stop: stop_rx,
            store_up: true,
            retry: RETRY_MIN,
            next_replay: Instant::now(),
            settings,
        };
        let task = tokio::spawn(writer.run(rx));
        Ok(Arc::new(AuditLog {
            tx,
            stop,
            counts,
            journal,
            durable_wait,
            task: Mutex::new(Some(task)),
        }))
    }

    /// Events persisted to the store so far (directly or replayed from the journal).
    pub fn written(&self) -> u64 {
        self.counts.written.load(Ordering::Relaxed) + self.counts.replayed.load(Ordering::Relaxed)
    }

    /// Events waiting in memory to be written.
    pub fn backlog(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Events lost because the store and the local disk both refused them.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    /// The writer's counters.
    pub fn stats(&self) -> AuditStats {
        let c = &self.counts;
        AuditStats {
            backlog: self.backlog() as u64,
            limit: self.tx.max_capacity() as u64,
            journal_records: self.journal.records(),
            journal_bytes: self.journal.bytes(),
            journaled: c.journaled.load(Ordering::Relaxed),
            spilled: c.spilled.load(Ordering::Relaxed),
            replayed: c.replayed.load(Ordering::Relaxed),
            journal_corrupt: self.journal.corrupt(),
            dropped: self.dropped(),
            written: c.written.load(Ordering::Relaxed),
            write_failures: c.write_failures.load(Ordering::Relaxed),
        }
    }

    /// Logs once when the backlog crosses `NEAR_BOUND` of the queue, and once when it is
    /// back under.
    fn watch_bound(&self) {
        let queued = self.backlog();
        let near = queued as f64 >= self.tx.max_capacity() as f64 * NEAR_BOUND;
        if self.counts.near_bound.swap(near, Ordering::Relaxed) != near {
            if near {
                tracing::warn!(
                    backlog = queued,
                    limit = self.tx.max_capacity(),
                    "audit queue is near its bound: the writer is behind (slow disk or store); past the bound callers write their records to the journal themselves"
                );
            } else {
                tracing::info!(backlog = queued, "audit queue is back under its bound");
            }
        }
    }

    /// Writes `event` to the journal from the caller's thread: the queue is full (or the
    /// writer has stopped). Back-pressure: the caller waits for the disk.
    fn spill(&self, event: AuditEvent) -> Result<(), NotDurable> {
        let spilled = self.counts.spilled.fetch_add(1, Ordering::Relaxed) + 1;
        if spilled.is_power_of_two() {
            tracing::warn!(
                spilled,
                limit = self.tx.max_capacity(),
                "audit queue is full; callers write their records to the local journal"
            );
        }
        match blocking(|| self.journal.append(std::slice::from_ref(&event))) {
            Ok(()) => {
                self.counts.journaled.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(err) => {
                let dropped = self.counts.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::error!(dropped, error = %err, "audit queue is full and the journal refuses writes: audit records lost");
                }
                Err(NotDurable::Journal(err))
            }
        }
    }

    /// Stops taking events and ends within `grace`: what the store takes in the first
    /// three quarters of it is written there, the rest goes to the journal (replayed at
    /// the next start). Only a writer stuck past `grace` (a disk that does not answer) is
    /// abandoned, with an error naming what was lost.
    pub async fn shutdown(&self, grace: Duration) {
        let now = Instant::now();
        let _ = self.stop.send(Some(now + grace.mul_f64(0.75)));
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut task) = task else { return };
        match tokio::time::timeout_at(now + grace, &mut task).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!(error = %err, "audit writer ended abnormally"),
            Err(_) => {
                task.abort();
                tracing::error!(
                    queued = self.backlog(),
                    "audit writer did not finish within the shutdown grace period; records still in memory are lost"
                );
            }
        }
        if self.journal.records() > 0 {
            tracing::info!(
                records = self.journal.records(),
                "audit records left in the local journal; they are written to the store at the next start"
            );
        }
    }
}

#[async_trait::async_trait]
impl AuditSink for AuditLog {
    fn record(&self, event: AuditEvent) {
        trace_event(&event);
        match self.tx.try_send(Queued {
            event,
            durable: None,
        }) {
            Ok(()) => self.watch_bound(),
            Err(
                mpsc::error::TrySendError::Full(queued) | mpsc::error::TrySendError::Closed(queued),
            ) => {
                let _ = self.spill(queued.event);
            }
        }
    }

    async fn record_durable(&self, event: AuditEvent) -> Result<(), NotDurable> {
        trace_event(&event);
        let deadline = Instant::now() + self.durable_wait;
        // Back-pressure: wait for room in the queue, up to the bound, then write it here.
        let permit = match tokio::time::timeout_at(deadline, self.tx.reserve()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => return self.spill(event),
        };
        let (done, receipt) = oneshot::channel();
        permit.send(Queued {
            event,
            durable: Some(done),
        });
        self.watch_bound();
        match tokio::time::timeout_at(deadline, receipt).await {
            Ok(Ok(())) => Ok(()),
            // The writer gave up on the batch (shutdown with a failing disk) or is still
            // retrying it.
            Ok(Err(_)) | Err(_) => Err(NotDurable::Timeout(self.durable_wait)),
        }
    }
}

/// Runs blocking file I/O without stalling the other tasks of a multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
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

/// The one writer task: store when it answers, journal when it does not, replay when it
/// is back.
struct Writer {
    persist: Arc<dyn AuditPersist>,
    journal: Arc<Journal>,
    counts: Arc<Counts>,
    settings: AuditSettings,
    /// `Some(deadline for store writes)` once shutdown has begun.
    stop: watch::Receiver<Option<Instant>>,
    /// Whether the last store write (or replay) succeeded; while not, batches go straight
    /// to the journal and the store is tried again by replaying, with back-off.
    store_up: bool,
    retry: Duration,
    next_replay: Instant,
}

/// Why a write did not reach the store.
enum StoreRefused {
    Failed(PersistError),
    TimedOut,
    Stopping,
}

impl std::fmt::Display for StoreRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreRefused::Failed(err) => err.fmt(f),
            StoreRefused::TimedOut => f.write_str("audit store did not answer in time"),
            StoreRefused::Stopping => f.write_str("shutting down"),
        }
    }
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Queued>) {
        let batch_size = self.settings.batch.max(1);
        let mut batch = Vec::with_capacity(batch_size);
        loop {
            if self.stopping().is_some() {
                break;
            }
            if Instant::now() >= self.next_replay && !self.journal.is_empty() {
                self.replay_one().await;
                // New events get their turn between segments.
            }
            let replay_at = if self.journal.is_empty() {
                Instant::now() + Duration::from_secs(3600)
            } else {
                self.next_replay
            };
            tokio::select! {
                biased;
                changed = self.stop.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                n = rx.recv_many(&mut batch, batch_size) => {
                    if n == 0 {
                        break;
                    }
                    self.flush(&mut batch).await;
                }
                _ = tokio::time::sleep_until(replay_at) => {}
            }
        }
        // Shutdown: take nothing new, write what is queued (store until its deadline, then
        // journal).
        rx.close();
        while rx.recv_many(&mut batch, batch_size).await > 0 {
            self.flush(&mut batch).await;
        }
    }

    /// The deadline for store writes, once shutdown has begun.
    fn stopping(&self) -> Option<Instant> {
        *self.stop.borrow()
    }

    /// How long the next store write may take: the store timeout, cut to the shutdown
    /// deadline; `None` when there is no time left for the store.
    fn store_budget(&self) -> Option<Duration> {
        let timeout = self.settings.store_timeout;
        match self.stopping() {
            None => Some(timeout),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                (!left.is_zero()).then_some(timeout.min(left))
            }
        }
    }

    async fn to_store(&self, events: &[AuditEvent]) -> Result<(), StoreRefused> {
        let budget = self.store_budget().ok_or(StoreRefused::Stopping)?;
        match tokio::time::timeout(budget, self.persist.persist(&self.settings.node, events)).await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(StoreRefused::Failed(err)),
            Err(_) => Err(StoreRefused::TimedOut),
        }
    }

    fn store_failed(&mut self, err: &StoreRefused) {
        if matches!(err, StoreRefused::Stopping) {
            return;
        }
        self.counts.write_failures.fetch_add(1, Ordering::Relaxed);
        if self.store_up {
            tracing::warn!(error = %err, journal = %self.settings.journal_dir.display(), "audit store unreachable or slow: audit records go to the local journal until it answers");
        }
        self.store_up = false;
        self.next_replay = Instant::now() + self.retry;
        self.retry = (self.retry * 2).min(RETRY_MAX);
    }

    /// Makes `batch` durable (store, else journal) and hands out its receipts. While both
    /// refuse, retries with back-off (the queue fills and callers write to the journal
    /// themselves, or lose records if the disk refuses them too); at shutdown, a batch
    /// nothing takes is lost and logged.
    async fn flush(&mut self, batch: &mut Vec<Queued>) {
        let (events, receipts): (Vec<AuditEvent>, Vec<Option<oneshot::Sender<()>>>) =
            batch.drain(..).map(|q| (q.event, q.durable)).unzip();
        let mut delay = RETRY_MIN;
        loop {
            let mut try_store = self.store_up;
            if try_store {
                match self.to_store(&events).await {
                    Ok(()) => {
                        self.counts
                            .written
                            .fetch_add(events.len() as u64, Ordering::Relaxed);
                        break;
                    }
                    Err(err) => {
                        self.store_failed(&err);
                        try_store = false;
                    }
                }
            }
            match blocking(|| self.journal.append(&events)) {
                Ok(()) => {
                    self.counts
                        .journaled
                        .fetch_add(events.len() as u64, Ordering::Relaxed);
                    break;
                }
                Err(err) => {
                    if self.stopping().is_some() {
                        self.counts
                            .dropped
                            .fetch_add(events.len() as u64, Ordering::Relaxed);
                        tracing::error!(error = %err, lost = events.len(), "audit records lost at shutdown: the store and the journal both refused them");
                        return;
                    }
                    tracing::error!(error = %err, pending = events.len(), "audit journal refuses writes and the store is unreachable; retrying (operations that need their record are refused meanwhile)");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                    if !try_store {
                        // Try the store again too: it may be back before the disk.
                        self.store_up = true;
                    }
                }
            }
        }
        for receipt in receipts.into_iter().flatten() {
            let _ = receipt.send(());
        }
    }

    /// Replays the oldest journal segment into the store; on failure, backs off.
    async fn replay_one(&mut self) {
        let batch = self.settings.batch.max(1);
        let result = {
            let this = &*self;
            this.journal
                .replay_oldest(batch, |events| async move {
                    if this.stopping().is_some() {
                        return Err(StoreRefused::Stopping);
                    }
                    this.to_store(&events).await?;
                    this.counts
                        .replayed
                        .fetch_add(events.len() as u64, Ordering::Relaxed);
                    Ok(())
                })
                .await
        };
        match result {
            Ok(_) => {
                if !self.store_up {
                    tracing::info!(
                        waiting = self.journal.records(),
                        "audit store answers again; replaying the local journal"
                    );
                }
                self.store_up = true;
                self.retry = RETRY_MIN;
                self.next_replay = Instant::now();
                if self.journal.is_empty() {
                    tracing::info!(
                        replayed = self.counts.replayed.load(Ordering::Relaxed),
                        "audit journal replayed into the store"
                    );
                }
            }
            Err(err) => self.store_failed(&err),
        }
    }
}

#[cfg(test)]
mod tests;
