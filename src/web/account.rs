//! My account (`/account`): the signed-in user's API keys (add, shown once; delete through
//! `keys`), SSH public keys (add, delete) and password.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::error::WebError;
use super::keys;
use super::page::{self, Menu};
use super::session::{self, Posted, Signed};
use crate::accounts::KeyOwner;
use crate::auth::{AuthError, Proof, SecondFactor};
use crate::identity::ClientInfo;
use crate::model::PublicKeyRecord;
use crate::rights;
use crate::store::KeyOwnerFilter;

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// The SSH keys table and the add form, posting under `base` (`/account` or `/users/{id}`).
pub fn ssh_keys(who: &Signed, keys: &[PublicKeyRecord], base: &str) -> Markup {
    html! {
        @if keys.is_empty() {
            p.muted { "No SSH keys." }
        } @else {
            div.table-wrap { table {
                thead { tr { th { "Name" } th { "Key" } th.hide-narrow { "Added" } th { "" } } }
                tbody { @for k in keys {
                    tr {
                        td { (k.title) }
                        td { code { (abbreviate(&k.public_key)) } }
                        td.hide-narrow { (page::date(Some(k.created_at))) }
                        td { form method="post" action=(format!("{base}/ssh-keys/{}/delete", k.id)) {
                            (page::csrf(who))
                            button.danger type="submit" { "Delete" }
                        } }
                    }
                } }
            } }
        }
        form.card method="post" action=(format!("{base}/ssh-keys")) {
            (page::csrf(who))
            label for="ssh-name" { "Name" }
            input #ssh-name type="text" name="title" required maxlength="255";
            label for="ssh-key" { "Public key" }
            textarea #ssh-key name="public_key" required placeholder="ssh-ed25519 AAAA… me@laptop" {}
            div { button type="submit" { "Add SSH key" } }
        }
    }
}

fn abbreviate(line: &str) -> String {
    match line.split_once(' ') {
        Some((kind, blob)) if blob.len() > 24 => {
            format!("{kind} {}…{}", &blob[..12], &blob[blob.len() - 8..])
        }
        _ => line.to_owned(),
    }
}

/// `GET /account`
pub async fn show(
    State(state): State<Arc<WebState>>,
    Query(q): Query<Done>,
    who: Signed,
) -> Result<Response, WebError> {
    let me = who.user_id();
    let api_keys = state.store.all_keys(KeyOwnerFilter::User(me)).await?;
    let ssh = state.store.public_keys_of(me).await?;
    let two_factor = super::two_factor::section(&state, &who).await?;
    Ok(page::layout(
        &who,
        Menu::Account,
        "My account",
        html! {
            (page::notice(page::done_message(q.done.as_deref())))
            p.muted { "Signed in as " strong { (who.username()) } @if who.is_admin() { " (site admin)" } "." }
            h2 { "API keys" }
            (keys::table(&api_keys, None, "/account"))
            (keys::add_form(&who, "/account/keys", "Add key"))
            h2 { "SSH keys" }
            (ssh_keys(&who, &ssh, "/account"))
            (two_factor)
            h2 { "Password" }
            form.card method="post" action="/account/password" {
                (page::csrf(&who))
                input type="text" name="username" value=(who.username()) autocomplete="username" hidden;
                label for="current-password" { "Current password" }
                input #current-password type="password" name="current" required autocomplete="current-password";
                label for="new-password" { "New password" }
                input #new-password type="password" name="new" required minlength="8" autocomplete="new-password";
                div { button type="submit" { "Change password" } }
                p.muted { "Changing your password signs you out everywhere." }
            }
        },
    ))
}

/// `POST /account/keys`: a key of one's own; the response shows the secret once.
pub async fn add_key(
    State(state): State<Arc<WebState>>,
    posted: Posted,
) -> Result<Response, WebError> {
    let who = &posted.who;
    rights::require_management(&who.principal)?;
    let spec = keys::spec_from(&posted.form, KeyOwner::User(who.user_id()), who)?;
    let created = state.accounts.create_key(&who.principal, spec).await?;
    Ok(keys::show_once(who, Menu::Account, &created, "/account"))
}

/// Keeps the session signed in after its own user changed something that bumps their
/// revision (their SSH keys): the change was theirs.
///
/// Only the one bump this request made is followed (compare and set): if the user's revision
/// moved further (someone else changed the user meanwhile: a password reset, a revoked grant
/// or admin flag), the session keeps its old revision and ends at its next request.
pub async fn follow_own_change(state: &WebState, who: &Signed) -> Result<(), WebError> {
    let before = who.principal.user.as_ref().map(|u| u.revision);
    if let Some(user) = state.store.user_by_id(who.user_id()).await?
        && Some(user.revision) == before.map(|r| r + 1)
    {
        state
            .store
            .set_web_session_revision(&who.digest, user.revision)
            .await?;
    }
    Ok(())
}

/// `POST /account/ssh-keys`
pub async fn add_ssh_key(
    State(state): State<Arc<WebState>>,
    posted: Posted,
) -> Result<Response, WebError> {
    let who = &posted.who;
    let title = posted.form.required("title", "Name")?;
    let line = posted.form.required("public_key", "Public key")?;
    state
        .accounts
        .add_public_key(&who.principal, who.user_id(), &title, &line)
        .await?;
    follow_own_change(&state, who).await?;
    Ok(page::see_other("/account?done=ssh-added"))
}

/// `POST /account/ssh-keys/{id}/delete`: one's own SSH keys only.
pub async fn delete_ssh_key(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, WebError> {
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    let who = &posted.who;
    state
        .accounts
        .delete_public_key(&who.principal, id, Some(who.user_id()))
        .await?;
    follow_own_change(&state, who).await?;
    Ok(page::see_other("/account?done=ssh-deleted"))
}

/// `POST /account/password`: needs the current password (checked by the authenticator, so
/// wrong guesses count towards the lockout). Ends every session of the user, this one too.
pub async fn change_password(
    State(state): State<Arc<WebState>>,
    posted: Posted,
) -> Result<Response, WebError> {
    let who = &posted.who;
    let current = posted.form.raw("current").unwrap_or("");
    let new = posted.form.raw("new").unwrap_or("");
    let client = ClientInfo::new(who.principal.client.ip);
    // Signed in with both factors already: only the password is checked again.
    match state
        .auth
        .sign_in(
            who.username(),
            Proof::Password(current),
            SecondFactor::Reauthenticate,
            crate::identity::Protocol::Web,
            client,
        )
        .await
    {
        Ok(_) => {}
        Err(AuthError::Unavailable) => return Err(WebError::Unavailable),
        Err(AuthError::Refused | AuthError::LockedOut) => {
            return Err(WebError::Forbidden("The current password is wrong.".into()));
        }
    }
    state
        .accounts
        .update_user(&who.principal, who.user_id(), Default::default(), Some(new))
        .await?;
    // The revision moved: every session of this user is over; end this one now.
    state.store.delete_web_session(&who.digest).await?;
    let markup = page::bare_page(
        "Password changed",
        html! {
            h1 { "Password changed" }
            p.notice role="status" { "Your password was changed. Sign in again with the new one." }
            p { a.button href="/" { "Sign in" } }
        },
    );
    let mut response = page::html_response(StatusCode::OK, markup);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie(state.https));
    Ok(response.into_response())
}
