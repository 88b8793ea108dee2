//! Configuration: `config/filegate.toml` plus `FILEGATE_*` environment overrides.
//!
//! Plain structs with a doc line per field, `Default`, and `deny_unknown_fields`, so a typo
//! is an error rather than a silently ignored setting. [`Config::validate`] checks everything
//! before any port is bound; a bad config stops the process with a one-line reason.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::auth::{AuthSettings, LockoutPolicy, Require2fa};

mod ldap;
mod storage;
pub use ldap::{LdapConfig, LdapGroupConfig, Redacted};
pub use storage::{MountConfig, S3Config, StorageConfig, StorageUrl};
mod webhooks;
pub use webhooks::WebhooksConfig;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: &'static str, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

/// All settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub audit: AuditConfig,
    pub sftp: SftpConfig,
    pub ftp: FtpConfig,
    pub webdav: WebDavConfig,
    pub api: ApiConfig,
    pub limits: LimitsConfig,
    pub webhooks: WebhooksConfig,
    pub storage: StorageConfig,
}

/// Where state lives and who this replica is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Folder for the SQLite database, the file storage, keys and certificates.
    pub data_dir: PathBuf,
    /// `sqlite://FILE` or `postgres://…`; empty means `sqlite://<data_dir>/filegate.db`.
    pub database_url: String,
    /// This replica's name in audit records; empty means the host name.
    pub node_name: String,
    /// Folder served as the site root; empty means `<data_dir>/files`.
    pub storage_dir: PathBuf,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Follow symlinks inside the storage folder (only while they stay beneath it). Off by
    /// default: a symlink in any component of a path makes it unreachable, so no link can
    /// lead one user's folder into another's.
    pub follow_symlinks: bool,
    /// Seconds connections get to finish when the server stops (SIGTERM, Ctrl-C) before they
    /// are cut; the audit log is closed after that.
    pub shutdown_grace_seconds: u64,
    /// Seconds between this replica's heartbeats in the live-session table (one statement per
    /// heartbeat, whatever the number of sessions); a replica silent for three is dead.
    pub session_heartbeat_seconds: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: PathBuf::from("data"),
            database_url: String::new(),
            node_name: String::new(),
            storage_dir: PathBuf::new(),
            log_format: LogFormat::Text,
            follow_symlinks: false,
            shutdown_grace_seconds: 30,
            session_heartbeat_seconds: 10,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Login checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Seconds a verified password is remembered (0 disables the cache).
    pub password_cache_seconds: u64,
    /// argon2 verifications at once (0: one per core).
    pub argon2_concurrency: usize,
    pub lockout: LockoutConfig,
    /// Users from an LDAP directory / Active Directory (off unless `url` is set).
    pub ldap: LdapConfig,
    /// The key TOTP secrets are sealed with: 64 hex characters (`FILEGATE_TOTP_KEY`). Empty:
    /// `<data_dir>/totp.key`, made on first start. Replicas must share one key: set it here.
    pub totp_key: String,
    /// Where the TOTP key is kept when `totp_key` is empty (made on first start, mode
    /// 0600); default `<data_dir>/totp.key`. Replicas: a path they share.
    pub totp_key_file: PathBuf,
    /// Who must use a second factor: "off", "admins" or "all" (`FILEGATE_REQUIRE_2FA`). A
    /// user under the policy without one is refused on SFTP, FTP and WebDAV and may sign in
    /// to the console and the REST API only to enrol.
    pub require_2fa: Require2fa,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            password_cache_seconds: 60,
            argon2_concurrency: 0,
            lockout: LockoutConfig::default(),
            ldap: LdapConfig::default(),
            totp_key: String::new(),
            totp_key_file: PathBuf::new(),
            require_2fa: Require2fa::Off,
        }
    }
}

/// Failed-login throttling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Turn throttling and bans on or off.
    pub enabled: bool,
    /// Failures of one login name from one address before that pair is banned.
    pub max_failures_per_login: u32,
    /// Failures from one address, any login, before the address is banned.
    pub max_failures_per_address: u32,
    /// Seconds failures are remembered.
    pub window_seconds: u64,
    /// Seconds a ban lasts.
    pub ban_seconds: u64,
    /// Milliseconds added to each refusal after the third failure in a row.
    pub delay_step_ms: u64,
    /// Upper bound of that delay, in milliseconds.
    pub max_delay_ms: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            enabled: true,
            max_failures_per_login: 10,
            max_failures_per_address: 50,
            window_seconds: 900,
            ban_seconds: 900,
            delay_step_ms: 250,
            max_delay_ms: 2000,
        }
    }
}

