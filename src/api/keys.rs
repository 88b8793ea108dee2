//! `/api_keys` and `/api_key`: the eight ApiKey operations of the seeds.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiState;
use super::caller::{Authed, Via};
use super::error::ApiError;
use super::pagination::{Direction, Position, page, per_page, set_cursors, sort_by};
use super::{parse_id, time_json};
use crate::accounts::{KeyOwner, KeySpec, KeyUpdate};
use crate::identity::PermissionSet;
use crate::model::KeyRecord;
use crate::store::KeyOwnerFilter;

/// Read-only fields clients echo back (e.g. the SDK's `save()`); ignored on input.
const ECHOED: &[&str] = &[
    "id",
    "descriptive_label",
    "created_at",
    "key",
    "last_use_at",
    "user_id",
    "aws_style_credentials",
    "aws_access_key_id",
    "aws_secret_key",
    "site_id",
    "site_name",
    "url",
    "workspace_id",
];

/// The ApiKey object; `secret` only in the answer to create.
pub fn key_json(k: &KeyRecord, secret: Option<&str>) -> Value {
    let label = match k.user_id {
        None => format!("Site-wide API key (key ID #{})", k.id),
        Some(_) => format!("User API key (key ID #{})", k.id),
    };
    json!({
        "id": k.id,
        "descriptive_label": label,
        "description": k.description,
        "created_at": time_json(Some(k.created_at)),
        "expires_at": time_json(k.expires_at),
        "key": secret,
        "last_use_at": time_json(k.last_use_at),
        "name": k.name,
        "path": k.path,
        "permission_set": k.permission_set,
        "platform": k.platform,
        "user_id": k.user_id,
    })
}

fn permission_set(p: &super::params::Params) -> Result<Option<PermissionSet>, ApiError> {
    match p.str("permission_set")? {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            ApiError::ParamsInvalid(
                "permission_set must be full, desktop_app, files_only, readonly or writeonly"
                    .into(),
            )
        }),
    }
}

/// `GET /api_keys`
pub async fn list(State(state): State<Arc<ApiState>>, call: Authed) -> Result<Response, ApiError> {
    call.require_management()?;
    let p = &call.params;
    let owner = match p.i64("user_id")? {
        None if call.is_admin() => KeyOwnerFilter::All,
        None | Some(0) => match call.user_id() {
            Some(me) => KeyOwnerFilter::User(me),
            None => KeyOwnerFilter::SiteWide,
        },
        Some(id) => {
            let target = call.acting_for(id)?;
            if let Some(user) = target {
                state
                    .store
                    .user_by_id(user)
                    .await?
                    .ok_or(ApiError::UserNotFound)?;
            }
            target
                .map(KeyOwnerFilter::User)
                .unwrap_or(KeyOwnerFilter::SiteWide)
        }
    };
    let (field, dir) = sort_by(p, &["expires_at"], ("id", Direction::Asc))?;
    let filters = expiry_filters(p)?;
    let per_page = per_page(p)?;
    let sort = format!("api_keys:{owner:?}:{field}:{dir:?}:{filters:?}");
    let after = state.cursors.after(p, &sort)?;
    let mut keys = state.store.all_keys(owner).await?;
    keys.retain(|k| filters.iter().all(|f| f.matches(k.expires_at)));
    let by_field = field == "expires_at";
    let position = move |k: &KeyRecord| Position {
        value: if by_field {
            k.expires_at.unwrap_or(i64::MAX)
        } else {
            0
        },
        id: k.id,
    };
    let shown = page(keys, position, dir, after, per_page);
    let body: Vec<Value> = shown.items.iter().map(|k| key_json(k, None)).collect();
    let mut response = Json(body).into_response();
    set_cursors(
        response.headers_mut(),
        &state.cursors,
        &sort,
        shown.next,
        shown.prev,
    );
    Ok(response)
}

#[derive(Debug)]
struct Filter {
    op: &'static str,
    at: i64,
}

impl Filter {
    fn matches(&self, value: Option<i64>) -> bool {
        let Some(v) = value else { return false };
        match self.op {
            "filter" => v == self.at,
            "filter_gt" => v > self.at,
            "filter_gteq" => v >= self.at,
            "filter_lt" => v < self.at,
            _ => v <= self.at,
        }
    }
}

fn expiry_filters(p: &super::params::Params) -> Result<Vec<Filter>, ApiError> {
    let mut out = Vec::new();
    for op in [
        "filter",
        "filter_gt",
        "filter_gteq",
        "filter_lt",
        "filter_lteq",
        "filter_like",
        "filter_prefix",
    ] {
        for (field, value) in p.object(op)? {
            if field != "expires_at" || op == "filter_prefix" || op == "filter_like" {
                return Err(ApiError::InvalidFilterField(format!(
                    "{op}[{}]",
                    field.chars().take(64).collect::<String>()
                )));
            }
            let at = crate::model::parse_time(&value).ok_or_else(|| {
                ApiError::ParamsInvalid(format!("{op}[expires_at] must be a time"))
            })?;
            out.push(Filter { op, at });
        }
    }
    Ok(out)
}

/// `GET /api_key`
pub async fn find_current(
    State(state): State<Arc<ApiState>>,
    call: Authed,
) -> Result<Json<Value>, ApiError> {
    let Some(key) = &call.principal.key else {
        return Err(ApiError::KeyRequired);
    };
    let record = state
        .store
        .key_by_id(key.id)
        .await?
        .ok_or(ApiError::InvalidCredentials)?;
    Ok(Json(key_json(&record, None)))
}

