//! `/sessions`: sign in with a username and password for a session token usable as
//! `X-FilesAPI-Auth`; `DELETE /sessions` signs out.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::caller::{Anonymous, Authed, Via};
use super::error::ApiError;
use super::{ApiState, time_json};
use crate::auth::{AuthError, LoginName, Proof, SecondFactor, SignIn};
use crate::identity::Protocol;
use crate::model::now;
use crate::secret;

/// How long a session lasts, in seconds.
pub const SESSION_SECONDS: i64 = 6 * 3600;

/// `POST /sessions` `{username, password, otp}`: `otp` (as in Files.com's SDK) is the TOTP
/// code or a recovery code of a user with two-factor sign-in.
pub async fn create(
    State(state): State<Arc<ApiState>>,
    request: Anonymous,
) -> Result<Response, ApiError> {
    let p = &request.params;
    p.only(&["username", "password", "otp", "partial_session_id"], &[])?;
    let username = p.required_str("username")?;
    let password = p.required_str("password")?;
    let otp = p.str("otp")?;
    if !matches!(LoginName::parse(&username), Ok(LoginName::User(_))) {
        return Err(ApiError::InvalidUsernameOrPassword);
    }
    let signed = state
        .auth
        .sign_in(
            &username,
            Proof::Password(&password),
            SecondFactor::Given(otp.as_deref()),
            Protocol::Api,
            request.client,
        )
        .await
        .map_err(|e| match e {
            AuthError::Refused => ApiError::InvalidUsernameOrPassword,
            other => other.into(),
        })?;
    let SignIn::Done(principal) = signed else {
        return Err(ApiError::InvalidUsernameOrPassword);
    };
    let user = principal.user.ok_or(ApiError::InvalidUsernameOrPassword)?;
    let token = secret::random_hex(32);
    let created = now();
    let expires = created + SESSION_SECONDS;
    state
        .store
        .insert_session(&secret::digest_hex(&token), user.id, created, expires)
        .await?;
    let body = json!({
        "id": token,
        "language": null,
        "read_only": false,
        "sftp_insecure_ciphers": false,
        "expires_at": time_json(Some(expires)),
        "user_id": user.id,
        "username": user.username,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /sessions`: ends the session making the request.
pub async fn delete(
    State(state): State<Arc<ApiState>>,
    call: Authed,
) -> Result<StatusCode, ApiError> {
    let Via::Session(digest) = &call.via else {
        return Err(ApiError::ParamsInvalid(
            "this request is not made with a session".into(),
        ));
    };
    state.store.delete_session(digest).await?;
    Ok(StatusCode::NO_CONTENT)
}
