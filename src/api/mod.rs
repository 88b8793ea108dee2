//! The REST API, wire-compatible with Files.com's (see `shared/API.md`): axum handlers over
//! the account service and the store, with Files.com's parameters, pagination, error bodies
//! and rights rules. Also `/healthz` (open) and `/metrics` (site admins only).
//!
//! - `caller`: authentication (`X-FilesAPI-Key` / `X-FilesAPI-Auth`) and rights checks.
//! - `params`, `pagination`, `error`: the wire conventions.
//! - `keys`, `users`, `grants`, `sessions`, `active` (live SFTP/FTP sessions), `history`: one
//!   module per resource.
//!
//! Every call is an audit record (`interface: restapi`), written by [`audit_calls`].

mod active;
mod behaviors;
mod caller;
mod error;
mod grants;
mod history;
mod keys;
mod pagination;
mod params;
mod sessions;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use error::ApiError;
pub use pagination::{Cursors, Position};
/// Exported for the fuzz targets (`fuzz/`), which feed it arbitrary query strings and bodies.
pub use params::{MAX_BODY, Params};

use crate::accounts::Accounts;
use crate::audit::{Action, AuditEvent, AuditLog, AuditSink, Outcome};
use crate::auth::Authenticator;
use crate::http_serve::{HttpServer, ServeOptions};
use crate::limits::ConnectionGate;
use crate::metrics::Metrics;
use crate::serve::Tasks;
use crate::store::Store;

/// What every handler shares.
pub struct ApiState {
    pub auth: Arc<Authenticator>,
    pub accounts: Accounts,
    pub store: Store,
    pub audit: Arc<dyn AuditSink>,
    pub audit_log: Arc<AuditLog>,
    pub metrics: Arc<Metrics>,
    /// Live SFTP/FTP sessions across replicas (`/sessions/active`); `None`: not served.
    pub sessions: Option<Arc<crate::sessions::Registry>>,
    /// Sends `/behaviors/webhook/test`, and its allow-list checks webhook URLs;
    /// `None`: webhook delivery is off on this replica.
    pub webhooks: Option<Arc<crate::webhooks::send::Sender>>,
    cursors: pagination::Cursors,
}

impl ApiState {
    pub fn new(
        auth: Arc<Authenticator>,
        accounts: Accounts,
        store: Store,
        audit: Arc<dyn AuditSink>,
        audit_log: Arc<AuditLog>,
        metrics: Arc<Metrics>,
        cursor_key: &str,
    ) -> ApiState {
        ApiState {
            auth,
            accounts,
            store,
            audit,
            audit_log,
            metrics,
            sessions: None,
            webhooks: None,
            cursors: pagination::Cursors::new(cursor_key.as_bytes()),
        }
    }

    /// Webhook tests (and URL checks) through `sender`.
    pub fn with_webhooks(mut self, sender: Arc<crate::webhooks::send::Sender>) -> ApiState {
        self.webhooks = Some(sender);
        self
    }

    /// Serves `/sessions/active` from `registry`.
    pub fn with_sessions(mut self, registry: Arc<crate::sessions::Registry>) -> ApiState {
        self.sessions = Some(registry);
        self
    }
}

/// The whole HTTP surface of the API (unknown paths: JSON 404).
pub fn router(state: Arc<ApiState>) -> Router {
    routes(state).fallback(|| async { ApiError::NotFound })
}

/// The API with the web console answering every path the API does not have (its own
/// unknown `/api/rest/v1/…` paths still get the API's JSON 404).
pub fn router_with_console(state: Arc<ApiState>, web: Arc<crate::web::WebState>) -> Router {
    routes(state).fallback_service(crate::web::router(web))
}

fn routes(state: Arc<ApiState>) -> Router {
    let v1 = Router::new()
        .route("/api_keys", get(keys::list).post(keys::create))
        .route(
            "/api_keys/{id}",
            get(keys::find).patch(keys::update).delete(keys::delete),
        )
        .route(
            "/api_key",
            get(keys::find_current)
                .patch(keys::update_current)
                .delete(keys::delete_current),
        )
        .route("/users", get(users::list).post(users::create))
        .route(
            "/users/{id}",
            get(users::find).patch(users::update).delete(users::delete),
        )
        .route("/permissions", get(grants::list).post(grants::create))
        .route("/permissions/{id}", axum::routing::delete(grants::delete))
        .route(
            "/public_keys",
            get(grants::list_public_keys).post(grants::create_public_key),
        )
        .route(
            "/public_keys/{id}",
            axum::routing::delete(grants::delete_public_key),
        )
        .route("/sessions", post(sessions::create).delete(sessions::delete))
        .route("/sessions/active", get(active::list))
        .route("/sessions/active/{id}", axum::routing::delete(active::end))
        .route("/behaviors", get(behaviors::list).post(behaviors::create))
        .route(
            "/behaviors/{id}",
            get(behaviors::find)
                .patch(behaviors::update)
                .delete(behaviors::delete),
        )
        .route("/behaviors/folders/{*path}", get(behaviors::list_for))
        .route("/behaviors/folders/", get(behaviors::list_for_root))
        .route("/behaviors/webhook/test", post(behaviors::test))
        .route("/webhook_deliveries", get(behaviors::deliveries))
        .route("/history", get(history::all))
        .route("/history/login", get(history::logins))
        .route("/history/users/{id}", get(history::user))
        .route("/history/files/{*path}", get(history::file))
        .route("/history/folders/{*path}", get(history::folder))
        .fallback(|| async { ApiError::NotFound })
        .layer(middleware::from_fn_with_state(state.clone(), audit_calls))
        .layer(middleware::from_fn(security_headers));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        // These routes only: the console (the fallback of `router_with_console`) sets its own.
        .route_layer(middleware::from_fn(security_headers))
        .nest("/api/rest/v1", v1)
        .with_state(state)
}

