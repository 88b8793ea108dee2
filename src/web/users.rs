//! Users (`/users`, site admins): list and search, create, and a user's page with the tabs
//! Authentication (settings, password reset, SSH keys, API keys) and Folders (grants).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::account::{follow_own_change, ssh_keys};
use super::error::WebError;
use super::keys;
use super::page::{self, Menu};
use super::session::{Posted, Signed};
use crate::accounts::{KeyOwner, UserSpec};
use crate::identity::GrantLevel;
use crate::model::UserRecord;
use crate::rights;
use crate::store::{KeyOwnerFilter, UserChanges};

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    done: Option<String>,
}

fn protocols(u: &UserRecord) -> String {
    let mut on = Vec::new();
    for (flag, name) in [
        (u.sftp_permission, "SFTP"),
        (u.ftp_permission, "FTP"),
        (u.dav_permission, "WebDAV"),
        (u.restapi_permission, "API"),
    ] {
        if flag {
            on.push(name);
        }
    }
    if on.is_empty() {
        "none".into()
    } else {
        on.join(", ")
    }
}

/// `GET /users`
pub async fn list(
    State(state): State<Arc<WebState>>,
    Query(q): Query<ListQuery>,
    who: Signed,
) -> Result<Response, WebError> {
    rights::require_admin(&who.principal)?;
    let mut users = state.store.all_users().await?;
    let search = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let Some(s) = search {
        let s = s.to_lowercase();
        users.retain(|u| u.username.to_lowercase().contains(&s));
    }
    Ok(page::layout(
        &who,
        Menu::Users,
        "Users",
        html! {
            (page::notice(page::done_message(q.done.as_deref())))
            form.card method="get" action="/users" {
                label for="user-search" { "Search users" }
                input #user-search type="search" name="q" value=(search.unwrap_or(""));
                div { button.secondary type="submit" { "Search" } }
            }
            div.table-wrap { table {
                thead { tr { th { "Username" } th { "Site admin" } th { "Status" } th.hide-narrow { "Protocols" } th.hide-narrow { "Last sign-in" } } }
                tbody { @for u in &users {
                    tr {
                        td { a href=(format!("/users/{}", u.id)) { (u.username) } }
                        td { @if u.site_admin { "yes" } @else { "no" } }
                        td { @if u.disabled { "disabled" } @else { "enabled" } }
                        td.hide-narrow { (protocols(u)) }
                        td.hide-narrow { (page::time(u.last_login_at)) }
                    }
                } }
            } }
            form.card method="post" action="/users" {
                h2 { "Create user" }
                (page::csrf(&who))
                div.row {
                    div {
                        label for="new-username" { "Username" }
                        input #new-username type="text" name="username" required maxlength="64" autocomplete="off";
                    }
                    div {
                        label for="new-password" { "Password" }
                        input #new-password type="password" name="password" minlength="8" autocomplete="new-password";
                    }
                }
                label.inline for="new-admin" { input #new-admin type="checkbox" name="site_admin"; "Site admin" }
                div { button type="submit" { "Create user" } }
            }
        },
    ))
}

/// `POST /users`
pub async fn create(
    State(state): State<Arc<WebState>>,
    posted: Posted,
) -> Result<Response, WebError> {
    rights::require_admin(&posted.who.principal)?;
    let f = &posted.form;
    let spec = UserSpec {
        username: f.required("username", "Username")?,
        password: f
            .raw("password")
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
        site_admin: f.checked("site_admin"),
        name: None,
        email: None,
    };
    let user = state
        .accounts
        .create_user(&posted.who.principal, spec)
        .await?;
    Ok(page::see_other(&format!("/users/{}", user.id)))
}

async fn target(state: &WebState, who: &Signed, id: &str) -> Result<UserRecord, WebError> {
    rights::require_admin(&who.principal)?;
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    state.store.user_by_id(id).await?.ok_or(WebError::NotFound)
}

fn tabs(user: &UserRecord, on_folders: bool) -> Markup {
    html! {
        nav.tabs aria-label="User" {
            @if on_folders {
                a href=(format!("/users/{}", user.id)) { "Authentication" }
                a href=(format!("/users/{}/folders", user.id)) aria-current="page" { "Folders" }
            } @else {
                a href=(format!("/users/{}", user.id)) aria-current="page" { "Authentication" }
                a href=(format!("/users/{}/folders", user.id)) { "Folders" }
            }
        }
    }
}

/// `GET /users/{id}`: the Authentication tab.
pub async fn authentication(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
    who: Signed,
) -> Result<Response, WebError> {
    let user = target(&state, &who, &id).await?;
    let api_keys = state.store.all_keys(KeyOwnerFilter::User(user.id)).await?;
    let ssh = state.store.public_keys_of(user.id).await?;
    let base = format!("/users/{}", user.id);
    let check = |id: &str, name: &str, label: &str, on: bool| {
        html! { label.inline for=(id) { input id=(id) type="checkbox" name=(name) checked[on]; (label) } }
    };
    Ok(page::layout(
        &who,
        Menu::Users,
        &format!("User {}", user.username),
        html! {
            (tabs(&user, false))
            (page::notice(page::done_message(q.done.as_deref())))
            form.card method="post" action=(format!("{base}/settings")) {
                h2 { "Settings" }
                (page::csrf(&who))
                (check("u-disabled", "disabled", "Disabled", user.disabled))
                (check("u-admin", "site_admin", "Site admin", user.site_admin))
                fieldset {
                    legend { "Protocols" }
                    (check("u-sftp", "sftp", "SFTP", user.sftp_permission))
                    (check("u-ftp", "ftp", "FTP", user.ftp_permission))
                    (check("u-dav", "dav", "WebDAV", user.dav_permission))
                    (check("u-api", "api", "API", user.restapi_permission))
                }
                label for="u-ips" { "Allowed IPs" }
                input #u-ips type="text" name="allowed_ips" value=(user.allowed_ips) placeholder="10.0.0.0/8, 192.0.2.7";
                div { button type="submit" { "Save settings" } }
            }
            form.card method="post" action=(format!("{base}/password")) {
                h2 { "Reset password" }
                (page::csrf(&who))
                label for="u-password" { "New password" }
                input #u-password type="password" name="password" required minlength="8" autocomplete="new-password";
                div { button type="submit" { "Reset password" } }
            }
            h2 { "SSH Keys" }
            (ssh_keys(&who, &ssh, &base))
            h2 { "API Keys" }
            (keys::table(&api_keys, None, &base))
            (keys::add_form(&who, &format!("{base}/keys"), "Add key"))
        },
    ))
}

/// `POST /users/{id}/settings`: disabled, site admin, protocol switches, allowed IPs.
pub async fn update(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, WebError> {
    let user = target(&state, &posted.who, &id).await?;
    let f = &posted.form;
    let changes = UserChanges {
        disabled: Some(f.checked("disabled")),
        site_admin: Some(f.checked("site_admin")),
        sftp_permission: Some(f.checked("sftp")),
        ftp_permission: Some(f.checked("ftp")),
        dav_permission: Some(f.checked("dav")),
        restapi_permission: Some(f.checked("api")),
        allowed_ips: Some(f.text("allowed_ips").unwrap_or_default()),
        ..Default::default()
    };
    state
        .accounts
        .update_user(&posted.who.principal, user.id, changes, None)
        .await?;
    Ok(page::see_other(&format!("/users/{}?done=saved", user.id)))
}

/// `POST /users/{id}/password`
pub async fn reset_password(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, WebError> {
    let user = target(&state, &posted.who, &id).await?;
    let password = posted.form.raw("password").unwrap_or("");
    state
        .accounts
        .update_user(
            &posted.who.principal,
            user.id,
            Default::default(),
            Some(password),
        )
        .await?;
    Ok(page::see_other(&format!(
        "/users/{}?done=password",
        user.id
    )))
}

/// `POST /users/{id}/keys`: a key for that user; the response shows the secret once.
pub async fn add_key(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, WebError> {
    let user = target(&state, &posted.who, &id).await?;
    let who = &posted.who;
    rights::acting_for(&who.principal, user.id)?;
    let spec = keys::spec_from(&posted.form, KeyOwner::User(user.id), who)?;
    let created = state.accounts.create_key(&who.principal, spec).await?;
    Ok(keys::show_once(
        who,
        Menu::Users,
        &created,
        &format!("/users/{}", user.id),
    ))
}

/// `POST /users/{id}/ssh-keys`
pub async fn add_ssh_key(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, WebError> {
    let user = target(&state, &posted.who, &id).await?;
    let title = posted.form.required("title", "Name")?;
    let line = posted.form.required("public_key", "Public key")?;
    state
        .accounts
        .add_public_key(&posted.who.principal, user.id, &title, &line)
        .await?;
    if user.id == posted.who.user_id() {
        follow_own_change(&state, &posted.who).await?;
    }
    Ok(page::see_other(&format!(
        "/users/{}?done=ssh-added",
        user.id
    )))
}

/// `POST /users/{id}/ssh-keys/{key}/delete`
pub async fn delete_ssh_key(
    State(state): State<Arc<WebState>>,
    Path((id, key)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, WebError> {
    let user = target(&state, &posted.who, &id).await?;
    let key: i64 = key.parse().map_err(|_| WebError::NotFound)?;
    state
        .accounts
        .delete_public_key(&posted.who.principal, key, Some(user.id))
        .await?;
    if user.id == posted.who.user_id() {
        follow_own_change(&state, &posted.who).await?;
    }
    Ok(page::see_other(&format!(
        "/users/{}?done=ssh-deleted",
        user.id
    )))
}

/// `GET /users/{id}/folders`: the Folders tab.
pub async fn folders(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
    who: Signed,
) -> Result<Response, WebError> {
    let user = target(&state, &who, &id).await?;
    let grants = state.store.grants_of(user.id).await?;
    let base = format!("/users/{}/folders", user.id);
    Ok(page::layout(
        &who,
        Menu::Users,
        &format!("User {}", user.username),
        html! {
            (tabs(&user, true))
            (page::notice(page::done_message(q.done.as_deref())))
            @if user.site_admin {
                p.muted { "A site admin has full access to every folder; grants apply if the flag is removed." }
            }
            @if grants.is_empty() {
                p.muted { "No folders granted." }
            } @else {
                div.table-wrap { table {
                    thead { tr { th { "Folder" } th { "Level" } th { "" } } }
                    tbody { @for g in &grants {
                        tr {
                            td { (g.path) }
                            td { (g.level) }
                            td { form method="post" action=(format!("{base}/{}/delete", g.id)) {
                                (page::csrf(&who))
                                button.danger type="submit" { "Remove" }
                            } }
                        }
                    } }
                } }
            }
            form.card method="post" action=(base) {
                h2 { "Grant a folder" }
                (page::csrf(&who))
                div.row {
                    div {
                        label for="grant-folder" { "Folder" }
                        input #grant-folder type="text" name="path" required placeholder="/shared/docs" maxlength="1024";
                    }
                    div {
                        label for="grant-level" { "Level" }
                        select #grant-level name="level" {
                            @for level in [GrantLevel::Full, GrantLevel::ReadOnly, GrantLevel::WriteOnly, GrantLevel::List] {
                                option value=(level.as_str()) { (level.as_str()) }
                            }
                        }
                    }
                }
                button type="submit" { "Grant" }
            }
        },
    ))
}

/// `POST /users/{id}/folders`: the folder is made if missing (`Accounts::grant`).
pub async fn grant(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, WebError> {
    let user = target(&state, &posted.who, &id).await?;
    let path = posted.form.required("path", "Folder")?;
    let level: GrantLevel = posted
        .form
        .text("level")
        .unwrap_or_else(|| "full".into())
        .parse()
        .map_err(|_| WebError::BadRequest("unknown level".into()))?;
    let absolute = format!("/{}", path.trim_start_matches('/'));
    state
        .accounts
        .grant(&posted.who.principal, user.id, &absolute, level)
        .await?;
    if user.id == posted.who.user_id() {
        follow_own_change(&state, &posted.who).await?;
    }
    Ok(page::see_other(&format!(
        "/users/{}/folders?done=granted",
        user.id
    )))
}

/// `POST /users/{id}/folders/{grant}/delete`
pub async fn revoke_grant(
    State(state): State<Arc<WebState>>,
    Path((id, grant)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, WebError> {
    let user = target(&state, &posted.who, &id).await?;
    let grant: i64 = grant.parse().map_err(|_| WebError::NotFound)?;
    let record = state
        .store
        .grant_by_id(grant)
        .await?
        .ok_or(WebError::NotFound)?;
    if record.user_id != user.id {
        return Err(WebError::NotFound);
    }
    state
        .accounts
        .revoke_grant(&posted.who.principal, grant)
        .await?;
    if user.id == posted.who.user_id() {
        follow_own_change(&state, &posted.who).await?;
    }
    Ok(page::see_other(&format!(
        "/users/{}/folders?done=revoked",
        user.id
    )))
}
