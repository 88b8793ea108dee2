//! The one registry of live sessions (SFTP connections, FTP control connections) of every
//! protocol, and the one revocation watcher per replica. (Not `api::sessions`, which is REST
//! login tokens.)
//!
//! A front-end registers a session once its principal signed in ([`Registry::register`]),
//! giving a way to end it; the returned [`Registration`] deregisters when dropped. Transfers
//! add to the session's [`Bytes`].
//!
//! Two background tasks per replica, whatever the number of sessions:
//! - the heartbeat writes this replica's session list to the store in one transaction per
//!   period (sooner, at most once a second, after sessions come or go) and forgets replicas
//!   silent for [`DEAD_AFTER_BEATS`] periods, so the list across replicas stays current;
//! - the watcher reads the store's change log ("changes since seq N", woken early by
//!   PostgreSQL `NOTIFY` when available) and the keys that just expired, once a second, and
//!   re-checks only the sessions of the users and keys named with
//!   [`Authenticator::still_valid`], ending exactly those that may no longer act. An end
//!   request for a session id (from `DELETE /sessions/active/{id}` on any replica) ends it on
//!   the replica that holds it.
//!
//! No permission decision is made here: the authenticator says whether a principal is still
//! valid; this module only finds whom to ask about and ends whom it says.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::identity::{Principal, Protocol};
use crate::store::{LiveRow, Store, StoreError};

/// A replica silent for this many heartbeat periods is dead: its sessions are not listed.
pub const DEAD_AFTER_BEATS: u32 = 3;
/// How often the watcher reads the change log (when no NOTIFY wakes it sooner).
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Changes read per round at most (the rest next round).
const CHANGES_PER_READ: i64 = 10_000;
/// Change-log entries older than this are dropped (every replica has read them long ago).
const CHANGES_KEPT_SECONDS: i64 = 3600;

/// Bytes moved by one session's transfers.
#[derive(Debug, Default)]
pub struct Bytes {
    received: AtomicU64,
    sent: AtomicU64,
}

