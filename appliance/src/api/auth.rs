//! Login, logout, the caller's own account and password change.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiJson};
use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{AnySession, AuthError, ClientAddr, CurrentUser, login, password};
use crate::db::{sessions, users};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let username = req.username.trim();
    if username.is_empty() || username.chars().count() > 64 {
        return Err(ApiError::bad_request("username must have 1 to 64 characters"));
    }
    if username.chars().any(char::is_control) {
        return Err(ApiError::bad_request("username must not contain control characters"));
    }
    if req.password.is_empty() || req.password.len() > 1024 {
        return Err(ApiError::bad_request("password must have 1 to 1024 bytes"));
    }
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ok = login::attempt(&state, username, req.password, addr, user_agent).await?;
    let mut response = Json(json!({ "token": ok.token, "user": ok.user })).into_response();
    response.headers_mut().insert(header::SET_COOKIE, login::session_cookie(&ok.token, ok.ttl)?);
    Ok(response)
}

pub async fn logout(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    AnySession(user): AnySession,
) -> Result<Response, ApiError> {
    let end_session_url = sessions::end_session_url(&state.db, &user.session_id).await?;
    sessions::revoke(&state.db, &user.session_id).await?;
    state.signaling.disconnect_sessions(std::slice::from_ref(&user.session_id)).await;
    let actor = Actor { user_id: Some(user.id), username: user.username.clone(), client_addr: addr.to_string() };
    audit::record(&state.db, &actor, AuditEvent::LoggedOut { username: &user.username }).await?;
    // Signed in through an OpenID provider with an end-session endpoint: the client takes
    // the browser there, so the provider's session ends too.
    let body = match end_session_url {
        Some(url) => json!({ "ok": true, "endSessionUrl": url }),
        None => json!({ "ok": true }),
    };
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::SET_COOKIE, login::session_cookie("", 0)?);
    Ok(response)
}

pub async fn me(AnySession(user): AnySession) -> Json<CurrentUser> {
    Json(user)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    AnySession(user): AnySession,
    ApiJson(req): ApiJson<PasswordChange>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // A stolen session must not become a way to guess the current password.
    let attempt = state
        .throttle
        .begin(&user.username, addr, Instant::now())
        .map_err(|wait| AuthError::TooManyAttempts { retry_after_secs: wait.as_secs_f64().ceil() as u64 })?;
    let stored = match users::by_id(&state.db, user.id).await {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            attempt.cancelled();
            return Err(AuthError::SessionRevoked.into());
        }
        Err(e) => {
            attempt.cancelled();
            return Err(e.into());
        }
    };
    if stored.source() != users::Source::Local {
        attempt.cancelled();
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "password_managed_elsewhere",
            "this account signs in with the campus directory: change its password there",
        ));
    }
    let right = req.current_password.len() <= 1024
        && match password::verify_async(req.current_password.clone(), Some(stored.password_hash)).await {
            Ok(right) => right,
            Err(e) => {
                attempt.cancelled();
                return Err(e.into());
            }
        };
    if !right {
        attempt.failed();
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the current password is wrong",
        ));
    }
    attempt.succeeded();
    password::check_changed(&req.current_password, &req.new_password)?;
    password::check_policy(&req.new_password, &user.username, state.config.auth.password_min_length)?;
    let hash = password::hash_async(req.new_password).await?;
    users::set_password(&state.db, user.id, &hash, false).await?;
    // Other devices signed in with the old password are signed out.
    sessions::revoke_all_for_user(&state.db, user.id, Some(&user.session_id)).await?;
    let actor = Actor { user_id: Some(user.id), username: user.username.clone(), client_addr: addr.to_string() };
    audit::record(&state.db, &actor, AuditEvent::PasswordChanged { username: &user.username }).await?;
    Ok(Json(json!({ "ok": true })))
}
