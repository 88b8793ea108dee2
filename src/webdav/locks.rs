//! WebDAV locks (RFC 4918 write locks), in memory: who holds which lock, until when.
//!
//! [`LockTable`] is shared by every request; [`CallerLocks`] is the per-request view that
//! dav-server calls (its `DavLockSystem`), and knows who is calling, so that only a lock's
//! owner — or a site admin with write rights there — can unlock or refresh it, and a token
//! read from `lockdiscovery` is of no use to anyone else. Timeouts are capped (no lock
//! outlives `max_lock`; `Infinite` and a missing `Timeout` get the cap), expired locks are
//! ignored and swept, and the number of locks is capped per owner and in total.
//!
//! Conflicts follow dav-server's `MemLs`: a lock on a path conflicts with exclusive locks on
//! the path, depth-infinity locks above it and (for a depth-infinity request) any lock below
//! it. Paths are compared as [`SitePath`]s, the one normaliser the file layer uses.
//!
//! Whether the caller may lock at all (write rights at the path) is the file layer's answer,
//! asked by the front-end before dav-server sees the request. The table's mutex guards only
//! map operations and comparisons (nothing that panics), and a poisoned mutex is taken back.
//!
//! A lock keeps the principal that took it. When a lock stands in someone's way (a LOCK or
//! a write that conflicts with it), the authenticator is asked whether that principal could
//! still sign in (`Authenticator::still_valid`); if not (user disabled or deleted, key
//! revoked or expired, rights changed), the lock is dropped and the check runs again. This
//! costs nothing unless there is a conflict.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use dav_server::davpath::DavPath;
use dav_server::ls::{DavLock, DavLockSystem, Element, LsFuture};
use futures_util::FutureExt;

use crate::auth::Authenticator;
use crate::identity::Principal;
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
}

/// A lock and when it ends.
#[derive(Debug, Clone)]
struct Held {
    lock: DavLock,
    /// The normalised path it is on (its key in `Table::by_path`).
    key: String,
    /// The owner, as recorded in `lock.principal` too.
    owner: Owner,
    /// Who took the lock (the lock is void once they can no longer sign in).
    principal: Arc<Principal>,
    expires: Instant,
}

impl Held {
    fn live(&self, now: Instant) -> bool {
        self.expires > now
    }
}

#[derive(Debug, Default)]
struct Table {
    /// Locks by the normalised path they are on.
    by_path: BTreeMap<String, Vec<Held>>,
    /// Locks held per owner (expired ones until they are swept).
    per_owner: HashMap<Owner, usize>,
    total: usize,
}

impl Table {
    fn forget(&mut self, owner: &Owner) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.per_owner.get_mut(owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_owner.remove(owner);
            }
        }
    }

    /// Removes expired locks.
    fn sweep(&mut self, now: Instant) {
        let mut gone = Vec::new();
        self.by_path.retain(|_, locks| {
            locks.retain(|held| {
                let live = held.live(now);
                if !live {
                    gone.push(held.owner.clone());
                }
                live
            });
            !locks.is_empty()
        });
        for owner in gone {
            self.forget(&owner);
        }
    }

    fn room_for(&self, owner: &Owner, limits: &LockLimits) -> Result<(), LockRefusal> {
        if self.total >= limits.total {
            return Err(LockRefusal::TableFull);
        }
        if self.per_owner.get(owner).copied().unwrap_or(0) >= limits.per_owner {
            return Err(LockRefusal::OwnerFull);
        }
        Ok(())
    }

    /// Live locks on `path` and every folder above it, root first, with whether each is
    /// on `path` itself.
    fn along<'a>(
        &'a self,
        path: &'a SitePath,
        now: Instant,
    ) -> impl Iterator<Item = (&'a Held, bool)> + 'a {
        ancestors_and_self(path).flat_map(move |key| {
            let on_path = key == path.as_str();
            self.by_path
                .get(&key)
                .into_iter()
                .flatten()
                .filter(move |held| held.live(now))
                .map(move |held| (held, on_path))
        })
    }

    /// Live locks on `path` and below it.
    fn below<'a>(&'a self, path: &'a SitePath, now: Instant) -> impl Iterator<Item = &'a Held> {
        let prefix = if path.is_root() {
            "/".to_owned()
        } else {
            format!("{}/", path.as_str())
        };
        let at = self.by_path.get(path.as_str()).into_iter().flatten();
        let under = self
            .by_path
            .range(prefix.clone()..)
            .take_while(move |(key, _)| key.starts_with(&prefix))
            .filter(|(key, _)| key.as_str() != "/")
            .flat_map(|(_, locks)| locks.iter());
        at.chain(under).filter(move |held| held.live(now))
    }

    /// Removes the lock `token` held on `key`.
    fn remove(&mut self, key: &str, token: &str) {
        let Some(locks) = self.by_path.get_mut(key) else {
            return;
        };
        let owners: Vec<Owner> = locks
            .iter()
            .filter(|h| h.lock.token == token)
            .map(|h| h.owner.clone())
            .collect();
        locks.retain(|h| h.lock.token != token);
        if locks.is_empty() {
            self.by_path.remove(key);
        }
        for owner in owners {
            self.forget(&owner);
        }
    }

    fn find_along<'a>(&'a self, path: &'a SitePath, token: &str, now: Instant) -> Option<&'a Held> {
        self.along(path, now)
            .map(|(held, _)| held)
            .find(|held| held.lock.token == token)
    }
}

