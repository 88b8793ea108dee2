//! `/users`: site admins manage users; a user may read their own record.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::caller::Authed;
use super::error::ApiError;
use super::pagination::{Direction, Position, page, per_page, set_cursors, sort_by};
use super::{ApiState, parse_id, time_json};
use crate::accounts::UserSpec;
use crate::model::UserRecord;
use crate::store::UserChanges;

const FIELDS: &[&str] = &[
    "username",
    "password",
    "name",
    "email",
    "site_admin",
    "disabled",
    "ftp_permission",
    "sftp_permission",
    "dav_permission",
    "restapi_permission",
    "allowed_ips",
];
const ECHOED: &[&str] = &[
    "id",
    "source",
    "active_2fa",
    "created_at",
    "last_login_at",
    "last_ftp_login_at",
    "last_sftp_login_at",
    "last_dav_login_at",
    "last_api_use_at",
    "api_keys_count",
    "public_keys_count",
];

async fn user_json(state: &ApiState, u: &UserRecord) -> Result<Value, ApiError> {
    let keys = state.store.count_keys_of(u.id).await?;
    let ssh_keys = state.store.public_keys_of(u.id).await?.len();
    let ips: Vec<&str> = u.allowed_ips.split(',').filter(|s| !s.is_empty()).collect();
    // filegate's own field: "ldap" for users from the directory (see README, LDAP).
    let source = match state.store.ldap_link(u.id).await? {
        Some(_) => "ldap",
        None => "local",
    };
    // Files.com's field: whether the user signs in with a second factor (TOTP).
    let active_2fa = state
        .store
        .totp_of(u.id)
        .await?
        .is_some_and(|t| t.confirmed);
    Ok(json!({
        "id": u.id,
        "username": u.username,
        "source": source,
        "active_2fa": active_2fa,
        "name": u.name,
        "email": u.email,
        "site_admin": u.site_admin,
        "disabled": u.disabled,
        "created_at": time_json(Some(u.created_at)),
        "last_login_at": time_json(u.last_login_at),
        "last_ftp_login_at": null,
        "last_sftp_login_at": null,
        "last_dav_login_at": null,
        "last_api_use_at": null,
        "ftp_permission": u.ftp_permission,
        "sftp_permission": u.sftp_permission,
        "dav_permission": u.dav_permission,
        "restapi_permission": u.restapi_permission,
        "allowed_ips": ips.join("\n"),
        "api_keys_count": keys,
        "public_keys_count": ssh_keys,
    }))
}

fn allowed_ips(p: &super::params::Params) -> Result<Option<String>, ApiError> {
    if !p.has("allowed_ips") {
        return Ok(None);
    }
    Ok(p.list("allowed_ips")?.map(|items| {
        items
            .iter()
            .flat_map(|s| s.split(['\n', ' ']))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(",")
    }))
}

fn changes(p: &super::params::Params) -> Result<UserChanges, ApiError> {
    Ok(UserChanges {
        site_admin: p.bool("site_admin")?,
        disabled: p.bool("disabled")?,
        sftp_permission: p.bool("sftp_permission")?,
        ftp_permission: p.bool("ftp_permission")?,
        dav_permission: p.bool("dav_permission")?,
        restapi_permission: p.bool("restapi_permission")?,
        allowed_ips: allowed_ips(p)?,
        name: if p.has("name") {
            Some(p.str("name")?)
        } else {
            None
        },
        email: if p.has("email") {
            Some(p.str("email")?)
        } else {
            None
        },
        password_hash: None,
    })
}

/// `GET /users`
pub async fn list(State(state): State<Arc<ApiState>>, call: Authed) -> Result<Response, ApiError> {
    call.require_admin()?;
    let p = &call.params;
    let (_, dir) = sort_by(p, &["id"], ("id", Direction::Asc))?;
    for op in [
        "filter",
        "filter_gt",
        "filter_gteq",
        "filter_lt",
        "filter_lteq",
        "filter_prefix",
    ] {
        if let Some((field, _)) = p.object(op)?.first() {
            return Err(ApiError::InvalidFilterField(
                field.chars().take(64).collect(),
            ));
        }
    }
    let per_page = per_page(p)?;
    let sort = format!("users:{dir:?}");
    let after = state.cursors.after(p, &sort)?;
    let users = state.store.all_users().await?;
    let shown = page(
        users,
        |u| Position { value: 0, id: u.id },
        dir,
        after,
        per_page,
    );
    let mut body = Vec::with_capacity(shown.items.len());
    for u in &shown.items {
        body.push(user_json(&state, u).await?);
    }
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

/// `GET /users/{id}`: admins, or the user themself.
pub async fn find(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    call: Authed,
) -> Result<Json<Value>, ApiError> {
    call.require_management()?;
    let id = parse_id(&id)?;
    call.params.check_id(id)?;
    if !call.is_admin() && call.user_id() != Some(id) {
        return Err(ApiError::SiteAdminRequired);
    }
    let user = state
        .store
        .user_by_id(id)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    Ok(Json(user_json(&state, &user).await?))
}

/// `POST /users`
pub async fn create(
    State(state): State<Arc<ApiState>>,
    call: Authed,
) -> Result<Response, ApiError> {
    call.require_admin()?;
    let p = &call.params;
    p.only(FIELDS, ECHOED)?;
    let spec = UserSpec {
        username: p.required_str("username")?,
        password: p.str("password")?,
        site_admin: p.bool("site_admin")?.unwrap_or(false),
        name: p.str("name")?,
        email: p.str("email")?,
    };
    let user = state.accounts.create_user(&call.principal, spec).await?;
    let rest = changes(p)?;
    let user = if rest.disabled.is_some()
        || rest.allowed_ips.is_some()
        || rest.sftp_permission.is_some()
        || rest.ftp_permission.is_some()
        || rest.dav_permission.is_some()
        || rest.restapi_permission.is_some()
    {
        state
            .accounts
            .update_user(&call.principal, user.id, rest, None)
            .await?
    } else {
        user
    };
    Ok((StatusCode::CREATED, Json(user_json(&state, &user).await?)).into_response())
}

/// `PATCH /users/{id}`
pub async fn update(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    call: Authed,
) -> Result<Json<Value>, ApiError> {
    call.require_admin()?;
    let id = parse_id(&id)?;
    let p = &call.params;
    p.check_id(id)?;
    p.only(FIELDS, ECHOED)?;
    let current = state
        .store
        .user_by_id(id)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    if let Some(name) = p.str("username")?
        && !name.eq_ignore_ascii_case(&current.username)
    {
        return Err(ApiError::ParamsInvalid(
            "usernames cannot be changed".into(),
        ));
    }
    let password = p.str("password")?;
    let user = state
        .accounts
        .update_user(&call.principal, id, changes(p)?, password.as_deref())
        .await?;
    Ok(Json(user_json(&state, &user).await?))
}

/// `DELETE /users/{id}`
pub async fn delete(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    call: Authed,
) -> Result<StatusCode, ApiError> {
    call.require_admin()?;
    let id = parse_id(&id)?;
    call.params.check_id(id)?;
    if call.user_id() == Some(id) {
        return Err(ApiError::ParamsInvalid("you cannot delete yourself".into()));
    }
    state
        .store
        .user_by_id(id)
        .await?
        .ok_or(ApiError::UserNotFound)?;
    state.accounts.delete_user(&call.principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
