//! Signing in: one function used by the JSON API and the portal's login form, so the
//! throttling, timing, audit and session rules are the same whichever door is used.

use std::net::IpAddr;
use std::time::Instant;

use axum::http::HeaderValue;

use super::token::Claims;
use super::{AuthError, CurrentUser, SESSION_COOKIE, password};
use crate::audit::{self, Actor, AuditEvent, LoginFailure};
use crate::db::{self, sessions, users};
use crate::state::AppState;

pub struct LoginOk {
    pub token: String,
    pub user: CurrentUser,
    /// Session lifetime in seconds (for the cookie's Max-Age).
    pub ttl: i64,
}

/// Checks the credentials and opens a session. Every outcome is audited.
pub async fn attempt(
    state: &AppState,
    username: &str,
    password: String,
    addr: IpAddr,
    user_agent: &str,
) -> Result<LoginOk, AuthError> {
    let username = username.trim();
    let actor = Actor { user_id: None, username: username.to_string(), client_addr: addr.to_string() };
    let fail = |reason: LoginFailure| {
        let actor = actor.clone();
        async move {
            state.metrics.login(if reason == LoginFailure::Throttled { "throttled" } else { "failure" });
            audit::record(&state.db, &actor, AuditEvent::LoginFailed { username: &actor.username, reason }).await
        }
    };

    // Counted before the password is checked: parallel guesses cannot all pass the check.
    let attempt = match state.throttle.begin(username, addr, Instant::now()) {
        Ok(attempt) => attempt,
        Err(wait) => {
            fail(LoginFailure::Throttled).await?;
            return Err(AuthError::TooManyAttempts { retry_after_secs: wait.as_secs_f64().ceil() as u64 });
        }
    };
    let user = match users::by_username(&state.db, username).await {
        Ok(user) => user,
        Err(e) => {
            attempt.cancelled();
            return Err(e.into());
        }
    };
    let ok = match password::verify_async(password, user.as_ref().map(|u| u.password_hash.clone())).await {
        Ok(ok) => ok,
        // Too busy to check: not a guess, so not a failure (and not worth an audit row each).
        Err(e) => {
            attempt.cancelled();
            state.metrics.login("busy");
            return Err(e);
        }
    };
    let user = match user {
        Some(u) if ok => u,
        Some(_) => {
            attempt.failed();
            fail(LoginFailure::WrongPassword).await?;
            return Err(AuthError::InvalidCredentials);
        }
        None => {
            attempt.failed();
            fail(LoginFailure::UnknownUser).await?;
            return Err(AuthError::InvalidCredentials);
        }
    };
    // Answered like a wrong password: "disabled" would confirm that the password was right.
    if user.is_disabled() {
        attempt.failed();
        fail(LoginFailure::Disabled).await?;
        return Err(AuthError::InvalidCredentials);
    }

    attempt.succeeded();
    let ttl = state.config.auth.session_ttl_secs as i64;
    let now = db::now();
    let session_id = random_hex(16)?;
    let user_agent: String = user_agent.chars().take(256).collect();
    sessions::create(&state.db, &session_id, user.id, now + ttl, &addr.to_string(), &user_agent).await?;
    let token =
        state.tokens.sign(&Claims { sub: user.id.to_string(), jti: session_id.clone(), iat: now, exp: now + ttl })?;
    users::touch_login(&state.db, user.id).await?;
    let actor = Actor { user_id: Some(user.id), ..actor };
    audit::record(&state.db, &actor, AuditEvent::LoginSucceeded { username: &user.username }).await?;
    state.metrics.login("success");
    let user = super::current_user(&state.db, user, session_id, now + ttl).await?;
    Ok(LoginOk { token, user, ttl })
}

/// The session cookie (HttpOnly, Secure, SameSite=Strict); `max_age_secs = 0` clears it.
pub fn session_cookie(token: &str, max_age_secs: i64) -> Result<HeaderValue, AuthError> {
    let cookie = cookie::Cookie::build((SESSION_COOKIE, token.to_string()))
        .http_only(true)
        .secure(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    HeaderValue::from_str(&cookie.to_string()).map_err(|e| AuthError::Internal(e.to_string()))
}

/// `bytes` random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> Result<String, AuthError> {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf)
        .map_err(|_| AuthError::Internal("no system randomness".into()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
