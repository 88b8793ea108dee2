//! Sign in and sign out. Sign-in goes through the one authenticator with `Protocol::Web`
//! (same lockout, one refusal for every cause, a `login` audit record); API keys
//! (`@api-…`) do not sign in to the console. A user with two-factor sign-in is asked for
//! their code on a second page (`POST /sign-in/code`), which carries the first step as a
//! sealed token (`Authenticator::pending_token`: bound to the address, short-lived, any
//! replica can resume it); a wrong code counts as a failed login.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::WebState;
use super::error::WebError;
use super::page;
use super::session::{self, MaybeSigned, Posted, SignInForm};
use crate::auth::{AuthError, LoginName, PendingCode, Proof, SecondFactor, SignIn};
use crate::identity::{ClientInfo, Protocol};
use crate::model::now;
use crate::secret;

/// The one message for every refused sign-in.
pub const REFUSED: &str =
    "Sign-in failed: the username or password is wrong, or this account may not sign in here.";

fn sign_in_page(status: StatusCode, message: Option<&str>, username: &str) -> Response {
    let markup = page::bare_page(
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if let Some(m) = message {
                p.error role="alert" { (m) }
            }
            form method="post" action="/sign-in" {
                label for="username" { "Username" }
                input #username type="text" name="username" value=(username)
                    autocomplete="username" required autofocus maxlength="256";
                label for="password" { "Password" }
                input #password type="password" name="password"
                    autocomplete="current-password" required maxlength="1024";
                div { button type="submit" { "Sign in" } }
            }
        },
    );
    page::html_response(status, markup)
}

fn code_page(status: StatusCode, message: Option<&str>, token: &str) -> Response {
    let markup = page::bare_page(
        "Two-factor sign-in",
        html! {
            h1 { "Two-factor sign-in" }
            @if let Some(m) = message {
                p.error role="alert" { (m) }
            }
            form method="post" action="/sign-in/code" {
                input type="hidden" name="pending" value=(token);
                label for="otp" { "Code from your authenticator app (or a recovery code)" }
                input #otp type="text" name="otp" inputmode="numeric" autocomplete="one-time-code"
                    required autofocus maxlength="32";
                div { button type="submit" { "Verify" } }
            }
        },
    );
    page::html_response(status, markup)
}

/// `GET /`: the sign-in form, or the files of a signed-in user.
pub async fn home(MaybeSigned(who): MaybeSigned) -> Response {
    match who {
        Some(_) => page::see_other("/files/"),
        None => sign_in_page(StatusCode::OK, None, ""),
    }
}

/// `POST /sign-in`
pub async fn sign_in(
    State(state): State<Arc<WebState>>,
    request: SignInForm,
) -> Result<Response, WebError> {
    let username = request.form.raw("username").unwrap_or("").trim().to_owned();
    let password = request.form.raw("password").unwrap_or("");
    let shown: String = username.chars().take(256).collect();
    // API keys do not sign in here; they get the same refusal as every other cause.
    if !matches!(LoginName::parse(&username), Ok(LoginName::User(_))) || password.is_empty() {
        return Ok(sign_in_page(
            StatusCode::UNAUTHORIZED,
            Some(REFUSED),
            &shown,
        ));
    }
    let client = ClientInfo::new(request.ip);
    let signed = state
        .auth
        .sign_in(
            &username,
            Proof::Password(password),
            SecondFactor::Later,
            Protocol::Web,
            client,
        )
        .await;
    let principal = match signed {
        Ok(SignIn::Done(p)) => p,
        Ok(SignIn::CodeNeeded(pending)) => return Ok(ask_code(&state, &pending)),
        Err(AuthError::Refused) => {
            return Ok(sign_in_page(
                StatusCode::UNAUTHORIZED,
                Some(REFUSED),
                &shown,
            ));
        }
        Err(AuthError::LockedOut) => {
            return Ok(sign_in_page(
                StatusCode::TOO_MANY_REQUESTS,
                Some("Too many failed attempts; try again later."),
                &shown,
            ));
        }
        Err(AuthError::Unavailable) => return Err(WebError::Unavailable),
    };
    let Some(user) = principal.user else {
        return Ok(sign_in_page(
            StatusCode::UNAUTHORIZED,
            Some(REFUSED),
            &shown,
        ));
    };
    start_session(&state, &user).await
}

fn ask_code(state: &WebState, pending: &PendingCode) -> Response {
    match state.auth.pending_token(pending) {
        Some(token) => code_page(StatusCode::OK, None, &token),
        None => sign_in_page(StatusCode::UNAUTHORIZED, Some(REFUSED), pending.login()),
    }
}

/// `POST /sign-in/code`: the second step of a user with two-factor sign-in.
pub async fn sign_in_code(
    State(state): State<Arc<WebState>>,
    request: SignInForm,
) -> Result<Response, WebError> {
    let token = request.form.raw("pending").unwrap_or("");
    let code = request.form.raw("otp").unwrap_or("");
    let client = ClientInfo::new(request.ip);
    let Some(pending) = state.auth.pending_from_token(token, &client) else {
        return Ok(sign_in_page(
            StatusCode::UNAUTHORIZED,
            Some("The sign-in took too long or was changed; sign in again."),
            "",
        ));
    };
    match state.auth.finish_sign_in(&pending, code).await {
        Ok(principal) => match principal.user {
            Some(user) => start_session(&state, &user).await,
            None => Ok(sign_in_page(StatusCode::UNAUTHORIZED, Some(REFUSED), "")),
        },
        Err(AuthError::Refused) => Ok(code_page(
            StatusCode::UNAUTHORIZED,
            Some("That code is wrong or was already used."),
            token,
        )),
        Err(AuthError::LockedOut) => Ok(sign_in_page(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed attempts; try again later."),
            pending.login(),
        )),
        Err(AuthError::Unavailable) => Err(WebError::Unavailable),
    }
}

/// Opens a console session for `user` (cookie set on a redirect to their files).
async fn start_session(
    state: &WebState,
    user: &crate::identity::UserIdentity,
) -> Result<Response, WebError> {
    let token = session::new_token();
    let at = now();
    // Expired and abandoned sessions go when someone signs in (one DELETE).
    state
        .store
        .purge_web_sessions(at, at - super::IDLE_SECONDS)
        .await?;
    state
        .store
        .insert_web_session(
            &secret::digest_hex(&token),
            user.id,
            user.revision,
            at,
            at + super::ABSOLUTE_SECONDS,
        )
        .await?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/files/".parse().expect("ascii")),
            (header::SET_COOKIE, session::cookie(&token, state.https)),
        ],
    )
        .into_response())
}

/// `POST /sign-out`
pub async fn sign_out(
    State(state): State<Arc<WebState>>,
    posted: Posted,
) -> Result<Response, WebError> {
    state.store.delete_web_session(&posted.who.digest).await?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".parse().expect("ascii")),
            (header::SET_COOKIE, session::clear_cookie(state.https)),
        ],
    )
        .into_response())
}
