//! The audit log as JSON. Holders of `users.manage` see every row; other holders of
//! `audit.view` (instructors) see the rows of their own actions.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::ApiError;
use crate::auth::{AuditView, Require};
use crate::db::audit::{self, AuditFilter, AuditRow};
use crate::permission::Permission;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    action: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    Require(user, _): Require<AuditView>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<AuditRow>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let filter = AuditFilter {
        action: q.action.as_deref(),
        actor_user_id: (!user.has(Permission::UsersManage)).then_some(user.id),
        before: q.before,
        ..Default::default()
    };
    Ok(Json(audit::list(&state.db, &filter, limit).await?))
}
