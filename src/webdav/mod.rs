//! The WebDAV front-end: dav-server (classes 1 and 2) served through the shared HTTP loop
//! (`http_serve`), with HTTP Basic authentication through the one authenticator on every
//! request.
//!
//! - `fs`: dav-server's `GuardedFileSystem` over `files::Files` (dead properties included:
//!   they are the file layer's).
//! - `locks`: the lock system over the [`LockStore`] seam (in the store, shared by
//!   replicas; owners, capped timeouts and counts).
//! - `status`: file errors → dav-server result codes.
//!
//! WebDAV clients send credentials with every request; the authenticator's password cache
//! keeps that cheap, and a revoked key or disabled user is refused on the very next request.
//! LOCK of a new name needs WRITE at the path; LOCK of an existing file or folder changes
//! what others may do with it, so it needs WRITE|DELETE, and so do UNLOCK and lock refreshes
//! (the file layer's answer; hidden paths are 404), which are moreover for the lock's owner
//! or a site admin. Locks bind WebDAV clients only (RFC 4918); SFTP, FTP and the API do
//! not see them. A COPY or MOVE whose `Destination` names another host is answered
//! 502 Bad Gateway (RFC 4918 §9.8.5, §9.9.4), not carried out here.

mod fs;
mod locks;
mod status;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use dav_server::DavConfig;
use dav_server::davpath::DavPath;
use tokio::net::TcpListener;

use crate::audit::Action;
use crate::auth::{AuthError, Authenticator, Proof};
use crate::config::WebDavConfig;
use crate::files::{Files, FsError};
use crate::http_serve::{HttpServer, SendfileQueue, ServeOptions};
use crate::identity::{Access, ClientInfo, Principal, Protocol};
use crate::limits::ConnectionGate;
use crate::metrics::Metrics;
use crate::path::SitePath;
use crate::serve::Tasks;
use fs::{Caller, FilesDav};
pub use locks::{Decide, LockCounts, LockRecord, LockStore, LockStoreError};
use locks::{LockLimits, LockRefusal, LockTable, Owner};

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
    files: Arc<Files>,
    /// dav-server's configuration; each request adds its caller's view of `locks`.
    dav: DavConfig<Caller>,
    locks: Arc<LockTable>,
    limits: WebDavConfig,
    in_flight: Mutex<HashMap<IpAddr, usize>>,
}

impl DavState {
    /// Only counting happens under this lock; a poisoned one is taken back.
    fn in_flight(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts a request in progress from one address; released when dropped.
struct InFlight<'a> {
    state: &'a DavState,
    ip: IpAddr,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut counts = self.state.in_flight();
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
    lock_store: Arc<dyn LockStore>,
    limits: WebDavConfig,
) -> Router {
    let dav = DavConfig::new()
        .filesystem(Box::new(FilesDav::new(files.clone())))
        .read_buf_size(1024 * 1024); // GET chunks: fewer hops to the blocking pool
    let locks = LockTable::new(
        LockLimits {
            max_lock: Duration::from_secs(limits.max_lock_seconds.max(1)),
            per_owner: limits.max_locks_per_principal.max(1),
            total: limits.max_locks.max(1),
        },
        lock_store,
        Some(auth.clone()),
    );
    let state = Arc::new(DavState {
        auth,
        files,
        dav,
        locks,
        limits,
        in_flight: Mutex::default(),
    });
    Router::new().fallback(serve_dav).with_state(state)
}

/// The body of every refused sign-in.
pub const REFUSED_MESSAGE: &str = "authentication failed (users with two-factor sign-in mount \
     WebDAV with an API key: login @api-<key name>, password the key's secret)";

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

/// Largest XML request body (PROPFIND, PROPPATCH, LOCK...) read before dav-server parses it.
const MAX_XML_BODY: usize = 4 << 20;
/// Deepest element nesting accepted in an XML request body. dav-server parses with a
/// recursive parser (`xmltree`): a body nested a few thousand levels deep overflowed the
/// worker's stack and aborted the whole process (red team, 2026-12-01). Real clients nest
/// fewer than ten levels; dead property values stay far below this.
const MAX_XML_DEPTH: usize = 128;

/// Reads the body of a request that carries XML (every method but PUT, GET and HEAD) into
/// memory, bounded, and refuses it when its elements nest deeper than [`MAX_XML_DEPTH`].
async fn bounded_xml_body(req: Request) -> Result<Request, Box<Response>> {
    if matches!(*req.method(), Method::PUT | Method::GET | Method::HEAD) {
        return Ok(req);
    }
    let (head, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_XML_BODY).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return Err(Box::new(
                (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
            ));
        }
    };
    if xml_nesting_exceeds(&bytes, MAX_XML_DEPTH) {
        return Err(Box::new(
            (StatusCode::BAD_REQUEST, "XML nested too deeply").into_response(),
        ));
    }
    Ok(Request::from_parts(head, axum::body::Body::from(bytes)))
}

