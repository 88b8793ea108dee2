//! The SFTP front-end: an SSH server (russh) offering the `sftp` subsystem, translating
//! SFTP v3 requests into calls on the file layer.
//!
//! - `conn`: one connection's life (admission, handshake/login deadlines, ending it) and
//!   the caps its channels share.
//! - `ssh`: authentication and channels (russh handler).
//! - `session`: the SFTP request loop, with concurrent dispatch.
//! - `handles`: per-handle workers for reads and writes.
//! - `attrs`, `status`: wire attributes and the error → status-code mapping.
//! - `wire`: payloads of extension requests and replies (`limits`, `statvfs`, …).
//!
//! No permission decision is made here: every file request goes to `files::Files` with the
//! session's principal.

mod attrs;
mod conn;
mod handles;
mod session;
mod ssh;
mod status;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, ssh_key::LineEnding};
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::config::SftpConfig;
use crate::files::Files;
use crate::identity::{Principal, Protocol};
use crate::limits::ConnectionGate;
use crate::metrics::{Metrics, SessionGauge};
use crate::serve::{Handler, Listen, Tasks, serve};
use crate::sessions::Registry;

/// Why the SFTP front-end could not start.
#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    #[error("cannot bind SFTP listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("SFTP host key {path}: {message}")]
    HostKey { path: String, message: String },
}

/// (user id, key id) of a signed-in principal, for per-login session counts.
type LoginKey = (Option<i64>, Option<i64>);

/// What every connection shares.
pub(crate) struct Context {
    metrics: Arc<Metrics>,
    auth: Arc<Authenticator>,
    files: Arc<Files>,
    config: SftpConfig,
    /// Admission of connections (all protocols) and the handshake/login timeouts.
    gate: Arc<ConnectionGate>,
    /// Where signed-in sessions are registered (listing, ending, revocation).
    registry: Arc<Registry>,
    per_login: Mutex<HashMap<LoginKey, usize>>,
}

/// A counted signed-in session of one login; released when dropped.
pub(crate) struct LoginSlot {
    ctx: Arc<Context>,
    key: LoginKey,
    _live: SessionGauge,
}

impl Drop for LoginSlot {
    fn drop(&mut self) {
        let mut counts = self
            .ctx
            .per_login
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

impl Context {
    fn claim_login_slot(self: &Arc<Self>, principal: &Principal) -> Option<LoginSlot> {
        let key = (
            principal.user.as_ref().map(|u| u.id),
            principal.key.as_ref().map(|k| k.id),
        );
        let mut counts = self
            .per_login
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(key).or_insert(0);
        if *n >= self.config.max_sessions_per_login {
            return None;
        }
        *n += 1;
        Some(LoginSlot {
            ctx: self.clone(),
            key,
            _live: self.metrics.session(Protocol::Sftp),
        })
    }
}

/// A running SFTP listener (its connections are tracked by the [`Tasks`] it was given).
pub struct SftpServer {
    pub addr: SocketAddr,
}

impl SftpServer {
    /// Loads (or creates) the host key, binds, and starts accepting connections on the one
    /// serve loop, each admitted through `gate` and tracked by `tasks`.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        config: SftpConfig,
        auth: Arc<Authenticator>,
        files: Arc<Files>,
        metrics: Arc<Metrics>,
        gate: Arc<ConnectionGate>,
        registry: Arc<Registry>,
        tasks: Tasks,
    ) -> Result<SftpServer, SftpError> {
        let key = load_or_create_host_key(&config.host_key)?;
        let addr: SocketAddr = config.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SftpError::Bind { addr, source })?;
        let ssh = Arc::new(ssh_config(&config, key));
        let ctx = Arc::new(Context {
            auth,
            metrics,
            files,
            config,
            gate: gate.clone(),
            registry,
            per_login: Mutex::default(),
        });
        let handler: Handler =
            Arc::new(move |accepted| Box::pin(conn::serve(ctx.clone(), ssh.clone(), accepted)));
        let listen = Listen {
            protocol: "sftp",
            listener,
            gate,
            tasks,
            on_refused: None,
        };
        let listening =
            serve(listen, handler).map_err(|source| SftpError::Bind { addr, source })?;
        let addr = listening.addr;
        tracing::info!("sftp listening on {addr}");
        Ok(SftpServer { addr })
    }
}

fn ssh_config(config: &SftpConfig, key: PrivateKey) -> russh::server::Config {
    use russh::cipher;
    use russh::kex;
    // Modern algorithms only: AEAD ciphers (aes-gcm first: fastest with AES-NI) and
    // (ML-KEM+)X25519 key exchange; the extension names keep ext-info and strict-kex working.
    const KEX: &[kex::Name] = &[
        kex::MLKEM768X25519_SHA256,
        kex::CURVE25519,
        kex::CURVE25519_PRE_RFC_8731,
        kex::EXTENSION_SUPPORT_AS_CLIENT,
        kex::EXTENSION_SUPPORT_AS_SERVER,
        kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
        kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
    ];
    let preferred = russh::Preferred {
        kex: std::borrow::Cow::Borrowed(KEX),
        cipher: std::borrow::Cow::Borrowed(&[
            cipher::AES_128_GCM,
            cipher::AES_256_GCM,
            cipher::CHACHA20_POLY1305,
        ]),
        ..Default::default()
    };
    russh::server::Config {
        server_id: russh::SshId::Standard("SSH-2.0-filegate".into()),
        keys: vec![key],
        preferred,
        inactivity_timeout: Some(Duration::from_secs(config.idle_timeout_seconds)),
        auth_rejection_time: Duration::from_millis(500),
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 6,
        window_size: 16 * 1024 * 1024,
        maximum_packet_size: 65535,
        // Messages (up to 256 KiB each) russh queues per channel before it stops reading the
        // socket: with the in-flight bound this is what one connection can make us hold.
        channel_buffer_size: 32,
        nodelay: true,
        ..Default::default()
    }
}

/// Reads the host key, or makes a new ed25519 key there (mode 0600) on first start.
fn load_or_create_host_key(path: &Path) -> Result<PrivateKey, SftpError> {
    let fail = |message: String| SftpError::HostKey {
        path: path.display().to_string(),
        message,
    };
    if path.exists() {
        return PrivateKey::read_openssh_file(path).map_err(|e| fail(e.to_string()));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| fail(e.to_string()))?;
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    key.write_openssh_file(path, LineEnding::LF)
        .map_err(|e| fail(e.to_string()))?;
    tracing::info!(path = %path.display(), fingerprint = %key.fingerprint(Default::default()), "created SFTP host key");
    Ok(key)
}
