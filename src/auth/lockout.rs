//! Failed-login throttling: repeated failures are slowed, then banned for a while.
//!
//! Two counters, so that an attack never locks out anyone else: failures of one login name
//! *from one address* (ban that pair), and all failures from one address (ban the address,
//! at a higher threshold). A success clears the pair's counter.
//!
//! Counters live in a [`LockoutLedger`] (the store) shared by every replica, and in memory
//! as this replica's copy: a failure is counted in both at once (the ledger's answer wins),
//! and [`Lockout::sync`] — run every second by the gateway — brings in what other replicas
//! counted. So a ban made on one replica holds on all of them within a second, checking a
//! ban costs no store round trip, and with the store unreachable the local counters still
//! protect this replica.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Lockout settings.
#[derive(Debug, Clone)]
pub struct LockoutPolicy {
    pub enabled: bool,
    /// Failures of one login from one address before that pair is banned.
    pub max_failures_per_login: u32,
    /// Failures from one address (any login) before the address is banned.
    pub max_failures_per_address: u32,
    /// How long failures are remembered.
    pub window: Duration,
    /// How long a ban lasts.
    pub ban: Duration,
    /// Extra delay per failure beyond the first few, capped at `max_delay`.
    pub delay_step: Duration,
    pub max_delay: Duration,
}

/// A scope's counter: how many failures since when, and the ban they earned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureState {
    pub failures: u32,
    /// Unix milliseconds.
    pub window_start_ms: i64,
    pub banned_until_ms: Option<i64>,
}

/// The rule a ledger applies when it counts a failure.
#[derive(Debug, Clone, Copy)]
pub struct LockoutWindow {
    pub window_ms: i64,
    pub max_failures: u32,
    pub ban_ms: i64,
}

/// The shared ledger could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("lockout ledger unavailable: {0}")]
pub struct LedgerError(pub String);

/// Failure counters shared by every replica (implemented by the store).
#[async_trait::async_trait]
pub trait LockoutLedger: Send + Sync {
    /// Counts one failure of `scope` at `at_ms` (restarting an expired window or ban) and
    /// returns the counter after it, in one atomic step.
    async fn record_failure(
        &self,
        scope: &str,
        at_ms: i64,
        window: &LockoutWindow,
    ) -> Result<FailureState, LedgerError>;
    /// Forgets the failures of `scope`, unless they earned a ban still running at `at_ms`
    /// (a success on one replica must not lift a ban another replica just made).
    async fn clear_failures(&self, scope: &str, at_ms: i64) -> Result<(), LedgerError>;
    /// Counters changed at or after `since_ms`, by any replica.
    async fn changed_since(
        &self,
        since_ms: i64,
    ) -> Result<Vec<(String, FailureState)>, LedgerError>;
    /// Drops counters neither changed nor banning since `before_ms`.
    async fn forget_before(&self, before_ms: i64) -> Result<(), LedgerError>;
}

/// Failure counters: this replica's copy, and the shared ledger when there is one.
pub struct Lockout {
    policy: LockoutPolicy,
    ledger: Option<std::sync::Arc<dyn LockoutLedger>>,
    counters: Mutex<HashMap<String, FailureState>>,
    /// Unix ms of the last successful [`Lockout::sync`] start.
    synced_ms: AtomicI64,
}

/// How many entries the map may hold before stale ones are swept.
const SWEEP_AT: usize = 100_000;
/// Rows changed this long before the last sync are read again (clock skew between replicas,
/// transactions that committed late).
const SYNC_OVERLAP_MS: i64 = 5_000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Counters are kept per client network (an IPv6 /64 counts as one address).
fn pair_scope(ip: IpAddr, login: &str) -> String {
    let net = crate::limits::client_network(ip);
    format!("p:{net} {}", login.to_lowercase())
}