/// `/`, `/a`, `/a/b` for `/a/b`.
fn ancestors_and_self(path: &SitePath) -> impl Iterator<Item = String> + '_ {
    let mut key = String::new();
    std::iter::once("/".to_owned()).chain(path.segments().map(move |segment| {
        key.push('/');
        key.push_str(segment);
        key.clone()
    }))
}

/// Every lock this process holds.
pub struct LockTable {
    limits: LockLimits,
    table: Mutex<Table>,
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

impl LockTable {
    pub fn new(limits: LockLimits, auth: Option<Arc<Authenticator>>) -> Arc<LockTable> {
        // Keeps `Instant + timeout` far from overflowing, whatever the configuration says.
        const LONGEST: Duration = Duration::from_secs(366 * 24 * 3600);
        let limits = LockLimits {
            max_lock: limits.max_lock.min(LONGEST),
            ..limits
        };
        Arc::new(LockTable {
            limits,
            table: Mutex::default(),
            auth,
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `owner` may take one more lock now.
    pub fn room_for(&self, owner: &Owner) -> Result<(), LockRefusal> {
        let mut table = self.table();
        table.sweep(Instant::now());
        table.room_for(owner, &self.limits)
    }

    /// The owner of the live lock `token` found on `path` or above it.
    pub fn owner_of_token(&self, path: &SitePath, token: &str) -> Option<Owner> {
        let table = self.table();
        table
            .find_along(path, token, Instant::now())
            .map(|held| held.owner.clone())
    }

    /// Locks held now (live or not yet swept), in total and by `owner`.
    #[cfg(test)]
    pub fn count(&self, owner: &Owner) -> (usize, usize) {
        let table = self.table();
        (
            table.total,
            table.per_owner.get(owner).copied().unwrap_or(0),
        )
    }

    /// The view of the table dav-server uses for one request by `owner`. `may_override`:
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
        }
    }

    /// Runs `attempt` on the table until it succeeds, is refused, or meets a conflicting
    /// lock whose principal may still sign in; conflicting locks of principals who can no
    /// longer sign in are dropped on the way. The authenticator is asked without the
    /// table's mutex held.
    async fn without_void_locks<R>(
        &self,
        mut attempt: impl FnMut(&mut Table, Instant) -> Result<R, Blocked>,
    ) -> Result<R, DavLock> {
        for _ in 0..MAX_VOID_DROPS {
            let outcome = attempt(&mut self.table(), Instant::now());
            let held = match outcome {
                Ok(done) => return Ok(done),
                Err(Blocked::Refused(lock)) => return Err(lock),
                Err(Blocked::By(held)) => held,
            };
            let void = match &self.auth {
                Some(auth) => matches!(auth.still_valid(&held.principal).await, Ok(false)),
                None => false,
            };
            if !void {
                return Err(held.lock);
            }
            tracing::info!(
                owner = held.owner.as_str(),
                path = held.key.as_str(),
                "webdav lock dropped: its owner can no longer sign in"
            );
            self.table().remove(&held.key, &held.lock.token);
        }
        match attempt(&mut self.table(), Instant::now()) {
            Ok(done) => Ok(done),
            Err(Blocked::Refused(lock)) => Err(lock),
            Err(Blocked::By(held)) => Err(held.lock),
        }
    }

    fn cap(&self, asked: Option<Duration>) -> Duration {
        asked.map_or(self.limits.max_lock, |d| d.min(self.limits.max_lock))
    }
}

/// What stopped a lock or a write.
enum Blocked {
    /// A conflicting lock.
    By(Box<Held>),
    /// Refused for another reason (no room, a path the file layer cannot name).
    Refused(DavLock),
}

/// One request's lock system: the shared table plus who is asking.
#[derive(Debug, Clone)]
pub struct CallerLocks {
    table: Arc<LockTable>,
    owner: Owner,
    principal: Arc<Principal>,
    may_override: bool,
}

impl CallerLocks {
    fn may_manage(&self, held: &Held) -> bool {
        held.owner == self.owner || self.may_override
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

/// Whether a submitted token lets the caller through `held`.
fn holds(held: &Held, principal: Option<&str>, ignore_principal: bool, tokens: &[String]) -> bool {
    tokens.contains(&held.lock.token)
        && (ignore_principal || principal == Some(held.owner.as_str()))
}

/// Conflicts on `path` and above (dav-server's `check_locks_to_path`).
fn check_along(
    table: &Table,
    path: &SitePath,
    principal: Option<&str>,
    ignore_principal: bool,
    tokens: &[String],
    shared_ok: bool,
    now: Instant,
) -> Result<(), Blocked> {
    let mut holds_lock = false;
    let mut first_shared: Option<&Held> = None;
    for (held, on_path) in table.along(path, now) {
        if !on_path && !held.lock.deep {
            continue;
        }
        if holds(held, principal, ignore_principal, tokens) {
            holds_lock = true;
        } else if !held.lock.shared {
            return Err(Blocked::By(Box::new(held.clone())));
        } else if !shared_ok {
            first_shared.get_or_insert(held);
        }
    }
    match first_shared {
        Some(held) if !holds_lock => Err(Blocked::By(Box::new(held.clone()))),
        _ => Ok(()),
    }
}

/// Conflicts on `path` and below (dav-server's `check_locks_from_path`).
fn check_below(
    table: &Table,
    path: &SitePath,
    principal: Option<&str>,
    ignore_principal: bool,
    tokens: &[String],
    shared_ok: bool,
    now: Instant,
) -> Result<(), Blocked> {
    for held in table.below(path, now) {
        if (!held.lock.shared || !shared_ok) && !holds(held, principal, ignore_principal, tokens) {
            return Err(Blocked::By(Box::new(held.clone())));
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

impl DavLockSystem for CallerLocks {
    fn lock(
        &'_ self,
        path: &DavPath,
        _principal: Option<&str>,
        owner: Option<&Element>,
        timeout: Option<Duration>,
        shared: bool,
        deep: bool,
    ) -> LsFuture<'_, Result<DavLock, DavLock>> {
        let token = new_token(); // before taking the mutex
        let (path, owner) = (path.clone(), owner.cloned());
        async move {
            let path = &path;
            let site = site(path).ok_or_else(|| refusal(path))?;
            let timeout = self.table.cap(timeout);
            let limits = self.table.limits;
            self.table
                .without_void_locks(|table, now| {
                    table.sweep(now);
                    check_along(table, &site, None, true, &[], shared, now)?;
                    if deep {
                        check_below(table, &site, None, true, &[], shared, now)?;
                    }
                    table
                        .room_for(&self.owner, &limits)
                        .map_err(|_| Blocked::Refused(refusal(path)))?;
                    let lock = DavLock {
                        token: token.clone(),
                        path: Box::new(path.clone()),
                        principal: Some(self.owner.as_str().to_owned()),
                        owner: owner.clone().map(Box::new),
                        timeout_at: Some(SystemTime::now() + timeout),
                        timeout: Some(timeout),
                        shared,
                        deep,
                    };
                    table
                        .by_path
                        .entry(site.as_str().to_owned())
                        .or_default()
                        .push(Held {
                            lock: lock.clone(),
                            key: site.as_str().to_owned(),
                            owner: self.owner.clone(),
                            principal: self.principal.clone(),
                            expires: now + timeout,
                        });
                    *table.per_owner.entry(self.owner.clone()).or_insert(0) += 1;
                    table.total += 1;
                    Ok(lock)
                })
                .await
        }
        .boxed()
    }

    fn unlock(&'_ self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        let result = (|| {
            let site = site(path).ok_or(())?;
            let now = Instant::now();
            let mut table = self.table.table();
            let held = table.find_along(&site, token, now).ok_or(())?;
            if !self.may_manage(held) {
                return Err(());
            }
            let key = held.key.clone();
            table.remove(&key, token);
            Ok(())
        })();
        futures_util::future::ready(result).boxed()
    }

    fn refresh(
        &'_ self,
        path: &DavPath,
        token: &str,
        timeout: Option<Duration>,
    ) -> LsFuture<'_, Result<DavLock, ()>> {
        let result = (|| {
            let site = site(path).ok_or(())?;
            let timeout = self.table.cap(timeout);
            let now = Instant::now();
            let mut table = self.table.table();
            let held = table.find_along(&site, token, now).ok_or(())?;
            if !self.may_manage(held) {
                return Err(());
            }
            let key = held.key.clone();
            let held = table
                .by_path
                .get_mut(&key)
                .and_then(|locks| locks.iter_mut().find(|h| h.lock.token == token))
                .ok_or(())?;
            held.expires = now + timeout;
            held.lock.timeout = Some(timeout);
            held.lock.timeout_at = Some(SystemTime::now() + timeout);
            Ok(held.lock.clone())
        })();
        futures_util::future::ready(result).boxed()
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
        let submitted_tokens = submitted_tokens.to_vec();
        let site = site(path);
        async move {
            let principal = principal.as_deref();
            let submitted_tokens = submitted_tokens.as_slice();
            // A path the file layer cannot name is refused there; no lock is on it.
            let Some(site) = site else {
                return Ok(());
            };
            // A site admin with write rights here may use (refresh) other owners' locks.
            let ignore_principal = ignore_principal || self.may_override;
            self.table
                .without_void_locks(|table, now| {
                    check_along(
                        table,
                        &site,
                        principal,
                        ignore_principal,
                        submitted_tokens,
                        false,
                        now,
                    )?;
                    if deep {
                        check_below(
                            table,
                            &site,
                            principal,
                            ignore_principal,
                            submitted_tokens,
                            false,
                            now,
                        )?;
                    }
                    Ok(())
                })
                .await
        }
        .boxed()
    }

    fn discover(&'_ self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let locks = match site(path) {
            None => Vec::new(),
            Some(site) => {
                let table = self.table.table();
                table
                    .along(&site, Instant::now())
                    .map(|(held, _)| held.lock.clone())
                    .collect()
            }
        };
        futures_util::future::ready(locks).boxed()
    }

