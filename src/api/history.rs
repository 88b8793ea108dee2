//! `/history…`: the audit log as Files.com Action objects. Admins see everything, others
//! their own actions only.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::caller::Authed;
use super::error::ApiError;
use super::pagination::{Direction, Position, per_page, set_cursors, sort_by};
use super::{ApiState, parse_id, time_json};
use crate::audit::AuditRecord;
use crate::path::SitePath;
use crate::store::AuditSearch;

fn action_json(r: &AuditRecord) -> Value {
    json!({
        "id": r.id,
        "when": time_json(Some(r.at_ms.div_euclid(1000))),
        "user_id": r.user_id,
        "username": r.username,
        "key_id": r.key_id,
        "action": r.action,
        "interface": r.protocol,
        "path": r.path.as_deref().map(|p| p.trim_start_matches('/')),
        "destination": r.destination.as_deref().map(|p| p.trim_start_matches('/')),
        "ip": r.remote_addr,
        "failure_type": if r.result == "ok" { None } else { Some(r.reason.clone().unwrap_or_else(|| r.result.clone())) },
        "source": r.path,
        "bytes": r.bytes,
        "result": r.result,
        "node": r.node,
    })
}

/// Which part of the log a route shows.
enum Scope {
    All,
    Logins,
    User(i64),
    File(String),
    Folder(String),
}

async fn search(state: &ApiState, call: &Authed, scope: Scope) -> Result<Response, ApiError> {
    call.require_management()?;
    let p = &call.params;
    let (_, dir) = sort_by(p, &["created_at"], ("created_at", Direction::Desc))?;
    let mut q = AuditSearch {
        ascending: dir == Direction::Asc,
        ..Default::default()
    };
    match scope {
        Scope::All => {}
        Scope::Logins => q.logins_only = true,
        Scope::User(id) => q.user_id = Some(id),
        Scope::File(path) => q.path = Some(path),
        Scope::Folder(path) => {
            q.path_prefix = Some(if path == "/" {
                path
            } else {
                format!("{path}/")
            })
        }
    }
    for (field, value) in p.object("filter")? {
        match field.as_str() {
            "user_id" => {
                q.user_id = Some(value.parse().map_err(|_| {
                    ApiError::ParamsInvalid("filter[user_id] must be an integer".into())
                })?)
            }
            "path" => q.path = Some(site_path(&value)?),
            other => {
                return Err(ApiError::InvalidFilterField(
                    other.chars().take(64).collect(),
                ));
            }
        }
    }
    for (field, value) in p.object("filter_prefix")? {
        match field.as_str() {
            "path" => q.path_prefix = Some(site_path(&value)?),
            other => {
                return Err(ApiError::InvalidFilterField(
                    other.chars().take(64).collect(),
                ));
            }
        }
    }
    for op in [
        "filter_gt",
        "filter_gteq",
        "filter_lt",
        "filter_lteq",
        "filter_like",
    ] {
        if let Some((field, _)) = p.object(op)?.first() {
            return Err(ApiError::InvalidFilterField(
                field.chars().take(64).collect(),
            ));
        }
    }
    q.start_ms = p.time("start_at")?.map(|s| s * 1000);
    q.end_ms = p.time("end_at")?.map(|s| s * 1000 + 999);
    if !call.is_admin() {
        let me = call.user_id().ok_or(ApiError::SiteAdminRequired)?;
        if q.user_id.is_some_and(|u| u != me) {
            return Err(ApiError::CantActForOtherUser);
        }
        q.user_id = Some(me);
    }
    let per_page = per_page(p)?;
    let sort = format!(
        "history:{dir:?}:{:?}:{:?}:{:?}:{:?}:{:?}:{:?}:{}",
        q.user_id, q.path, q.path_prefix, q.start_ms, q.end_ms, q.logins_only, per_page
    );
    q.after_id = state.cursors.after(p, &sort)?.map(|pos| pos.id);
    q.limit = per_page + 1;
    let mut rows = state.store.search_audit(&q).await?;
    let more = rows.len() as i64 > per_page;
    rows.truncate(per_page as usize);
    let body: Vec<Value> = rows.iter().map(action_json).collect();
    let mut response = Json(body).into_response();
    let next = rows.last().filter(|_| more).map(|last| Position {
        value: 0,
        id: last.id,
    });
    set_cursors(response.headers_mut(), &state.cursors, &sort, next, None);
    Ok(response)
}

fn site_path(text: &str) -> Result<String, ApiError> {
    SitePath::parse(text)
        .map(|p| p.as_str().to_owned())
        .map_err(|e| ApiError::ParamsInvalid(format!("path: {e}")))
}

/// `GET /history`
pub async fn all(State(state): State<Arc<ApiState>>, call: Authed) -> Result<Response, ApiError> {
    search(&state, &call, Scope::All).await
}

/// `GET /history/login`
pub async fn logins(
    State(state): State<Arc<ApiState>>,
    call: Authed,
) -> Result<Response, ApiError> {
    search(&state, &call, Scope::Logins).await
}

/// `GET /history/users/{id}`
pub async fn user(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    call: Authed,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    search(&state, &call, Scope::User(id)).await
}

/// `GET /history/files/{path}`
pub async fn file(
    State(state): State<Arc<ApiState>>,
    Path(path): Path<String>,
    call: Authed,
) -> Result<Response, ApiError> {
    let path = site_path(&path)?;
    search(&state, &call, Scope::File(path)).await
}

/// `GET /history/folders/{path}`
pub async fn folder(
    State(state): State<Arc<ApiState>>,
    Path(path): Path<String>,
    call: Authed,
) -> Result<Response, ApiError> {
    let path = site_path(&path)?;
    search(&state, &call, Scope::Folder(path)).await
}
