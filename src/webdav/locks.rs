//! WebDAV locks (RFC 4918 write locks), kept in the store so that every replica honours
//! them: a lock taken on one replica blocks a write on another at once.
//!
//! [`LockTable`] holds the rules and the [`LockStore`] seam (implemented by `store`; no lock
//! lives in one replica's memory); [`CallerLocks`] is the per-request view that dav-server
//! calls (its `DavLockSystem`), and knows who is calling, so that only a lock's owner — or a
//! site admin with write rights there — can unlock or refresh it, and a token read from
//! `lockdiscovery` is of no use to anyone else. Timeouts are capped (no lock outlives
//! `max_lock`; `Infinite` and a missing `Timeout` get the cap), expired locks are ignored
//! and swept (whenever a lock is taken), and the number of live locks is capped per owner
//! and in total, across replicas. Every question is asked of the store: nothing is trusted
//! from one request to the next.
//!
//! Conflicts follow dav-server's `MemLs`: a lock on a path conflicts with exclusive locks on
//! the path, depth-infinity locks above it and (for a depth-infinity request) any lock below
//! it. Paths are compared as [`SitePath`]s, the one normaliser the file layer uses. A lock
//! is granted in one store transaction serialised against every other lock change, so two
//! replicas cannot both grant conflicting locks.
//!
//! Whether the caller may lock at all (write rights at the path) is the file layer's answer,
//! asked by the front-end before dav-server sees the request.
//!
//! A lock keeps who took it (user and key ids and revisions, admin flag, address). When a
//! lock stands in someone's way (a LOCK or a write that conflicts with it), the
//! authenticator is asked whether that principal could still sign in
//! (`Authenticator::still_valid`); if not (user disabled or deleted, key revoked or expired,
//! rights changed), the lock is dropped and the check runs again. This costs nothing unless
//! there is a conflict.
//!
//! Locks bind WebDAV clients only (RFC 4918): SFTP, FTP and the REST API do not see them,
//! as in SFTPGo. With the store unreachable, writes that must check locks are refused (423).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dav_server::davpath::DavPath;
use dav_server::ls::{DavLock, DavLockSystem, Element, LsFuture};
use futures_util::FutureExt;

use crate::auth::Authenticator;
use crate::identity::{ClientInfo, KeyIdentity, PermissionSet, Principal, Protocol, UserIdentity};
use crate::path::SitePath;

/// Caps on locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockLimits {
    /// The longest a lock lives; also what `Infinite` and no `Timeout` header get.
    pub max_lock: Duration,
    /// Locks one owner may hold at once.
    pub per_owner: usize,
    /// Locks held at once, all owners together.
    pub total: usize,
}

/// Largest `<owner>` element a lock keeps, serialised, in bytes (a larger one is refused).
pub const MAX_OWNER_XML: usize = 4096;

/// Who owns a lock: the user (whichever of their keys or passwords took it), or the
/// site-wide key. Built by [`owner_of`] only.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner(String);

impl Owner {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The owner a principal's locks are recorded under.
pub fn owner_of(who: &Principal) -> Owner {
    Owner(match (&who.user, &who.key) {
        (Some(user), _) => format!("user:{}", user.id),
        (None, Some(key)) => format!("key:{}", key.id),
        (None, None) => "system".to_owned(),
    })
}

/// Why a lock was not granted (before dav-server is asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockRefusal {
    /// The owner holds its share of locks.
    OwnerFull,
    /// The server holds all the locks it keeps.
    TableFull,
    /// The store could not be asked.
    Unavailable,
}

/// A lock as the store keeps it. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRecord {
    pub token: String,
    /// The normalised site path it is on.
    pub path: String,
    /// The URL path the client locked (the `lockroot` it is shown with).
    pub dav_path: String,
    pub deep: bool,
    pub shared: bool,
    /// [`Owner`] as text.
    pub owner: String,
    /// Who took it: what `Authenticator::still_valid` needs to know.
    pub user_id: Option<i64>,
    pub user_revision: Option<i64>,
    pub key_id: Option<i64>,
    pub key_revision: Option<i64>,
    pub site_admin: bool,
    pub client_ip: Option<String>,
    /// The client's `<owner>` element, serialised (at most [`MAX_OWNER_XML`] bytes).
    pub owner_xml: Option<Vec<u8>>,
    pub timeout_ms: i64,
    pub expires_ms: i64,
}