    fn delete(&'_ self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        if let Some(site) = site(path) {
            let mut table = self.table.table();
            let prefix = if site.is_root() {
                "/".to_owned()
            } else {
                format!("{}/", site.as_str())
            };
            let keys: Vec<String> = table
                .by_path
                .keys()
                .filter(|key| key.as_str() == site.as_str() || key.starts_with(&prefix))
                .cloned()
                .collect();
            for key in keys {
                if let Some(locks) = table.by_path.remove(&key) {
                    for held in locks {
                        table.forget(&held.owner);
                    }
                }
            }
        }
        futures_util::future::ready(Ok(())).boxed()
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

    fn owner(name: &str) -> Owner {
        Owner(name.to_owned())
    }

    async fn lock(ls: &CallerLocks, path: &str, deep: bool) -> Result<DavLock, DavLock> {
        ls.lock(&dav(path), None, None, None, false, deep).await
    }

    #[tokio::test]
    async fn only_the_owner_or_an_override_unlocks_and_refreshes() {
        let table = LockTable::new(limits(), None);
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
        assert_eq!(table.count(&owner("user:1")), (0, 0));
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
        let table = LockTable::new(
            LockLimits {
                max_lock: Duration::from_millis(50),
                ..limits()
            },
            None,
        );
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
        assert_eq!(table.count(&owner("user:1")), (1, 0), "swept");
    }

    #[tokio::test]
    async fn locks_are_capped_per_owner_and_in_total() {
        let table = LockTable::new(limits(), None);
        let alice = table.for_caller(owner("user:1"), Arc::new(Principal::cli()), false);
        for i in 0..3 {
            lock(&alice, &format!("/a{i}"), false).await.unwrap();
        }
        assert_eq!(
            table.room_for(&owner("user:1")),
            Err(LockRefusal::OwnerFull)
        );
        assert!(lock(&alice, "/a9", false).await.is_err());
        let bob = table.for_caller(owner("user:2"), Arc::new(Principal::cli()), false);
        lock(&bob, "/b0", false).await.unwrap();
        lock(&bob, "/b1", false).await.unwrap();
        assert_eq!(
            table.room_for(&owner("user:3")),
            Err(LockRefusal::TableFull)
        );
        bob.delete(&dav("/")).await.unwrap();
        assert_eq!(table.count(&owner("user:1")), (0, 0), "delete / clears all");
    }

    #[tokio::test]
    async fn deep_locks_cover_what_is_below_and_conflict_with_locks_below() {
        let table = LockTable::new(limits(), None);
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
