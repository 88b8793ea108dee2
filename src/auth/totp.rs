//! TOTP (RFC 6238, HMAC-SHA1, 6 digits, 30 s steps) and the sealing of its secrets.
//!
//! Pure functions and one key: generating a secret and its `otpauth://` URI, computing and
//! matching codes (one step of clock drift either way), telling a TOTP code from a recovery
//! code from garbage, and [`Sealer`], which seals secrets with ChaCha20-Poly1305 (ring's,
//! already in the tree through rustls and russh) under the gateway's TOTP key before they
//! reach the store, bound to their user id. No I/O but the key file read at start; the
//! replay guard and recovery-code spending live in the store, shared by replicas.

use std::path::Path;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use subtle::ConstantTimeEq;

/// Seconds per time step.
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// Bytes of a shared secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;
/// Recovery codes made at enrolment.
pub const RECOVERY_CODES: usize = 10;
/// Longest second-factor input looked at (anything longer is refused unread).
pub const MAX_CODE_CHARS: usize = 32;
/// The issuer shown by authenticator apps.
pub const ISSUER: &str = "filegate";

/// Why a key or a sealed secret could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TotpKeyError {
    #[error("auth.totp_key must be 64 hexadecimal characters (32 bytes)")]
    BadKey,
    #[error("cannot read or create the TOTP key file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    /// A sealed secret that this key did not seal (another key, or a changed row).
    #[error("a stored TOTP secret cannot be opened with this key")]
    Unsealable,
}

/// What a client typed as its second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeInput {
    /// Six digits.
    Totp(u32),
    /// A recovery code, normalised (10 lowercase hex digits, no dash).
    Recovery(String),
    /// Empty, overlong, or neither of the above.
    Malformed,
}

/// Classifies `raw` (spaces and one dash in a recovery code are allowed).
pub fn parse_code(raw: &str) -> CodeInput {
    if raw.len() > MAX_CODE_CHARS {
        return CodeInput::Malformed;
    }
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() == DIGITS && compact.bytes().all(|b| b.is_ascii_digit()) {
        return compact
            .parse()
            .map_or(CodeInput::Malformed, CodeInput::Totp);
    }
    let recovery: String = compact.replacen('-', "", 1).to_ascii_lowercase();
    if recovery.len() == 10 && recovery.bytes().all(|b| b.is_ascii_hexdigit()) {
        return CodeInput::Recovery(recovery);
    }
    CodeInput::Malformed
}

/// The time step of Unix time `at`.
pub fn step_at(at: i64) -> i64 {
    at.div_euclid(STEP_SECONDS)
}

