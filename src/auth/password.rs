//! argon2id password hashing, run on the blocking pool under a concurrency bound so that a
//! flood of logins cannot starve the async workers serving transfers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use tokio::sync::Semaphore;

/// Hashing or verification could not run.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password worker stopped")]
    Worker,
}

/// Hashes and verifies passwords with argon2id (default parameters: m=19456, t=2, p=1).
#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified when there is nothing to verify, so that
    /// an unknown login costs the same time as a wrong password.
    dummy: Arc<String>,
    /// Verifications run so far (real or dummy), for tests that check a refusal did the
    /// work of a real check.
    verifications: Arc<AtomicU64>,
}

impl Passwords {
    /// `concurrency`: argon2 computations allowed at once (0 means the number of cores).
    pub fn new(concurrency: usize) -> Passwords {
        let permits = if concurrency == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            concurrency
        };
        let dummy = hash_now(&crate::secret::random_hex(16)).expect("argon2 works");
        Passwords {
            permits: Arc::new(Semaphore::new(permits)),
            dummy: Arc::new(dummy),
            verifications: Arc::default(),
        }
    }

    /// A PHC string for `password`, with a fresh salt.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_owned();
        self.run(move || hash_now(&password)).await?
    }

    /// Whether `password` matches the PHC string `phc` (or, when `phc` is `None`, runs a
    /// verification of the same cost and answers false).
    pub async fn verify(&self, password: &str, phc: Option<&str>) -> Result<bool, PasswordError> {
        let password = password.to_owned();
        let (phc, real) = match phc {
            Some(phc) => (phc.to_owned(), true),
            None => (self.dummy.as_str().to_owned(), false),
        };
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let matched = self.run(move || verify_now(&password, &phc)).await?;
        Ok(real && matched)
    }

    /// How many verifications (real or dummy) were started.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Worker)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| PasswordError::Worker)
    }
}

fn hash_now(password: &str) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

fn verify_now(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let p = Passwords::new(1);
        let phc = p.hash("correct horse").await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(p.verify("correct horse", Some(&phc)).await.unwrap());
        assert!(!p.verify("wrong", Some(&phc)).await.unwrap());
        assert!(!p.verify("correct horse", None).await.unwrap());
        assert!(!p.verify("x", Some("not a phc string")).await.unwrap());
    }
}
