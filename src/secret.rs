//! Random secrets and their digests: API-key secrets, session tokens, audit session ids.
//!
//! Secrets come from the OS random source and are lowercase hex (Files.com's SDKs accept only
//! `[A-Za-z0-9]`). They are stored only as SHA-256 digests and compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Bytes of entropy in an API-key secret (256 bits → 64 hex characters).
pub const KEY_SECRET_BYTES: usize = 32;

/// `bytes` random bytes from the OS, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source failed");
    hex::encode(buf)
}

/// A fresh API-key secret: 64 lowercase hex characters.
pub fn new_key_secret() -> String {
    random_hex(KEY_SECRET_BYTES)
}

/// The SHA-256 digest of a secret, as lowercase hex (what the store keeps).
pub fn digest_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares a presented secret with a stored digest in constant time.
pub fn matches_digest(secret: &str, stored_digest_hex: &str) -> bool {
    let presented = digest_hex(secret);
    presented
        .as_bytes()
        .ct_eq(stored_digest_hex.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_secrets_are_64_lowercase_hex_characters_and_differ() {
        let a = new_key_secret();
        let b = new_key_secret();
        assert_eq!(a.len(), 64);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert_ne!(a, b);
    }

    #[test]
    fn a_secret_matches_only_its_own_digest() {
        let s = new_key_secret();
        let d = digest_hex(&s);
        assert!(matches_digest(&s, &d));
        assert!(!matches_digest(&new_key_secret(), &d));
        assert!(!matches_digest("", &d));
    }
}