/// Whether elements in `xml` nest deeper than `limit`. A conservative scan, not a parser:
/// comments, CDATA, processing instructions and declarations are skipped, quoted attribute
/// values may hold `>`, and `<x/>` opens nothing. Malformed input is left to the parser.
fn xml_nesting_exceeds(xml: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    let skip_to = |from: usize, end: &[u8]| -> usize {
        xml[from..]
            .windows(end.len())
            .position(|w| w == end)
            .map_or(xml.len(), |p| from + p + end.len())
    };
    while i < xml.len() {
        if xml[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &xml[i..];
        if rest.starts_with(b"<!--") {
            i = skip_to(i + 4, b"-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = skip_to(i + 9, b"]]>");
        } else if rest.starts_with(b"<?") {
            i = skip_to(i + 2, b"?>");
        } else if rest.starts_with(b"<!") {
            i = skip_to(i + 2, b">");
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            i = skip_to(i + 2, b">");
        } else {
            // A start tag: find its end outside quoted attribute values.
            let mut j = i + 1;
            let mut quote = None;
            while j < xml.len() {
                match (quote, xml[j]) {
                    (None, b'"' | b'\'') => quote = Some(xml[j]),
                    (Some(q), c) if c == q => quote = None,
                    (None, b'>') => break,
                    _ => {}
                }
                j += 1;
            }
            let empty = j > i + 1 && xml.get(j - 1) == Some(&b'/');
            if !empty {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            i = j + 1;
        }
    }
    false
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
            let mut counts = state.in_flight();
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
        // One message for every cause (the audit record has the real one); it says how users
        // with two-factor sign-in mount, since their password alone never works here.
        Err(AuthError::Refused) => return unauthorized(REFUSED_MESSAGE),
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
    if let Some(refusal) = foreign_destination(&req) {
        return refusal;
    }
    let req = match bounded_xml_body(req).await {
        Ok(req) => req,
        Err(refusal) => return *refusal,
    };
    state.files.ensure_roots(&principal).await;
    let owner = locks::owner_of(&principal);
    // Only the head is borrowed across the file layer's await (a body is not `Sync`).
    let (head, body) = req.into_parts();
    let may_override = match lock_rules(&state, &head, &principal, &owner).await {
        Ok(may_override) => may_override,
        Err(refusal) => return *refusal,
    };
    if let Err(refusal) = fixed_paths(&state, &head, &principal) {
        return *refusal;
    }
    let mut head = head;
    single_range_only(&mut head.headers);
    // A GET on a plain connection: local files go out with sendfile (never HEAD, which
    // sends no body, nor TLS, whose connections have no queue).
    let sendfile = (head.method == Method::GET)
        .then(|| head.extensions.get::<SendfileQueue>().cloned())
        .flatten();
    let req = Request::from_parts(head, body);
    let max = state.limits.max_body_bytes;
    let req = if max > 0 && req.method() == Method::PUT {
        req.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, max as usize)))
    } else {
        req
    };
    let principal = Arc::new(principal);
    let every = Duration::from_secs(state.limits.revocation_check_seconds.max(1));
    let watch = |body| {
        axum::body::Body::new(Revalidated::new(
            body,
            state.auth.clone(),
            principal.clone(),
            every,
        ))
    };
    let req = req.map(watch);
    let mut dav = state.dav.clone();
    if let Some(queue) = sendfile {
        dav = dav.filesystem(Box::new(FilesDav::sending_with(state.files.clone(), queue)));
    }
    let dav = dav
        .locksystem(Box::new(state.locks.for_caller(
            owner.clone(),
            principal.clone(),
            may_override,
        )))
        .build_handler();
    // dav-server records and matches lock owners by this name.
    let response = dav
        .handle_guarded(req, owner.as_str().to_owned(), principal.clone())
        .await;
    response.map(axum::body::Body::new).map(watch)
}

/// Drops a `Range:` header that asks for more than one range, so the whole file is sent
/// once (RFC 9110 lets a server ignore Range; S3 does the same). Served as asked, many
/// overlapping ranges (`bytes=0-,0-,0-…`) would send the file as many times over.
fn single_range_only(headers: &mut axum::http::HeaderMap) {
    let multiple = headers
        .get_all(axum::http::header::RANGE)
        .iter()
        .enumerate()
        .any(|(n, v)| n > 0 || v.as_bytes().contains(&b','));
    if multiple {
        headers.remove(axum::http::header::RANGE);
    }
}

