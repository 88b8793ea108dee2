//! The WebDAV front-end: dav-server (classes 1 and 2, locks in memory) served through axum,
//! with HTTP Basic authentication through the one authenticator on every request.
//!
//! - `fs`: dav-server's `GuardedFileSystem` over `files::Files`; dead properties in the store.
//! - `status`: file errors → dav-server result codes.
//!
//! WebDAV clients send credentials with every request; the authenticator's password cache
//! keeps that cheap, and a revoked key or disabled user is refused on the very next request.

mod fs;
mod status;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use dav_server::DavHandler;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::{AuthError, Authenticator, Proof};
use crate::config::WebDavConfig;
use crate::files::Files;
use crate::identity::{ClientInfo, Protocol};
use crate::store::Store;
use fs::{Caller, FilesDav};

/// Why the WebDAV front-end could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebDavError {
    #[error("cannot bind the WebDAV listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("WebDAV TLS: {0}")]
    Tls(String),
}

struct DavState {
    auth: Arc<Authenticator>,
    dav: DavHandler<Caller>,
    limits: WebDavConfig,
    in_flight: Mutex<HashMap<IpAddr, usize>>,
}

/// Counts a request in progress from one address; released when dropped.
struct InFlight<'a> {
    state: &'a DavState,
    ip: IpAddr,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut counts = self.state.in_flight.lock().expect("in-flight lock");
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// The WebDAV router (also used in process by tests).
pub fn router(
    auth: Arc<Authenticator>,
    files: Arc<Files>,
    store: Store,
    limits: WebDavConfig,
) -> Router {
    let dav = DavHandler::builder()
        .filesystem(Box::new(FilesDav::new(files, store)))
        .locksystem(dav_server::memls::MemLs::new())
        .read_buf_size(1024 * 1024) // GET chunks: fewer hops to the blocking pool
        .build_handler();
    let state = Arc::new(DavState {
        auth,
        dav,
        limits,
        in_flight: Mutex::default(),
    });
    Router::new().fallback(serve_dav).with_state(state)
}

fn unauthorized(message: &'static str) -> Response {
    let mut response = (StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"filegate\", charset=\"UTF-8\""),
    );
    response
}

/// `(login, password)` from an `Authorization: Basic …` header.
fn basic_credentials(req: &Request) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 4096 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (login, password) = text.split_once(':')?;
    Some((login.to_owned(), password.to_owned()))
}

/// Refusals made before a request reaches dav-server: limits and infinite-depth PROPFIND.
fn precheck(state: &DavState, req: &Request) -> Option<Response> {
    if !state.limits.allow_depth_infinity
        && req.method().as_str() == "PROPFIND"
        && req
            .headers()
            .get("Depth")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|d| d.trim().eq_ignore_ascii_case("infinity"))
    {
        let body = r#"<?xml version="1.0" encoding="utf-8"?><D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>"#;
        return Some(
            (
                StatusCode::FORBIDDEN,
                [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
                body,
            )
                .into_response(),
        );
    }
    let max = state.limits.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if max > 0 && declared.is_some_and(|n| n > max) {
        return Some((StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response());
    }
    None
}

async fn serve_dav(State(state): State<Arc<DavState>>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(refusal) = precheck(&state, &req) {
        return refusal;
    }
    let _slot = match peer {
        Some(ip) => {
            let mut counts = state.in_flight.lock().expect("in-flight lock");
            let n = counts.entry(ip).or_insert(0);
            if *n >= state.limits.max_requests_per_address {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many requests in progress from this address",
                )
                    .into_response();
            }
            *n += 1;
            Some(InFlight { state: &state, ip })
        }
        None => None,
    };
    let Some((login, password)) = basic_credentials(&req) else {
        return unauthorized("authentication required");
    };
    let principal = match state
        .auth
        .login(
            &login,
            Proof::Password(&password),
            Protocol::WebDav,
            ClientInfo::new(peer),
        )
        .await
    {
        Ok(principal) => principal,
        Err(AuthError::Refused) => return unauthorized("authentication failed"),
        Err(AuthError::LockedOut) => {
            return (StatusCode::TOO_MANY_REQUESTS, "too many failed attempts").into_response();
        }
        Err(AuthError::Unavailable) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "authentication is temporarily unavailable",
            )
                .into_response();
        }
    };
    let name = principal.display_name();
    let max = state.limits.max_body_bytes;
    let req = if max > 0 && req.method() == Method::PUT {
        req.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, max as usize)))
    } else {
        req
    };
    let response = state
        .dav
        .handle_guarded(req, name, Arc::new(principal))
        .await;
    response.map(axum::body::Body::new)
}

/// A running WebDAV listener.
pub struct WebDavServer {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WebDavServer {
    pub async fn start(
        config: WebDavConfig,
        auth: Arc<Authenticator>,
        files: Arc<Files>,
        store: Store,
    ) -> Result<WebDavServer, WebDavError> {
        let listen = config.addr();
        let tls = if config.tls_cert.as_os_str().is_empty() {
            None
        } else {
            Some(tls_acceptor(&config)?)
        };
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| WebDavError::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| WebDavError::Bind {
            addr: listen,
            source,
        })?;
        if tls.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                "webdav serves plain HTTP on a non-loopback address: Basic credentials travel in the clear; set webdav.tls_cert/tls_key"
            );
        }
        let https = tls.is_some();
        let app = router(auth, files, store, config);
        let (stop, stopped) = watch::channel(false);
        let task = match tls {
            None => tokio::spawn(serve_plain(listener, app, stopped)),
            Some(acceptor) => tokio::spawn(serve_tls(listener, app, acceptor, stopped)),
        };
        tracing::info!(https, "webdav listening on {addr}");
        Ok(WebDavServer { addr, stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn serve_plain(listener: TcpListener, app: Router, mut stopped: watch::Receiver<bool>) {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let shutdown = async move {
        let _ = stopped.changed().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "WebDAV server failed");
    }
}

async fn serve_tls(
    listener: TcpListener,
    app: Router,
    acceptor: tokio_rustls::TlsAcceptor,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let (socket, peer) = tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => continue,
            },
        };
        let _ = socket.set_nodelay(true);
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(socket).await else {
                return;
            };
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let app = app.clone();
                    async move { tower::ServiceExt::oneshot(app, req.map(axum::body::Body::new)).await }
                },
            );
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
        });
    }
}

fn tls_acceptor(config: &WebDavConfig) -> Result<tokio_rustls::TlsAcceptor, WebDavError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |e: &dyn std::fmt::Display| WebDavError::Tls(e.to_string());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.tls_cert)
        .map_err(|e| fail(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| fail(&e))?;
    let key = PrivateKeyDer::from_pem_file(&config.tls_key).map_err(|e| fail(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| fail(&e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}