/// The batching audit writer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Records queued in memory; past that, callers write their records to the local
    /// journal themselves (back-pressure).
    pub queue: usize,
    /// Largest batch written in one transaction (and one journal fsync).
    pub batch: usize,
    /// How long one store write may take before the batch goes to the local journal
    /// (`<data_dir>/audit-journal`) instead.
    pub store_timeout_ms: u64,
    /// How long an operation whose record matters (upload, delete, rename, mkdir...) waits
    /// at most for its record to be durable before it is answered with an error.
    pub durable_wait_ms: u64,
    /// How long closing the audit log may take at shutdown; what the store has not taken by
    /// then stays in the journal for the next start.
    pub shutdown_grace_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            queue: 10_000,
            batch: 500,
            store_timeout_ms: 3_000,
            durable_wait_ms: 15_000,
            shutdown_grace_ms: 5_000,
        }
    }
}

impl AuditConfig {
    pub fn store_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.store_timeout_ms)
    }
    pub fn durable_wait(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.durable_wait_ms)
    }
    pub fn shutdown_grace(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// Caps and timeouts shared by every listener (see `limits`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Connections open at once, all protocols together; 0: a quarter of the descriptor
    /// limit (after headroom).
    pub max_connections: usize,
    /// Connections open at once from one client address, all protocols together.
    pub max_connections_per_address: usize,
    /// Seconds allowed for a TLS handshake, an SSH key exchange or an HTTP request head.
    pub handshake_timeout_seconds: u64,
    /// Seconds a connection may stay open without signing in.
    pub login_timeout_seconds: u64,
    /// Seconds an HTTP request in progress (WebDAV, REST API, console) may wait for its
    /// client — the rest of its body, or room for its response — with no byte moving on the
    /// connection before the connection is closed (an upload is then discarded). 1..=86400.
    pub transfer_idle_timeout_seconds: u64,
    /// Files open at once for transfers, all sessions together; 0: half the descriptor
    /// limit (after headroom).
    pub max_open_files: usize,
    /// Files open at once for transfers by one user (all their keys and sessions together)
    /// or one site-wide key; 0: an eighth of `max_open_files`, but at least 64.
    pub max_open_files_per_user: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 0,
            max_connections_per_address: 128,
            handshake_timeout_seconds: 10,
            login_timeout_seconds: 30,
            transfer_idle_timeout_seconds: 300,
            max_open_files: 0,
            max_open_files_per_user: 0,
        }
    }
}

/// The SFTP front-end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftpConfig {
    /// Serve SFTP.
    pub enabled: bool,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Host key (OpenSSH private key file); empty: `<data_dir>/ssh_host_ed25519_key`,
    /// generated on first start and kept.
    pub host_key: PathBuf,
    /// Seconds without traffic before a connection is closed.
    pub idle_timeout_seconds: u64,
    /// Concurrent signed-in sessions of one user or API key. (Connections per address are
    /// capped for every protocol together by `limits.max_connections_per_address`.)
    pub max_sessions_per_login: usize,
    /// Channels (SFTP sessions) open at once on one connection; more are refused.
    pub max_channels_per_connection: usize,
    /// Open file and folder handles per connection, all its channels together.
    #[serde(alias = "max_handles_per_session")]
    pub max_handles_per_connection: usize,
    /// Open folder handles (listings held for READDIR) per connection.
    pub max_open_folders_per_connection: usize,
    /// Per connection, bytes of file data read for replies not yet sent (past this, reads
    /// wait: a client that does not read its replies stalls), and, separately, bytes of
    /// requests not yet processed (past this, no new request is read).
    pub max_in_flight_bytes_per_connection: usize,
    /// Largest SFTP packet a client may send, in bytes.
    pub max_packet_bytes: u32,
    /// Kept for old config files; ignored: revocation is the session registry's one watcher
    /// per replica (`crate::sessions`), which acts within about a second of a change.
    pub revocation_check_seconds: u64,
    /// What SETSTAT does with a mode (chmod) or owner (chown) change, which filegate does
    /// not keep, from a principal with write rights on the entry (others are refused):
    /// `ignore` answers OK and records it (clients such as WinSCP chmod after every
    /// upload), `refuse` answers `SSH_FX_OP_UNSUPPORTED`.
    pub setstat_mode: SetstatMode,
}

/// See [`SftpConfig::setstat_mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetstatMode {
    #[default]
    Ignore,
    Refuse,
}