/// A key the caller may manage: theirs, or any for an admin. Others look absent.
async fn visible_key(state: &ApiState, call: &Authed, id: i64) -> Result<KeyRecord, ApiError> {
    let key = state
        .store
        .key_by_id(id)
        .await?
        .ok_or(ApiError::ApiKeyNotFound)?;
    if call.may_manage_key(&key) {
        Ok(key)
    } else {
        Err(ApiError::ApiKeyNotFound)
    }
}

/// `GET /api_keys/{id}`
pub async fn find(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    call: Authed,
) -> Result<Json<Value>, ApiError> {
    call.require_management()?;
    let id = parse_id(&id)?;
    call.params.check_id(id)?;
    Ok(Json(key_json(&visible_key(&state, &call, id).await?, None)))
}

/// `POST /api_keys`
pub async fn create(
    State(state): State<Arc<ApiState>>,
    call: Authed,
) -> Result<Response, ApiError> {
    call.require_management()?;
    let p = &call.params;
    p.only(
        &[
            "user_id",
            "name",
            "expires_at",
            "permission_set",
            "path",
            "description",
            "platform",
        ],
        ECHOED,
    )?;
    let name = p.required_str("name")?;
    let owner = match p.i64("user_id")? {
        None if call.is_admin() => KeyOwner::SiteWide,
        None => KeyOwner::User(call.user_id().ok_or(ApiError::SiteAdminRequired)?),
        Some(id) => match call.acting_for(id)? {
            Some(user) => {
                state
                    .store
                    .user_by_id(user)
                    .await?
                    .ok_or(ApiError::UserNotFound)?;
                KeyOwner::User(user)
            }
            None => KeyOwner::SiteWide,
        },
    };
    let spec = KeySpec {
        owner,
        name,
        description: p.str("description")?,
        path: p.str("path")?,
        permission_set: permission_set(p)?.unwrap_or(PermissionSet::Full),
        expires_at: p.time("expires_at")?,
        platform: p.str("platform")?,
        created_by: call.user_id(),
    };
    let created = state.accounts.create_key(&call.principal, spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(key_json(&created.record, Some(&created.secret))),
    )
        .into_response())
}

fn update_from(p: &super::params::Params, with_path: bool) -> Result<KeyUpdate, ApiError> {
    let mut update = KeyUpdate {
        name: p.str("name")?,
        permission_set: permission_set(p)?,
        ..Default::default()
    };
    if p.has("expires_at") {
        update.expires_at = Some(p.time("expires_at")?);
    }
    if p.has("description") {
        update.description = Some(p.str("description")?);
    }
    if with_path && p.has("path") {
        update.path = Some(p.str("path")?);
    }
    Ok(update)
}

/// `PATCH /api_key`: a key renames itself or narrows itself (permission set at or below its
/// own, an expiry never removed nor moved later).
pub async fn update_current(
    State(state): State<Arc<ApiState>>,
    call: Authed,
) -> Result<Json<Value>, ApiError> {
    let Some(key) = call.principal.key.clone() else {
        return Err(ApiError::KeyRequired);
    };
    match key.permission_set {
        PermissionSet::Full | PermissionSet::DesktopApp => {}
        _ => return Err(ApiError::OnlyForFileOperations),
    }
    call.params.only(
        &["name", "expires_at", "permission_set", "description"],
        ECHOED,
    )?;
    // A key changing itself may only narrow (accounts::check_narrowing).
    let update = update_from(&call.params, false)?;
    let record = state
        .accounts
        .update_key(&call.principal, key.id, update)
        .await?;
    Ok(Json(key_json(&record, None)))
}

/// `PATCH /api_keys/{id}`: any key for an admin; a user's own keys, narrowing only.
pub async fn update(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    call: Authed,
) -> Result<Json<Value>, ApiError> {
    call.require_management()?;
    let id = parse_id(&id)?;
    call.params.check_id(id)?;
    call.params.only(
        &[
            "name",
            "description",
            "expires_at",
            "permission_set",
            "path",
        ],
        ECHOED,
    )?;
    visible_key(&state, &call, id).await?;
    let update = update_from(&call.params, true)?;
    let record = state
        .accounts
        .update_key(&call.principal, id, update)
        .await?;
    Ok(Json(key_json(&record, None)))
}

/// `DELETE /api_key`: a key revokes itself.
pub async fn delete_current(
    State(state): State<Arc<ApiState>>,
    call: Authed,
) -> Result<StatusCode, ApiError> {
    let (Some(key), Via::Key) = (&call.principal.key, &call.via) else {
        return Err(ApiError::KeyRequired);
    };
    state.accounts.revoke_key(&call.principal, key.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api_keys/{id}`: own keys (unless an admin made it for you), any for admins.
pub async fn delete(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    call: Authed,
) -> Result<StatusCode, ApiError> {
    call.require_management()?;
    let id = parse_id(&id)?;
    call.params.check_id(id)?;
    let key = visible_key(&state, &call, id).await?;
    if !call.is_admin()
        && key.created_by_user_id.is_some()
        && key.created_by_user_id != call.user_id()
    {
        return Err(ApiError::SiteAdminRequired);
    }
    state.accounts.revoke_key(&call.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
