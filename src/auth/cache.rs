//! A short-lived memory of verified passwords, so that WebDAV (Basic auth on every request)
//! does not pay argon2 per request.
//!
//! An entry holds a keyed hash (HMAC-SHA256 under a key drawn at start) of the user id and
//! password, never the password; the user row's revision at verification time; and an
//! expiry. A password change, a grant change or disabling the user bumps the revision and so
//! defeats the entry on the very next login.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

struct Entry {
    tag: [u8; 32],
    revision: i64,
    until: Instant,
}

/// Verified (user, password) pairs, by user id.
pub struct PasswordCache {
    key: [u8; 32],
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<i64, Entry>>,
}

impl PasswordCache {
    /// `ttl` zero disables the cache.
    pub fn new(ttl: Duration, capacity: usize) -> PasswordCache {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source failed");
        PasswordCache {
            key,
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn tag(&self, user_id: i64, password: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(&user_id.to_be_bytes());
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// True when this password was verified for this user at this revision recently.
    pub fn check(&self, user_id: i64, revision: i64, password: &str) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let tag = self.tag(user_id, password);
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match entries.get(&user_id) {
            Some(e) => {
                e.revision == revision && e.until > Instant::now() && bool::from(e.tag.ct_eq(&tag))
            }
            None => false,
        }
    }

    /// Remembers a successful verification.
    pub fn remember(&self, user_id: i64, revision: i64, password: &str) {
        if self.ttl.is_zero() {
            return;
        }
        let entry = Entry {
            tag: self.tag(user_id, password),
            revision,
            until: Instant::now() + self.ttl,
        };
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= self.capacity {
            let now = Instant::now();
            entries.retain(|_, e| e.until > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(user_id, entry);
    }

    /// Whether an entry for this user is held (whatever its revision or age).
    pub fn holds(&self, user_id: i64) -> bool {
        self.entries
            .lock()
            .expect("password cache lock")
            .contains_key(&user_id)
    }

    /// Forgets a user's entry (after a failed attempt, for instance).
    pub fn forget(&self, user_id: i64) {
        self.entries
            .lock()
            .expect("password cache lock")
            .remove(&user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_password_matches_only_at_the_same_revision() {
        let cache = PasswordCache::new(Duration::from_secs(60), 10);
        cache.remember(1, 5, "pw");
        assert!(cache.check(1, 5, "pw"));
        assert!(!cache.check(1, 6, "pw"));
        assert!(!cache.check(1, 5, "other"));
        assert!(!cache.check(2, 5, "pw"));
    }

    #[test]
    fn entries_expire_and_a_zero_ttl_disables_the_cache() {
        let cache = PasswordCache::new(Duration::from_millis(1), 10);
        cache.remember(1, 1, "pw");
        std::thread::sleep(Duration::from_millis(5));
        assert!(!cache.check(1, 1, "pw"));
        let off = PasswordCache::new(Duration::ZERO, 10);
        off.remember(1, 1, "pw");
        assert!(!off.check(1, 1, "pw"));
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let cache = PasswordCache::new(Duration::from_secs(60), 3);
        for id in 0..10 {
            cache.remember(id, 1, "pw");
        }
        assert!(cache.entries.lock().unwrap().len() <= 3);
        assert!(cache.check(9, 1, "pw"));
    }
}