impl Default for SftpConfig {
    fn default() -> Self {
        SftpConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 2222)),
            host_key: PathBuf::new(),
            idle_timeout_seconds: 600,
            max_sessions_per_login: 32,
            max_channels_per_connection: 8,
            max_handles_per_connection: 64,
            max_open_folders_per_connection: 8,
            max_in_flight_bytes_per_connection: 8 * 1024 * 1024,
            max_packet_bytes: 256 * 1024 + 1024,
            revocation_check_seconds: 2,
            setstat_mode: SetstatMode::Ignore,
        }
    }
}

/// The FTP/FTPS front-end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FtpConfig {
    /// Serve FTP.
    pub enabled: bool,
    /// Address to listen on (explicit FTPS: `AUTH TLS`); port 0 picks a free port.
    pub listen: SocketAddr,
    /// Address of a second listener speaking implicit FTPS (TLS from the first byte, as
    /// `ftps://` URLs expect); absent or empty: none.
    #[serde(deserialize_with = "empty_is_none")]
    pub implicit_listen: Option<SocketAddr>,
    /// Passive-mode data ports, "first-last".
    pub passive_ports: PortRange,
    /// IPv4 address announced for passive connections; empty: the control connection's.
    #[serde(deserialize_with = "empty_is_none")]
    pub passive_host: Option<Ipv4Addr>,
    /// PEM certificate chain for FTPS; empty (with `tls_key`): a self-signed certificate is
    /// made in the data folder on first start.
    pub tls_cert: PathBuf,
    /// PEM private key for FTPS.
    pub tls_key: PathBuf,
    /// "always": TLS (AUTH TLS) before USER/PASS and for data; "never"; "auto": required
    /// unless the listener is on a loopback address.
    pub require_tls: RequireTls,
    /// Seconds without a command before a session is closed.
    pub idle_timeout_seconds: u64,
    /// Kept for old config files; ignored: revocation is the session registry's one watcher
    /// per replica (`crate::sessions`), which acts within about a second of a change.
    pub revocation_check_seconds: u64,
    /// Passive data ports one client address may hold open (waiting for its connection) at
    /// once, all its sessions together; each session holds at most one.
    pub max_passive_per_address: usize,
}

impl Default for FtpConfig {
    fn default() -> Self {
        FtpConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 2121)),
            implicit_listen: None,
            passive_ports: PortRange {
                first: 50000,
                last: 50099,
            },
            passive_host: None,
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            require_tls: RequireTls::Auto,
            idle_timeout_seconds: 600,
            revocation_check_seconds: 2,
            max_passive_per_address: 10,
        }
    }
}

impl FtpConfig {
    /// The listen address.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    /// Whether logins need TLS first.
    pub fn tls_required(&self) -> bool {
        match self.require_tls {
            RequireTls::Always => true,
            RequireTls::Never => false,
            RequireTls::Auto => !self.listen.ip().is_loopback(),
        }
    }

    /// The passive port range.
    pub fn passive_range(&self) -> RangeInclusive<u16> {
        self.passive_ports.range()
    }
}

/// When FTP logins need TLS first (`ftp.require_tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequireTls {
    /// Required unless the listener is on a loopback address.
    #[default]
    Auto,
    /// TLS before `USER`/`PASS` and on every data connection.
    Always,
    /// Plain FTP allowed.
    Never,
}

/// An inclusive range of TCP ports, written "first-last" (`1 <= first <= last`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn range(&self) -> RangeInclusive<u16> {
        self.first..=self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a port range like 50000-50099");
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let first: u16 = a.trim().parse().map_err(|_| bad())?;
        let last: u16 = b.trim().parse().map_err(|_| bad())?;
        if first == 0 || first > last {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An optional value written as a string, where `""` means absent (so the shipped config
/// can show every key).
fn empty_is_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let text = String::deserialize(d)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim()
        .parse()
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
}

/// The WebDAV front-end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebDavConfig {
    /// Serve WebDAV.
    pub enabled: bool,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// PEM certificate chain and key: serve HTTPS. Empty: plain HTTP (with a warning when
    /// the listener is not on loopback).
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Largest request body (a PUT), in bytes; 0 means no limit.
    pub max_body_bytes: u64,
    /// Requests in progress at once from one address.
    pub max_requests_per_address: usize,
    /// Answer `PROPFIND` with `Depth: infinity` (a whole tree in one response). Off: such
    /// requests get 403 with `DAV:propfind-finite-depth`, as RFC 4918 allows.
    pub allow_depth_infinity: bool,
    /// The longest a WebDAV lock lives, in seconds; `Timeout: Infinite` and a LOCK without
    /// a `Timeout` get this.
    pub max_lock_seconds: u64,
    /// Locks one user (or site-wide key) may hold at once.
    pub max_locks_per_principal: usize,
    /// Locks held at once, everyone together.
    pub max_locks: usize,
    /// Seconds between checks, during a long download or upload, that its key or user is
    /// still valid (revoked, expired or disabled: the transfer is cut).
    pub revocation_check_seconds: u64,
}

