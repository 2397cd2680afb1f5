//! `GET /api/ice-servers`: STUN/TURN servers with a short-lived TURN credential for the
//! signed-in user, when their role may send or receive files (`db::access::RELAY_PERMISSIONS`). The credential scheme lives in `turn::credentials`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::auth::CurrentUser;
use crate::db;
use crate::state::AppState;

pub async fn ice_servers(State(state): State<AppState>, user: CurrentUser) -> Result<Response, ApiError> {
    if !db::access::RELAY_PERMISSIONS.iter().any(|p| user.has(*p)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this account may neither send nor receive files, so it gets no relay credentials",
        ));
    }
    let issuer = state.turn.get().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "turn_unavailable",
            "the TURN relay is not running on this appliance",
        )
    })?;
    let mut response =
        Json(issuer.issue(user.id, &user.session_id, user.session_expires_at, db::now())).into_response();
    // A credential: never cache it.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
