//! Console sessions and CSRF.
//!
//! The cookie holds a random 256-bit id (64 hex digits); the store keeps only its SHA-256
//! digest (`web_sessions`), so every replica recognises it and a copy of the table signs
//! nobody in. A session ends when idle for [`IDLE_SECONDS`], [`ABSOLUTE_SECONDS`] after
//! sign-in, at sign-out, or as soon as its user's revision moves (password, admin flag,
//! disabled, switches, addresses, grants, SSH keys: `Authenticator::user_principal` re-checks
//! the user on every request and the revision is compared here) or the user is deleted.
//!
//! Every state-changing request carries the session's CSRF token (a digest of the session
//! id under its own label, compared in constant time) and, when the browser sends them, an
//! `Origin` naming this host and a `Sec-Fetch-Site` of `same-origin`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use subtle::ConstantTimeEq;

use super::error::WebError;
use super::{ABSOLUTE_SECONDS, IDLE_SECONDS, MAX_FORM, WebState};
use crate::auth::AuthError;
use crate::identity::{ClientInfo, Principal, Protocol};
use crate::model::now;
use crate::secret;

/// The session cookie's name.
pub const COOKIE: &str = "filegate_console";
/// Seconds between two writes of a session's `last_seen_at`.
const TOUCH_INTERVAL: i64 = 60;

/// A signed-in console request: who, and the session it came with.
pub struct Signed {
    pub principal: Principal,
    /// The digest of the session id (the store's key).
    pub digest: String,
    /// This session's CSRF token, for the forms a page renders.
    pub csrf: String,
}

impl Signed {
    pub fn user_id(&self) -> i64 {
        self.principal.user.as_ref().map(|u| u.id).unwrap_or(0)
    }

    pub fn username(&self) -> &str {
        self.principal
            .user
            .as_ref()
            .map(|u| u.username.as_str())
            .unwrap_or("")
    }

    pub fn is_admin(&self) -> bool {
        crate::rights::is_admin(&self.principal)
    }
}

/// The CSRF token of the session whose cookie holds `token`.
pub fn csrf_of(token: &str) -> String {
    secret::digest_hex(&format!("filegate-console-csrf:{token}"))
}

/// A new random session id (256 bits, hex).
pub fn new_token() -> String {
    secret::random_hex(32)
}

/// The `Set-Cookie` value that starts a session.
pub fn cookie(token: &str, https: bool) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={ABSOLUTE_SECONDS}{secure}"
    ))
    .expect("hex token")
}

/// The `Set-Cookie` value that ends it in the browser.
pub fn clear_cookie(https: bool) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    ))
    .expect("ascii")
}

/// The session id the request's cookie carries, if it has the only shape ids have.
pub fn token_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The client's address, for the authenticator and audit records.
pub fn client_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Defence in depth against cross-site requests, besides `SameSite=Strict` and the CSRF
/// token: a `Sec-Fetch-Site` must say the request came from this origin (or from the user
/// typing the address), and an `Origin` must name this host. Browsers send `Origin: null`
/// on form posts from a `Referrer-Policy: no-referrer` page; that passes only when
/// `Sec-Fetch-Site` vouches for the request.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let fetch_site = match headers.get("sec-fetch-site").map(|v| v.to_str()) {
        None => None,
        Some(Ok(site @ ("same-origin" | "none"))) => Some(site),
        Some(_) => return false,
    };
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => {
            let Ok(origin) = origin.to_str() else {
                return false;
            };
            if origin == "null" {
                return fetch_site == Some("same-origin");
            }
            let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
                return false;
            };
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            rest == Some(host)
        }
    }
}

impl FromRequestParts<Arc<WebState>> for Signed {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<WebState>,
    ) -> Result<Self, Self::Rejection> {
        let token = token_of(&parts.headers).ok_or(WebError::SignIn)?;
        let digest = secret::digest_hex(&token);
        let session = state
            .store
            .web_session_by_digest(&digest)
            .await?
            .ok_or(WebError::SignIn)?;
        let at = now();
        if session.expires_at <= at || session.last_seen_at + IDLE_SECONDS <= at {
            state.store.delete_web_session(&digest).await?;
            return Err(WebError::SignIn);
        }
        let client = ClientInfo {
            ip: client_ip(parts),
            session_id: digest[..16].to_owned(),
        };
        let principal = match state
            .auth
            .user_principal(session.user_id, Protocol::Web, client)
            .await
        {
            Ok(p) => p,
            Err(AuthError::Unavailable) => return Err(WebError::Unavailable),
            Err(AuthError::Refused | AuthError::LockedOut) => {
                state.store.delete_web_session(&digest).await?;
                return Err(WebError::SignIn);
            }
        };
        if principal.user.as_ref().map(|u| u.revision) != Some(session.user_revision) {
            state.store.delete_web_session(&digest).await?;
            return Err(WebError::SignIn);
        }
        if at - session.last_seen_at >= TOUCH_INTERVAL {
            state.store.touch_web_session(&digest, at).await?;
        }
        // A user whom `auth.require_2fa` covers and who has no TOTP yet may only enrol.
        let path = parts.uri.path();
        let enrolling =
            path == "/account" || path.starts_with("/account/2fa/") || path == "/sign-out";
        if !enrolling {
            match state.auth.must_enrol(&principal).await {
                Ok(false) => {}
                Ok(true) => return Err(WebError::Enrol),
                Err(_) => return Err(WebError::Unavailable),
            }
        }
        Ok(Signed {
            principal,
            digest,
            csrf: csrf_of(&token),
        })
    }
}

