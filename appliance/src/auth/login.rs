//! Signing in: one function used by the JSON API and the portal's login form, so the
//! throttling, timing, audit and session rules are the same whichever door is used.

use std::net::IpAddr;
use std::time::Instant;

use axum::http::HeaderValue;

use super::throttle::Attempt;
use super::token::Claims;
use super::{AuthError, CurrentUser, SESSION_COOKIE, password};
use crate::audit::{self, Actor, AuditEvent, LoginFailure};
use crate::db::users::{Source, User};
use crate::db::{self, sessions, users};
use crate::directory::admit::{self, Admission, AdmitError};
use crate::directory::{Directory, Verdict};
use crate::state::AppState;

pub struct LoginOk {
    pub token: String,
    pub user: CurrentUser,
    /// Session lifetime in seconds (for the cookie's Max-Age).
    pub ttl: i64,
}

/// Checks the credentials and opens a session. Every outcome is audited.
///
/// Who checks the password: a local account's own hash; otherwise, when `[auth.ldap]` is
/// set, the campus directory (a directory account made at an earlier sign-in, or a
/// username no local account has). A local account with the username always wins, so a
/// directory entry cannot take over a local admin's name.
pub async fn attempt(
    state: &AppState,
    username: &str,
    password: String,
    addr: IpAddr,
    user_agent: &str,
) -> Result<LoginOk, AuthError> {
    let username = username.trim();
    let actor = Actor { user_id: None, username: username.to_string(), client_addr: addr.to_string() };
    let fail = |reason: LoginFailure, source: Source| {
        let actor = actor.clone();
        async move {
            state.metrics.login(if reason == LoginFailure::Throttled { "throttled" } else { "failure" });
            audit::record(
                &state.db,
                &actor,
                AuditEvent::LoginFailed { username: &actor.username, reason, source: source.as_str() },
            )
            .await
        }
    };

    // Counted before the password is checked: parallel guesses cannot all pass the check.
    let attempt = match state.throttle.begin(username, addr, Instant::now()) {
        Ok(attempt) => attempt,
        Err(wait) => {
            fail(LoginFailure::Throttled, Source::Local).await?;
            return Err(AuthError::TooManyAttempts { retry_after_secs: wait.as_secs_f64().ceil() as u64 });
        }
    };
    let found = match users::by_username(&state.db, username).await {
        Ok(user) => user,
        Err(e) => {
            attempt.cancelled();
            return Err(e.into());
        }
    };
    let directory = state.directory.as_deref();
    let ((user, attempt), source) = match (found, directory) {
        (Some(user), _) if user.source() == Source::Local => {
            (check_local(state, attempt, &fail, Some(user), password).await?, Source::Local)
        }
        (None, None) => (check_local(state, attempt, &fail, None, password).await?, Source::Local),
        (existing, Some(directory)) => {
            (check_directory(state, attempt, &fail, directory, existing, username, password, addr).await?, Source::Ldap)
        }
        (Some(user), None) => {
            // A directory account while no directory is configured: nothing can check it.
            attempt.failed();
            fail(LoginFailure::SourceOff, user.source()).await?;
            return Err(AuthError::InvalidCredentials);
        }
    };
    // Answered like a wrong password: "disabled" would confirm that the password was right.
    if user.is_disabled() {
        attempt.failed();
        fail(LoginFailure::Disabled, source).await?;
        return Err(AuthError::InvalidCredentials);
    }
    if source == Source::Local && !local_sign_in_allowed(state, &user).await? {
        // The password was right: not a guess.
        attempt.cancelled();
        fail(LoginFailure::LocalSignInOff, source).await?;
        return Err(AuthError::LocalSignInOff);
    }

    attempt.succeeded();
    open_session(state, user, source, addr, user_agent).await
}

/// Opens a session for `user`, whom `source` has just vouched for: the session row, its
/// token, the audit row. Every door in (password, directory, OpenID provider) ends here.
pub async fn open_session(
    state: &AppState,
    user: User,
    source: Source,
    addr: IpAddr,
    user_agent: &str,
) -> Result<LoginOk, AuthError> {
    let ttl = state.config.auth.session_ttl_secs as i64;
    let now = db::now();
    let session_id = random_hex(16)?;
    let user_agent: String = user_agent.chars().take(256).collect();
    sessions::create(&state.db, &session_id, user.id, now + ttl, &addr.to_string(), &user_agent).await?;
    let token =
        state.tokens.sign(&Claims { sub: user.id.to_string(), jti: session_id.clone(), iat: now, exp: now + ttl })?;
    users::touch_login(&state.db, user.id).await?;
    let actor = Actor { user_id: Some(user.id), username: user.username.clone(), client_addr: addr.to_string() };
    audit::record(&state.db, &actor, AuditEvent::LoginSucceeded { username: &user.username, source: source.as_str() })
        .await?;
    state.metrics.login("success");
    let user = super::current_user(&state.db, user, session_id, now + ttl).await?;
    Ok(LoginOk { token, user, ttl })
}