/// The lock store could not be used.
#[derive(Debug, thiserror::Error)]
#[error("lock store: {0}")]
pub struct LockStoreError(pub String);

/// Live locks in total and of one owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockCounts {
    pub total: u64,
    pub owner: u64,
}

/// Decides, inside the store's transaction, whether a new lock may be added given the live
/// locks along and below its path and the counts: `Err(Some(lock))` for a conflicting lock,
/// `Err(None)` for a cap.
pub type Decide<'a> =
    &'a (dyn Fn(&[LockRecord], LockCounts) -> Result<(), Option<LockRecord>> + Send + Sync);

/// Where locks are kept (implemented by `store`). "Live" means `expires_ms > now_ms`.
#[async_trait::async_trait]
pub trait LockStore: Send + Sync {
    /// Live locks on any of `paths`, and with `below`, on any path under `below`.
    async fn live_locks(
        &self,
        paths: &[String],
        below: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<LockRecord>, LockStoreError>;
    /// The live lock `token`.
    async fn live_lock(
        &self,
        token: &str,
        now_ms: i64,
    ) -> Result<Option<LockRecord>, LockStoreError>;
    /// Live locks in total and of `owner`.
    async fn lock_counts(&self, owner: &str, now_ms: i64) -> Result<LockCounts, LockStoreError>;
    /// In one transaction serialised against every other lock change: drops expired locks,
    /// reads the live locks on `along` (the new lock's path and the folders above it) and
    /// below the new lock's path, and the counts for its owner, asks `decide`, and adds
    /// `new` if it agrees.
    async fn insert_lock(
        &self,
        new: &LockRecord,
        along: &[String],
        now_ms: i64,
        decide: Decide<'_>,
    ) -> Result<Result<(), Option<LockRecord>>, LockStoreError>;
    /// Removes the lock `token`; whether there was one.
    async fn remove_lock(&self, token: &str) -> Result<bool, LockStoreError>;
    /// Gives the live lock `token` a new timeout; whether there was one.
    async fn refresh_lock(
        &self,
        token: &str,
        timeout_ms: i64,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<bool, LockStoreError>;
    /// Removes the locks on `path` and below it.
    async fn remove_locks_under(&self, path: &str) -> Result<(), LockStoreError>;
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `/`, `/a`, `/a/b` for `/a/b`.
fn ancestors_and_self(path: &SitePath) -> Vec<String> {
    let mut key = String::new();
    std::iter::once("/".to_owned())
        .chain(path.segments().map(move |segment| {
            key.push('/');
            key.push_str(segment);
            key.clone()
        }))
        .collect()
}

/// Whether the lock on `lock_path` is on `path` or a folder above it.
fn is_along(lock_path: &str, path: &SitePath) -> bool {
    let path = path.as_str();
    lock_path == path
        || lock_path == "/"
        || (path.starts_with(lock_path) && path.as_bytes().get(lock_path.len()) == Some(&b'/'))
}

/// The identity parts of the principal who took `lock` that `still_valid` reads.
fn signer(lock: &LockRecord) -> Principal {
    Principal {
        user: lock.user_id.map(|id| UserIdentity {
            id,
            username: String::new(),
            revision: lock.user_revision.unwrap_or(-1),
        }),
        key: lock.key_id.map(|id| KeyIdentity {
            id,
            name: String::new(),
            permission_set: PermissionSet::Full,
            path: None,
            revision: lock.key_revision.unwrap_or(-1),
        }),
        site_admin: lock.site_admin,
        grants: Vec::new(),
        protocol: Protocol::WebDav,
        client: ClientInfo::new(lock.client_ip.as_deref().and_then(|ip| ip.parse().ok())),
    }
}

/// The rules over the locks in the store.
pub struct LockTable {
    limits: LockLimits,
    store: Arc<dyn LockStore>,
    /// Asked whether a conflicting lock's principal may still sign in (`None` in unit
    /// tests: every lock stays valid).
    auth: Option<Arc<Authenticator>>,
}

impl std::fmt::Debug for LockTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockTable")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// How many void locks one request drops before it answers with the conflict it found.
const MAX_VOID_DROPS: usize = 16;

/// What stopped a lock or a write.
enum Blocked {
    /// A conflicting lock.
    By(Box<LockRecord>),
    /// Refused for another reason (a cap, the store unreachable).
    Refused,
}

impl LockTable {
    pub fn new(
        limits: LockLimits,
        store: Arc<dyn LockStore>,
        auth: Option<Arc<Authenticator>>,
    ) -> Arc<LockTable> {
        // Keeps `now + timeout` far from overflowing, whatever the configuration says.
        const LONGEST: Duration = Duration::from_secs(366 * 24 * 3600);
        let limits = LockLimits {
            max_lock: limits.max_lock.min(LONGEST),
            ..limits
        };
        Arc::new(LockTable {
            limits,
            store,
            auth,
        })
    }

    /// Whether `owner` may take one more lock now.
    pub async fn room_for(&self, owner: &Owner) -> Result<(), LockRefusal> {
        let counts = self
            .store
            .lock_counts(owner.as_str(), now_ms())
            .await
            .map_err(|_| LockRefusal::Unavailable)?;
        self.room_in(counts)
    }

    fn room_in(&self, counts: LockCounts) -> Result<(), LockRefusal> {
        if counts.total >= self.limits.total as u64 {
            return Err(LockRefusal::TableFull);
        }
        if counts.owner >= self.limits.per_owner as u64 {
            return Err(LockRefusal::OwnerFull);
        }
        Ok(())
    }

    /// The live lock `token` if it is on `path` or a folder above it.
    async fn find_along(&self, path: &SitePath, token: &str) -> Option<LockRecord> {
        let lock = self.store.live_lock(token, now_ms()).await.ok()??;
        is_along(&lock.path, path).then_some(lock)
    }

    /// The owner of the live lock `token` found on `path` or above it.
    pub async fn owner_of_token(&self, path: &SitePath, token: &str) -> Option<Owner> {
        self.find_along(path, token).await.map(|l| Owner(l.owner))
    }

    /// Live locks (all owners) as the store counts them.
    #[cfg(test)]
    pub async fn count(&self, owner: &Owner) -> (u64, u64) {
        let c = self
            .store
            .lock_counts(owner.as_str(), now_ms())
            .await
            .unwrap();
        (c.total, c.owner)
    }

    /// The view of the locks dav-server uses for one request by `owner`. `may_override`:
    /// the caller may unlock and refresh other owners' locks (a site admin with write rights
    /// at the request's path).
    pub fn for_caller(
        self: &Arc<Self>,
        owner: Owner,
        principal: Arc<Principal>,
        may_override: bool,
    ) -> CallerLocks {
        CallerLocks {
            table: self.clone(),
            owner,
            principal,
            may_override,
            discovered: Arc::default(),
        }
    }

    /// Runs `attempt` until it succeeds, is refused, or meets a conflicting lock whose
    /// principal may still sign in; conflicting locks of principals who can no longer sign
    /// in are dropped on the way.
    async fn without_void_locks<R, F, Fut>(&self, attempt: F) -> Result<R, Blocked>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<R, Blocked>>,
    {
        for _ in 0..MAX_VOID_DROPS {
            let held = match attempt().await {
                Ok(done) => return Ok(done),
                Err(Blocked::Refused) => return Err(Blocked::Refused),
                Err(Blocked::By(held)) => held,
            };
            let void = match &self.auth {
                Some(auth) => matches!(auth.still_valid(&signer(&held)).await, Ok(false)),
                None => false,
            };
            if !void {
                return Err(Blocked::By(held));
            }
            tracing::info!(
                owner = held.owner.as_str(),
                path = held.path.as_str(),
                "webdav lock dropped: its owner can no longer sign in"
            );
            if self.store.remove_lock(&held.token).await.is_err() {
                return Err(Blocked::Refused);
            }
        }
        attempt().await
    }

    fn cap(&self, asked: Option<Duration>) -> Duration {
        asked.map_or(self.limits.max_lock, |d| d.min(self.limits.max_lock))
    }
}

/// One request's lock system: the locks plus who is asking.
#[derive(Debug, Clone)]
pub struct CallerLocks {
    table: Arc<LockTable>,
    owner: Owner,
    principal: Arc<Principal>,
    may_override: bool,
    /// What `discover` read during this request (see [`Discovered`]).
    discovered: Arc<std::sync::Mutex<Option<Discovered>>>,
}

/// The live locks along a folder and below it, read once per request for `discover`: a
/// PROPFIND shows `lockdiscovery` for every entry it lists, which was one store query per
/// entry (10 000 for a folder of 10 000 files, seconds instead of milliseconds). Answers
/// are a snapshot of the request's start, as the listing is; the snapshot is dropped when
/// the request takes, refreshes or removes a lock. Decisions (`lock`, `check`) never use it.
#[derive(Debug)]
struct Discovered {
    base: SitePath,
    locks: Vec<LockRecord>,
}

impl CallerLocks {
    /// The locks on `site` and the folders above it, from this request's snapshot when it
    /// covers `site`.
    fn discovered(&self, site: &SitePath) -> Option<Vec<DavLock>> {
        let snapshot = self.discovered.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = snapshot.as_ref()?;
        is_along(snapshot.base.as_str(), site).then(|| {
            snapshot
                .locks
                .iter()
                .filter(|l| is_along(&l.path, site))
                .map(dav_lock)
                .collect()
        })
    }

    fn forget_discovered(&self) {
        *self.discovered.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn may_manage(&self, lock: &LockRecord) -> bool {
        lock.owner == self.owner.as_str() || self.may_override
    }

    fn new_record(
        &self,
        site: &SitePath,
        path: &DavPath,
        owner_xml: Option<Vec<u8>>,
        timeout: Duration,
        shared: bool,
        deep: bool,
    ) -> LockRecord {
        let who = &self.principal;
        let now = now_ms();
        LockRecord {
            token: new_token(),
            path: site.as_str().to_owned(),
            dav_path: path.as_url_string(),
            deep,
            shared,
            owner: self.owner.as_str().to_owned(),
            user_id: who.user.as_ref().map(|u| u.id),
            user_revision: who.user.as_ref().map(|u| u.revision),
            key_id: who.key.as_ref().map(|k| k.id),
            key_revision: who.key.as_ref().map(|k| k.revision),
            site_admin: who.site_admin,
            client_ip: who.client.ip.map(|ip| ip.to_string()),
            owner_xml,
            timeout_ms: millis(timeout),
            expires_ms: now.saturating_add(millis(timeout)),
        }
    }
}

fn site(path: &DavPath) -> Option<SitePath> {
    SitePath::resolve_bytes(&SitePath::root(), path.as_bytes()).ok()
}

/// A fresh lock token: a random (version 4) UUID URN, as RFC 4918 recommends.
fn new_token() -> String {
    let mut hex = crate::secret::random_hex(16).into_bytes();
    hex[12] = b'4';
    hex[16] = b"89ab"[usize::from(hex[16] % 4)];
    let hex = String::from_utf8_lossy(&hex).into_owned();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The lock as dav-server shows it.
fn dav_lock(lock: &LockRecord) -> DavLock {
    let path = DavPath::new(&lock.dav_path)
        .or_else(|_| DavPath::new(&lock.path))
        .unwrap_or_else(|_| DavPath::new("/").expect("the root is a path"));
    let timeout = Duration::from_millis(u64::try_from(lock.timeout_ms).unwrap_or(0));
    let expires = Duration::from_millis(u64::try_from(lock.expires_ms).unwrap_or(0));
    DavLock {
        token: lock.token.clone(),
        path: Box::new(path),
        principal: Some(lock.owner.clone()),
        owner: lock
            .owner_xml
            .as_deref()
            .and_then(|xml| Element::parse(xml).ok())
            .map(|mut element| {
                element.prefix = Some("D".to_owned()); // as dav-server names it
                Box::new(element)
            }),
        timeout_at: Some(UNIX_EPOCH + expires),
        timeout: Some(timeout),
        shared: lock.shared,
        deep: lock.deep,
    }
}

/// Whether a submitted token lets the caller through `lock`.
fn holds(
    lock: &LockRecord,
    principal: Option<&str>,
    ignore_principal: bool,
    tokens: &[String],
) -> bool {
    tokens.contains(&lock.token) && (ignore_principal || principal == Some(lock.owner.as_str()))
}

/// What a check looks at: the caller's identity and tokens, and the kind of access.
struct Asking<'a> {
    principal: Option<&'a str>,
    ignore_principal: bool,
    tokens: &'a [String],
    /// A shared lock does not stand in the way (a new shared lock).
    shared_ok: bool,
}

/// Conflicts on `path` and above (dav-server's `check_locks_to_path`).
fn check_along(locks: &[LockRecord], path: &SitePath, asking: &Asking) -> Result<(), Blocked> {
    let mut holds_lock = false;
    let mut first_shared: Option<&LockRecord> = None;
    for lock in locks.iter().filter(|l| is_along(&l.path, path)) {
        if lock.path != path.as_str() && !lock.deep {
            continue;
        }
        if holds(
            lock,
            asking.principal,
            asking.ignore_principal,
            asking.tokens,
        ) {
            holds_lock = true;
        } else if !lock.shared {
            return Err(Blocked::By(Box::new(lock.clone())));
        } else if !asking.shared_ok {
            first_shared.get_or_insert(lock);
        }
    }
    match first_shared {
        Some(lock) if !holds_lock => Err(Blocked::By(Box::new(lock.clone()))),
        _ => Ok(()),
    }
}

/// Whether `lock_path` is `path` or below it.
fn is_below(lock_path: &str, path: &SitePath) -> bool {
    let path = path.as_str();
    lock_path == path
        || path == "/"
        || (lock_path.starts_with(path) && lock_path.as_bytes().get(path.len()) == Some(&b'/'))
}

/// Conflicts on `path` and below (dav-server's `check_locks_from_path`).
fn check_below(locks: &[LockRecord], path: &SitePath, asking: &Asking) -> Result<(), Blocked> {
    for lock in locks.iter().filter(|l| is_below(&l.path, path)) {
        if (!lock.shared || !asking.shared_ok)
            && !holds(
                lock,
                asking.principal,
                asking.ignore_principal,
                asking.tokens,
            )
        {
            return Err(Blocked::By(Box::new(lock.clone())));
        }
    }
    Ok(())
}

/// The "conflicting lock" answered when a lock cannot be granted for another reason
/// (dav-server answers 423 either way).
fn refusal(path: &DavPath) -> DavLock {
    DavLock {
        token: String::new(),
        path: Box::new(path.clone()),
        principal: None,
        owner: None,
        timeout_at: None,
        timeout: None,
        shared: false,
        deep: false,
    }
}

fn blocked(path: &DavPath, blocked: Blocked) -> DavLock {
    match blocked {
        Blocked::By(lock) => dav_lock(&lock),
        Blocked::Refused => refusal(path),
    }
}

impl DavLockSystem for CallerLocks {
    #[allow(clippy::result_large_err)] // the refusal closure's error is the response itself
    fn lock(
        &'_ self,
        path: &DavPath,
        _principal: Option<&str>,
        owner: Option<&Element>,
        timeout: Option<Duration>,
        shared: bool,
        deep: bool,
    ) -> LsFuture<'_, Result<DavLock, DavLock>> {
        let (path, owner) = (path.clone(), owner.cloned());
        async move {
            let path = &path;
            let site = site(path).ok_or_else(|| refusal(path))?;
            self.forget_discovered();
            let owner_xml = match owner {
                None => None,
                Some(mut element) => {
                    // dav-server names it `D:owner` whatever prefix (if any) the client
                    // bound; written without it, it needs no declaration of `D`.
                    element.prefix = None;
                    let mut xml = Vec::new();
                    if element.write(&mut xml).is_err() || xml.len() > MAX_OWNER_XML {
                        return Err(refusal(path));
                    }
                    Some(xml)
                }
            };
            let timeout = self.table.cap(timeout);
            let record = self.new_record(&site, path, owner_xml, timeout, shared, deep);
            let along = ancestors_and_self(&site);
            let table = &self.table;
            let decide = |locks: &[LockRecord], counts: LockCounts| {
                let asking = Asking {
                    principal: None,
                    ignore_principal: true,
                    tokens: &[],
                    shared_ok: shared,
                };
                let conflict = |b: Blocked| match b {
                    Blocked::By(lock) => Some(*lock),
                    Blocked::Refused => None,
                };
                check_along(locks, &site, &asking).map_err(conflict)?;
                if deep {
                    check_below(locks, &site, &asking).map_err(conflict)?;
                }
                table.room_in(counts).map_err(|_| None)
            };
            let result = table
                .without_void_locks(|| async {
                    match table
                        .store
                        .insert_lock(&record, &along, now_ms(), &decide)
                        .await
                    {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(Some(lock))) => Err(Blocked::By(Box::new(lock))),
                        Ok(Err(None)) => Err(Blocked::Refused),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot take a webdav lock");
                            Err(Blocked::Refused)
                        }
                    }
                })
                .await;
            match result {
                Ok(()) => Ok(dav_lock(&record)),
                Err(b) => Err(blocked(path, b)),
            }
        }
        .boxed()
    }

    fn unlock(&'_ self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        let (path, token) = (path.clone(), token.to_owned());
        async move {
            let site = site(&path).ok_or(())?;
            self.forget_discovered();
            let lock = self.table.find_along(&site, &token).await.ok_or(())?;
            if !self.may_manage(&lock) {
                return Err(());
            }
            match self.table.store.remove_lock(&token).await {
                Ok(true) => Ok(()),
                _ => Err(()),
            }
        }
        .boxed()
    }

    fn refresh(
        &'_ self,
        path: &DavPath,
        token: &str,
        timeout: Option<Duration>,
    ) -> LsFuture<'_, Result<DavLock, ()>> {
        let (path, token) = (path.clone(), token.to_owned());
        async move {
            let site = site(&path).ok_or(())?;
            self.forget_discovered();
            let timeout = self.table.cap(timeout);
            let mut lock = self.table.find_along(&site, &token).await.ok_or(())?;
            if !self.may_manage(&lock) {
                return Err(());
            }
            let now = now_ms();
            lock.timeout_ms = millis(timeout);
            lock.expires_ms = now.saturating_add(lock.timeout_ms);
            match self
                .table
                .store
                .refresh_lock(&token, lock.timeout_ms, lock.expires_ms, now)
                .await
            {
                Ok(true) => Ok(dav_lock(&lock)),
                _ => Err(()),
            }
        }
        .boxed()
    }

