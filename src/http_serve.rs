//! HTTP over the one serve loop ([`crate::serve`]), shared by the WebDAV front-end and the REST
//! API (plain HTTP or TLS), so that every HTTP listener holds the same line against slow and
//! greedy clients:
//!
//! - accepting, admission by the process-wide [`ConnectionGate`], the per-connection span and
//!   task tracking are the serve loop's; this module is the per-connection handler;
//! - a TLS handshake must end within the handshake timeout, and so must the first request
//!   head after the connection opens; between requests, the next head gets the same time (hyper's `header_read_timeout`);
//! - a connection with no request in progress for the idle timeout is shut down gracefully;
//! - a connection on which a request in progress waits for the peer (its body is awaited, or
//!   its response is being sent) while no byte is read from or written to the socket for the
//!   transfer idle timeout (`limits.transfer_idle_timeout_seconds`) is closed at once: the
//!   request's body stream ends in an error (an upload is discarded, as when the client goes
//!   away) and the connection's slot is freed. A slow client that keeps moving bytes is not
//!   cut, nor is a request whose handler is at work (nothing waits for the peer then);
//! - HTTP/1.1 only. HTTP/2 was reachable only as cleartext h2c with prior knowledge (TLS
//!   offers no ALPN), which no WebDAV client sends; on it the rule above would be per
//!   connection, and a stalled stream could hide behind keep-alive pings or other streams;
//! - a request whose handler panics is answered 500 and its connection closed, alone
//!   (nothing shared is left half-changed by the serve loop; the handlers' shared state
//!   tolerates poisoning);
//! - `TCP_NODELAY`; the peer address is in each request's extensions as
//!   `ConnectInfo<SocketAddr>`;
//! - on plain connections, each request's extensions also hold the connection's
//!   [`SendfileQueue`]: a handler may answer with stand-ins for ranges of a local file, which
//!   the connection sends with `sendfile(2)` (`sendfile`); TLS connections have none;
//! - at shutdown ([`Tasks::draining`]) connections stop taking requests and let those in
//!   progress finish within the grace time; the serve loop's [`Tasks`] drop what is left.
//!
//! This module decides nothing about identities: it admits connections and times them out.

mod activity;
mod sendfile;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::activity::{Activity, Metered, TrackedBody, WatchedBody};
use self::sendfile::PlainTcp;
pub use self::sendfile::{MAX_RANGE, SendfileQueue, SharedDownload};
use crate::limits::ConnectionGate;
use crate::metrics::Metrics;
use crate::serve::{Accepted, Handler, Listen, Tasks};

/// How a listener serves.
#[derive(Clone)]
pub struct ServeOptions {
    /// For logs: `"webdav"`, `"api"`.
    pub name: &'static str,
    /// Admits connections.
    pub gate: Arc<ConnectionGate>,
    /// Serve HTTPS with this acceptor; `None`: plain HTTP.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Time for a TLS handshake and for a request head.
    pub handshake_timeout: Duration,
    /// Time a connection may stay open with no request in progress.
    pub idle_timeout: Duration,
    /// Time a request in progress may wait for the peer with no byte moving on the socket.
    pub transfer_idle_timeout: Duration,
    /// Time requests in progress get to finish when the server stops.
    pub grace: Duration,
    /// Tracks the listener's connections (the gateway passes the one every front-end shares).
    pub tasks: Tasks,
    /// Counts the bytes plain connections send with `sendfile(2)`
    /// (`filegate_http_sendfile_bytes_total`); `None`: not counted.
    pub metrics: Option<Arc<Metrics>>,
}

impl ServeOptions {
    /// Options with the handshake and transfer idle timeouts from the gate's limits and the
    /// default idle and grace times.
    pub fn new(name: &'static str, gate: Arc<ConnectionGate>) -> ServeOptions {
        let limits = gate.limits();
        let (handshake_timeout, transfer_idle_timeout) =
            (limits.handshake_timeout, limits.transfer_idle_timeout);
        ServeOptions {
            name,
            gate,
            tls: None,
            handshake_timeout,
            idle_timeout: IDLE_TIMEOUT,
            transfer_idle_timeout,
            grace: GRACE,
            tasks: Tasks::new(),
            metrics: None,
        }
    }
}

/// Default idle time of a connection between requests (HTTP/1 also closes a connection
/// whose next request head does not arrive within the handshake timeout).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time requests in progress get when the server stops.
pub const GRACE: Duration = Duration::from_secs(10);

/// A running HTTP listener.
pub struct HttpServer {
    pub addr: SocketAddr,
    tasks: Tasks,
    grace: Duration,
}

impl HttpServer {
    /// Serves `app` on `listener` through the one serve loop ([`crate::serve`]), its
    /// connections tracked by `options.tasks`, until those tasks shut down.
    pub fn spawn(
        listener: TcpListener,
        app: Router,
        options: ServeOptions,
    ) -> std::io::Result<HttpServer> {
        let tasks = options.tasks.clone();
        let grace = options.grace;
        let listen = Listen {
            protocol: options.name,
            listener,
            gate: options.gate.clone(),
            tasks: tasks.clone(),
            on_refused: None,
        };
        let options = Arc::new(options);
        let handler: Handler = Arc::new(move |accepted: Accepted| {
            Box::pin(serve_connection(accepted, app.clone(), options.clone()))
        });
        let listening = crate::serve::serve(listen, handler)?;
        Ok(HttpServer {
            addr: listening.addr,
            tasks,
            grace,
        })
    }

    /// Stops accepting, waits up to the grace time for requests in progress, then closes
    /// every connection: shuts down the listener's [`Tasks`] (all of the gateway's when it
    /// passed its own; the gateway shuts them down itself instead).
    pub async fn stop(self) {
        self.tasks.shutdown(self.grace).await;
    }
}

