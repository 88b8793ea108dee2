//! API keys in the console: the Add key form and the show-once page (shared by My account,
//! a user's Authentication tab and the admin API keys page), the key table, deletion with a
//! confirmation step, and the admin page listing every key (`/keys`).
//!
//! The secret of a new key is rendered in the response to the POST that made it and nowhere
//! else: not in a URL, not in a log line, not on any later page.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::WebState;
use super::error::WebError;
use super::page::{self, Menu};
use super::session::{Fields, Posted, Signed};
use crate::accounts::{CreatedKey, KeyOwner, KeySpec};
use crate::identity::PermissionSet;
use crate::model::{KeyRecord, UserRecord};
use crate::rights;
use crate::store::KeyOwnerFilter;

/// The Add key form, posting to `action`.
pub fn add_form(who: &Signed, action: &str, title: &str) -> Markup {
    html! {
        form.card method="post" action=(action) {
            h2 { (title) }
            (page::csrf(who))
            div.row {
                div {
                    label for="key-name" { "Name" }
                    input #key-name type="text" name="name" required maxlength="255";
                }
                div {
                    label for="key-expires" { "Expires" }
                    input #key-expires type="date" name="expires";
                }
                div {
                    label for="key-folder" { "Folder" }
                    input #key-folder type="text" name="folder" placeholder="/shared/docs" maxlength="1024";
                }
                div {
                    label for="key-set" { "Permission set" }
                    select #key-set name="permission_set" {
                        @for set in PermissionSet::ALL {
                            option value=(set.as_str()) { (set.as_str()) }
                        }
                    }
                }
            }
            button type="submit" { "Save" }
        }
    }
}

/// The key a posted Add key form describes, for `owner`.
pub fn spec_from(form: &Fields, owner: KeyOwner, who: &Signed) -> Result<KeySpec, WebError> {
    let name = form.required("name", "Name")?;
    let permission_set = match form.text("permission_set") {
        None => PermissionSet::Full,
        Some(s) => s
            .parse()
            .map_err(|_| WebError::BadRequest("unknown permission set".into()))?,
    };
    let expires_at = match form.text("expires") {
        None => None,
        Some(d) => Some(
            crate::model::parse_time(&d)
                .map(|midnight| midnight + 86_399)
                .ok_or_else(|| WebError::BadRequest("Expires must be a date".into()))?,
        ),
    };
    // Files.com's form: relative, no slashes at the ends.
    let path = form
        .text("folder")
        .map(|f| f.trim_matches('/').to_owned())
        .filter(|f| !f.is_empty());
    Ok(KeySpec {
        owner,
        name,
        description: None,
        path,
        permission_set,
        expires_at,
        platform: None,
        created_by: rights::user_id(&who.principal),
    })
}

/// The page that shows a new key's secret, once.
pub fn show_once(who: &Signed, menu: Menu, created: &CreatedKey, back: &str) -> Response {
    let k = &created.record;
    page::layout(
        who,
        menu,
        "API key created",
        html! {
            section.card {
                p.warning role="status" { "This key will not be shown again. Copy it now and keep it somewhere safe." }
                label for="secret" { "API key" }
                div.secret {
                    input #secret type="text" readonly value=(created.secret) autocomplete="off" spellcheck="false";
                    button.secondary type="button" data-copy="secret" hidden { "Copy" }
                }
                p {
                    "Key " strong { (k.name) } " (ID " (k.id) ", " (k.permission_set) ")"
                    @if let Some(p) = &k.path { ", folder /" (p) }
                    ". Sign in over SFTP, FTP or WebDAV as "
                    code { "@api-" (k.id) } " with this key as the password, or send it as "
                    code { "X-FilesAPI-Key" } " to the REST API."
                }
                a.button href=(back) { "Done" }
            }
        },
    )
}

/// A table of keys; `owners` names the owner column when given.
pub fn table(keys: &[KeyRecord], owners: Option<&HashMap<i64, String>>, back: &str) -> Markup {
    html! {
        @if keys.is_empty() {
            p.muted { "No API keys." }
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th { "Name" } th { "ID" }
                    @if owners.is_some() { th { "Owner" } }
                    th { "Permission set" } th { "Folder" } th.hide-narrow { "Created" }
                    th { "Expires" } th.hide-narrow { "Last use" } th { "" }
                } }
                tbody {
                    @for k in keys {
                        tr {
                            td { (k.name) }
                            td { (k.id) }
                            @if let Some(owners) = owners {
                                td { @match k.user_id {
                                    None => em { "site-wide" },
                                    Some(u) => a href=(format!("/users/{u}")) { (owners.get(&u).map(String::as_str).unwrap_or("?")) },
                                } }
                            }
                            td { (k.permission_set) }
                            td { @match &k.path { Some(p) if !p.is_empty() => { "/" (p) }, _ => span.muted { "all" } } }
                            td.hide-narrow { (page::date(Some(k.created_at))) }
                            td { (page::date(k.expires_at)) }
                            td.hide-narrow { (page::time(k.last_use_at)) }
                            td {
                                a href=(format!("/history?key={}", k.id)) { "History" } " "
                                a.button.danger href=(format!("/keys/{}/delete?back={}", k.id, page::encode(back))) { "Delete" }
                            }
                        }
                    }
                }
            } }
        }
    }
}