    fn check(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        ignore_principal: bool,
        deep: bool,
        submitted_tokens: &[String],
    ) -> LsFuture<'_, Result<(), DavLock>> {
        let principal = principal.map(str::to_owned);
        let tokens = submitted_tokens.to_vec();
        let path = path.clone();
        async move {
            // A path the file layer cannot name is refused there; no lock is on it.
            let Some(site) = site(&path) else {
                return Ok(());
            };
            let along = ancestors_and_self(&site);
            let asking = Asking {
                principal: principal.as_deref(),
                // A site admin with write rights here may use (refresh) other owners' locks.
                ignore_principal: ignore_principal || self.may_override,
                tokens: &tokens,
                shared_ok: false,
            };
            let store = &self.table.store;
            self.table
                .without_void_locks(|| async {
                    let below = deep.then_some(site.as_str());
                    let locks = match store.live_locks(&along, below, now_ms()).await {
                        Ok(locks) => locks,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read webdav locks: write refused");
                            return Err(Blocked::Refused);
                        }
                    };
                    check_along(&locks, &site, &asking)?;
                    if deep {
                        check_below(&locks, &site, &asking)?;
                    }
                    Ok(())
                })
                .await
                .map_err(|b| blocked(&path, b))
        }
        .boxed()
    }

    fn discover(&'_ self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let path = path.clone();
        async move {
            let Some(site) = site(&path) else {
                return Vec::new();
            };
            if let Some(locks) = self.discovered(&site) {
                return locks;
            }
            // One read for the folder the entry is in: its siblings (the rest of a listing)
            // and what is below them are answered from it.
            let base = site.parent().unwrap_or_else(|| site.clone());
            let along = ancestors_and_self(&base);
            match self
                .table
                .store
                .live_locks(&along, Some(base.as_str()), now_ms())
                .await
            {
                Ok(locks) => {
                    *self.discovered.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Discovered { base, locks });
                    self.discovered(&site).unwrap_or_default()
                }
                Err(_) => Vec::new(),
            }
        }
        .boxed()
    }

    fn delete(&'_ self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        let path = path.clone();
        async move {
            self.forget_discovered();
            if let Some(site) = site(&path) {
                self.table
                    .store
                    .remove_locks_under(site.as_str())
                    .await
                    .map_err(|_| ())?;
            }
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LockLimits {
        LockLimits {
            max_lock: Duration::from_secs(3600),
            per_owner: 3,
            total: 5,
        }
    }

    fn dav(path: &str) -> DavPath {
        DavPath::new(path).unwrap()
    }

    async fn table(limits: LockLimits) -> (Arc<LockTable>, crate::test_support::TestDb) {
        let db = crate::test_support::TestDb::sqlite().await;
        (LockTable::new(limits, Arc::new(db.store.clone()), None), db)
    }

    fn owner(name: &str) -> Owner {
        Owner(name.to_owned())
    }

    async fn lock(ls: &CallerLocks, path: &str, deep: bool) -> Result<DavLock, DavLock> {
        ls.lock(&dav(path), None, None, None, false, deep).await
    }

    #[tokio::test]
    async fn discovery_reads_a_folder_once_per_request_and_forgets_it_when_the_request_locks() {
        let (table, _db) = table(LockLimits {
            per_owner: 10,
            total: 10,
            ..limits()
        })
        .await;
        let alice = table.for_caller(owner("user:1"), Arc::new(Principal::cli()), false);
        lock(&alice, "/d/f1", false).await.unwrap();
        lock(&alice, "/e", true).await.unwrap();
        let tokens = |locks: Vec<DavLock>| locks.len();
        // A listing of /d: one read answers every entry.
        let listing = table.for_caller(owner("user:2"), Arc::new(Principal::cli()), false);
        assert_eq!(tokens(listing.discover(&dav("/d/f1")).await), 1);
        assert_eq!(tokens(listing.discover(&dav("/d/f2")).await), 0);
        // Meanwhile another request locks /d/f2: the listing keeps its snapshot (it read
        // the folder once), a new request sees the lock.
        lock(&alice, "/d/f2", false).await.unwrap();
        assert_eq!(
            tokens(listing.discover(&dav("/d/f2")).await),
            0,
            "a snapshot"
        );
        let later = table.for_caller(owner("user:2"), Arc::new(Principal::cli()), false);
        assert_eq!(tokens(later.discover(&dav("/d/f2")).await), 1);
        // Outside the snapshot's folder: read again (the deep lock above counts).
        assert_eq!(tokens(listing.discover(&dav("/e/g/h")).await), 1);
        // A request that takes a lock forgets its snapshot.
        let bob = table.for_caller(owner("user:2"), Arc::new(Principal::cli()), false);
        assert_eq!(tokens(bob.discover(&dav("/d/f3")).await), 0);
        lock(&bob, "/d/f3", false).await.unwrap();
        assert_eq!(tokens(bob.discover(&dav("/d/f3")).await), 1);
    }

    #[tokio::test]
    async fn only_the_owner_or_an_override_unlocks_and_refreshes() {
        let (table, _db) = table(limits()).await;
        let alice = table.for_caller(owner("user:1"), Arc::new(Principal::cli()), false);
        let bob = table.for_caller(owner("user:2"), Arc::new(Principal::cli()), false);
        let admin = table.for_caller(owner("user:3"), Arc::new(Principal::cli()), true);
        let lock = lock(&alice, "/", false).await.unwrap();
        assert_eq!(
            lock.timeout,
            Some(Duration::from_secs(3600)),
            "no Timeout: the cap"
        );
        assert!(bob.unlock(&dav("/"), &lock.token).await.is_err());
        assert!(bob.refresh(&dav("/"), &lock.token, None).await.is_err());
        let tokens = [lock.token.clone()];
        assert!(
            bob.check(&dav("/"), Some("user:2"), false, false, &tokens)
                .await
                .is_err(),
            "another owner cannot use the token"
        );
        assert!(
            alice
                .check(&dav("/"), Some("user:1"), false, false, &tokens)
                .await
                .is_ok()
        );
        assert!(admin.refresh(&dav("/"), &lock.token, None).await.is_ok());
        assert!(alice.unlock(&dav("/"), &lock.token).await.is_ok());
        assert_eq!(table.count(&owner("user:1")).await, (0, 0));
        let again = self::lock(&alice, "/", true).await.unwrap();
        assert!(admin.unlock(&dav("/a/b"), &again.token).await.is_ok());
        assert!(lock_is_gone(&table).await);
    }

    async fn lock_is_gone(table: &Arc<LockTable>) -> bool {
        let probe = table.for_caller(owner("probe"), Arc::new(Principal::cli()), false);
        probe.discover(&dav("/a/b")).await.is_empty()
    }

    #[tokio::test]
    async fn timeouts_are_capped_and_expired_locks_stop_counting() {
        let (table, _db) = table(LockLimits {
            max_lock: Duration::from_millis(50),
            ..limits()
        })
        .await;
        let alice = table.for_caller(owner("user:1"), Arc::new(Principal::cli()), false);
        let lock = alice
            .lock(
                &dav("/f"),
                None,
                None,
                Some(Duration::from_secs(99_999)),
                false,
                false,
            )
            .await
            .unwrap();
        assert_eq!(lock.timeout, Some(Duration::from_millis(50)));
        let bob = table.for_caller(owner("user:2"), Arc::new(Principal::cli()), false);
        assert!(self::lock(&bob, "/f", false).await.is_err(), "locked");
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(self::lock(&bob, "/f", false).await.is_ok(), "expired");
        assert_eq!(
            table.count(&owner("user:1")).await,
            (1, 0),
            "only bob's lock is live"
        );
    }

    #[tokio::test]
    async fn locks_are_capped_per_owner_and_in_total() {
        let (table, _db) = table(limits()).await;
        let alice = table.for_caller(owner("user:1"), Arc::new(Principal::cli()), false);
        for i in 0..3 {
            lock(&alice, &format!("/a{i}"), false).await.unwrap();
        }
        assert_eq!(
            table.room_for(&owner("user:1")).await,
            Err(LockRefusal::OwnerFull)
        );
        assert!(lock(&alice, "/a9", false).await.is_err());
        let bob = table.for_caller(owner("user:2"), Arc::new(Principal::cli()), false);
        lock(&bob, "/b0", false).await.unwrap();
        lock(&bob, "/b1", false).await.unwrap();
        assert_eq!(
            table.room_for(&owner("user:3")).await,
            Err(LockRefusal::TableFull)
        );
        bob.delete(&dav("/")).await.unwrap();
        assert_eq!(
            table.count(&owner("user:1")).await,
            (0, 0),
            "delete / clears all"
        );
    }

    #[tokio::test]
    async fn deep_locks_cover_what_is_below_and_conflict_with_locks_below() {
        let (table, _db) = table(limits()).await;
        let alice = table.for_caller(owner("user:1"), Arc::new(Principal::cli()), false);
        let bob = table.for_caller(owner("user:2"), Arc::new(Principal::cli()), false);
        let shallow = lock(&alice, "/d", false).await.unwrap();
        assert!(
            bob.check(&dav("/d/x"), Some("user:2"), false, false, &[])
                .await
                .is_ok(),
            "a depth-0 lock does not cover children"
        );
        assert!(
            lock(&bob, "/", true).await.is_err(),
            "a lock below conflicts"
        );
        alice.unlock(&dav("/d"), &shallow.token).await.unwrap();
        lock(&alice, "/d", true).await.unwrap();
        assert!(
            bob.check(&dav("/d/x/y"), Some("user:2"), false, false, &[])
                .await
                .is_err()
        );
        assert!(
            bob.check(&dav("/dx"), Some("user:2"), false, false, &[])
                .await
                .is_ok(),
            "a sibling with the same prefix is not covered"
        );
    }
}
