//! Who is calling the API, and what the API lets them do (DESIGN §2, API.md).
//!
//! `X-FilesAPI-Key` (an API key's secret) wins over `X-FilesAPI-Auth` (a session from
//! `POST /sessions`). Both go through the one authenticator. The rights rules for the
//! management endpoints — admin or not, permission sets, path restrictions — live in
//! `crate::rights` (shared with the web console); `Authed` asks them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::HeaderMap;

use super::ApiState;
use super::error::ApiError;
use super::params::{MAX_BODY, Params};
use crate::identity::{ClientInfo, Principal, Protocol};
use crate::model::now;
use crate::rights;
use crate::secret;

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Via {
    Key,
    /// The digest of the session token.
    Session(String),
}

/// An authenticated API request: the caller and the request's parameters.
pub struct Authed {
    pub principal: Principal,
    pub via: Via,
    pub params: Params,
}

/// An unauthenticated request's parameters (`POST /sessions`).
pub struct Anonymous {
    pub params: Params,
    pub client: ClientInfo,
}

/// Filled by the extractor, read by the audit middleware.
#[derive(Clone, Default)]
pub struct CallSlot(pub Arc<Mutex<Option<Principal>>>);

async fn read_params(
    req: Request,
) -> Result<(HeaderMap, Option<SocketAddr>, Params, Option<CallSlot>), ApiError> {
    let (parts, body) = req.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let slot = parts.extensions.get::<CallSlot>().cloned();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::BodyTooLarge)?;
    let params = Params::parse(parts.uri.query(), &bytes)?;
    Ok((parts.headers, peer, params, slot))
}

impl FromRequest<Arc<ApiState>> for Authed {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<ApiState>) -> Result<Self, Self::Rejection> {
        let (headers, peer, params, slot) = read_params(req).await?;
        let client = ClientInfo::new(peer.map(|p| p.ip()));
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let (principal, via) = if let Some(key) = header("x-filesapi-key") {
            (state.auth.api_key(key, client).await?, Via::Key)
        } else if let Some(token) = header("x-filesapi-auth") {
            let digest = session_digest(token).ok_or(ApiError::InvalidSession)?;
            let session = state
                .store
                .session_by_digest(&digest)
                .await?
                .ok_or(ApiError::InvalidSession)?;
            if session.expires_at <= now() {
                return Err(ApiError::InvalidSession);
            }
            let principal = state
                .auth
                .user_principal(session.user_id, Protocol::Api, client)
                .await
                .map_err(|e| match e {
                    crate::auth::AuthError::Refused => ApiError::InvalidSession,
                    other => other.into(),
                })?;
            (principal, Via::Session(digest))
        } else {
            return Err(ApiError::AuthenticationRequired);
        };
        if let Some(slot) = slot {
            *slot
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(principal.clone());
        }
        Ok(Authed {
            principal,
            via,
            params,
        })
    }
}

impl FromRequest<Arc<ApiState>> for Anonymous {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &Arc<ApiState>) -> Result<Self, Self::Rejection> {
        let (_, peer, params, _) = read_params(req).await?;
        Ok(Anonymous {
            params,
            client: ClientInfo::new(peer.map(|p| p.ip())),
        })
    }
}

/// The digest of a session token, if it has the only shape tokens have.
pub fn session_digest(token: &str) -> Option<String> {
    let ok =
        !token.is_empty() && token.len() <= 128 && token.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| secret::digest_hex(token))
}

/// The rights questions, answered by the rules the console shares (`crate::rights`).
impl Authed {
    /// The calling user's id (`None` for a site-wide key).
    pub fn user_id(&self) -> Option<i64> {
        rights::user_id(&self.principal)
    }

    /// Management endpoints need a session or a `full` key without a path restriction.
    pub fn require_management(&self) -> Result<(), ApiError> {
        Ok(rights::require_management(&self.principal)?)
    }

    /// A site admin's session or full key, or a site-wide full key.
    pub fn is_admin(&self) -> bool {
        rights::is_admin(&self.principal)
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        Ok(rights::require_admin(&self.principal)?)
    }

    /// The user a `user_id` parameter designates: `0` means the caller; another user is
    /// for admins only.
    pub fn acting_for(&self, user_id: i64) -> Result<Option<i64>, ApiError> {
        Ok(rights::acting_for(&self.principal, user_id)?)
    }

    /// Whether the caller may see and manage `key` (others' keys look absent).
    pub fn may_manage_key(&self, key: &crate::model::KeyRecord) -> bool {
        rights::may_manage_key(&self.principal, key)
    }
}