fn address_scope(ip: IpAddr) -> String {
    format!("a:{}", crate::limits::client_network(ip))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Lockout {
    /// Counters kept in memory only (one process, or tests).
    pub fn new(policy: LockoutPolicy) -> Lockout {
        Lockout {
            policy,
            ledger: None,
            counters: Mutex::default(),
            synced_ms: AtomicI64::new(0),
        }
    }

    /// Counters shared through `ledger`.
    pub fn shared(policy: LockoutPolicy, ledger: std::sync::Arc<dyn LockoutLedger>) -> Lockout {
        Lockout {
            ledger: Some(ledger),
            ..Lockout::new(policy)
        }
    }

    pub fn policy(&self) -> &LockoutPolicy {
        &self.policy
    }

    fn window(&self, max_failures: u32) -> LockoutWindow {
        LockoutWindow {
            window_ms: millis(self.policy.window),
            max_failures,
            ban_ms: millis(self.policy.ban),
        }
    }

    /// True when `login` from `ip` may not try now.
    pub fn is_banned(&self, ip: Option<IpAddr>, login: &str) -> bool {
        let (Some(ip), true) = (ip, self.policy.enabled) else {
            return false;
        };
        let now = now_ms();
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let banned = |scope: &str| {
            counters
                .get(scope)
                .and_then(|c| c.banned_until_ms)
                .is_some_and(|t| t > now)
        };
        banned(&address_scope(ip)) || banned(&pair_scope(ip, login))
    }

    /// Counts a failure; returns how long to hold the refusal back.
    pub async fn failed(&self, ip: Option<IpAddr>, login: &str) -> Duration {
        let (Some(ip), true) = (ip, self.policy.enabled) else {
            return Duration::ZERO;
        };
        let now = now_ms();
        let scopes = [
            (pair_scope(ip, login), self.policy.max_failures_per_login),
            (address_scope(ip), self.policy.max_failures_per_address),
        ];
        let mut pair_failures = 0;
        for (n, (scope, max)) in scopes.iter().enumerate() {
            let window = self.window(*max);
            let mut counted = self.bump_local(scope, &window, now);
            if let Some(ledger) = &self.ledger {
                match ledger.record_failure(scope, now, &window).await {
                    Ok(shared) => {
                        self.counters
                            .lock()
                            .expect("lockout lock")
                            .insert(scope.clone(), shared);
                        counted = shared;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "failed login counted on this replica only")
                    }
                }
            }
            if n == 0 {
                pair_failures = counted.failures;
            }
        }
        let extra = pair_failures.saturating_sub(3);
        (self.policy.delay_step * extra).min(self.policy.max_delay)
    }

    /// Clears the pair's counter after a successful login (here and, when this replica
    /// knows of failures, in the ledger).
    pub async fn succeeded(&self, ip: Option<IpAddr>, login: &str) {
        let Some(ip) = ip else { return };
        let scope = pair_scope(ip, login);
        let known = self
            .counters
            .lock()
            .expect("lockout lock")
            .remove(&scope)
            .is_some();
        if let (true, Some(ledger)) = (known, &self.ledger)
            && let Err(err) = ledger.clear_failures(&scope, now_ms()).await
        {
            tracing::warn!(error = %err, "could not clear failed-login counter");
        }
    }

    /// Brings in the counters other replicas changed since the last sync.
    pub async fn sync(&self) -> Result<(), LedgerError> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        let started = now_ms();
        let since = self.synced_ms.load(Ordering::Relaxed) - SYNC_OVERLAP_MS;
        let changed = ledger.changed_since(since.max(0)).await?;
        {
            let mut counters = self
                .counters
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (scope, state) in changed {
                counters.insert(scope, state);
            }
        }
        self.synced_ms.store(started, Ordering::Relaxed);
        Ok(())
    }

    /// Drops ledger rows that no longer matter (older than a window and a ban).
    pub async fn forget_stale(&self) -> Result<(), LedgerError> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        let horizon = millis(self.policy.window).saturating_add(millis(self.policy.ban));
        ledger.forget_before(now_ms().saturating_sub(horizon)).await
    }

    /// Counts a failure in this replica's copy.
    fn bump_local(&self, scope: &str, window: &LockoutWindow, now: i64) -> FailureState {
        let mut counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if counters.len() >= SWEEP_AT {
            counters.retain(|_, c| {
                now - c.window_start_ms < window.window_ms
                    || c.banned_until_ms.is_some_and(|t| t > now)
            });
        }
        let fresh = FailureState {
            failures: 0,
            window_start_ms: now,
            banned_until_ms: None,
        };
        let counter = counters.entry(scope.to_owned()).or_insert(fresh);
        if counter.banned_until_ms.is_some_and(|t| t <= now)
            || now - counter.window_start_ms >= window.window_ms
        {
            *counter = fresh;
        }
        counter.failures += 1;
        if counter.failures >= window.max_failures {
            counter.banned_until_ms = Some(now + window.ban_ms);
        }
        *counter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LockoutPolicy {
        LockoutPolicy {
            enabled: true,
            max_failures_per_login: 3,
            max_failures_per_address: 5,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(60),
            delay_step: Duration::from_millis(10),
            max_delay: Duration::from_millis(25),
        }
    }

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));

    #[tokio::test]
    async fn a_login_is_banned_from_one_address_but_not_from_others() {
        let l = Lockout::new(policy());
        for _ in 0..3 {
            l.failed(A, "alice").await;
        }
        assert!(l.is_banned(A, "alice"));
        assert!(l.is_banned(A, "ALICE"));
        assert!(!l.is_banned(B, "alice"));
        assert!(!l.is_banned(A, "bob"));
    }

    #[tokio::test]
    async fn an_address_failing_on_many_logins_is_banned_whole() {
        let l = Lockout::new(policy());
        for n in 0..5 {
            l.failed(A, &format!("user{n}")).await;
        }
        assert!(l.is_banned(A, "someone-else"));
        assert!(!l.is_banned(B, "someone-else"));
    }

    #[tokio::test]
    async fn addresses_of_one_ipv6_slash_64_count_as_one_address() {
        let l = Lockout::new(policy());
        for n in 0..5u16 {
            let ip = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 7, 7, n, n, n, n + 1));
            l.failed(Some(ip), &format!("user{n}")).await;
        }
        let same_net = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 7, 7, 9, 9, 9, 9));
        let other_net = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 7, 8, 0, 0, 0, 1));
        assert!(l.is_banned(Some(same_net), "someone-else"));
        assert!(!l.is_banned(Some(other_net), "someone-else"));
    }

    #[tokio::test]
    async fn success_clears_the_pair_and_delays_are_capped() {
        let l = Lockout::new(policy());
        l.failed(A, "alice").await;
        l.failed(A, "alice").await;
        l.succeeded(A, "alice").await;
        l.failed(A, "alice").await;
        assert!(!l.is_banned(A, "alice"));
        let mut p = policy();
        p.max_failures_per_login = 100;
        p.max_failures_per_address = 100;
        let l = Lockout::new(p);
        let mut delays = Vec::new();
        for _ in 0..10 {
            delays.push(l.failed(A, "x").await);
        }
        assert_eq!(delays[0], Duration::ZERO);
        assert_eq!(delays[4], Duration::from_millis(20));
        assert_eq!(delays[9], Duration::from_millis(25));
    }

    #[tokio::test]
    async fn a_disabled_policy_never_bans() {
        let mut p = policy();
        p.enabled = false;
        let l = Lockout::new(p);
        for _ in 0..10 {
            l.failed(A, "alice").await;
        }
        assert!(!l.is_banned(A, "alice"));
    }
}
