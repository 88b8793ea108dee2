//! The web console: server-rendered pages (maud) served by the API listener at `/`, next to
//! the REST API under `/api/rest/v1`. A thin front-end like the others: it signs people in
//! through the one authenticator (`Protocol::Web`), asks `rights` what a caller may manage,
//! changes accounts through `accounts::Accounts` and files through `files::Files`, and reads
//! the store only through its methods.
//!
//! - `session`: the session cookie (random 256-bit id, stored as a digest, idle and absolute
//!   expiry, revoked by the user's revision), CSRF tokens, `Origin`/`Sec-Fetch-Site` checks.
//! - `page`: the layout and small rendering helpers; `assets`: the stylesheet and script.
//! - `sign`, `account`, `two_factor` (My account's TOTP section), `keys`, `users`, `files`,
//!   `history`: one module per area.
//!
//! Every response carries the security headers ([`security_headers`]); pages are
//! `Cache-Control: no-store`. Secrets (new API keys) appear only in the response to the POST
//! that made them.

mod account;
mod assets;
mod error;
mod files;
mod history;
mod keys;
mod page;
mod session;
mod sign;
mod two_factor;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

pub use error::WebError;

use crate::accounts::Accounts;
use crate::api::Cursors;
use crate::auth::Authenticator;
use crate::files::Files;
use crate::store::Store;

/// Idle sessions end after this many seconds without a request.
pub const IDLE_SECONDS: i64 = 30 * 60;
/// Sessions end this many seconds after sign-in, used or not.
pub const ABSOLUTE_SECONDS: i64 = 12 * 3600;
/// Largest urlencoded form body (uploads have their own limit).
pub const MAX_FORM: usize = 64 * 1024;

/// What every console handler shares.
pub struct WebState {
    pub auth: Arc<Authenticator>,
    pub accounts: Accounts,
    pub store: Store,
    pub files: Arc<Files>,
    /// The API's cursor signer: History pages with the same cursors as `/history`.
    pub cursors: Arc<Cursors>,
    /// Served over TLS: cookies get `Secure`.
    pub https: bool,
    /// Largest upload request, in bytes (0: no limit).
    pub max_upload: u64,
}

/// The console's routes (everything outside `/api/rest/v1`, `/healthz` and `/metrics`).
pub fn router(state: Arc<WebState>) -> Router {
    Router::new()
        .route("/", get(sign::home))
        .route("/sign-in", get(sign::home).post(sign::sign_in))
        .route("/sign-in/code", post(sign::sign_in_code))
        .route("/account/2fa/begin", post(two_factor::begin))
        .route("/account/2fa/confirm", post(two_factor::confirm))
        .route("/account/2fa/disable", post(two_factor::disable))
        .route("/sign-out", post(sign::sign_out))
        .route("/static/{tag}/{name}", get(assets::serve))
        .route("/account", get(account::show))
        .route("/account/keys", post(account::add_key))
        .route("/account/ssh-keys", post(account::add_ssh_key))
        .route(
            "/account/ssh-keys/{id}/delete",
            post(account::delete_ssh_key),
        )
        .route("/account/password", post(account::change_password))
        .route("/keys", get(keys::list).post(keys::create))
        .route(
            "/keys/{id}/delete",
            get(keys::confirm_delete).post(keys::delete),
        )
        .route("/users", get(users::list).post(users::create))
        .route("/users/{id}", get(users::authentication))
        .route("/users/{id}/settings", post(users::update))
        .route("/users/{id}/password", post(users::reset_password))
        .route("/users/{id}/keys", post(users::add_key))
        .route("/users/{id}/ssh-keys", post(users::add_ssh_key))
        .route(
            "/users/{id}/ssh-keys/{key}/delete",
            post(users::delete_ssh_key),
        )
        .route(
            "/users/{id}/folders",
            get(users::folders).post(users::grant),
        )
        .route(
            "/users/{id}/folders/{grant}/delete",
            post(users::revoke_grant),
        )
        // Uploads stream into `Files` and are bounded by `api.max_upload_bytes`, not by
        // axum's default body limit.
        .route(
            "/files",
            get(files::browse_root)
                .post(files::upload_root)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/files/",
            get(files::browse_root)
                .post(files::upload_root)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/files/{*path}",
            get(files::browse)
                .post(files::upload)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/file-actions/mkdir", post(files::make_dir))
        .route(
            "/file-actions/rename",
            get(files::rename_form).post(files::rename),
        )
        .route(
            "/file-actions/delete",
            get(files::delete_form).post(files::delete),
        )
        .route("/history", get(history::show))
        .fallback(|| async { WebError::NotFound })
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The headers every console response carries; pages (all but the versioned static files)
/// are never cached.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    response
}

#[cfg(test)]
mod tests;
