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
//! Connections come from the one serve loop (`crate::serve`: admission through the
//! process-wide gate, `421` and closed when over a cap); each is handed to a libunftp `Server`
//! built for it, keeping a duplicate of the control socket, which is shut (and the session
//! ends, data transfers included) when nobody signed in within the login timeout, when the
//! server shuts down, or when the session registry ends the session (revocation, an
//! administrator's DELETE). Explicit FTPS (`AUTH TLS`) on `ftp.listen`; implicit FTPS
//! (TLS from the first byte, libunftp patched) on `ftp.implicit_listen` when set.

mod backend;
mod login;
mod passive;
mod status;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use libunftp::options::{FtpsRequired, PassiveHost, SessionLimits};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::FtpConfig;
use crate::files::Files;
use crate::limits::{ConnectionGate, Limits, Refusal};
use crate::serve::{Accepted, Handler, Listen, Tasks, serve};
use crate::sessions::{Bytes, Registration, Registry};
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
    tls: Arc<rustls::ServerConfig>,
    require_tls: bool,
    passive: std::ops::RangeInclusive<u16>,
    limits: Limits,
    passive_quota: Arc<PassiveQuota>,
    registry: Arc<Registry>,
}

/// The registration of the session signed in on a connection (replaced by a new login).
type RegistrationSlot = Arc<Mutex<Option<Registration>>>;

/// How a connection speaks FTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtpMode {
    /// Plain FTP, upgraded with `AUTH TLS` (required when `ftp.require_tls` says so).
    Explicit,
    /// TLS from the first byte (`ftps://`); data connections protected from the start.
    Implicit,
}

/// A running FTP listener and the implicit FTPS one, when configured (their connections are
/// tracked by the [`Tasks`] they were given).
pub struct FtpServer {
    pub addr: SocketAddr,
    /// The bound implicit FTPS address.
    pub implicit_addr: Option<SocketAddr>,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, FtpError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| FtpError::Bind { addr, source })
}

impl FtpServer {
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        config: FtpConfig,
        data_dir: &Path,
        auth: Arc<Authenticator>,
        files: Arc<Files>,
        gate: Arc<ConnectionGate>,
        registry: Arc<Registry>,
        tasks: Tasks,
    ) -> Result<FtpServer, FtpError> {
        let addr = config.addr();
        let host = addr.ip().to_string();
        let (cert, key) =
            tls::ensure_certificate(&config.tls_cert, &config.tls_key, data_dir, &host)?;
        let tls = tls::server_config(&cert, &key)?;
        let listener = bind(addr).await?;
        let implicit = match config.implicit_listen {
            Some(at) => Some((bind(at).await?, at)),
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
            limits,
            passive_quota,
            registry,
        });
        let handler = |shared: Arc<Shared>, mode: FtpMode| -> Handler {
            Arc::new(move |accepted| Box::pin(serve_connection(shared.clone(), accepted, mode)))
        };
        let listen = Listen {
            protocol: "ftp",
            listener,
            gate: gate.clone(),
            tasks: tasks.clone(),
            on_refused: Some(refused),
        };
        let listening = serve(listen, handler(shared.clone(), FtpMode::Explicit))
            .map_err(|source| FtpError::Bind { addr, source })?;
        let addr = listening.addr;
        tracing::info!(require_tls, "ftp listening on {addr}");
        let implicit_addr = match implicit {
            Some((listener, at)) => {
                // An implicit FTPS client expects a TLS handshake, not a reply: a refused
                // connection is just closed.
                let listen = Listen {
                    protocol: "ftps-implicit",
                    listener,
                    gate,
                    tasks,
                    on_refused: None,
                };
                let listening = serve(listen, handler(shared, FtpMode::Implicit))
                    .map_err(|source| FtpError::Bind { addr: at, source })?;
                tracing::info!("ftps (implicit TLS) listening on {}", listening.addr);
                Some(listening.addr)
            }
            None => None,
        };
        Ok(FtpServer {
            addr,
            implicit_addr,
        })
    }
}