/// A request or response body that fails once its principal is no longer valid (key
/// revoked or expired, user disabled): a long GET or PUT is cut within `every` of the
/// change instead of running to its end. The check runs only while the body is being
/// transferred, at most once per `every`; with the store unreachable, transfers go on.
struct Revalidated {
    inner: axum::body::Body,
    auth: Arc<Authenticator>,
    principal: Arc<Principal>,
    every: Duration,
    next: Instant,
    check: Option<Pin<Box<dyn Future<Output = bool> + Send>>>,
}

impl Revalidated {
    fn new(
        inner: axum::body::Body,
        auth: Arc<Authenticator>,
        principal: Arc<Principal>,
        every: Duration,
    ) -> Revalidated {
        Revalidated {
            inner,
            auth,
            principal,
            every,
            next: Instant::now() + every,
            check: None,
        }
    }
}

impl hyper::body::Body for Revalidated {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if let Some(check) = &mut this.check {
                let valid = std::task::ready!(check.as_mut().poll(cx));
                this.check = None;
                if !valid {
                    tracing::info!(user = %this.principal.display_name(), "webdav transfer cut: access revoked");
                    return Poll::Ready(Some(Err(axum::Error::new("access revoked"))));
                }
                this.next = Instant::now() + this.every;
            } else if Instant::now() >= this.next {
                let (auth, principal) = (this.auth.clone(), this.principal.clone());
                this.check = Some(Box::pin(async move {
                    !matches!(auth.still_valid(&principal).await, Ok(false))
                }));
                continue;
            }
            return Pin::new(&mut this.inner).poll_frame(cx);
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The request's path as the file layer names it (`None`: not a path dav-server accepts
/// either; it answers that request itself).
fn request_path(uri: &axum::http::Uri) -> Option<SitePath> {
    let path = DavPath::new(uri.path()).ok()?;
    fs::site(&path).ok()
}

/// DELETE of a folder removes what it holds one by one, and COPY/MOVE onto an existing
/// destination delete that first: a mount point (or a folder above one) named by the request
/// is refused before dav-server starts, so nothing below it is removed on the way to the
/// refusal (the file layer decides: [`crate::files::Files::check_not_fixed`]).
fn fixed_paths(
    state: &DavState,
    req: &axum::http::request::Parts,
    who: &Principal,
) -> Result<(), Box<Response>> {
    let method = req.method.as_str();
    let refuse = |action: Action, path: &SitePath| {
        state
            .files
            .check_not_fixed(who, action, path)
            .map_err(|err| Box::new(status::http_status(&err).into_response()))
    };
    let Some(path) = request_path(&req.uri) else {
        return Ok(());
    };
    match method {
        "DELETE" => refuse(Action::Rmdir, &path)?,
        "MOVE" => refuse(Action::Rename, &path)?,
        _ => {}
    }
    if method == "COPY" || method == "MOVE" {
        let overwrite = req
            .headers
            .get("Overwrite")
            .is_none_or(|v| !v.as_bytes().eq_ignore_ascii_case(b"F"));
        let destination = req
            .headers
            .get("Destination")
            .and_then(|v| v.to_str().ok())
            .and_then(|d| d.parse::<axum::http::Uri>().ok())
            .and_then(|uri| request_path(&uri));
        if let (true, Some(destination)) = (overwrite, destination) {
            refuse(Action::Rename, &destination)?;
        }
    }
    Ok(())
}

/// `host[:port]` in lower case, without the scheme's default port.
fn authority_key(authority: &str, https: bool) -> String {
    let authority = authority.trim().to_ascii_lowercase();
    let default = if https { ":443" } else { ":80" };
    match authority.strip_suffix(default) {
        Some(host) => host.to_owned(),
        None => authority,
    }
}

/// A COPY or MOVE whose `Destination` is an absolute URL naming another host than the
/// request's `Host`: 502 Bad Gateway (RFC 4918 §9.8.5/§9.9.4: "the destination is on another
/// server"). A relative `Destination` (a path) is on this server.
fn foreign_destination(req: &Request) -> Option<Response> {
    let method = req.method().as_str();
    if method != "COPY" && method != "MOVE" {
        return None;
    }
    let destination = req.headers().get("Destination")?.to_str().ok()?.trim();
    let lower = destination.to_ascii_lowercase();
    let (rest, https) = if let Some(rest) = lower.strip_prefix("http://") {
        (rest, false)
    } else if let Some(rest) = lower.strip_prefix("https://") {
        (rest, true)
    } else {
        return None; // a path; dav-server refuses other schemes
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))?;
    if authority_key(authority, https) == authority_key(&host, https) {
        return None;
    }
    Some(
        (
            StatusCode::BAD_GATEWAY,
            "the Destination is on another server",
        )
            .into_response(),
    )
}