/// The code for `secret` at time step `step` (RFC 4226 HOTP with the step as counter).
pub fn code_at(secret: &[u8], step: i64) -> u32 {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = ring::hmac::sign(&key, &step.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    let word = mac
        .get(offset..offset + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    (word & 0x7fff_ffff) % 10u32.pow(DIGITS as u32)
}

/// The step (now, one before or one after) whose code is `code`, if any. Every candidate is
/// computed and compared in constant time.
pub fn matching_step(secret: &[u8], code: u32, now: i64) -> Option<i64> {
    let current = step_at(now);
    let mut found = None;
    for step in [current - 1, current, current + 1] {
        let expected = code_at(secret, step).to_be_bytes();
        if bool::from(expected.ct_eq(&code.to_be_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// A fresh random secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    getrandom::fill(&mut secret).expect("the OS random source failed");
    secret
}

/// Ten fresh recovery codes, shown as `xxxxx-xxxxx` (what [`parse_code`] reads back).
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let hex = crate::secret::random_hex(5);
            format!("{}-{}", &hex[..5], &hex[5..])
        })
        .collect()
}

/// The digest a recovery code is stored as (of its normalised form).
pub fn recovery_digest(normalised: &str) -> String {
    crate::secret::digest_hex(normalised)
}

/// RFC 4648 base32 without padding (what authenticator apps read).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The `otpauth://` URI an authenticator app reads (from a QR code or pasted).
pub fn otpauth_uri(username: &str, secret: &[u8]) -> String {
    let label: String = username
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!(
        "otpauth://totp/{ISSUER}:{label}?secret={}&issuer={ISSUER}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        base32(secret)
    )
}

/// Seals TOTP secrets for the store and opens them again. Every replica must hold the same
/// key (`auth.totp_key`), or secrets sealed on one cannot be opened on another.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    /// A sealer for a 32-byte key given as 64 hex characters.
    pub fn from_hex(hex_key: &str) -> Result<Sealer, TotpKeyError> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| TotpKeyError::BadKey)?;
        let unbound =
            UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| TotpKeyError::BadKey)?;
        Ok(Sealer {
            key: LessSafeKey::new(unbound),
        })
    }

    /// The configured key, or the one in `file`, made (mode 0600) when missing.
    pub fn configured_or_file(configured: &str, file: &Path) -> Result<Sealer, TotpKeyError> {
        if !configured.trim().is_empty() {
            return Sealer::from_hex(configured);
        }
        let err = |source| TotpKeyError::File {
            path: file.display().to_string(),
            source,
        };
        match std::fs::read_to_string(file) {
            Ok(text) => Sealer::from_hex(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let hex_key = crate::secret::random_hex(32);
                let made = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(file);
                let mut f = match made {
                    Ok(f) => f,
                    // Another replica sharing the file made it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        return Sealer::from_hex(&std::fs::read_to_string(file).map_err(err)?);
                    }
                    Err(e) => return Err(err(e)),
                };
                f.write_all(hex_key.as_bytes()).map_err(err)?;
                f.sync_all().map_err(err)?;
                tracing::info!(path = %file.display(), "created a TOTP key; replicas must share it (auth.totp_key)");
                Sealer::from_hex(&hex_key)
            }
            Err(e) => Err(err(e)),
        }
    }

    fn aad(user_id: i64) -> String {
        format!("filegate-totp:{user_id}")
    }

    /// `secret` sealed for `user_id`: hex of nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, user_id: i64, secret: &[u8]) -> String {
        self.seal_for(&Self::aad(user_id), secret)
    }

    /// The secret sealed for `user_id`; refused if another key or another user sealed it.
    pub fn open(&self, user_id: i64, sealed: &str) -> Result<Vec<u8>, TotpKeyError> {
        self.open_for(&Self::aad(user_id), sealed)
    }

    /// `data` sealed for the purpose `context` (it opens only for the same context).
    pub fn seal_for(&self, context: &str, data: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the OS random source failed");
        let mut data = data.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .expect("sealing a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        hex::encode(out)
    }

    /// What [`Sealer::seal_for`] sealed for `context`.
    pub fn open_for(&self, context: &str, sealed: &str) -> Result<Vec<u8>, TotpKeyError> {
        let bytes = hex::decode(sealed).map_err(|_| TotpKeyError::Unsealable)?;
        if bytes.len() < 12 + 16 {
            return Err(TotpKeyError::Unsealable);
        }
        let (nonce, data) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| TotpKeyError::Unsealable)?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .map_err(|_| TotpKeyError::Unsealable)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows (8 digits there; the last 6 here).
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (time, eight) in [
            (59, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(
                code_at(secret, step_at(time)),
                eight % 1_000_000,
                "t={time}"
            );
        }
    }

    #[test]
    fn a_code_matches_one_step_either_side_and_no_further() {
        let secret = new_secret();
        let now = 1_800_000_000;
        let step = step_at(now);
        for (delta, ok) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = code_at(&secret, step + delta);
            let found = matching_step(&secret, code, now);
            assert_eq!(found == Some(step + delta), ok, "delta {delta}");
        }
    }

    #[test]
    fn inputs_are_classified_as_totp_recovery_or_malformed() {
        assert_eq!(parse_code("123456"), CodeInput::Totp(123456));
        assert_eq!(parse_code(" 123 456 "), CodeInput::Totp(123456));
        assert_eq!(parse_code("000042"), CodeInput::Totp(42));
        assert_eq!(
            parse_code("ABCDE-12345"),
            CodeInput::Recovery("abcde12345".into())
        );
        for bad in [
            "",
            "12345",
            "1234567",
            "12a456",
            "１２３４５６",
            "abcde-1234g",
            "a-b-c-d-e-1",
        ] {
            assert_eq!(parse_code(bad), CodeInput::Malformed, "{bad:?}");
        }
        assert_eq!(parse_code(&"1".repeat(10_000)), CodeInput::Malformed);
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"12345678901234567890").len(), 32);
    }

    #[test]
    fn the_uri_names_issuer_user_and_secret() {
        let uri = otpauth_uri("al ice", b"12345678901234567890");
        assert!(uri.starts_with(
            "otpauth://totp/filegate:al%20ice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"
        ));
        assert!(uri.contains("issuer=filegate"));
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_for_its_user() {
        let sealer = Sealer::from_hex(&"ab".repeat(32)).unwrap();
        let other = Sealer::from_hex(&"cd".repeat(32)).unwrap();
        let sealed = sealer.seal(7, b"secret bytes");
        assert!(!sealed.contains(&hex::encode(b"secret bytes")));
        assert_eq!(sealer.open(7, &sealed).unwrap(), b"secret bytes");
        assert!(sealer.open(8, &sealed).is_err());
        assert!(other.open(7, &sealed).is_err());
        assert!(sealer.open(7, "00").is_err());
        assert_ne!(sealer.seal(7, b"x"), sealer.seal(7, b"x"));
    }

    #[test]
    fn bad_keys_are_refused_and_a_missing_key_file_is_made_private() {
        assert!(Sealer::from_hex("short").is_err());
        let dir = std::env::temp_dir().join(format!("fg-totp-{}", crate::secret::random_hex(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("totp.key");
        let a = Sealer::configured_or_file("", &file).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let b = Sealer::configured_or_file("", &file).unwrap();
        assert_eq!(b.open(1, &a.seal(1, b"k")).unwrap(), b"k");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
