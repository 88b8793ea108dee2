//! `/behaviors` (Files.com folder behaviors; filegate has the `webhook` type) and
//! `/webhook_deliveries` (the outbox, newest first). Site admins only (a session, or a
//! `full` key of an admin or a site-wide one): a webhook sends what happens in its folder to
//! a URL, whoever acts there.
//!
//! Shapes follow Files.com's `Behavior` (`files_sdk/models/behavior.py`): `path` without
//! leading or trailing slash, `behavior`, `name`, `description`, `value` (`urls`, `method`,
//! `triggers`, `encoding`, `headers`, `body`), `recursive` (always true for webhooks). The
//! signing secret is in `value.signing_secret` of the create answer only.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::caller::Authed;
use super::error::ApiError;
use super::pagination::{Direction, Position, page, per_page, set_cursors, sort_by};
use super::{ApiState, parse_id};
use crate::path::SitePath;
use crate::store::{BehaviorRow, DeliveryRow};
use crate::webhooks::WebhookValue;
use crate::webhooks::guard::Allow;

fn behavior_json(row: &BehaviorRow) -> Value {
    let value = row.rule().map(|r| r.value.to_json()).unwrap_or(Value::Null);
    json!({
        "id": row.id,
        "path": row.path.trim_start_matches('/'),
        "attachment_url": null,
        "behavior": row.behavior,
        "name": row.name,
        "description": row.description,
        "value": value,
        "public_hosting_url": null,
        "disable_parent_folder_behavior": false,
        "recursive": true,
        "inherited": false,
        "managed": false,
        "root_behavior_site_admin_only": row.path == "/",
    })
}

fn allow(state: &ApiState) -> Allow {
    state
        .webhooks
        .as_ref()
        .map(|s| s.allow.clone())
        .unwrap_or_default()
}

/// A Files.com folder path (`a/b`, `/a/b/`, `` for the root) as a site path.
fn folder(text: &str) -> Result<String, ApiError> {
    if text.len() > 5000 {
        return Err(ApiError::ParamsInvalid("path is too long".into()));
    }
    if text.split(['/', '\\']).any(|seg| seg == ".." || seg == ".") {
        return Err(ApiError::ParamsInvalid(
            "path: . and .. are not allowed in a behavior's path".into(),
        ));
    }
    SitePath::parse(&format!("/{}", text.trim_matches('/')))
        .map(|p| p.as_str().to_owned())
        .map_err(|e| ApiError::ParamsInvalid(format!("path: {e}")))
}

fn parse_value(state: &ApiState, call: &Authed) -> Result<Option<(Value, String)>, ApiError> {
    let Some(raw) = call.params.value("value") else {
        return Ok(None);
    };
    let parsed = WebhookValue::parse(raw, &allow(state))
        .map_err(|e| ApiError::ParamsInvalid(e.to_string()))?;
    let json = parsed.to_json();
    Ok(Some((json.clone(), json.to_string())))
}

fn optional_text(call: &Authed, key: &str) -> Result<Option<String>, ApiError> {
    let v = call.params.str(key)?;
    if v.as_ref().is_some_and(|s| s.chars().count() > 1000) {
        return Err(ApiError::ParamsInvalid(format!("{key} is too long")));
    }
    Ok(v)
}

async fn listing(
    state: &ApiState,
    call: &Authed,
    rows: Vec<BehaviorRow>,
    scope: &str,
) -> Result<Response, ApiError> {
    let p = &call.params;
    let (_, dir) = sort_by(p, &["behavior"], ("behavior", Direction::Asc))?;
    let mut kind = None;
    for (field, v) in p.object("filter")? {
        match field.as_str() {
            "behavior" => kind = Some(v),
            "impacts_ui" => {}
            other => {
                return Err(ApiError::InvalidFilterField(
                    other.chars().take(64).collect(),
                ));
            }
        }
    }
    let per_page = per_page(p)?;
    let sort = format!("behaviors:{scope}:{dir:?}:{kind:?}:{per_page}");
    let after = state.cursors.after(p, &sort)?;
    let rows: Vec<BehaviorRow> = rows
        .into_iter()
        .filter(|r| kind.as_deref().is_none_or(|k| r.behavior == k))
        .collect();
    let at = |r: &BehaviorRow| Position { value: 0, id: r.id };
    let pg = page(rows, at, dir, after, per_page);
    let body: Vec<Value> = pg.items.iter().map(behavior_json).collect();
    let mut response = Json(body).into_response();
    set_cursors(
        response.headers_mut(),
        &state.cursors,
        &sort,
        pg.next,
        pg.prev,
    );
    Ok(response)
}