/// The rights LOCK, lock refreshes and UNLOCK need at `path`: WRITE for a name that does
/// not exist yet (a lock-null lock), WRITE|DELETE for an existing file or folder, whose lock
/// changes what others may do with it. Hidden paths are "not found".
async fn may_lock(state: &DavState, who: &Principal, path: &SitePath) -> Result<(), Box<Response>> {
    let need = match state.files.stat(who, path).await {
        Err(FsError::NotFound | FsError::NotADirectory) => Access::WRITE,
        _ => Access::WRITE | Access::DELETE,
    };
    state
        .files
        .authorize(who, path, need)
        .map_err(|err| Box::new(status::http_status(&err).into_response()))
}

/// The lock rules dav-server does not know: LOCK, refreshes and UNLOCK need the rights of
/// [`may_lock`]; LOCK needs room under the lock caps; UNLOCK of another owner's lock is
/// refused (403) unless the caller is a site admin with write rights there. Answers whether
/// the caller may manage other owners' locks in this request.
async fn lock_rules(
    state: &DavState,
    req: &axum::http::request::Parts,
    who: &Principal,
    owner: &Owner,
) -> Result<bool, Box<Response>> {
    let method = req.method.as_str();
    if method != "LOCK" && method != "UNLOCK" {
        return Ok(false);
    }
    let Some(path) = request_path(&req.uri) else {
        return Ok(false);
    };
    let admin_here = || {
        who.site_admin
            && who.user.is_some()
            && state.files.authorize(who, &path, Access::WRITE).is_ok()
    };
    may_lock(state, who, &path).await?;
    if method == "LOCK" {
        let refresh = req
            .headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0");
        if !refresh && let Err(refusal) = state.locks.room_for(owner).await {
            let (status, message) = match refusal {
                LockRefusal::OwnerFull => (
                    StatusCode::INSUFFICIENT_STORAGE,
                    "you hold as many locks as allowed",
                ),
                LockRefusal::TableFull => (
                    StatusCode::INSUFFICIENT_STORAGE,
                    "the server holds as many locks as it keeps",
                ),
                LockRefusal::Unavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "locks are temporarily unavailable",
                ),
            };
            return Err(Box::new((status, message).into_response()));
        }
        return Ok(admin_here());
    }
    let token = req
        .headers
        .get("Lock-Token")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_matches(|c| c == '<' || c == '>'));
    let Some(token) = token else { return Ok(false) };
    match state.locks.owner_of_token(&path, token).await {
        Some(holder) if holder != *owner => {
            if admin_here() {
                Ok(true)
            } else {
                Err(Box::new(
                    (StatusCode::FORBIDDEN, "the lock belongs to someone else").into_response(),
                ))
            }
        }
        _ => Ok(false),
    }
}

/// A running WebDAV listener (its connections are tracked by the [`Tasks`] it was given).
pub struct WebDavServer {
    pub addr: SocketAddr,
}

impl WebDavServer {
    pub async fn start(
        config: WebDavConfig,
        auth: Arc<Authenticator>,
        files: Arc<Files>,
        lock_store: Arc<dyn LockStore>,
        gate: Arc<ConnectionGate>,
        tasks: Tasks,
        metrics: Arc<Metrics>,
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
        let https = tls.is_some();
        let app = router(auth, files, lock_store, config);
        let mut options = ServeOptions::new("webdav", gate);
        options.tls = tls;
        options.tasks = tasks;
        options.metrics = Some(metrics);
        let server =
            HttpServer::spawn(listener, app, options).map_err(|source| WebDavError::Bind {
                addr: listen,
                source,
            })?;
        let addr = server.addr;
        if !https && !addr.ip().is_loopback() {
            tracing::warn!(
                "webdav serves plain HTTP on a non-loopback address: Basic credentials travel in the clear; set webdav.tls_cert/tls_key"
            );
        }
        tracing::info!(https, "webdav listening on {addr}");
        Ok(WebDavServer { addr })
    }
}

fn tls_acceptor(config: &WebDavConfig) -> Result<tokio_rustls::TlsAcceptor, WebDavError> {
    crate::http_serve::tls_acceptor(&config.tls_cert, &config.tls_key).map_err(WebDavError::Tls)
}

#[cfg(test)]
mod tests {
    use super::xml_nesting_exceeds;

    #[test]
    fn nesting_is_measured_past_comments_cdata_quotes_and_empty_tags() {
        let ok = br#"<?xml version="1.0"?><!-- <a><a><a> --><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><x a="<b>"/><![CDATA[<c><c><c>]]></D:prop></D:propfind>"#;
        assert!(!xml_nesting_exceeds(ok, 2));
        assert!(xml_nesting_exceeds(ok, 1));
        let deep = format!("<a>{}{}</a>", "<b>".repeat(2500), "</b>".repeat(2500));
        assert!(xml_nesting_exceeds(deep.as_bytes(), 128));
        let wide = "<a><b/></a>".repeat(10_000);
        assert!(!xml_nesting_exceeds(wide.as_bytes(), 2));
    }
}