/// Where to go after deleting a key: only console pages that list keys.
fn safe_back(back: Option<&str>) -> String {
    match back {
        Some("/keys") => "/keys".into(),
        Some(b)
            if b.strip_prefix("/users/").is_some_and(|id| {
                !id.is_empty() && id.len() < 20 && id.bytes().all(|c| c.is_ascii_digit())
            }) =>
        {
            b.into()
        }
        _ => "/account".into(),
    }
}

/// A key the caller may manage; others look absent.
async fn manageable(state: &WebState, who: &Signed, id: &str) -> Result<KeyRecord, WebError> {
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    rights::require_management(&who.principal)?;
    let key = state.store.key_by_id(id).await?.ok_or(WebError::NotFound)?;
    if rights::may_manage_key(&who.principal, &key) {
        Ok(key)
    } else {
        Err(WebError::NotFound)
    }
}

#[derive(Deserialize)]
pub struct BackQuery {
    back: Option<String>,
}

/// `GET /keys/{id}/delete`: the confirmation step (works without JavaScript).
pub async fn confirm_delete(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    Query(q): Query<BackQuery>,
    who: Signed,
) -> Result<Response, WebError> {
    let key = manageable(&state, &who, &id).await?;
    let back = safe_back(q.back.as_deref());
    Ok(page::layout(
        &who,
        if back == "/keys" {
            Menu::Keys
        } else if back == "/account" {
            Menu::Account
        } else {
            Menu::Users
        },
        "Delete API key",
        html! {
            form.card method="post" action=(format!("/keys/{}/delete", key.id)) {
                (page::csrf(&who))
                input type="hidden" name="back" value=(back);
                p { "Delete the key " strong { (key.name) } " (ID " (key.id) ")? Clients using it are refused from their next sign-in on. This cannot be undone." }
                button.danger type="submit" { "Delete key" }
                " "
                a.button.secondary href=(back) { "Cancel" }
            }
        },
    ))
}

/// `POST /keys/{id}/delete`
pub async fn delete(
    State(state): State<Arc<WebState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, WebError> {
    let key = manageable(&state, &posted.who, &id).await?;
    state
        .accounts
        .revoke_key(&posted.who.principal, key.id)
        .await?;
    let back = safe_back(posted.form.raw("back"));
    Ok(page::see_other(&format!("{back}?done=key-deleted")))
}

#[derive(Deserialize)]
pub struct ListQuery {
    owner: Option<String>,
    name: Option<String>,
    done: Option<String>,
}

fn usernames(users: &[UserRecord]) -> HashMap<i64, String> {
    users.iter().map(|u| (u.id, u.username.clone())).collect()
}

/// `GET /keys` (site admins): every key with its owner, filtered by owner or name.
pub async fn list(
    State(state): State<Arc<WebState>>,
    Query(q): Query<ListQuery>,
    who: Signed,
) -> Result<Response, WebError> {
    rights::require_admin(&who.principal)?;
    let owners = usernames(&state.store.all_users().await?);
    let mut keys = state.store.all_keys(KeyOwnerFilter::All).await?;
    let owner = q.owner.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let name = q.name.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if let Some(owner) = owner {
        let owner = owner.to_lowercase();
        keys.retain(|k| match k.user_id {
            None => "site-wide".contains(&owner),
            Some(u) => owners
                .get(&u)
                .is_some_and(|n| n.to_lowercase().contains(&owner)),
        });
    }
    if let Some(name) = name {
        let name = name.to_lowercase();
        keys.retain(|k| k.name.to_lowercase().contains(&name));
    }
    Ok(page::layout(
        &who,
        Menu::Keys,
        "API keys",
        html! {
            (page::notice(page::done_message(q.done.as_deref())))
            form.card method="get" action="/keys" {
                div.row {
                    div {
                        label for="filter-owner" { "Owner" }
                        input #filter-owner type="search" name="owner" value=(owner.unwrap_or(""));
                    }
                    div {
                        label for="filter-name" { "Key name" }
                        input #filter-name type="search" name="name" value=(name.unwrap_or(""));
                    }
                }
                button.secondary type="submit" { "Filter" }
            }
            (table(&keys, Some(&owners), "/keys"))
            (add_form(&who, "/keys", "Add a site-wide key"))
        },
    ))
}

/// `POST /keys` (site admins): a site-wide key.
pub async fn create(
    State(state): State<Arc<WebState>>,
    posted: Posted,
) -> Result<Response, WebError> {
    let who = &posted.who;
    rights::require_admin(&who.principal)?;
    let spec = spec_from(&posted.form, KeyOwner::SiteWide, who)?;
    let created = state.accounts.create_key(&who.principal, spec).await?;
    Ok(show_once(who, Menu::Keys, &created, "/keys"))
}
