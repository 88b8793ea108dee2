//! API errors: Files.com's error body and types, so the SDK raises its own exception classes.
//!
//! Clients get a short message and a known `type`; internal causes are logged once here and
//! never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::accounts::AccountError;
use crate::auth::AuthError;
use crate::store::StoreError;

/// An API failure, by Files.com error type.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Authentication required")]
    AuthenticationRequired,
    #[error("Invalid credentials")]
    InvalidCredentials,
    #[error("Invalid session")]
    InvalidSession,
    #[error("Invalid username or password")]
    InvalidUsernameOrPassword,
    #[error("Too many failed attempts; try again later")]
    LockedOut,
    #[error("You must be a site administrator to do this")]
    SiteAdminRequired,
    /// A change only a site admin may make (widening a key), with the rule it breaks.
    #[error("{0}")]
    AdminOnlyChange(String),
    #[error("You may not act for another user")]
    CantActForOtherUser,
    #[error("This API key may only be used for Desktop App functions")]
    OnlyForDesktopApp,
    #[error("This API key may only be used for file operations")]
    OnlyForFileOperations,
    #[error("This API key is restricted to a folder and may only be used for file operations")]
    PathRestricted,
    #[error("This API call requires an API key")]
    KeyRequired,
    #[error("API key not found")]
    ApiKeyNotFound,
    #[error("User not found")]
    UserNotFound,
    #[error("Not found")]
    NotFound,
    #[error("{0}")]
    ParamsRequired(String),
    #[error("{0}")]
    ParamsInvalid(String),
    #[error("Invalid cursor")]
    InvalidCursor,
    #[error("Invalid sort field: {0}")]
    InvalidSortField(String),
    #[error("Invalid filter field: {0}")]
    InvalidFilterField(String),
    #[error("The request body is not valid JSON: {0}")]
    InvalidBody(String),
    #[error("The request body is too large")]
    BodyTooLarge,
    #[error("{0}")]
    SaveFailed(String),
    #[error("Service unavailable; try again shortly")]
    Unavailable,
    #[error("Internal error")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            AuthenticationRequired => (
                StatusCode::UNAUTHORIZED,
                "Authentication Required",
                "not-authenticated/authentication-required",
            ),
            InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "Invalid Credentials",
                "not-authenticated/invalid-credentials",
            ),
            InvalidSession => (
                StatusCode::UNAUTHORIZED,
                "Invalid Session",
                "not-authenticated/invalid-session",
            ),
            InvalidUsernameOrPassword => (
                StatusCode::UNAUTHORIZED,
                "Invalid Username Or Password",
                "not-authenticated/invalid-username-or-password",
            ),
            LockedOut => (
                StatusCode::UNAUTHORIZED,
                "Locked Out",
                "not-authenticated/locked-out",
            ),
            SiteAdminRequired | AdminOnlyChange(_) => (
                StatusCode::FORBIDDEN,
                "Site Admin Required",
                "not-authorized/site-admin-required",
            ),
            CantActForOtherUser => (
                StatusCode::FORBIDDEN,
                "Can't Act For Other User",
                "not-authorized/cant-act-for-other-user",
            ),
            OnlyForDesktopApp => (
                StatusCode::FORBIDDEN,
                "API Key Only For Desktop App",
                "not-authorized/api-key-only-for-desktop-app",
            ),
            OnlyForFileOperations => (
                StatusCode::FORBIDDEN,
                "API Key Only For File Operations",
                "not-authorized/api-key-only-for-file-operations",
            ),
            PathRestricted => (
                StatusCode::FORBIDDEN,
                "API Key Is Path Restricted",
                "not-authorized/api-key-is-path-restricted",
            ),
            KeyRequired => (
                StatusCode::BAD_REQUEST,
                "Request Params Invalid",
                "bad-request/request-params-invalid",
            ),
            ApiKeyNotFound => (
                StatusCode::NOT_FOUND,
                "Api Key Not Found",
                "not-found/api-key-not-found",
            ),
            UserNotFound => (
                StatusCode::NOT_FOUND,
                "User Not Found",
                "not-found/user-not-found",
            ),
            NotFound => (StatusCode::NOT_FOUND, "Not Found", "not-found"),
            ParamsRequired(_) => (
                StatusCode::BAD_REQUEST,
                "Request Params Required",
                "bad-request/request-params-required",
            ),
            ParamsInvalid(_) => (
                StatusCode::BAD_REQUEST,
                "Request Params Invalid",
                "bad-request/request-params-invalid",
            ),
            InvalidCursor => (
                StatusCode::BAD_REQUEST,
                "Invalid Cursor",
                "bad-request/invalid-cursor",
            ),
            InvalidSortField(_) => (
                StatusCode::BAD_REQUEST,
                "Invalid Sort Field",
                "bad-request/invalid-sort-field",
            ),
            InvalidFilterField(_) => (
                StatusCode::BAD_REQUEST,
                "Invalid Filter Field",
                "bad-request/invalid-filter-field",
            ),
            InvalidBody(_) => (
                StatusCode::BAD_REQUEST,
                "Invalid Body",
                "bad-request/invalid-body",
            ),
            BodyTooLarge => (
                StatusCode::BAD_REQUEST,
                "Request Body Too Large",
                "bad-request/request-body-too-large",
            ),
            SaveFailed(_) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Model Save Error",
                "processing-failure/model-save-error",
            ),
            Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "service-unavailable",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                "internal-server-error",
            ),
        }
    }

    /// The `type` string of this error.
    pub fn kind(&self) -> &'static str {
        self.parts().2
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, title, kind) = self.parts();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "API internal error");
                self.to_string()
            }
            other => other.to_string(),
        };
        let instance = crate::secret::random_hex(8);
        let body = json!({
            "error": message,
            "http-code": status.as_u16(),
            "instance": instance,
            "title": title,
            "type": kind,
        });
        (status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(what) => {
                ApiError::SaveFailed(format!("that {what} is already taken"))
            }
            e if e.is_unavailable() => {
                tracing::error!(error = %e, "store unavailable");
                ApiError::Unavailable
            }
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::Invalid(message) => ApiError::ParamsInvalid(message),
            AccountError::Conflict(message) => ApiError::SaveFailed(message),
            AccountError::NotFound => ApiError::NotFound,
            AccountError::Widening(message) => ApiError::AdminOnlyChange(message),
            AccountError::Store(e) => e.into(),
            AccountError::Password(e) => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Refused => ApiError::InvalidCredentials,
            AuthError::LockedOut => ApiError::LockedOut,
            AuthError::Unavailable => ApiError::Unavailable,
        }
    }
}