/// Tells a client turned away by the gate why, before its socket is closed.
fn refused(socket: &tokio::net::TcpStream, refusal: Refusal) {
    // A fresh socket's send buffer is empty: the reply goes out without waiting.
    let reply = format!("421 {refusal}, try again later\r\n");
    let _ = socket.try_write(reply.as_bytes());
}

/// Serves one admitted FTP control connection (any listener: plain/explicit FTPS, or an
/// implicit-FTPS listener once its TLS is set up by libunftp) until it ends.
async fn serve_connection(shared: Arc<Shared>, accepted: Accepted, mode: FtpMode) {
    if let Err(e) = run_session(accepted, shared, mode).await {
        tracing::debug!(error = %e, "ftp session ended with an error");
    }
}

async fn run_session(
    accepted: Accepted,
    shared: Arc<Shared>,
    mode: FtpMode,
) -> std::io::Result<()> {
    let Accepted {
        socket,
        peer,
        permit: _permit,
        tasks,
    } = accepted;
    let _ = socket.set_nodelay(true);
    let std_socket = socket.into_std()?;
    let control = Arc::new(std_socket.try_clone()?);
    let socket = tokio::net::TcpStream::from_std(std_socket)?;
    let slot: Slot = Arc::default();
    let bytes: Arc<Bytes> = Arc::default();
    let files = shared.files.clone();
    let registration: RegistrationSlot = Arc::default();
    let login = Arc::new(FtpLogin {
        auth: shared.auth.clone(),
        slot: slot.clone(),
        require_tls: shared.require_tls,
        register: {
            let (registry, bytes, control, registration) = (
                shared.registry.clone(),
                bytes.clone(),
                control.clone(),
                registration.clone(),
            );
            Box::new(move |principal| {
                let control = control.clone();
                let registered = registry.register(
                    principal,
                    Some(peer.ip()),
                    bytes.clone(),
                    Box::new(move |_reason| {
                        // libunftp then ends the session, data transfers included.
                        let _ = control.shutdown(std::net::Shutdown::Both);
                    }),
                );
                *registration.lock().unwrap_or_else(PoisonError::into_inner) = Some(registered);
            })
        },
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
        Box::new(move || FilesBackend(files.clone(), bytes.clone())),
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
    let ended = CancellationToken::new();
    let watching = ended.clone();
    tasks.spawn(watch_session(
        shared.limits.login_timeout,
        slot,
        control.clone(),
        tasks.draining(),
        watching,
    ));
    tracing::debug!("ftp connection");
    let result = match mode {
        FtpMode::Explicit => server.service(socket).await,
        FtpMode::Implicit => server.service_implicit_tls(socket).await,
    };
    ended.cancel();
    drop(registration);
    result.map_err(|e| std::io::Error::other(e.to_string()))
}

/// Closes the control connection when nobody signed in within the login timeout, or when the
/// server shuts down; libunftp then ends the session and its transfers. Revocation is the
/// session registry's (`crate::sessions`).
async fn watch_session(
    login_timeout: Duration,
    slot: Slot,
    control: Arc<std::net::TcpStream>,
    draining: CancellationToken,
    ended: CancellationToken,
) {
    tokio::select! {
        () = ended.cancelled() => return,
        () = tokio::time::sleep(login_timeout) => {}
        () = draining.cancelled() => {
            tracing::debug!("closing FTP connection: server shutting down");
            let _ = control.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
    if signed_in(&slot).is_none() {
        tracing::debug!("closing FTP connection: no login within the login timeout");
        let _ = control.shutdown(std::net::Shutdown::Both);
        return;
    }
    tokio::select! {
        () = ended.cancelled() => {}
        () = draining.cancelled() => {
            tracing::debug!("closing FTP connection: server shutting down");
            let _ = control.shutdown(std::net::Shutdown::Both);
        }
    }
}
