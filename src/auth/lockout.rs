//! Failed-login throttling: repeated failures are slowed, then banned for a while.
//!
//! Two counters, so that an attack never locks out anyone else: failures of one login name
//! *from one address* (ban that pair), and all failures from one address (ban the address,
//! at a higher threshold). A success clears the pair's counter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    first: Instant,
    banned_until: Option<Instant>,
}

/// Failure counters, in memory.
pub struct Lockout {
    policy: LockoutPolicy,
    pairs: Mutex<HashMap<(IpAddr, String), Counter>>,
    addresses: Mutex<HashMap<IpAddr, Counter>>,
}

/// How many entries each map may hold before stale ones are swept.
const SWEEP_AT: usize = 100_000;

impl Lockout {
    pub fn new(policy: LockoutPolicy) -> Lockout {
        Lockout {
            policy,
            pairs: Mutex::default(),
            addresses: Mutex::default(),
        }
    }

    /// True when `login` from `ip` may not try now.
    pub fn is_banned(&self, ip: Option<IpAddr>, login: &str) -> bool {
        let (Some(ip), true) = (ip, self.policy.enabled) else {
            return false;
        };
        let now = Instant::now();
        let banned = |c: Option<&Counter>| c.and_then(|c| c.banned_until).is_some_and(|t| t > now);
        banned(self.addresses.lock().expect("lockout lock").get(&ip))
            || banned(
                self.pairs
                    .lock()
                    .expect("lockout lock")
                    .get(&(ip, login.to_lowercase())),
            )
    }

    /// Counts a failure; returns how long to hold the refusal back.
    pub fn failed(&self, ip: Option<IpAddr>, login: &str) -> Duration {
        let (Some(ip), true) = (ip, self.policy.enabled) else {
            return Duration::ZERO;
        };
        let pair = bump(
            &mut self.pairs.lock().expect("lockout lock"),
            (ip, login.to_lowercase()),
            &self.policy,
            self.policy.max_failures_per_login,
        );
        bump(
            &mut self.addresses.lock().expect("lockout lock"),
            ip,
            &self.policy,
            self.policy.max_failures_per_address,
        );
        let extra = pair.saturating_sub(3);
        (self.policy.delay_step * extra).min(self.policy.max_delay)
    }

    /// Clears the pair's counter after a successful login.
    pub fn succeeded(&self, ip: Option<IpAddr>, login: &str) {
        if let Some(ip) = ip {
            self.pairs
                .lock()
                .expect("lockout lock")
                .remove(&(ip, login.to_lowercase()));
        }
    }
}

fn bump<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Counter>,
    key: K,
    policy: &LockoutPolicy,
    max: u32,
) -> u32 {
    let now = Instant::now();
    if map.len() >= SWEEP_AT {
        map.retain(|_, c| {
            now.duration_since(c.first) < policy.window || c.banned_until.is_some_and(|t| t > now)
        });
    }
    let counter = map.entry(key).or_insert(Counter {
        failures: 0,
        first: now,
        banned_until: None,
    });
    if counter.banned_until.is_some_and(|t| t <= now)
        || now.duration_since(counter.first) >= policy.window
    {
        *counter = Counter {
            failures: 0,
            first: now,
            banned_until: None,
        };
    }
    counter.failures += 1;
    if counter.failures >= max {
        counter.banned_until = Some(now + policy.ban);
    }
    counter.failures
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

    #[test]
    fn a_login_is_banned_from_one_address_but_not_from_others() {
        let l = Lockout::new(policy());
        for _ in 0..3 {
            l.failed(A, "alice");
        }
        assert!(l.is_banned(A, "alice"));
        assert!(l.is_banned(A, "ALICE"));
        assert!(!l.is_banned(B, "alice"));
        assert!(!l.is_banned(A, "bob"));
    }

    #[test]
    fn an_address_failing_on_many_logins_is_banned_whole() {
        let l = Lockout::new(policy());
        for n in 0..5 {
            l.failed(A, &format!("user{n}"));
        }
        assert!(l.is_banned(A, "someone-else"));
        assert!(!l.is_banned(B, "someone-else"));
    }

    #[test]
    fn success_clears_the_pair_and_delays_are_capped() {
        let l = Lockout::new(policy());
        l.failed(A, "alice");
        l.failed(A, "alice");
        l.succeeded(A, "alice");
        l.failed(A, "alice");
        assert!(!l.is_banned(A, "alice"));
        let mut p = policy();
        p.max_failures_per_login = 100;
        p.max_failures_per_address = 100;
        let l = Lockout::new(p);
        let delays: Vec<Duration> = (0..10).map(|_| l.failed(A, "x")).collect();
        assert_eq!(delays[0], Duration::ZERO);
        assert_eq!(delays[4], Duration::from_millis(20));
        assert_eq!(delays[9], Duration::from_millis(25));
    }

    #[test]
    fn a_disabled_policy_never_bans() {
        let mut p = policy();
        p.enabled = false;
        let l = Lockout::new(p);
        for _ in 0..10 {
            l.failed(A, "alice");
        }
        assert!(!l.is_banned(A, "alice"));
    }
}