async fn serve_connection(accepted: Accepted, app: Router, options: Arc<ServeOptions>) {
    let Accepted {
        socket: tcp,
        peer,
        permit,
        tasks,
    } = accepted;
    let _permit = permit;
    let stopped = tasks.draining();
    let activity = Activity::new();
    match &options.tls {
        None => {
            let queue = SendfileQueue::new(options.metrics.clone());
            let tcp = Metered::new(PlainTcp::new(tcp, queue.clone()), activity.clone());
            serve_io(tcp, peer, app, &options, activity, stopped, Some(queue)).await
        }
        Some(acceptor) => {
            let tcp = Metered::new(tcp, activity.clone());
            match tokio::time::timeout(options.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    serve_io(stream, peer, app, &options, activity, stopped, None).await
                }
                Ok(Err(e)) => {
                    tracing::debug!(listener = options.name, %peer, error = %e, "TLS handshake failed")
                }
                Err(_) => {
                    tracing::debug!(listener = options.name, %peer, "TLS handshake timed out")
                }
            }
        }
    }
}

/// The answer to a request whose handler panicked.
fn panicked() -> Response<Body> {
    let mut response = Response::new(Body::from("internal server error"));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

async fn serve_io<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    options: &ServeOptions,
    activity: Arc<Activity>,
    stopped: CancellationToken,
    sendfile: Option<SendfileQueue>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let name = options.name;
    // Body chunks must reach the IO as the `Bytes` they are (hyper's queue strategy), so
    // that stand-ins are recognised; `pipeline_flush`, which would flatten them, stays off.
    let writev = sendfile.is_some();
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            if let Some(queue) = &sendfile {
                req.extensions_mut().insert(queue.clone());
            }
            let in_flight = activity.begin();
            let activity = activity.clone();
            let req = req.map(|body| Body::new(WatchedBody::new(body, activity.clone())));
            let call = tower::ServiceExt::oneshot(app.clone(), req);
            async move {
                let response = match AssertUnwindSafe(call).catch_unwind().await {
                    Ok(Ok(response)) => response,
                    Ok(Err(never)) => match never {},
                    Err(_) => {
                        tracing::error!(listener = name, %peer, "request handler panicked; answering 500 and closing the connection");
                        activity.close.notify_one();
                        panicked()
                    }
                };
                Ok::<_, Infallible>(response.map(|inner| TrackedBody::new(inner, in_flight)))
            }
        })
    };
    // HTTP/1.1 only (see the module doc: HTTP/2 would let a stalled stream hide behind
    // the connection's pings and other streams).
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.handshake_timeout)
        .keep_alive(true);
    if writev {
        builder.http1().writev(true);
    }
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);

    // `Some(t)`: shutting down gracefully since `t`.
    let mut closing: Option<Instant> = None;
    loop {
        let deadline = match closing {
            Some(since) => since + options.grace,
            None => next_check(&activity, options),
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(listener = name, %peer, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = stopped.cancelled(), if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            _ = activity.changed.notified() => {}
            _ = activity.close.notified(), if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                let now = Instant::now();
                if closing.is_some() {
                    tracing::debug!(listener = name, %peer, "closing a connection that did not finish in time");
                    return;
                }
                match overdue(&activity, options, now) {
                    None => {}
                    Some(Overdue::Head) => {
                        tracing::debug!(listener = name, %peer, "no request head in time; closing");
                        return;
                    }
                    Some(Overdue::Idle) => {
                        connection.as_mut().graceful_shutdown();
                        closing = Some(now);
                    }
                    Some(Overdue::Stalled) => {
                        tracing::info!(
                            listener = name,
                            %peer,
                            timeout_seconds = options.transfer_idle_timeout.as_secs(),
                            "closing a connection whose request waited for the client with no data moving for the transfer idle timeout"
                        );
                        return;
                    }
                }
            }
        }
    }
}

/// Which of a connection's timeouts ran out.
enum Overdue {
    /// No first request head within the handshake timeout.
    Head,
    /// No request in progress for the idle timeout.
    Idle,
    /// A request waited for the peer with no byte moving for the transfer idle timeout.
    Stalled,
}

/// When the watchdog looks next at a connection that is not closing: the earliest instant
/// one of its timeouts could run out (with a request in progress and nothing yet waiting
/// for the peer, one transfer idle timeout from now, to see whether something then does).
fn next_check(activity: &Activity, options: &ServeOptions) -> Instant {
    if !activity.any_request() {
        return activity.opened() + options.handshake_timeout;
    }
    match (activity.idle_since(), activity.stalled_since()) {
        (Some(since), _) => since + options.idle_timeout,
        (None, Some(since)) => since + options.transfer_idle_timeout,
        (None, None) => Instant::now() + options.transfer_idle_timeout,
    }
}

/// Which timeout, if any, has run out at `now`.
fn overdue(activity: &Activity, options: &ServeOptions, now: Instant) -> Option<Overdue> {
    if !activity.any_request() {
        return (now >= activity.opened() + options.handshake_timeout).then_some(Overdue::Head);
    }
    if let Some(since) = activity.idle_since() {
        return (now >= since + options.idle_timeout).then_some(Overdue::Idle);
    }
    let stalled = activity.stalled_since()?;
    (now >= stalled + options.transfer_idle_timeout).then_some(Overdue::Stalled)
}

/// A TLS acceptor for a PEM certificate chain and key (WebDAV and the API listener); the
/// error is a message for the operator.
pub fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| fail(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| fail(&e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(&e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| fail(&e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}