/// The headers every API response carries: never cached (key secrets are shown once), never
/// sniffed into HTML, never framed or allowed to load anything.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name, value: &'static str| {
        h.insert(name, axum::http::HeaderValue::from_static(value));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::CACHE_CONTROL, "no-store");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    );
    set(h, header::REFERRER_POLICY, "no-referrer");
    response
}

/// Writes one audit record per API call, with the caller the extractor found.
async fn audit_calls(State(state): State<Arc<ApiState>>, mut req: Request, next: Next) -> Response {
    let slot = caller::CallSlot::default();
    req.extensions_mut().insert(slot.clone());
    let what = format!("{} {}", req.method(), req.uri().path());
    let response = next.run(req).await;
    let principal = slot
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(principal) = principal {
        let status = response.status();
        let outcome = if status.is_success() {
            Outcome::Ok
        } else if status == StatusCode::UNAUTHORIZED
            || status == StatusCode::FORBIDDEN
            || status == StatusCode::NOT_FOUND
        {
            Outcome::Denied
        } else {
            Outcome::Failed
        };
        let mut event = AuditEvent::by(&principal, Action::ApiCall, outcome).path(what);
        if !status.is_success() {
            event = event.reason(status.as_u16().to_string());
        }
        state.audit.record(event);
    }
    response
}

async fn healthz(State(state): State<Arc<ApiState>>) -> Response {
    match state.store.ping().await {
        Ok(()) => axum::Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "store unreachable"})),
            )
                .into_response()
        }
    }
}

/// `/metrics`: for site admins only (an admin's `full` key or session, or a site-wide key),
/// since the counters describe everyone's activity.
async fn metrics(
    State(state): State<Arc<ApiState>>,
    call: caller::Authed,
) -> Result<Response, ApiError> {
    call.require_admin()?;
    let body = state
        .metrics
        .render(&state.audit_log.stats(), state.auth.unrecorded_refusals());
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

/// A path id: a positive integer.
pub(crate) fn parse_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::ParamsInvalid("id must be a positive integer".into()))
}

/// Unix seconds as Files.com's timestamps, or null.
pub(crate) fn time_json(t: Option<i64>) -> serde_json::Value {
    t.map(|t| serde_json::Value::String(crate::model::format_time(t)))
        .unwrap_or(serde_json::Value::Null)
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiBindError {
    #[error("cannot bind the API listener on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("api TLS: {0}")]
    Tls(String),
}

/// A running API listener (its connections are tracked by the [`Tasks`] it was given).
pub struct ApiServer {
    pub addr: SocketAddr,
}

impl ApiServer {
    /// Serves the API (and the console, when `web` is given) on `config.listen` through the
    /// shared HTTP loop (connection caps from `gate`, TLS when `config` names a certificate,
    /// header and idle timeouts, graceful stop).
    pub async fn start(
        config: &crate::config::ApiConfig,
        state: Arc<ApiState>,
        web: Option<Arc<crate::web::WebState>>,
        gate: Arc<ConnectionGate>,
        tasks: Tasks,
    ) -> Result<ApiServer, ApiBindError> {
        let listen = config.addr();
        let bind_error = |source| ApiBindError::Bind {
            addr: listen,
            source,
        };
        let tls = if config.tls_cert.as_os_str().is_empty() {
            None
        } else {
            Some(
                crate::http_serve::tls_acceptor(&config.tls_cert, &config.tls_key)
                    .map_err(ApiBindError::Tls)?,
            )
        };
        let https = tls.is_some();
        let app = match web {
            Some(web) => router_with_console(state, web),
            None => router(state),
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
        let mut options = ServeOptions::new("api", gate);
        options.tls = tls;
        options.tasks = tasks;
        let server = HttpServer::spawn(listener, app, options).map_err(bind_error)?;
        let addr = server.addr;
        tracing::info!(https, "api listening on {addr}");
        Ok(ApiServer { addr })
    }
}

#[cfg(test)]
mod tests;
