//! What a console request can fail with, and the plain page each failure shows.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::page;
use crate::accounts::AccountError;
use crate::auth::AuthError;
use crate::files::FsError;
use crate::rights::Refusal;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No valid session: go to the sign-in page.
    #[error("sign in first")]
    SignIn,
    /// Two-factor sign-in is required (`auth.require_2fa`) and not set up: go to My account.
    #[error("set up two-factor sign-in first")]
    Enrol,
    /// A state-changing request without the session's CSRF token, or from another site.
    #[error("this form has expired or came from another site; reload the page and try again")]
    Csrf,
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("the form is too large")]
    TooLarge,
    #[error("the service is temporarily unavailable; try again later")]
    Unavailable,
    #[error("something went wrong; try again later")]
    Internal,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = match &self {
            WebError::SignIn => {
                return (
                    StatusCode::SEE_OTHER,
                    [(header::LOCATION, "/"), (header::CACHE_CONTROL, "no-store")],
                )
                    .into_response();
            }
            WebError::Enrol => {
                return (
                    StatusCode::SEE_OTHER,
                    [
                        (header::LOCATION, "/account"),
                        (header::CACHE_CONTROL, "no-store"),
                    ],
                )
                    .into_response();
            }
            WebError::Csrf | WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            WebError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, page::bare("Error", &self.to_string())).into_response()
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "console: store error");
        if e.is_unavailable() {
            WebError::Unavailable
        } else {
            WebError::Internal
        }
    }
}

impl From<Refusal> for WebError {
    fn from(r: Refusal) -> Self {
        WebError::Forbidden(r.to_string())
    }
}

impl From<AuthError> for WebError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unavailable => WebError::Unavailable,
            AuthError::Refused | AuthError::LockedOut => WebError::SignIn,
        }
    }
}

impl From<AccountError> for WebError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Store(e) => e.into(),
            AccountError::NotFound => WebError::NotFound,
            other => WebError::BadRequest(other.to_string()),
        }
    }
}

impl From<FsError> for WebError {
    fn from(e: FsError) -> Self {
        match e {
            FsError::NotFound => WebError::NotFound,
            FsError::PermissionDenied => WebError::Forbidden("permission denied".into()),
            other => WebError::BadRequest(other.to_string()),
        }
    }
}