/// Whether `given` is the session's CSRF token (constant time).
pub fn csrf_ok(signed: &Signed, given: Option<&str>) -> bool {
    given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(signed.csrf.as_bytes())))
}

/// The fields of an urlencoded form, in order.
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Result<Fields, WebError> {
        if body.contains(&0) {
            return Err(WebError::BadRequest("the form holds a NUL byte".into()));
        }
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if pairs
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(WebError::BadRequest(
                "the form holds a NUL character".into(),
            ));
        }
        Ok(Fields(pairs))
    }

    /// The first value of `name`, as sent.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.raw(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// A required field.
    pub fn required(&self, name: &str, label: &str) -> Result<String, WebError> {
        self.text(name)
            .ok_or_else(|| WebError::BadRequest(format!("{label} is required")))
    }

    /// A checkbox: present means on.
    pub fn checked(&self, name: &str) -> bool {
        self.raw(name).is_some()
    }
}

/// A state-changing console request: signed in, same origin, the session's CSRF token, and
/// an urlencoded body of at most [`MAX_FORM`] bytes. Any failure changes nothing.
pub struct Posted {
    pub who: Signed,
    pub form: Fields,
}

impl FromRequest<Arc<WebState>> for Posted {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &Arc<WebState>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        if !same_origin(&parts.headers) {
            return Err(WebError::Csrf);
        }
        // The body is read (bounded in size and time) before the session is checked, so a
        // request whose body is held back cannot act with rights its user has lost since
        // its headers arrived (red team: a disabled admin restoring their own flag).
        let bytes = read_form(body).await?;
        let who = Signed::from_request_parts(&mut parts, state).await?;
        let form = Fields::parse(&bytes)?;
        if !csrf_ok(&who, form.raw("csrf")) {
            return Err(WebError::Csrf);
        }
        Ok(Posted { who, form })
    }
}

/// How long a client gets to send a form's body once its headers have arrived.
const FORM_BODY_SECONDS: u64 = 30;

/// Reads a form body of at most [`MAX_FORM`] bytes within [`FORM_BODY_SECONDS`].
async fn read_form(body: axum::body::Body) -> Result<axum::body::Bytes, WebError> {
    let read = axum::body::to_bytes(body, MAX_FORM);
    match tokio::time::timeout(std::time::Duration::from_secs(FORM_BODY_SECONDS), read).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(WebError::TooLarge),
        Err(_) => Err(WebError::BadRequest("the form was not sent in time".into())),
    }
}

/// The sign-in form: no session yet, so no CSRF token; same origin and the body limit still
/// apply.
pub struct SignInForm {
    pub form: Fields,
    pub ip: Option<std::net::IpAddr>,
}

impl FromRequest<Arc<WebState>> for SignInForm {
    type Rejection = WebError;

    async fn from_request(req: Request, _state: &Arc<WebState>) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        if !same_origin(&parts.headers) {
            return Err(WebError::Csrf);
        }
        let ip = client_ip(&parts);
        let bytes = read_form(body).await?;
        Ok(SignInForm {
            form: Fields::parse(&bytes)?,
            ip,
        })
    }
}

/// A signed-in GET that may or may not have a session (the sign-in page).
pub struct MaybeSigned(pub Option<Signed>);

impl FromRequestParts<Arc<WebState>> for MaybeSigned {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<WebState>,
    ) -> Result<Self, Self::Rejection> {
        match Signed::from_request_parts(parts, state).await {
            Ok(s) => Ok(MaybeSigned(Some(s))),
            Err(WebError::SignIn) => Ok(MaybeSigned(None)),
            Err(e) => Err(e),
        }
    }
}
