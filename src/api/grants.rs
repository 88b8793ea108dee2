//! `/permissions` (folder grants) and `/public_keys` (SSH keys for SFTP).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::caller::Authed;
use super::error::ApiError;
use super::{ApiState, parse_id, time_json};
use crate::identity::GrantLevel;
use crate::model::{GrantRecord, PublicKeyRecord};

fn grant_json(g: &GrantRecord, username: &str) -> Value {
    json!({
        "id": g.id,
        "user_id": g.user_id,
        "username": username,
        "path": g.path.trim_start_matches('/'),
        "permission": g.level,
        "recursive": true,
    })
}

async fn username(state: &ApiState, id: i64) -> Result<String, ApiError> {
    Ok(state
        .store
        .user_by_id(id)
        .await?
        .map(|u| u.username)
        .unwrap_or_default())
}

/// `GET /permissions`: `filter[user_id]`, `filter_prefix[path]`.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    call: Authed,
) -> Result<Json<Value>, ApiError> {
    call.require_management()?;
    let p = &call.params;
    let mut user_filter = p.i64("user_id")?;
    let mut prefix = None;
    for (op, field, value) in ["filter", "filter_prefix"].iter().flat_map(|op| {
        p.object(op)
            .unwrap_or_default()
            .into_iter()
            .map(move |(f, v)| (*op, f, v))
    }) {
        match (op, field.as_str()) {
            ("filter", "user_id") => {
                user_filter = Some(value.parse().map_err(|_| {
                    ApiError::ParamsInvalid("filter[user_id] must be an integer".into())
                })?)
            }
            ("filter_prefix", "path") => prefix = Some(value.trim_start_matches('/').to_owned()),
            _ => {
                return Err(ApiError::InvalidFilterField(format!(
                    "{op}[{}]",
                    field.chars().take(64).collect::<String>()
                )));
            }
        }
    }
    let users: Vec<i64> = match user_filter {
        Some(id) => call.acting_for(id)?.into_iter().collect(),
        None if call.is_admin() => state
            .store
            .all_users()
            .await?
            .iter()
            .map(|u| u.id)
            .collect(),
        None => call.user_id().into_iter().collect(),
    };
    let mut out = Vec::new();
    for user in users {
        let name = username(&state, user).await?;
        for g in state.store.grants_of(user).await? {
            if prefix
                .as_deref()
                .is_none_or(|pre| g.path.trim_start_matches('/').starts_with(pre))
            {
                out.push(grant_json(&g, &name));
            }
        }
    }
    Ok(Json(Value::Array(out)))
}

/// `POST /permissions` `{user_id, path, permission}`
pub async fn create(
    State(state): State<Arc<ApiState>>,
    call: Authed,
) -> Result<Response, ApiError> {
    call.require_admin()?;
    let p = &call.params;
    p.only(
        &["user_id", "path", "permission", "recursive"],
        &["id", "username", "group_id"],
    )?;
    let user_id = p
        .i64("user_id")?
        .ok_or_else(|| ApiError::ParamsRequired("user_id is required".into()))?;
    let path = p.str("path")?.unwrap_or_default();
    let level: GrantLevel = p
        .str("permission")?
        .unwrap_or_else(|| "full".into())
        .parse()
        .map_err(|_| {
            ApiError::ParamsInvalid("permission must be full, readonly, writeonly or list".into())
        })?;
    state
        .store
        .user_by_id(user_id)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    let absolute = format!("/{}", path.trim_start_matches('/'));
    let grant = state
        .accounts
        .grant(&call.principal, user_id, &absolute, level)
        .await?;
    let name = username(&state, user_id).await?;
    Ok((StatusCode::CREATED, Json(grant_json(&grant, &name))).into_response())
}

/// `DELETE /permissions/{id}`
pub async fn delete(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    call: Authed,
) -> Result<StatusCode, ApiError> {
    call.require_admin()?;
    let id = parse_id(&id)?;
    call.params.check_id(id)?;
    state.accounts.revoke_grant(&call.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn public_key_json(k: &PublicKeyRecord, username: &str) -> Value {
    let fingerprint = russh::keys::PublicKey::from_openssh(&k.public_key)
        .map(|key| key.fingerprint(Default::default()).to_string())
        .unwrap_or_default();
    json!({
        "id": k.id,
        "title": k.title,
        "created_at": time_json(Some(k.created_at)),
        "fingerprint": fingerprint,
        "fingerprint_sha256": fingerprint,
        "user_id": k.user_id,
        "username": username,
    })
}

/// `GET /public_keys` (`user_id`: 0 or absent = me; another user: admins).
pub async fn list_public_keys(
    State(state): State<Arc<ApiState>>,
    call: Authed,
) -> Result<Json<Value>, ApiError> {
    call.require_management()?;
    let user = call
        .acting_for(call.params.i64("user_id")?.unwrap_or(0))?
        .ok_or(ApiError::ParamsRequired("user_id is required".into()))?;
    let name = username(&state, user).await?;
    let keys = state.store.public_keys_of(user).await?;
    Ok(Json(Value::Array(
        keys.iter().map(|k| public_key_json(k, &name)).collect(),
    )))
}

/// `POST /public_keys` `{user_id, title, public_key}`
pub async fn create_public_key(
    State(state): State<Arc<ApiState>>,
    call: Authed,
) -> Result<Response, ApiError> {
    call.require_management()?;
    let p = &call.params;
    p.only(&["user_id", "title", "public_key"], &["id"])?;
    let user = call
        .acting_for(p.i64("user_id")?.unwrap_or(0))?
        .ok_or(ApiError::ParamsRequired("user_id is required".into()))?;
    state
        .store
        .user_by_id(user)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    let title = p.required_str("title")?;
    let line = p.required_str("public_key")?;
    let record = state
        .accounts
        .add_public_key(&call.principal, user, &title, &line)
        .await?;
    let name = username(&state, user).await?;
    Ok((StatusCode::CREATED, Json(public_key_json(&record, &name))).into_response())
}

/// `DELETE /public_keys/{id}`
pub async fn delete_public_key(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    call: Authed,
) -> Result<StatusCode, ApiError> {
    call.require_management()?;
    let id = parse_id(&id)?;
    call.params.check_id(id)?;
    let owner = if call.is_admin() {
        None
    } else {
        call.user_id()
    };
    state
        .accounts
        .delete_public_key(&call.principal, id, owner)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