impl Default for WebDavConfig {
    fn default() -> Self {
        WebDavConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            max_body_bytes: 0,
            max_requests_per_address: 64,
            allow_depth_infinity: false,
            max_lock_seconds: 3600,
            max_locks_per_principal: 100,
            max_locks: 1000,
            revocation_check_seconds: 2,
        }
    }
}

impl WebDavConfig {
    /// The listen address.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }
}

/// The REST API listener, which also serves the web console at `/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the REST API (and the console).
    pub enabled: bool,
    /// Address to listen on; port 0 picks a free port (the bound address is logged).
    pub listen: SocketAddr,
    /// PEM certificate chain and key: serve HTTPS (the console's cookie is then `Secure`).
    /// Empty: plain HTTP.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Serve the web console at `/` on this listener.
    pub console: bool,
    /// Largest console upload request (all files of one form), in bytes; 0: no limit.
    pub max_upload_bytes: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            console: true,
            max_upload_bytes: 0,
        }
    }
}

impl ApiConfig {
    /// The listen address.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }
}

impl Config {
    /// Reads `path` (if given; a missing default file is fine), applies the environment and
    /// validates the result.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => Self::from_file(path)?,
            None => {
                let default = Path::new("config/filegate.toml");
                if default.exists() {
                    Self::from_file(default)?
                } else {
                    Config::default()
                }
            }
        };
        config.apply_env(|name| std::env::var(name).ok())?;
        config.fill_defaults();
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text (no environment, no validation). A bad value's error names its key
    /// (`ftp.listen: invalid socket address syntax`), on one line.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| {
            let message = e.message().trim().replace('\n', " ");
            match e.span().and_then(|span| key_at(text, span.start)) {
                Some(key) => format!("{key}: {message}"),
                None => message,
            }
        })
    }

    /// Applies `FILEGATE_*` overrides read through `get`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("FILEGATE_DATA_DIR") {
            self.server.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("FILEGATE_DATABASE_URL") {
            self.server.database_url = v;
        }
        if let Some(v) = get("FILEGATE_LDAP_URL") {
            self.auth.ldap.url = v;
        }
        if let Some(v) = get("FILEGATE_LDAP_BIND_PASSWORD") {
            self.auth.ldap.bind_password = Redacted(v);
        }
        if let Some(v) = get("FILEGATE_TOTP_KEY") {
            self.auth.totp_key = v;
        }
        if let Some(v) = get("FILEGATE_REQUIRE_2FA") {
            self.auth.require_2fa = match v.trim() {
                "off" => Require2fa::Off,
                "admins" => Require2fa::Admins,
                "all" => Require2fa::All,
                other => {
                    return Err(ConfigError::Env {
                        name: "FILEGATE_REQUIRE_2FA",
                        message: format!("{other:?} is not one of off, admins, all"),
                    });
                }
            };
        }
        if let Some(v) = get("FILEGATE_STORAGE_URL") {
            let name = "FILEGATE_STORAGE_URL";
            self.storage.url = Some(
                v.parse()
                    .map_err(|message| ConfigError::Env { name, message })?,
            );
        }
        self.storage.s3.fill_from_env(&get);
        if let Some(v) = get("FILEGATE_NODE_NAME") {
            self.server.node_name = v;
        }
        // Per replica in a container stack: each replica needs its own published range.
        if let Some(v) = get("FILEGATE_FTP_PASSIVE_PORTS") {
            let name = "FILEGATE_FTP_PASSIVE_PORTS";
            self.ftp.passive_ports = v
                .parse()
                .map_err(|message| ConfigError::Env { name, message })?;
        }
        if let Some(v) = get("FILEGATE_FTP_PASSIVE_HOST") {
            self.ftp.passive_host = if v.trim().is_empty() {
                None
            } else {
                Some(v.trim().parse().map_err(|_| ConfigError::Env {
                    name: "FILEGATE_FTP_PASSIVE_HOST",
                    message: format!("{v:?} is not an IPv4 address"),
                })?)
            };
        }
        for (name, protocol) in [
            ("FILEGATE_SFTP_LISTEN", "sftp"),
            ("FILEGATE_FTP_LISTEN", "ftp"),
            ("FILEGATE_WEBDAV_LISTEN", "webdav"),
            ("FILEGATE_API_LISTEN", "api"),
        ] {
            if let Some(v) = get(name) {
                let Ok(addr) = v.parse::<SocketAddr>() else {
                    let message = format!("{v:?} is not an address like 127.0.0.1:2222");
                    return Err(ConfigError::Env { name, message });
                };
                *self.listen_mut(protocol) = addr;
            }
        }
        self.webhooks.apply_env(&get)?;
        Ok(())
    }

    /// Fills settings whose default depends on others.
    pub fn fill_defaults(&mut self) {
        if self.server.database_url.is_empty() {
            let db = self.server.data_dir.join("filegate.db");
            self.server.database_url = format!("sqlite://{}", db.display());
        }
        if self.server.storage_dir.as_os_str().is_empty() {
            self.server.storage_dir = self.server.data_dir.join("files");
        }
        if self.storage.url.is_none() {
            self.storage.url = Some(StorageUrl::File(self.server.storage_dir.clone()));
        }
        if self.server.node_name.is_empty() {
            self.server.node_name = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "filegate".into());
        }
        if self.auth.totp_key_file.as_os_str().is_empty() {
            self.auth.totp_key_file = self.server.data_dir.join("totp.key");
        }
        if self.sftp.host_key.as_os_str().is_empty() {
            self.sftp.host_key = self.server.data_dir.join("ssh_host_ed25519_key");
        }
    }

    fn listen_mut(&mut self, name: &str) -> &mut SocketAddr {
        match name {
            "sftp" => &mut self.sftp.listen,
            "ftp" => &mut self.ftp.listen,
            "webdav" => &mut self.webdav.listen,
            _ => &mut self.api.listen,
        }
    }

    /// `(name, enabled, listen)` of every listener.
    pub fn listeners(&self) -> [(&'static str, bool, SocketAddr); 4] {
        [
            ("sftp", self.sftp.enabled, self.sftp.listen),
            ("ftp", self.ftp.enabled, self.ftp.listen),
            ("webdav", self.webdav.enabled, self.webdav.listen),
            ("api", self.api.enabled, self.api.listen),
        ]
    }

    /// Checks every setting; the first problem found is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.server.data_dir.as_os_str().is_empty() {
            return invalid("server.data_dir must not be empty".into());
        }
        let url = &self.server.database_url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return invalid("server.database_url must start with sqlite: or postgres://".into());
        }
        if self.server.node_name.chars().count() > 64
            || self.server.node_name.chars().any(char::is_control)
        {
            return invalid("server.node_name must be at most 64 printable characters".into());
        }
        if self.server.session_heartbeat_seconds == 0 {
            return invalid("server.session_heartbeat_seconds must be at least 1".into());
        }
        let key = self.auth.totp_key.trim();
        if !key.is_empty() && (key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit())) {
            return invalid("auth.totp_key must be 64 hexadecimal characters (32 bytes)".into());
        }
        let lockout = &self.auth.lockout;
        if lockout.max_failures_per_login == 0 || lockout.max_failures_per_address == 0 {
            return invalid("auth.lockout.max_failures_* must be at least 1".into());
        }
        if lockout.window_seconds == 0 || lockout.ban_seconds == 0 {
            return invalid(
                "auth.lockout.window_seconds and ban_seconds must be at least 1".into(),
            );
        }
        self.auth.ldap.validate().map_err(ConfigError::Invalid)?;
        if !(1..=86_400).contains(&self.limits.transfer_idle_timeout_seconds) {
            return invalid(
                "limits.transfer_idle_timeout_seconds must be between 1 and 86400".into(),
            );
        }
        if self.audit.queue == 0 || self.audit.batch == 0 {
            return invalid("audit.queue and audit.batch must be at least 1".into());
        }
        if self.audit.store_timeout_ms == 0
            || self.audit.durable_wait_ms == 0
            || self.audit.shutdown_grace_ms == 0
        {
            return invalid(
                "audit.store_timeout_ms, audit.durable_wait_ms and audit.shutdown_grace_ms must be at least 1"
                    .into(),
            );
        }
        self.webhooks.validate()?;
        self.storage.s3.validate().map_err(ConfigError::Invalid)?;
        self.storage.validate().map_err(ConfigError::Invalid)?;
        let mut seen = Vec::new();
        for (name, enabled, addr) in self.listeners() {
            if enabled && addr.port() != 0 && seen.contains(&addr) {
                return invalid(format!("{name}.listen {addr} is used by another listener"));
            }
            seen.push(addr);
        }
        if let Some(addr) = self.ftp.implicit_listen
            && self.ftp.enabled
            && addr.port() != 0
            && seen.contains(&addr)
        {
            return invalid(format!(
                "ftp.implicit_listen {addr} is used by another listener"
            ));
        }
        let sftp = &self.sftp;
        if sftp.max_sessions_per_login == 0
            || sftp.max_channels_per_connection == 0
            || sftp.max_handles_per_connection == 0
            || sftp.max_open_folders_per_connection == 0
        {
            return invalid("sftp.max_* limits must be at least 1".into());
        }
        if !(34_000..=16 * 1024 * 1024).contains(&sftp.max_packet_bytes) {
            return invalid("sftp.max_packet_bytes must be between 34000 and 16777216".into());
        }
        if sftp.max_in_flight_bytes_per_connection < 2 * sftp.max_packet_bytes as usize {
            return invalid(
                "sftp.max_in_flight_bytes_per_connection must be at least twice max_packet_bytes"
                    .into(),
            );
        }
        if sftp.revocation_check_seconds == 0 || sftp.idle_timeout_seconds == 0 {
            return invalid(
                "sftp.revocation_check_seconds and idle_timeout_seconds must be at least 1".into(),
            );
        }
        let ftp = &self.ftp;
        if ftp.tls_cert.as_os_str().is_empty() != ftp.tls_key.as_os_str().is_empty() {
            return invalid("ftp.tls_cert and ftp.tls_key go together".into());
        }
        let api = &self.api;
        if api.tls_cert.as_os_str().is_empty() != api.tls_key.as_os_str().is_empty() {
            return invalid("api.tls_cert and api.tls_key go together".into());
        }
        for file in [&api.tls_cert, &api.tls_key] {
            if !file.as_os_str().is_empty() && !file.is_file() {
                return invalid(format!("api TLS file {} does not exist", file.display()));
            }
        }
        let dav = &self.webdav;
        if dav.tls_cert.as_os_str().is_empty() != dav.tls_key.as_os_str().is_empty() {
            return invalid("webdav.tls_cert and webdav.tls_key go together".into());
        }
        for file in [&dav.tls_cert, &dav.tls_key] {
            if !file.as_os_str().is_empty() && !file.is_file() {
                return invalid(format!("webdav TLS file {} does not exist", file.display()));
            }
        }
        if dav.max_requests_per_address == 0 {
            return invalid("webdav.max_requests_per_address must be at least 1".into());
        }
        if dav.max_lock_seconds == 0
            || dav.max_locks_per_principal == 0
            || dav.max_locks == 0
            || dav.revocation_check_seconds == 0
        {
            return invalid(
                "webdav.max_lock_seconds, max_locks_per_principal, max_locks and revocation_check_seconds must be at least 1"
                    .into(),
            );
        }
        if ftp.revocation_check_seconds == 0 || ftp.idle_timeout_seconds == 0 {
            return invalid(
                "ftp.revocation_check_seconds and idle_timeout_seconds must be at least 1".into(),
            );
        }
        Ok(())
    }

    /// The authenticator's settings.
    pub fn auth_settings(&self) -> AuthSettings {
        let l = &self.auth.lockout;
        AuthSettings {
            lockout: LockoutPolicy {
                enabled: l.enabled,
                max_failures_per_login: l.max_failures_per_login,
                max_failures_per_address: l.max_failures_per_address,
                window: Duration::from_secs(l.window_seconds),
                ban: Duration::from_secs(l.ban_seconds),
                delay_step: Duration::from_millis(l.delay_step_ms),
                max_delay: Duration::from_millis(l.max_delay_ms),
            },
            password_cache_ttl: Duration::from_secs(self.auth.password_cache_seconds),
            argon2_concurrency: self.auth.argon2_concurrency,
        }
    }
}

/// The dotted key (`ftp.listen`) whose value sits at byte `at` of TOML `text`: the last
/// `[table]` header above it plus the key on its line. `None` when the line has no key.
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line.split_once('=')?.0.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
    Some(match table {
        Some(table) if !table.is_empty() => format!("{table}.{key}"),
        _ => key.to_owned(),
    })
}

#[cfg(test)]
mod tests;
