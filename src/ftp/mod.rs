//! The FTP/FTPS front-end: libunftp speaking the protocol, with its authenticator and
//! storage seams adapted to the one authenticator and the file layer.
//!
//! - `login`: `USER`/`PASS` → `auth::Authenticator` (per-connection slot for the principal).
//! - `backend`: libunftp's `StorageBackend` → `files::Files`, with large-chunk transfers.
//! - `status`: file errors → FTP replies. `tls`: the FTPS certificate.
//! - `passive`: the cap on passive listeners per client address.
//!
//! We accept connections ourselves, admit each through the process-wide connection gate
//! (`421` and closed when over a cap) and hand it to a libunftp `Server` built for it, keeping
//! a duplicate of the control socket: a watcher shuts that socket when nobody signed in within
//! the login timeout, or when the principal's key is revoked or its user disabled, and the
//! session ends, data transfers included. Explicit FTPS only (`AUTH TLS`); libunftp has no
//! implicit FTPS.

mod backend;
mod login;
mod passive;
mod status;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use libunftp::options::{FtpsRequired, PassiveHost, SessionLimits};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Authenticator;
use crate::config::FtpConfig;
use crate::files::Files;
use crate::limits::{ConnectionGate, ConnectionPermit, Limits};
use backend::FilesBackend;
use login::{FtpLogin, Slot, SlotUsers, signed_in};
use passive::PassiveQuota;

/// Why the FTP front-end could not start.
#[derive(Debug, thiserror::Error)]
pub enum FtpError {
    #[error("cannot bind FTP listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("FTPS certificate: {0}")]
    Tls(String),
}

struct Shared {
    auth: Arc<Authenticator>,
    files: Arc<Files>,
    config: FtpConfig,
    cert: PathBuf,
    key: PathBuf,
    require_tls: bool,
    passive: std::ops::RangeInclusive<u16>,
    gate: Arc<ConnectionGate>,
    limits: Limits,
    passive_quota: Arc<PassiveQuota>,
}

/// A running FTP listener.
pub struct FtpServer {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl FtpServer {
    pub async fn start(
        config: FtpConfig,
        data_dir: &Path,
        auth: Arc<Authenticator>,
        files: Arc<Files>,
        gate: Arc<ConnectionGate>,
    ) -> Result<FtpServer, FtpError> {
        let addr = config.addr();
        let host = addr.ip().to_string();
        let (cert, key) =
            tls::ensure_certificate(&config.tls_cert, &config.tls_key, data_dir, &host)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| FtpError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| FtpError::Bind { addr, source })?;
        let require_tls = config.tls_required();
        let passive = config.passive_range();
        let limits = *gate.limits();
        let passive_quota = PassiveQuota::new(config.max_passive_per_address);
        let shared = Arc::new(Shared {
            auth,
            files,
            config,
            cert,
            key,
            require_tls,
            passive,
            gate,
            limits,
            passive_quota,
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared, stopped));
        tracing::info!(require_tls, "ftp listening on {addr}");
        Ok(FtpServer { addr, stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        let (socket, peer) = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "ftp accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match shared.gate.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                // A fresh socket's send buffer is empty: the reply goes out without waiting.
                let reply = format!("421 {refusal}, try again later\r\n");
                let _ = socket.try_write(reply.as_bytes());
                tracing::debug!(client.ip = %peer.ip(), %refusal, "ftp connection refused");
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let shared = shared.clone();
        sessions.spawn(async move {
            if let Err(e) = serve(socket, peer, shared, permit).await {
                tracing::debug!(error = %e, "ftp session ended with an error");
            }
        });
        while sessions.try_join_next().is_some() {}
    }
    sessions.shutdown().await;
}

async fn serve(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _permit: ConnectionPermit,
) -> std::io::Result<()> {
    let std_socket = socket.into_std()?;
    let control = std_socket.try_clone()?;
    let socket = tokio::net::TcpStream::from_std(std_socket)?;
    let slot: Slot = Arc::default();
    let files = shared.files.clone();
    let login = Arc::new(FtpLogin {
        auth: shared.auth.clone(),
        slot: slot.clone(),
        require_tls: shared.require_tls,
    });
    let required = if shared.require_tls {
        FtpsRequired::All
    } else {
        FtpsRequired::None
    };
    let users: Arc<SlotUsers> = Arc::new(SlotUsers(slot.clone()));
    let mut builder = libunftp::ServerBuilder::with_user_detail_provider(
        Box::new(move || FilesBackend(files.clone())),
        users,
    )
    .authenticator(login)
    .greeting("filegate FTP server ready")
    .ftps(shared.cert.clone(), shared.key.clone())
    .ftps_required(required, required)
    .passive_ports(shared.passive.clone())
    .idle_session_timeout(shared.config.idle_timeout_seconds)
    .session_limits(SessionLimits {
        tls_handshake_timeout: shared.limits.handshake_timeout,
        data_idle_timeout: Duration::from_secs(shared.config.idle_timeout_seconds.max(1)),
        passive_quota: Some(shared.passive_quota.clone()),
        ..SessionLimits::default()
    });
    if let Some(ip) = shared.config.passive_host {
        builder = builder.passive_host(PassiveHost::Ip(ip));
    }
    let server = builder
        .build()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let (done, watching) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(watch_session(shared.clone(), slot, control, watching));
    tracing::debug!(client.ip = %peer.ip(), "ftp connection");
    let result = server.service(socket).await;
    drop(done);
    result.map_err(|e| std::io::Error::other(e.to_string()))
}

/// Closes the control connection when nobody signed in within the login timeout, or once the
/// signed-in principal may no longer act. libunftp then ends the session and its transfers.
async fn watch_session(
    shared: Arc<Shared>,
    slot: Slot,
    control: std::net::TcpStream,
    mut done: tokio::sync::oneshot::Receiver<()>,
) {
    let every = Duration::from_secs(shared.config.revocation_check_seconds.max(1));
    let login_deadline = tokio::time::Instant::now() + shared.limits.login_timeout;
    loop {
        let principal = signed_in(&slot);
        let next = match principal {
            None => (tokio::time::Instant::now() + every).min(login_deadline),
            Some(_) => tokio::time::Instant::now() + every,
        };
        tokio::select! {
            _ = &mut done => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        match signed_in(&slot) {
            None if tokio::time::Instant::now() >= login_deadline => {
                tracing::debug!("closing FTP connection: no login within the login timeout");
                let _ = control.shutdown(std::net::Shutdown::Both);
                return;
            }
            None => {}
            Some(principal) => {
                if let Ok(false) = shared.auth.still_valid(&principal).await {
                    tracing::info!(user = %principal.display_name(), key_id = principal.key.as_ref().map(|k| k.id), "ending FTP session: access revoked");
                    let _ = control.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        }
    }
}
