//! Login, logout, the caller's own account and password change.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiJson};
use crate::audit::{self, Actor, AuditEvent, LoginFailure};
use crate::auth::token::Claims;
use crate::auth::{self, AnySession, AuthError, CurrentUser, SESSION_COOKIE, password};
use crate::db::{self, sessions, users};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    username: String,
    password: String,
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let username = req.username.trim();
    if username.is_empty() || username.chars().count() > 64 {
        return Err(ApiError::bad_request("username must have 1 to 64 characters"));
    }
    if req.password.is_empty() || req.password.len() > 1024 {
        return Err(ApiError::bad_request("password must have 1 to 1024 bytes"));
    }
    let addr = peer.ip();
    let actor = Actor { user_id: None, username: username.to_string(), client_addr: addr.to_string() };
    let fail = |reason: LoginFailure| {
        let state = state.clone();
        let actor = actor.clone();
        async move {
            state.metrics.login(if reason == LoginFailure::Throttled { "throttled" } else { "failure" });
            if reason != LoginFailure::Throttled {
                state.throttle.record_failure(&actor.username, addr, Instant::now());
            }
            audit::record(&state.db, &actor, AuditEvent::LoginFailed { username: &actor.username, reason }).await
        }
    };

    if let Err(wait) = state.throttle.check(username, addr, Instant::now()) {
        fail(LoginFailure::Throttled).await?;
        return Err(AuthError::TooManyAttempts { retry_after_secs: wait.as_secs_f64().ceil() as u64 }.into());
    }
    let user = users::by_username(&state.db, username).await?;
    let ok = password::verify_async(req.password, user.as_ref().map(|u| u.password_hash.clone())).await;
    let user = match user {
        Some(u) if ok => u,
        Some(_) => {
            fail(LoginFailure::WrongPassword).await?;
            return Err(AuthError::InvalidCredentials.into());
        }
        None => {
            fail(LoginFailure::UnknownUser).await?;
            return Err(AuthError::InvalidCredentials.into());
        }
    };
    if user.is_disabled() {
        fail(LoginFailure::Disabled).await?;
        return Err(AuthError::AccountDisabled.into());
    }

    state.throttle.record_success(&user.username);
    let ttl = state.config.auth.session_ttl_secs as i64;
    let now = db::now();
    let session_id = random_id()?;
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let user_agent: String = user_agent.chars().take(256).collect();
    sessions::create(&state.db, &session_id, user.id, now + ttl, &addr.to_string(), &user_agent).await?;
    let token =
        state.tokens.sign(&Claims { sub: user.id.to_string(), jti: session_id.clone(), iat: now, exp: now + ttl })?;
    users::touch_login(&state.db, user.id).await?;
    let actor = Actor { user_id: Some(user.id), ..actor };
    audit::record(&state.db, &actor, AuditEvent::LoginSucceeded { username: &user.username }).await?;
    state.metrics.login("success");

    let current = auth::current_user(&state.db, user, session_id).await?;
    let mut response = Json(json!({ "token": token, "user": current })).into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie(&token, ttl)?);
    Ok(response)
}

pub async fn logout(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    AnySession(user): AnySession,
) -> Result<Response, ApiError> {
    sessions::revoke(&state.db, &user.session_id).await?;
    state.signaling.disconnect_sessions(std::slice::from_ref(&user.session_id)).await;
    let actor = Actor { user_id: Some(user.id), username: user.username.clone(), client_addr: peer.ip().to_string() };
    audit::record(&state.db, &actor, AuditEvent::LoggedOut { username: &user.username }).await?;
    let mut response = Json(json!({ "ok": true })).into_response();
    response.headers_mut().insert(header::SET_COOKIE, session_cookie("", 0)?);
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    AnySession(user): AnySession,
    ApiJson(req): ApiJson<PasswordChange>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let addr = peer.ip();
    // A stolen session must not become a way to guess the current password.
    if let Err(wait) = state.throttle.check(&user.username, addr, Instant::now()) {
        return Err(AuthError::TooManyAttempts { retry_after_secs: wait.as_secs_f64().ceil() as u64 }.into());
    }
    let stored = users::by_id(&state.db, user.id).await?.ok_or(AuthError::SessionRevoked)?;
    if req.current_password.len() > 1024
        || !password::verify_async(req.current_password, Some(stored.password_hash)).await
    {
        state.throttle.record_failure(&user.username, addr, Instant::now());
        return Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the current password is wrong",
        ));
    }
    password::check_policy(&req.new_password, &user.username, state.config.auth.password_min_length)?;
    let hash = password::hash_async(req.new_password).await?;
    users::set_password(&state.db, user.id, &hash, false).await?;
    // Other devices signed in with the old password are signed out.
    sessions::revoke_all_for_user(&state.db, user.id, Some(&user.session_id)).await?;
    let actor = Actor { user_id: Some(user.id), username: user.username.clone(), client_addr: addr.to_string() };
    audit::record(&state.db, &actor, AuditEvent::PasswordChanged { username: &user.username }).await?;
    Ok(Json(json!({ "ok": true })))
}

fn session_cookie(token: &str, max_age_secs: i64) -> Result<HeaderValue, ApiError> {
    let cookie = cookie::Cookie::build((SESSION_COOKIE, token.to_string()))
        .http_only(true)
        .secure(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    HeaderValue::from_str(&cookie.to_string()).map_err(ApiError::internal)
}

/// 128 random bits as hex: session ids.
pub fn random_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| ApiError::internal("no system randomness"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
