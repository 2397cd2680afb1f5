//! Read access to accounts for user managers (the portal edits them).

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::ApiError;
use crate::auth::{Require, UsersManage};
use crate::db::users;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct UserSummary {
    id: i64,
    username: String,
    display_name: String,
    role: String,
    disabled: bool,
    must_change_password: bool,
    created_at: i64,
    last_login_at: Option<i64>,
}

pub async fn list(State(state): State<AppState>, _: Require<UsersManage>) -> Result<Json<Vec<UserSummary>>, ApiError> {
    let rows = users::list(&state.db).await?;
    Ok(Json(
        rows.into_iter()
            .map(|u| UserSummary {
                disabled: u.is_disabled(),
                must_change_password: u.must_change_password(),
                id: u.id,
                username: u.username,
                display_name: u.display_name,
                role: u.role,
                created_at: u.created_at,
                last_login_at: u.last_login_at,
            })
            .collect(),
    ))
}