/// `GET /behaviors`
pub async fn list(State(state): State<Arc<ApiState>>, call: Authed) -> Result<Response, ApiError> {
    call.require_admin()?;
    let rows = state.store.behaviors().await?;
    listing(&state, &call, rows, "all").await
}

/// `GET /behaviors/folders/{path}`: the behaviors of that folder (and of the folders above
/// it with `ancestor_behaviors=true`).
pub async fn list_for(
    State(state): State<Arc<ApiState>>,
    Path(path): Path<String>,
    call: Authed,
) -> Result<Response, ApiError> {
    call.require_admin()?;
    let target = folder(&path)?;
    let ancestors = call.params.bool("ancestor_behaviors")?.unwrap_or(false);
    let rows = state
        .store
        .behaviors()
        .await?
        .into_iter()
        .filter(|r| r.path == target || (ancestors && crate::webhooks::beneath(&r.path, &target)))
        .collect();
    listing(&state, &call, rows, &target).await
}

/// `GET /behaviors/folders/` (the site root).
pub async fn list_for_root(
    state: State<Arc<ApiState>>,
    call: Authed,
) -> Result<Response, ApiError> {
    list_for(state, Path(String::new()), call).await
}

/// `GET /behaviors/{id}`
pub async fn find(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    call: Authed,
) -> Result<Json<Value>, ApiError> {
    call.require_admin()?;
    let id = parse_id(&id)?;
    call.params.check_id(id)?;
    let row = state.store.behavior(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(behavior_json(&row)))
}

