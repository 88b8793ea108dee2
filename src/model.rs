//! Rows of the store as plain data: users, folder grants, API keys, SSH keys, sessions.
//!
//! These types are what the store returns and what the authenticator, the account service
//! and the REST API read. Timestamps are Unix seconds (UTC). They carry no behaviour beyond
//! small conversions; rules live in `accounts` and `auth`.

use std::str::FromStr;

use crate::identity::{Grant, GrantLevel, PermissionSet, Protocol};
use crate::path::SitePath;

/// A user's TOTP second factor (`user_totp`); the secret stays sealed (`auth::totp::Sealer`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TotpRecord {
    pub user_id: i64,
    /// Hex of nonce ‖ ciphertext ‖ tag.
    pub secret_sealed: String,
    /// False while the enrolment waits for its first code.
    pub confirmed: bool,
    /// The last time step a code was accepted for (the replay guard).
    pub last_step: i64,
    pub created_at: i64,
    /// Wrong codes for this account (any address) since `code_failures_since` (seconds).
    pub code_failures: i64,
    pub code_failures_since: i64,
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    /// argon2id PHC string; `None` when the user signs in only with SSH or API keys.
    pub password_hash: Option<String>,
    pub site_admin: bool,
    pub disabled: bool,
    pub sftp_permission: bool,
    pub ftp_permission: bool,
    pub dav_permission: bool,
    pub restapi_permission: bool,
    /// Comma-separated CIDRs; empty means any address.
    pub allowed_ips: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// Bumped on every change to the user's rights or credentials (password, switches,
    /// addresses, admin flag, grants, SSH keys): defeats cached logins and ends sessions
    /// signed in at an older revision.
    pub revision: i64,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

impl UserRecord {
    /// Whether the user's switch for `protocol` is on.
    pub fn allows_protocol(&self, protocol: Protocol) -> bool {
        match protocol {
            Protocol::Sftp => self.sftp_permission,
            Protocol::Ftp => self.ftp_permission,
            Protocol::WebDav => self.dav_permission,
            Protocol::Api => self.restapi_permission,
            // The console is where a user manages their own account: it has no switch of its
            // own (disabled users and allowed_ips still apply).
            Protocol::Web | Protocol::Cli => true,
        }
    }

    /// Whether `ip` is inside the user's `allowed_ips` (always, when the list is empty).
    /// Unparseable entries are skipped (they are validated on write).
    pub fn allows_ip(&self, ip: Option<std::net::IpAddr>) -> bool {
        let nets: Vec<ipnet::IpNet> = self
            .allowed_ips
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .filter_map(|s| parse_net(s).ok())
            .collect();
        if nets.is_empty() {
            return true;
        }
        match ip {
            Some(ip) => nets.iter().any(|net| net.contains(&ip)),
            None => false,
        }
    }
}

/// Parses a CIDR or a bare address (as a /32 or /128).
pub fn parse_net(s: &str) -> Result<ipnet::IpNet, ipnet::AddrParseError> {
    ipnet::IpNet::from_str(s).or_else(|e| {
        std::net::IpAddr::from_str(s)
            .map(ipnet::IpNet::from)
            .map_err(|_| e)
    })
}

/// A folder grant row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GrantRecord {
    pub id: i64,
    pub user_id: i64,
    /// Absolute site path, e.g. `/shared/docs`.
    pub path: String,
    pub level: String,
    pub created_at: i64,
}

impl GrantRecord {
    /// The grant as identity data; `None` if the row holds something no longer valid.
    pub fn to_grant(&self) -> Option<Grant> {
        Some(Grant {
            path: SitePath::parse(&self.path).ok()?,
            level: GrantLevel::from_str(&self.level).ok()?,
        })
    }
}

/// An API key row. The secret itself is never stored, only its digest.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyRecord {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    /// The owner; `None` for a site-wide key.
    pub user_id: Option<i64>,
    pub secret_digest: String,
    /// Files.com form: no leading or trailing slash; `None` for no restriction.
    pub path: Option<String>,
    pub permission_set: String,
    pub platform: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_use_at: Option<i64>,
    /// The user who created the key (an admin may create keys for others).
    pub created_by_user_id: Option<i64>,
    /// Bumped whenever what the key may do changes (permission set, path, expiry): a
    /// session signed in at an older revision no longer holds the key's current rights.
    pub revision: i64,
}

impl KeyRecord {
    pub fn permission_set(&self) -> Option<PermissionSet> {
        PermissionSet::from_str(&self.permission_set).ok()
    }

    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// An SSH public key allowed to sign in as its user over SFTP.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PublicKeyRecord {
    pub id: i64,
    pub user_id: i64,
    pub title: String,
    /// OpenSSH form without the comment: `ssh-ed25519 AAAA…`.
    pub public_key: String,
    pub created_at: i64,
}

/// A REST API session created by `POST /sessions`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRecord {
    pub id: i64,
    pub token_digest: String,
    pub user_id: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A web console session (`web_sessions`): the digest of the cookie's id, the user and the
/// user's revision at sign-in, and when it was made, last used and ends at the latest.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebSessionRecord {
    pub id: i64,
    pub token_digest: String,
    pub user_id: i64,
    pub user_revision: i64,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// The current time as Unix seconds.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Formats Unix seconds as ISO 8601 UTC (`2000-01-01T01:00:00Z`).
pub fn format_time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Parses an RFC 3339 timestamp (or a plain date, meaning midnight UTC) into Unix seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp())
}
