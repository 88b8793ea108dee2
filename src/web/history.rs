//! History (`/history`): the audit log, newest first, with filters (user, key, protocol,
//! action, path prefix, result, time range), paged with the REST API's signed key-set
//! cursors. A user sees their own records; a site admin everyone's.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::WebState;
use super::error::WebError;
use super::page::{self, Menu};
use super::session::Signed;
use crate::api::Position;
use crate::path::SitePath;
use crate::rights;
use crate::store::AuditSearch;

/// Records per page.
const PER_PAGE: i64 = 50;

const PROTOCOLS: [&str; 6] = ["sftp", "ftp", "webdav", "restapi", "web", "cli"];
const ACTIONS: [&str; 11] = [
    "login",
    "list",
    "read",
    "create",
    "destroy",
    "mkdir",
    "rmdir",
    "move",
    "copy",
    "api_key_create",
    "api_key_delete",
];
const RESULTS: [&str; 3] = ["ok", "denied", "failed"];

#[derive(Deserialize, Default)]
pub struct Filters {
    user: Option<String>,
    key: Option<String>,
    protocol: Option<String>,
    action: Option<String>,
    path: Option<String>,
    result: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `GET /history`
pub async fn show(
    State(state): State<Arc<WebState>>,
    Query(f): Query<Filters>,
    who: Signed,
) -> Result<Response, WebError> {
    rights::require_management(&who.principal)?;
    let bad = |what: &str| WebError::BadRequest(format!("{what} is not valid"));
    let mut q = AuditSearch::default();
    if let Some(name) = given(&f.user) {
        let user = state.store.user_by_name(name).await?;
        // An unknown user has no records; another user's are for admins only.
        q.user_id = Some(user.map(|u| u.id).unwrap_or(-1));
    }
    if let Some(key) = given(&f.key) {
        q.key_id = Some(key.parse().map_err(|_| bad("Key"))?);
    }
    let pick =
        |v: &Option<String>, allowed: &[&str], what: &str| -> Result<Option<String>, WebError> {
            match given(v) {
                None => Ok(None),
                Some(s) if allowed.contains(&s) => Ok(Some(s.to_owned())),
                Some(_) => Err(bad(what)),
            }
        };
    q.protocol = pick(&f.protocol, &PROTOCOLS, "Protocol")?;
    q.action = pick(&f.action, &ACTIONS, "Action")?;
    q.result = pick(&f.result, &RESULTS, "Result")?;
    if let Some(p) = given(&f.path) {
        if p.split('/').any(|s| s == "..") {
            return Err(bad("Path prefix"));
        }
        q.path_prefix = Some(
            SitePath::parse(p)
                .map_err(|_| bad("Path prefix"))?
                .as_str()
                .to_owned(),
        );
    }
    let day = |v: &Option<String>, what: &str| -> Result<Option<i64>, WebError> {
        given(v)
            .map(|d| crate::model::parse_time(d).ok_or_else(|| bad(what)))
            .transpose()
    };
    q.start_ms = day(&f.from, "From")?.map(|s| s * 1000);
    q.end_ms = day(&f.to, "To")?.map(|s| (s + 86_399) * 1000 + 999);
    if !rights::is_admin(&who.principal) {
        let me = who.user_id();
        if q.user_id.is_some_and(|u| u != me) {
            return Err(WebError::Forbidden(
                "you may only see your own history".into(),
            ));
        }
        q.user_id = Some(me);
    }
    let sort = format!(
        "history:Desc:{:?}:{:?}:{:?}:{:?}:{:?}:{:?}:{:?}:{:?}:{}",
        q.user_id,
        q.key_id,
        q.protocol,
        q.action,
        q.path_prefix,
        q.result,
        q.start_ms,
        q.end_ms,
        PER_PAGE
    );
    if let Some(cursor) = given(&f.cursor) {
        q.after_id = Some(
            state
                .cursors
                .decode(&sort, cursor)
                .map_err(|_| bad("The page cursor"))?
                .id,
        );
    }
    q.limit = PER_PAGE + 1;
    let mut rows = state.store.search_audit(&q).await?;
    let more = rows.len() as i64 > PER_PAGE;
    rows.truncate(PER_PAGE as usize);
    let next = rows.last().filter(|_| more).map(|last| {
        state.cursors.encode(
            &sort,
            Position {
                value: 0,
                id: last.id,
            },
        )
    });
    // The next page's link keeps the filters.
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (k, v) in [
        ("user", &f.user),
        ("key", &f.key),
        ("protocol", &f.protocol),
        ("action", &f.action),
        ("path", &f.path),
        ("result", &f.result),
        ("from", &f.from),
        ("to", &f.to),
    ] {
        if let Some(v) = given(v) {
            pairs.push((k, v));
        }
    }
    let query = |extra: Option<(&str, &str)>| {
        let mut link = form_urlencoded::Serializer::new(String::new());
        link.extend_pairs(pairs.iter().copied().chain(extra));
        format!("/history?{}", link.finish())
    };
    let first_page = query(None);
    let next_page = next.map(|c| query(Some(("cursor", &c))));
    let select = |id: &str, name: &str, label: &str, options: &[&str], current: Option<&str>| {
        html! {
            div {
                label for=(id) { (label) }
                select id=(id) name=(name) {
                    option value="" { "any" }
                    @for o in options {
                        option value=(o) selected[current == Some(*o)] { (o) }
                    }
                }
            }
        }
    };
    Ok(page::layout(
        &who,
        Menu::History,
        "History",
        html! {
            form.card method="get" action="/history" {
                div.row {
                    @if who.is_admin() {
                        div { label for="h-user" { "User" } input #h-user type="text" name="user" value=(given(&f.user).unwrap_or("")); }
                    }
                    div { label for="h-key" { "Key ID" } input #h-key type="text" inputmode="numeric" name="key" value=(given(&f.key).unwrap_or("")); }
                    (select("h-protocol", "protocol", "Protocol", &PROTOCOLS, given(&f.protocol)))
                    (select("h-action", "action", "Action", &ACTIONS, given(&f.action)))
                    div { label for="h-path" { "Path prefix" } input #h-path type="text" name="path" value=(given(&f.path).unwrap_or("")) placeholder="/shared"; }
                    (select("h-result", "result", "Result", &RESULTS, given(&f.result)))
                    div { label for="h-from" { "From" } input #h-from type="date" name="from" value=(given(&f.from).unwrap_or("")); }
                    div { label for="h-to" { "To" } input #h-to type="date" name="to" value=(given(&f.to).unwrap_or("")); }
                }
                button type="submit" { "Filter" } " "
                a.button.secondary href="/history" { "Clear" }
            }
            @if rows.is_empty() {
                p.muted { "No records." }
            } @else {
                div.table-wrap { table {
                    thead { tr {
                        th { "When" } th { "User" } th { "Key" } th { "Protocol" } th { "Action" }
                        th { "Path" } th.hide-narrow { "Bytes" } th { "Result" } th.hide-narrow { "Address" }
                    } }
                    tbody { @for r in &rows {
                        tr {
                            td { (page::time(Some(r.at_ms.div_euclid(1000)))) }
                            td { (r.username.as_deref().unwrap_or("—")) }
                            td { @if let Some(k) = r.key_id { a href=(format!("/history?key={k}")) { (k) } } @else { "—" } }
                            td { (r.protocol) }
                            td { (r.action) }
                            td { (r.path.as_deref().unwrap_or("")) @if let Some(d) = &r.destination { " → " (d) } }
                            td.hide-narrow { @if let Some(b) = r.bytes { (b) } }
                            td { (r.result) @if let Some(reason) = &r.reason { " " span.muted { "(" (reason) ")" } } }
                            td.hide-narrow { (r.remote_addr.as_deref().unwrap_or("")) }
                        }
                    } }
                } }
            }
            nav.pager aria-label="Pages" {
                @if f.cursor.is_some() { a href=(first_page) { "Newest" } }
                @if let Some(n) = next_page { a href=(n) { "Older" } }
            }
        },
    ))
}
