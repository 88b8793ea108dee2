//! `/sessions/active`: the live SFTP and FTP sessions of every replica (site admins only),
//! from the session registry (`crate::sessions`); `DELETE /sessions/active/{id}` ends one on
//! whichever replica holds it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::caller::Authed;
use super::error::ApiError;
use super::pagination::{Position, per_page, set_cursors};
use super::{ApiState, parse_id, time_json};
use crate::sessions::{Ended, Registry};
use crate::store::LiveRow;

fn session_json(s: &LiveRow) -> Value {
    json!({
        "id": s.id,
        "interface": s.protocol,
        "username": s.username,
        "user_id": s.user_id,
        "api_key_id": s.key_id,
        "ip": s.client_ip,
        "created_at": time_json(Some(s.started_at)),
        "bytes_received": s.bytes_in,
        "bytes_sent": s.bytes_out,
        "replica": s.replica,
    })
}

fn registry(state: &ApiState) -> Result<&Arc<Registry>, ApiError> {
    state.sessions.as_ref().ok_or(ApiError::NotFound)
}

/// `GET /sessions/active`: oldest first, `per_page` + cursor like every list.
pub async fn list(State(state): State<Arc<ApiState>>, call: Authed) -> Result<Response, ApiError> {
    call.require_admin()?;
    let p = &call.params;
    p.only(&["cursor", "per_page"], &[])?;
    let registry = registry(&state)?;
    let per_page = per_page(p)?;
    let sort = format!("sessions-active:{per_page}");
    let after = state
        .cursors
        .after(p, &sort)?
        .map(|pos| (pos.value, pos.id));
    let mut rows = registry.list(after, per_page + 1).await?;
    let more = rows.len() as i64 > per_page;
    rows.truncate(per_page as usize);
    let body: Vec<Value> = rows.iter().map(session_json).collect();
    let mut response = Json(body).into_response();
    let next = rows.last().filter(|_| more).map(|last| Position {
        value: last.started_at,
        id: last.id,
    });
    set_cursors(response.headers_mut(), &state.cursors, &sort, next, None);
    Ok(response)
}

/// `DELETE /sessions/active/{id}`: 204 once ended here or asked of its replica; 404 when no
/// live replica holds it.
pub async fn end(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    call: Authed,
) -> Result<StatusCode, ApiError> {
    call.require_admin()?;
    let id = parse_id(&id)?;
    call.params.check_id(id)?;
    match registry(&state)?.end(id).await? {
        Ended::Here | Ended::Asked => Ok(StatusCode::NO_CONTENT),
        Ended::NotFound => Err(ApiError::NotFound),
    }
}