impl Bytes {
    /// Counts `n` bytes uploaded by the client.
    pub fn received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` bytes downloaded by the client.
    pub fn sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    /// `(received, sent)`.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.received.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
        )
    }
}

/// How a front-end ends one of its sessions (called with the reason to tell the client).
pub type Ender = Box<dyn Fn(&'static str) + Send + Sync>;

/// One live session of this replica.
struct Live {
    id: i64,
    protocol: Protocol,
    principal: Arc<Principal>,
    client: Option<IpAddr>,
    started_at: i64,
    bytes: Arc<Bytes>,
    end: Ender,
}

impl Live {
    fn row(&self, replica: &str) -> LiveRow {
        let (received, sent) = self.bytes.totals();
        LiveRow {
            id: self.id,
            replica: replica.to_owned(),
            protocol: self.protocol.as_str().to_owned(),
            username: Some(self.principal.display_name()),
            user_id: self.principal.user.as_ref().map(|u| u.id),
            key_id: self.principal.key.as_ref().map(|k| k.id),
            client_ip: self.client.map(|ip| ip.to_string()),
            started_at: self.started_at,
            bytes_in: i64::try_from(received).unwrap_or(i64::MAX),
            bytes_out: i64::try_from(sent).unwrap_or(i64::MAX),
        }
    }
}

/// This replica's live sessions.
pub struct Registry {
    /// This process's id among replicas (random per start).
    replica: String,
    node: String,
    store: Store,
    auth: Arc<Authenticator>,
    heartbeat: Duration,
    live: Mutex<HashMap<i64, Arc<Live>>>,
    /// Woken when sessions come or go (the heartbeat writes sooner).
    changed: Notify,
}

/// A registered session; deregistered when dropped.
pub struct Registration {
    registry: Arc<Registry>,
    id: i64,
}

impl Registration {
    pub fn id(&self) -> i64 {
        self.id
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
        self.registry.changed.notify_one();
    }
}

/// What ending a session by id found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Ended here.
    Here,
    /// Held by another live replica, which was asked to end it.
    Asked,
    NotFound,
}

impl Registry {
    pub fn new(
        store: Store,
        auth: Arc<Authenticator>,
        node: &str,
        heartbeat: Duration,
    ) -> Arc<Registry> {
        Arc::new(Registry {
            replica: crate::secret::random_hex(8),
            node: node.to_owned(),
            store,
            auth,
            heartbeat,
            live: Mutex::default(),
            changed: Notify::new(),
        })
    }

    // Only map operations happen under the lock; a poisoned map is still consistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<Live>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Registers a signed-in session; `end` ends it (the front-end's way to disconnect).
    pub fn register(
        self: &Arc<Self>,
        principal: Arc<Principal>,
        client: Option<IpAddr>,
        bytes: Arc<Bytes>,
        end: Ender,
    ) -> Registration {
        let id = new_session_id();
        let live = Arc::new(Live {
            id,
            protocol: principal.protocol,
            principal,
            client,
            started_at: now(),
            bytes,
            end,
        });
        tracing::debug!(session = %id, protocol = live.protocol.as_str(), user = %live.principal.display_name(), "session registered");
        self.lock().insert(id, live);
        self.changed.notify_one();
        Registration {
            registry: self.clone(),
            id,
        }
    }

    /// Sessions live on this replica now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn snapshot(&self) -> Vec<LiveRow> {
        self.lock()
            .values()
            .map(|live| live.row(&self.replica))
            .collect()
    }

    /// Ends session `id` if this replica holds it.
    fn end_here(&self, id: i64, reason: &'static str) -> bool {
        let live = self.lock().get(&id).cloned();
        match live {
            Some(live) => {
                tracing::info!(session = %id, protocol = live.protocol.as_str(), user = %live.principal.display_name(), reason, "ending session");
                (live.end)(reason);
                true
            }
            None => false,
        }
    }

    /// Ends session `id` wherever it is: here at once, or on its replica within a watcher
    /// round.
    pub async fn end(&self, id: i64) -> Result<Ended, StoreError> {
        if self.end_here(id, "ended by an administrator") {
            return Ok(Ended::Here);
        }
        match self.store.live_session(self.alive_since(), id).await? {
            Some(_) => {
                self.store.request_session_end(id).await?;
                Ok(Ended::Asked)
            }
            None => Ok(Ended::NotFound),
        }
    }

    /// One page of the live sessions of every live replica, oldest first, after `after`.
    pub async fn list(
        &self,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<LiveRow>, StoreError> {
        self.store
            .live_sessions(self.alive_since(), after, limit)
            .await
    }

    /// Heartbeats older than this are dead replicas'.
    fn alive_since(&self) -> i64 {
        let window = self.heartbeat.as_secs().max(1) * u64::from(DEAD_AFTER_BEATS);
        now() - i64::try_from(window).unwrap_or(i64::MAX / 2)
    }

    /// Writes the heartbeat now.
    pub async fn beat(&self) -> Result<(), StoreError> {
        let sessions = self.snapshot();
        self.store
            .heartbeat(
                &self.replica,
                &self.node,
                now(),
                self.alive_since(),
                &sessions,
            )
            .await
    }

    /// Runs the heartbeat and the watcher until `stop`, then takes this replica's rows out of
    /// the store.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        tokio::join!(
            self.clone().heartbeat_loop(stop.clone()),
            self.clone().watch(stop.clone())
        );
        if let Err(err) = self.store.forget_replica(&self.replica).await {
            tracing::warn!(error = %err, "cannot remove this replica's sessions from the store; they expire with its heartbeat");
        }
    }

    async fn heartbeat_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut failing = false;
        loop {
            let result = self.beat().await;
            match (result, failing) {
                (Err(err), false) => {
                    tracing::warn!(error = %err, "cannot write the session heartbeat; other replicas will not list this one's sessions until the store is back");
                    failing = true;
                }
                (Ok(()), true) => failing = false,
                _ => {}
            }
            let period = tokio::time::sleep(self.heartbeat);
            tokio::pin!(period);
            tokio::select! {
                () = stop.cancelled() => return,
                () = &mut period => continue,
                () = self.changed.notified() => {}
            }
            // Sessions came or went: write sooner, but at most once a second.
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1).min(self.heartbeat)) => {}
            }
        }
    }

    async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut seq = loop {
            match self.store.latest_change().await {
                Ok(seq) => break seq,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the change log; retrying");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(WATCH_EVERY) => {}
                    }
                }
            }
        };
        let mut listener = match self.store.listen_changes().await {
            Ok(listener) => listener,
            Err(err) => {
                tracing::warn!(error = %err, "cannot LISTEN for changes; polling only");
                None
            }
        };
        let mut expiry_checked = now();
        let mut failing = false;
        for round in 1u64.. {
            let woken = async {
                match listener.as_mut() {
                    Some(l) => l.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(WATCH_EVERY) => {}
                result = woken => if let Err(err) = result {
                    tracing::warn!(error = %err, "change notifications lost; polling only");
                    listener = None;
                },
            }
            let checked_until = now();
            match self.read_changes(seq, expiry_checked, checked_until).await {
                Ok((last, affected)) => {
                    seq = last;
                    expiry_checked = checked_until;
                    failing = false;
                    self.recheck(affected).await;
                }
                Err(err) if !failing => {
                    tracing::warn!(error = %err, "cannot read the change log; revocations wait until the store is back");
                    failing = true;
                }
                Err(_) => {}
            }
            if round % 600 == 0 {
                let _ = self.store.prune_changes(now() - CHANGES_KEPT_SECONDS).await;
            }
        }
    }

    /// Reads changes after `seq` and keys expired in `(from, until]`.
    async fn read_changes(
        &self,
        seq: i64,
        from: i64,
        until: i64,
    ) -> Result<(i64, Affected), StoreError> {
        let changes = self.store.changes_since(seq, CHANGES_PER_READ).await?;
        let mut affected = Affected::default();
        let mut last = seq;
        for change in changes {
            last = last.max(change.seq);
            affected.users.extend(change.user_id);
            affected.keys.extend(change.key_id);
            affected.sessions.extend(change.session_id);
        }
        affected
            .keys
            .extend(self.store.keys_expiring(from, until).await?);
        Ok((last, affected))
    }

    /// Ends the sessions asked for, and those of the users and keys named that may no longer
    /// act.
    async fn recheck(&self, affected: Affected) {
        for &id in &affected.sessions {
            self.end_here(id, "ended by an administrator");
        }
        if affected.users.is_empty() && affected.keys.is_empty() {
            return;
        }
        let suspects: Vec<Arc<Live>> = self
            .lock()
            .values()
            .filter(|live| {
                let p = &live.principal;
                p.user
                    .as_ref()
                    .is_some_and(|u| affected.users.contains(&u.id))
                    || p.key
                        .as_ref()
                        .is_some_and(|k| affected.keys.contains(&k.id))
            })
            .cloned()
            .collect();
        for live in suspects {
            match self.auth.still_valid(&live.principal).await {
                Ok(false) => {
                    tracing::info!(session = %live.id, user = %live.principal.display_name(), key_id = live.principal.key.as_ref().map(|k| k.id), "ending session: access revoked or narrowed");
                    (live.end)("access revoked");
                }
                Ok(true) => {}
                Err(err) => {
                    tracing::warn!(session = %live.id, error = %err, "cannot re-check a session; it goes on");
                }
            }
        }
    }
}

/// Who a round of changes concerns.
#[derive(Debug, Default)]
struct Affected {
    users: HashSet<i64>,
    keys: HashSet<i64>,
    sessions: HashSet<i64>,
}

/// A session id unique across replicas (random, positive, 53 bits: JSON clients that read
/// numbers as doubles — JavaScript, jq — keep it exact).
fn new_session_id() -> i64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: fall back on the clock (ids need only be unique, not secret).
        return (now().max(1) << 20 ^ i64::from(std::process::id())) & ((1 << 53) - 1);
    }
    (u64::from_le_bytes(bytes) >> 11).max(1) as i64
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
