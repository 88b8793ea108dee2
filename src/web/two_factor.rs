//! My account → Two-factor sign-in: enrol (a QR code and the `otpauth://` URI on the page
//! answering the POST that made the secret, confirmed by a first code; the recovery codes
//! on the page answering the confirmation, shown once) and turn off (with a code, checked
//! like a sign-in's second step, so wrong guesses count towards the lockout). Rules and
//! storage are `accounts`'; the code check is the authenticator's.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use maud::{Markup, html};

use super::WebState;
use super::error::WebError;
use super::page::{self, Menu};
use super::session::{Posted, Signed};
use crate::accounts::TotpState;
use crate::auth::AuthError;

/// The section of My account.
pub async fn section(state: &WebState, who: &Signed) -> Result<Markup, WebError> {
    let on = state.accounts.totp_state(who.user_id()).await? == TotpState::On;
    Ok(html! {
        h2 { "Two-factor sign-in" }
        @if on {
            p { "On: SFTP, FTP (password followed by the 6 digits), the REST API and this console ask for a code. WebDAV and scripts use API keys, which never ask for one." }
            form.card method="post" action="/account/2fa/disable" {
                (page::csrf(who))
                label for="otp-off" { "Code (or a recovery code) to turn it off" }
                input #otp-off type="text" name="otp" inputmode="numeric" autocomplete="one-time-code" required maxlength="32";
                div { button.danger type="submit" { "Turn off two-factor sign-in" } }
            }
        } @else {
            p.muted { "Off. With it on, signing in takes a code from an authenticator app as well as your password." }
            form.card method="post" action="/account/2fa/begin" {
                (page::csrf(who))
                div { button type="submit" { "Set up two-factor sign-in" } }
            }
        }
    })
}

fn qr_image(uri: &str) -> Markup {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(220, 220)
                .build();
            let src = format!(
                "data:image/svg+xml;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(svg)
            );
            html! { img #totp-qr src=(src) alt="QR code of the otpauth URI" width="220" height="220"; }
        }
        Err(_) => html! { p.muted { "(No QR code: the URI is too long.)" } },
    }
}

/// `POST /account/2fa/begin`: a new secret, shown on this response only.
pub async fn begin(
    State(state): State<Arc<WebState>>,
    posted: Posted,
) -> Result<Response, WebError> {
    let who = &posted.who;
    let enrolment = state
        .accounts
        .totp_begin(&who.principal, who.user_id())
        .await?;
    Ok(page::layout(
        who,
        Menu::Account,
        "Set up two-factor sign-in",
        html! {
            p { "Scan this with an authenticator app (or paste the URI, or type the secret), then enter the code it shows." }
            (qr_image(&enrolment.uri))
            p { "URI: " code #totp-uri { (enrolment.uri) } }
            p { "Secret: " code #totp-secret { (enrolment.secret_base32) } }
            form.card method="post" action="/account/2fa/confirm" {
                (page::csrf(who))
                label for="otp-first" { "Code from the app" }
                input #otp-first type="text" name="otp" inputmode="numeric" autocomplete="one-time-code" required maxlength="32" autofocus;
                div { button type="submit" { "Turn on" } }
            }
        },
    ))
}

/// `POST /account/2fa/confirm`: the first code turns it on; the recovery codes are shown
/// on this response only.
pub async fn confirm(
    State(state): State<Arc<WebState>>,
    posted: Posted,
) -> Result<Response, WebError> {
    let who = &posted.who;
    let code = posted.form.raw("otp").unwrap_or("");
    let codes = state
        .accounts
        .totp_confirm(&who.principal, who.user_id(), code)
        .await?;
    Ok(page::layout(
        who,
        Menu::Account,
        "Two-factor sign-in is on",
        html! {
            p.notice role="status" { "Two-factor sign-in is on. Keep these recovery codes somewhere safe: each signs you in once without the app. They are shown only now." }
            ul #recovery-codes { @for c in &codes { li { code { (c) } } } }
            p { a.button href="/account" { "Back to my account" } }
        },
    ))
}

/// `POST /account/2fa/disable`: needs a current code (or a recovery code).
pub async fn disable(
    State(state): State<Arc<WebState>>,
    posted: Posted,
) -> Result<Response, WebError> {
    let who = &posted.who;
    let code = posted.form.raw("otp").unwrap_or("");
    let Some(pending) = state.auth.pending_for(&who.principal) else {
        return Err(WebError::Forbidden(
            "Only users have two-factor sign-in.".into(),
        ));
    };
    match state.auth.finish_sign_in(&pending, code).await {
        Ok(_) => {}
        Err(AuthError::Unavailable) => return Err(WebError::Unavailable),
        Err(AuthError::Refused | AuthError::LockedOut) => {
            return Err(WebError::Forbidden(
                "That code is wrong or was already used.".into(),
            ));
        }
    }
    state
        .accounts
        .totp_disable(&who.principal, who.user_id())
        .await?;
    Ok(page::see_other("/account?done=2fa-off"))
}
