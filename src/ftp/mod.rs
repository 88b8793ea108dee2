//! The FTP/FTPS front-end: libunftp speaking the protocol, with its authenticator and
//! storage seams adapted to the one authenticator and the file layer.
//!
//! - `login`: `USER`/`PASS` → `auth::Authenticator` (per-connection slot for the principal);
//!   the session starts in the principal's folder (`Files::start_dir`, libunftp patched to
//!   start in `UserDetail::home`), its scope roots made if missing.
//! - `backend`: libunftp's `StorageBackend` → `files::Files`, with large-chunk transfers.
//! - `status`: file errors → FTP replies. `tls`: the FTPS certificate and TLS configuration
//!   (TLS 1.2 and 1.3), built once at start.
//! - `passive`: the cap on passive listeners per client address.
//!
//! We accept connections ourselves, admit each through the process-wide connection gate
//! (`421` and closed when over a cap) and hand it to [`serve_connection`] (an accepted,
//! admitted TCP stream), which builds a libunftp `Server` for it, keeping a duplicate of the
//! control socket: a watcher shuts that socket when nobody signed in within the login
//! timeout, or when the principal's key is revoked or its user disabled, and the session
//! ends, data transfers included. Explicit FTPS (`AUTH TLS`) on `ftp.listen`; implicit FTPS
//! (TLS from the first byte, libunftp patched) on `ftp.implicit_listen` when set.

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

/// What every FTP connection of this server shares.
pub struct Shared {
    auth: Arc<Authenticator>,
    files: Arc<Files>,
    config: FtpConfig,
    tls: Arc<rustls::ServerConfig>,
    require_tls: bool,
    passive: std::ops::RangeInclusive<u16>,
    gate: Arc<ConnectionGate>,
    limits: Limits,
    passive_quota: Arc<PassiveQuota>,
}

/// How a connection speaks FTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtpMode {
    /// Plain FTP, upgraded with `AUTH TLS` (required when `ftp.require_tls` says so).
    Explicit,
    /// TLS from the first byte (`ftps://`); data connections protected from the start.
    Implicit,
}

/// A running FTP listener (and the implicit FTPS one, when configured).
pub struct FtpServer {
    pub addr: SocketAddr,
    /// The bound implicit FTPS address.
    pub implicit_addr: Option<SocketAddr>,
    /// For a caller that accepts connections itself ([`serve_connection`]).
    pub shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), FtpError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| FtpError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| FtpError::Bind { addr, source })?;
    Ok((listener, bound))
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
        let tls = tls::server_config(&cert, &key)?;
        let (listener, addr) = bind(addr).await?;
        let implicit = match config.implicit_listen {
            Some(at) => Some(bind(at).await?),
            None => None,
        };
        let require_tls = config.tls_required();
        let passive = config.passive_range();
        let limits = *gate.limits();
        let passive_quota = PassiveQuota::new(config.max_passive_per_address);
        let shared = Arc::new(Shared {
            auth,
            files,
            config,
            tls,
            require_tls,
            passive,
            gate,
            limits,
            passive_quota,
        });
        let (stop, stopped) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            stopped.clone(),
            FtpMode::Explicit,
        ))];
        tracing::info!(require_tls, "ftp listening on {addr}");
        let implicit_addr = implicit.map(|(listener, at)| {
            tasks.push(tokio::spawn(accept_loop(
                listener,
                shared.clone(),
                stopped,
                FtpMode::Implicit,
            )));
            tracing::info!("ftps (implicit TLS) listening on {at}");
            at
        });
        Ok(FtpServer {
            addr,
            implicit_addr,
            shared,
            stop,
            tasks,
        })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
    mode: FtpMode,
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
                // (An implicit FTPS client expects a TLS handshake, not a reply: just closed.)
                if mode == FtpMode::Explicit {
                    let reply = format!("421 {refusal}, try again later\r\n");
                    let _ = socket.try_write(reply.as_bytes());
                }
                tracing::debug!(client.ip = %peer.ip(), %refusal, "ftp connection refused");
                continue;
            }
        };
        let shared = shared.clone();
        sessions.spawn(async move {
            if let Err(e) = serve_connection(socket, peer, shared, permit, mode).await {
                tracing::debug!(error = %e, "ftp session ended with an error");
            }
        });
        while sessions.try_join_next().is_some() {}
    }
    sessions.shutdown().await;
}

/// Serves one accepted connection, already admitted by the connection gate (`_permit` is
/// held until the session ends), in `mode`.
pub async fn serve_connection(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _permit: ConnectionPermit,
    mode: FtpMode,
) -> std::io::Result<()> {
    let _ = socket.set_nodelay(true);
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
    // Implicit FTPS: TLS on both channels is the point, so `PROT C` is refused there too.
    let required = if shared.require_tls || mode == FtpMode::Implicit {
        FtpsRequired::All
    } else {
        FtpsRequired::None
    };
    let users: Arc<SlotUsers> = Arc::new(SlotUsers {
        slot: slot.clone(),
        files: shared.files.clone(),
    });
    let mut builder = libunftp::ServerBuilder::with_user_detail_provider(
        Box::new(move || FilesBackend(files.clone())),
        users,
    )
    .authenticator(login)
    .greeting("filegate FTP server ready")
    .ftps_manual::<PathBuf>(shared.tls.clone())
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
    let result = match mode {
        FtpMode::Explicit => server.service(socket).await,
        FtpMode::Implicit => server.service_implicit_tls(socket).await,
    };
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