/// `auth.local_sign_in = admins`: local passwords open only accounts whose role manages
/// users (the break-glass path); everyone else signs in with the campus directory.
async fn local_sign_in_allowed(state: &AppState, user: &User) -> Result<bool, AuthError> {
    if crate::settings::get_str(&state.db, "auth.local_sign_in").await? != "admins" {
        return Ok(true);
    }
    let names = crate::db::roles::permissions(&state.db, user.role_id).await?;
    Ok(names.iter().any(|p| p == crate::permission::Permission::UsersManage.name()))
}

/// A local account's password against its hash (`None`: no such account, checked against
/// a dummy hash so the answer takes as long).
async fn check_local<'a, F, Fut>(
    state: &AppState,
    attempt: Attempt<'a>,
    fail: &F,
    user: Option<User>,
    password: String,
) -> Result<(User, Attempt<'a>), AuthError>
where
    F: Fn(LoginFailure, Source) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::db::DbError>>,
{
    let ok = match password::verify_async(password, user.as_ref().map(|u| u.password_hash.clone())).await {
        Ok(ok) => ok,
        // Too busy to check: not a guess, so not a failure (and not worth an audit row each).
        Err(e) => {
            attempt.cancelled();
            state.metrics.login("busy");
            return Err(e);
        }
    };
    match user {
        Some(u) if ok => Ok((u, attempt)),
        Some(_) => {
            attempt.failed();
            fail(LoginFailure::WrongPassword, Source::Local).await?;
            Err(AuthError::InvalidCredentials)
        }
        None => {
            attempt.failed();
            fail(LoginFailure::UnknownUser, Source::Local).await?;
            Err(AuthError::InvalidCredentials)
        }
    }
}

/// The campus directory checks the password; the account is made or brought up to date
/// from what it says (`directory::admit`).
#[allow(clippy::too_many_arguments)]
async fn check_directory<'a, F, Fut>(
    state: &AppState,
    attempt: Attempt<'a>,
    fail: &F,
    directory: &Directory,
    existing: Option<User>,
    username: &str,
    password: String,
    addr: IpAddr,
) -> Result<(User, Attempt<'a>), AuthError>
where
    F: Fn(LoginFailure, Source) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::db::DbError>>,
{
    let verdict = match directory.authenticate(username, &password).await {
        Ok(verdict) => verdict,
        Err(e) => {
            // Not a guess: nothing was checked.
            attempt.cancelled();
            tracing::warn!(error = %e, user = %username, "campus directory sign-in could not be checked");
            fail(LoginFailure::DirectoryUnreachable, Source::Ldap).await?;
            return Err(AuthError::DirectoryUnavailable);
        }
    };
    let person = match verdict {
        Verdict::SignedIn(person) => person,
        Verdict::WrongPassword => {
            attempt.failed();
            fail(LoginFailure::WrongPassword, Source::Ldap).await?;
            return Err(AuthError::InvalidCredentials);
        }
        Verdict::UnknownUser => {
            attempt.failed();
            fail(LoginFailure::UnknownUser, Source::Ldap).await?;
            return Err(AuthError::InvalidCredentials);
        }
        Verdict::Refused(why) => {
            attempt.failed();
            tracing::info!(user = %username, reason = %why, "the campus directory refused a sign-in");
            fail(LoginFailure::Disabled, Source::Ldap).await?;
            return Err(AuthError::InvalidCredentials);
        }
    };
    // The entry found may spell the name otherwise (`Ann` for `ann`): the account is the
    // directory's spelling, found case-insensitively.
    let existing = match existing {
        Some(user) => Some(user),
        None if person.username != username => users::by_username(&state.db, &person.username).await?,
        None => None,
    };
    if existing.as_ref().is_some_and(|u| u.source() == Source::Local) {
        // A local account holds the directory's spelling of the name: it wins.
        attempt.failed();
        fail(LoginFailure::UnknownUser, Source::Ldap).await?;
        return Err(AuthError::InvalidCredentials);
    }
    match admit::admit(&state.db, &state.config.auth, (&person).into(), existing, &addr.to_string()).await {
        Ok(Admission::Admitted(user)) => Ok((*user, attempt)),
        Ok(Admission::NoRole) => {
            // The password was right: not a guess.
            attempt.cancelled();
            fail(LoginFailure::NotInMappedGroup, Source::Ldap).await?;
            Err(AuthError::NotPermitted)
        }
        Err(AdmitError::Db(e)) => {
            attempt.cancelled();
            Err(e.into())
        }
        Err(e) => {
            attempt.cancelled();
            tracing::error!(error = %e, user = %username, "a directory user could not be admitted");
            Err(AuthError::Internal(e.to_string()))
        }
    }
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