impl From<crate::rights::Refusal> for ApiError {
    fn from(r: crate::rights::Refusal) -> Self {
        use crate::rights::Refusal;
        match r {
            Refusal::OnlyForDesktopApp => ApiError::OnlyForDesktopApp,
            Refusal::OnlyForFileOperations => ApiError::OnlyForFileOperations,
            Refusal::PathRestricted => ApiError::PathRestricted,
            Refusal::SiteAdminRequired => ApiError::SiteAdminRequired,
            Refusal::CantActForOtherUser => ApiError::CantActForOtherUser,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_known_files_com_type_and_status() {
        let rows: Vec<(ApiError, u16, &str)> = vec![
            (
                ApiError::AuthenticationRequired,
                401,
                "not-authenticated/authentication-required",
            ),
            (
                ApiError::InvalidCredentials,
                401,
                "not-authenticated/invalid-credentials",
            ),
            (
                ApiError::InvalidSession,
                401,
                "not-authenticated/invalid-session",
            ),
            (
                ApiError::InvalidUsernameOrPassword,
                401,
                "not-authenticated/invalid-username-or-password",
            ),
            (ApiError::LockedOut, 401, "not-authenticated/locked-out"),
            (
                ApiError::SiteAdminRequired,
                403,
                "not-authorized/site-admin-required",
            ),
            (
                ApiError::CantActForOtherUser,
                403,
                "not-authorized/cant-act-for-other-user",
            ),
            (
                ApiError::OnlyForDesktopApp,
                403,
                "not-authorized/api-key-only-for-desktop-app",
            ),
            (
                ApiError::OnlyForFileOperations,
                403,
                "not-authorized/api-key-only-for-file-operations",
            ),
            (
                ApiError::PathRestricted,
                403,
                "not-authorized/api-key-is-path-restricted",
            ),
            (ApiError::ApiKeyNotFound, 404, "not-found/api-key-not-found"),
            (ApiError::UserNotFound, 404, "not-found/user-not-found"),
            (
                ApiError::ParamsRequired("x".into()),
                400,
                "bad-request/request-params-required",
            ),
            (
                ApiError::ParamsInvalid("x".into()),
                400,
                "bad-request/request-params-invalid",
            ),
            (ApiError::InvalidCursor, 400, "bad-request/invalid-cursor"),
            (
                ApiError::InvalidBody("x".into()),
                400,
                "bad-request/invalid-body",
            ),
            (
                ApiError::BodyTooLarge,
                400,
                "bad-request/request-body-too-large",
            ),
            (
                ApiError::SaveFailed("x".into()),
                422,
                "processing-failure/model-save-error",
            ),
        ];
        for (err, status, kind) in rows {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            assert_eq!(err.kind(), kind, "{err:?}");
        }
    }
}