/// `POST /behaviors` `{path, behavior: "webhook", value, name, description}`
pub async fn create(
    State(state): State<Arc<ApiState>>,
    call: Authed,
) -> Result<Response, ApiError> {
    call.require_admin()?;
    let p = &call.params;
    p.only(
        &[
            "path",
            "behavior",
            "value",
            "name",
            "description",
            "recursive",
            "disable_parent_folder_behavior",
        ],
        &["id"],
    )?;
    let path = folder(
        &p.str("path")?
            .ok_or_else(|| ApiError::ParamsRequired("path is required".into()))?,
    )?;
    let behavior = p.required_str("behavior")?;
    if behavior != "webhook" {
        return Err(ApiError::ParamsInvalid(
            "behavior: only webhook behaviors are supported".into(),
        ));
    }
    if p.bool("recursive")? == Some(false)
        || p.bool("disable_parent_folder_behavior")? == Some(true)
    {
        return Err(ApiError::ParamsInvalid(
            "webhook behaviors are always recursive and cannot disable a parent's".into(),
        ));
    }
    let (mut shown, stored) = parse_value(&state, &call)?
        .ok_or_else(|| ApiError::ParamsRequired("value is required".into()))?;
    let name = optional_text(&call, "name")?;
    let description = optional_text(&call, "description")?;
    let secret = crate::secret::random_hex(32);
    let id = state
        .store
        .create_behavior(
            &path,
            &behavior,
            name.as_deref(),
            description.as_deref(),
            &stored,
            &secret,
        )
        .await?;
    let row = state.store.behavior(id).await?.ok_or(ApiError::NotFound)?;
    let mut body = behavior_json(&row);
    if let Value::Object(v) = &mut shown {
        v.insert("signing_secret".into(), Value::String(secret));
    }
    body["value"] = shown;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `PATCH /behaviors/{id}` `{value, name, description}` (the path cannot change).
pub async fn update(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    call: Authed,
) -> Result<Json<Value>, ApiError> {
    call.require_admin()?;
    let id = parse_id(&id)?;
    let p = &call.params;
    p.check_id(id)?;
    p.only(
        &[
            "value",
            "name",
            "description",
            "recursive",
            "disable_parent_folder_behavior",
            "attachment_delete",
        ],
        &["id", "path", "behavior"],
    )?;
    let row = state.store.behavior(id).await?.ok_or(ApiError::NotFound)?;
    if let Some(path) = p.str("path")?
        && folder(&path)? != row.path
    {
        return Err(ApiError::ParamsInvalid(
            "a behavior's path cannot change; delete it and create another".into(),
        ));
    }
    let value = match parse_value(&state, &call)? {
        Some((_, stored)) => stored,
        None => row.value.clone(),
    };
    let name = if p.has("name") {
        optional_text(&call, "name")?
    } else {
        row.name.clone()
    };
    let description = if p.has("description") {
        optional_text(&call, "description")?
    } else {
        row.description.clone()
    };
    if !state
        .store
        .update_behavior(id, name.as_deref(), description.as_deref(), &value)
        .await?
    {
        return Err(ApiError::NotFound);
    }
    let row = state.store.behavior(id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(behavior_json(&row)))
}

/// `DELETE /behaviors/{id}`
pub async fn delete(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    call: Authed,
) -> Result<StatusCode, ApiError> {
    call.require_admin()?;
    let id = parse_id(&id)?;
    call.params.check_id(id)?;
    if state.store.delete_behavior(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// `POST /behaviors/webhook/test` `{url, method, encoding, headers, body, action}`: sends one
/// test delivery now (through the SSRF guard, signed with an empty secret) and answers with
/// the receiver's status; a refused or failed request is a 422 naming why.
pub async fn test(State(state): State<Arc<ApiState>>, call: Authed) -> Result<Response, ApiError> {
    call.require_admin()?;
    let p = &call.params;
    p.only(
        &["url", "method", "encoding", "headers", "body", "action"],
        &[],
    )?;
    let url = p.required_str("url")?;
    let mut raw = serde_json::Map::new();
    raw.insert("urls".into(), json!([url]));
    for key in ["method", "encoding", "headers", "body"] {
        if let Some(v) = p.value(key) {
            raw.insert(key.into(), v.clone());
        }
    }
    let value = WebhookValue::parse(&Value::Object(raw), &allow(&state))
        .map_err(|e| ApiError::ParamsInvalid(e.to_string()))?;
    let action = p.str("action")?.unwrap_or_else(|| "test".into());
    let payload = json!({
        "action": action.chars().take(64).collect::<String>(),
        "type": "file",
        "path": "filegate-webhook-test.txt",
        "at": crate::model::format_time(chrono::Utc::now().timestamp()),
        "event_key": "test",
    });
    let Some(sender) = state.webhooks.as_ref() else {
        return Err(ApiError::SaveFailed(
            "webhook delivery is disabled on this server".into(),
        ));
    };
    let out = crate::webhooks::outgoing(
        &value,
        "",
        &url,
        &payload,
        "test",
        chrono::Utc::now().timestamp(),
    );
    match sender.send(&out).await {
        Ok(answer) if (200..300).contains(&answer.status) => {
            Ok(Json(json!({"status": answer.status, "success": true})).into_response())
        }
        Ok(answer) => Err(ApiError::SaveFailed(format!(
            "the receiver answered HTTP {}",
            answer.status
        ))),
        Err(err) => Err(ApiError::SaveFailed(format!("webhook test failed: {err}"))),
    }
}

fn delivery_json(d: &DeliveryRow) -> Value {
    let ms = |t: i64| {
        chrono::DateTime::from_timestamp_millis(t)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
    };
    json!({
        "id": d.id,
        "behavior_id": d.behavior_id,
        "event_key": d.event_key,
        "action": d.action,
        "path": d.path.as_deref().map(|p| p.trim_start_matches('/')),
        "status": d.state,
        "attempts": d.attempts,
        "created_at": ms(d.created_ms),
        "next_attempt_at": (d.state == "pending").then(|| ms(d.next_attempt_ms)).flatten(),
        "completed_at": d.done_ms.and_then(ms),
        "last_http_status": d.last_status,
        "last_error": d.last_error,
        "last_url": d.last_url,
    })
}

/// `GET /webhook_deliveries`: outbox rows newest first; `filter[behavior_id]`,
/// `filter[status]` (`pending`, `delivered`, `failed`), `per_page`, `cursor`.
pub async fn deliveries(
    State(state): State<Arc<ApiState>>,
    call: Authed,
) -> Result<Response, ApiError> {
    call.require_admin()?;
    let p = &call.params;
    let mut behavior = None;
    let mut status = None;
    for (field, v) in p.object("filter")? {
        match field.as_str() {
            "behavior_id" => {
                behavior = Some(v.parse::<i64>().map_err(|_| {
                    ApiError::ParamsInvalid("filter[behavior_id] must be an integer".into())
                })?)
            }
            "status" if ["pending", "delivered", "failed"].contains(&v.as_str()) => {
                status = Some(v)
            }
            "status" => {
                return Err(ApiError::ParamsInvalid(
                    "filter[status] must be pending, delivered or failed".into(),
                ));
            }
            other => {
                return Err(ApiError::InvalidFilterField(
                    other.chars().take(64).collect(),
                ));
            }
        }
    }
    let per_page = per_page(p)?;
    let sort = format!("webhook_deliveries:{behavior:?}:{status:?}:{per_page}");
    let before = state.cursors.after(p, &sort)?.map(|pos| pos.id);
    let mut rows = state
        .store
        .deliveries(before, behavior, status.as_deref(), per_page + 1)
        .await?;
    let more = rows.len() as i64 > per_page;
    rows.truncate(per_page as usize);
    let body: Vec<Value> = rows.iter().map(delivery_json).collect();
    let mut response = Json(body).into_response();
    let next = rows.last().filter(|_| more).map(|last| Position {
        value: 0,
        id: last.id,
    });
    set_cursors(response.headers_mut(), &state.cursors, &sort, next, None);
    Ok(response)
}
