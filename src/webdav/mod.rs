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

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use dav_server::DavHandler;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::{AuthError, Authenticator, Proof};
use crate::files::Files;
use crate::identity::{ClientInfo, Protocol};
use crate::store::Store;
use fs::{Caller, FilesDav};

/// Why the WebDAV front-end could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind the WebDAV listener on {addr}: {source}")]
pub struct WebDavBindError {
    addr: SocketAddr,
    source: std::io::Error,
}

struct DavState {
    auth: Arc<Authenticator>,
    dav: DavHandler<Caller>,
}

/// The WebDAV router (also used in process by tests).
pub fn router(auth: Arc<Authenticator>, files: Arc<Files>, store: Store) -> Router {
    let dav = DavHandler::builder()
        .filesystem(Box::new(FilesDav { files, store }))
        .locksystem(dav_server::memls::MemLs::new())
        .read_buf_size(256 * 1024)
        .build_handler();
    let state = Arc::new(DavState { auth, dav });
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

async fn serve_dav(State(state): State<Arc<DavState>>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
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
        listen: SocketAddr,
        auth: Arc<Authenticator>,
        files: Arc<Files>,
        store: Store,
    ) -> Result<WebDavServer, WebDavBindError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| WebDavBindError {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| WebDavBindError {
            addr: listen,
            source,
        })?;
        if !addr.ip().is_loopback() {
            tracing::warn!(
                "webdav serves plain HTTP on a non-loopback address: Basic credentials travel in the clear"
            );
        }
        let app = router(auth, files, store).into_make_service_with_connect_info::<SocketAddr>();
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.changed().await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "WebDAV server failed");
            }
        });
        tracing::info!("webdav listening on {addr}");
        Ok(WebDavServer { addr, stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests;
