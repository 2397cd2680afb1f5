//! Authentication and authorisation: password hashes, session tokens, login throttling,
//! and the axum extractors every route uses to say who may call it (and from where:
//! `ClientAddr`).
//!
//! Invariants:
//! - a request is authenticated only if its token verifies (HS256, our key, not expired),
//!   its session row is live (not revoked, not expired) and its user is not disabled; the
//!   database is checked on every request, so logout, revocation and disabling act at once;
//! - while a user must change their password, only the password change, `/api/me` and
//!   logout accept their session;
//! - permission checks are extractors (`Require<P>`), so a handler cannot forget them;
//! - a request that changes something (any method but GET, HEAD, OPTIONS) and is
//!   authenticated by the session cookie must also carry `X-LabBeam-CSRF` (a header a
//!   cross-site form cannot send), else 403 `csrf_required`; a bearer token needs none,
//!   since another site cannot make a browser send it.

pub mod csrf;
pub mod jwt;
pub mod login;
pub mod password;
pub mod throttle;
pub mod token;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use serde::Serialize;
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use thiserror::Error;

use crate::db::{self, DbError, roles, sessions, users};
use crate::permission::{Permission, PermissionSet};
use crate::state::AppState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "labbeam_session";

/// The header a cookie-authenticated state-changing API request must carry. Any value
/// does (the web client sends `1`): what counts is that a cross-site form cannot set it,
/// and a cross-site script cannot send it without a CORS preflight we never approve.
pub const CSRF_HEADER: &str = "x-labbeam-csrf";

#[derive(Debug, Error, PartialEq)]
pub enum AuthError {
    #[error("wrong username or password")]
    InvalidCredentials,
    #[error("this account is disabled; ask your lab administrator")]
    AccountDisabled,
    #[error("too many failed logins; try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("the server is busy checking other passwords; try again in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    #[error("sign in first")]
    Unauthenticated,
    #[error("the session token is not valid")]
    InvalidToken,
    #[error("the session has expired; sign in again")]
    SessionExpired,
    #[error("the session was ended; sign in again")]
    SessionRevoked,
    #[error("change your password before doing anything else")]
    PasswordChangeRequired,
    #[error("requests that change something and use the session cookie must send the header X-LabBeam-CSRF: 1")]
    CsrfRequired,
    #[error("this needs the permission {0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    WeakPassword(String),
    /// The campus directory did not answer; local accounts still sign in.
    #[error("the campus directory cannot be reached right now; try again in a minute")]
    DirectoryUnavailable,
    /// The directory accepted the password, but the account is in no group that may use
    /// LabBeam.
    #[error("your campus account is not in a group that may use LabBeam; ask the lab's administrator")]
    NotPermitted,
    /// `auth.local_sign_in = admins` and the account does not manage users.
    #[error("sign in with your campus account: LabBeam passwords are for administrators only here")]
    LocalSignInOff,
    /// An OpenID callback whose `state` is unknown, used, expired, or from another browser.
    #[error("this sign-in has expired or was already used; start it again")]
    SignInExpired,
    /// The OpenID provider (named) could not be reached.
    #[error("{0} cannot be reached right now; try again in a minute")]
    ProviderUnavailable(String),
    /// The OpenID provider sent the person back without signing them in (its error code).
    #[error("the identity provider did not sign you in ({0})")]
    ProviderRefused(String),
    /// The provider's code or ID token did not pass the checks.
    #[error("the identity provider's answer could not be verified; start the sign-in again")]
    ProviderTokenInvalid,
    /// The username belongs to an account that signs in another way (a local account, the
    /// directory, or another provider's person).
    #[error("a LabBeam account with your username signs in another way; ask the lab's administrator")]
    AccountConflict,
    /// The provider's username is not one LabBeam accepts.
    #[error("your campus username {0:?} cannot be used in LabBeam; ask the lab's administrator")]
    UsernameUnusable(String),
    /// The database cannot be reached (the detail is for the log).
    #[error("{}", crate::db::UNAVAILABLE_MESSAGE)]
    StoreUnavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<DbError> for AuthError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() { AuthError::StoreUnavailable(e.to_string()) } else { AuthError::Internal(e.to_string()) }
    }
}

/// The authenticated caller of a request or socket.
#[derive(Debug, Clone, Serialize)]
pub struct CurrentUser {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub permissions: PermissionSet,
    pub must_change_password: bool,
    /// Who checks the password: `local`, `ldap` (the campus directory) or `oidc`.
    pub source: &'static str,
    #[serde(skip)]
    pub session_id: String,
    /// When the session ends by itself (Unix seconds): a session's lifetime is fixed at login.
    #[serde(skip)]
    pub session_expires_at: i64,
}

impl CurrentUser {
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.has(permission)
    }
}

/// Checks a token against the key, the sessions table and the user's state.
pub async fn authenticate(state: &AppState, token: &str) -> Result<CurrentUser, AuthError> {
    let claims = state.tokens.verify(token)?;
    let session = sessions::by_id(&state.db, &claims.jti).await?.ok_or(AuthError::SessionRevoked)?;
    let user = users::by_id(&state.db, session.user_id).await?.ok_or(AuthError::SessionRevoked)?;
    // Said first: "your account is disabled" tells the user more than "session ended".
    if user.is_disabled() {
        return Err(AuthError::AccountDisabled);
    }
    let now = db::now();
    if session.revoked_at.is_some() {
        return Err(AuthError::SessionRevoked);
    }
    if session.expires_at <= now {
        return Err(AuthError::SessionExpired);
    }
    if claims.sub != session.user_id.to_string() {
        return Err(AuthError::InvalidToken);
    }
    // Most requests (and the sockets of a lab logging in at once) find it fresh: no write.
    if session.last_seen_at < now - sessions::TOUCH_EVERY {
        sessions::touch(&state.db, &session.id, now).await?;
    }
    current_user(&state.db, user, session.id, session.expires_at).await
}

pub async fn current_user(
    pool: &db::Store,
    user: users::User,
    session_id: String,
    session_expires_at: i64,
) -> Result<CurrentUser, AuthError> {
    let names = roles::permissions(pool, user.role_id).await?;
    let permissions = PermissionSet::from_names(names.iter().map(String::as_str));
    Ok(CurrentUser {
        id: user.id,
        must_change_password: user.must_change_password(),
        source: user.source().as_str(),
        username: user.username,
        display_name: user.display_name,
        role: user.role,
        permissions,
        session_id,
        session_expires_at,
    })
}

/// Where a request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Bearer,
    Cookie,
}

/// The token of a request and where it came from: `Authorization: Bearer` first, then the
/// session cookie.
pub fn request_credential(headers: &axum::http::HeaderMap) -> Option<(String, TokenSource)> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(token) = value.strip_prefix("Bearer ")
    {
        return Some((token.trim().to_string(), TokenSource::Bearer));
    }
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .flatten()
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| (c.value().to_string(), TokenSource::Cookie))
}

/// The token of a request: `Authorization: Bearer` first, then the session cookie.
pub fn request_token(headers: &axum::http::HeaderMap) -> Option<String> {
    request_credential(headers).map(|(token, _)| token)
}

/// Whether a request authenticated by `source` may go on without the CSRF header.
fn csrf_ok(method: &axum::http::Method, headers: &axum::http::HeaderMap, source: TokenSource) -> bool {
    use axum::http::Method;
    let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
    source == TokenSource::Bearer || reads.contains(method) || headers.contains_key(CSRF_HEADER)
}

/// The client's address of a request: the connection's, or behind a configured trusted
/// proxy the one it forwarded (`crate::net`). What throttling, sessions and the audit log use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(ClientAddr(crate::net::request_client_addr(peer, &parts.headers, &state.config.trusted_proxies)))
    }
}

/// Any live session, including one that still has to change its password.
pub struct AnySession(pub CurrentUser);

impl FromRequestParts<AppState> for AnySession {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (token, source) = request_credential(&parts.headers).ok_or(AuthError::Unauthenticated)?;
        // Checked before the session is even looked up: a forged request learns nothing.
        if !csrf_ok(&parts.method, &parts.headers, source) {
            return Err(AuthError::CsrfRequired);
        }
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(AnySession(user.clone()));
        }
        let user = authenticate(state, &token).await?;
        parts.extensions.insert(user.clone());
        Ok(AnySession(user))
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let AnySession(user) = AnySession::from_request_parts(parts, state).await?;
        if user.must_change_password {
            return Err(AuthError::PasswordChangeRequired);
        }
        Ok(user)
    }
}

/// What a request guard requires, as a type (`Require<G>` here, the portal's guards): a
/// permission, or, for `ViewAllTransfers`, one of two.
pub trait Grant {
    /// The permission named when the caller lacks it.
    const NEEDS: Permission;
    fn allows(held: PermissionSet) -> bool {
        held.has(Self::NEEDS)
    }
}

macro_rules! grants {
    ($($ty:ident => $perm:ident),* $(,)?) => {
        $(
            #[doc = concat!("Requires the `", stringify!($perm), "` permission.")]
            pub struct $ty;
            impl Grant for $ty {
                const NEEDS: Permission = Permission::$perm;
            }
        )*
    };
}

grants! {
    PortalAccess => PortalAccess,
    UsersManage => UsersManage,
    AuditView => AuditView,
}

/// Everyone's transfers and broadcasts: `transfers.view_all`, or `users.manage`, which is
/// what `GET /api/transfers` asks before it shows other users' transfers.
pub struct ViewAllTransfers;

impl Grant for ViewAllTransfers {
    const NEEDS: Permission = Permission::TransfersViewAll;
    fn allows(held: PermissionSet) -> bool {
        held.has(Permission::TransfersViewAll) || held.has(Permission::UsersManage)
    }
}

/// An authenticated caller whom `G` allows; 403 otherwise.
pub struct Require<G: Grant>(pub CurrentUser, pub PhantomData<G>);

impl<G: Grant> FromRequestParts<AppState> for Require<G> {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        if !G::allows(user.permissions) {
            return Err(AuthError::Forbidden(G::NEEDS.name()));
        }
        Ok(Require(user, PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn bearer_wins_over_cookie_and_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("theme=dark; labbeam_session=abc; x=1"));
        assert_eq!(request_token(&h).as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer xyz"));
        assert_eq!(request_token(&h).as_deref(), Some("xyz"));
        assert_eq!(request_token(&HeaderMap::new()), None);
    }

    #[test]
    fn cookie_writes_need_the_csrf_header_and_bearer_writes_do_not() {
        use axum::http::Method;
        let mut h = HeaderMap::new();
        assert!(csrf_ok(&Method::GET, &h, TokenSource::Cookie));
        assert!(csrf_ok(&Method::HEAD, &h, TokenSource::Cookie));
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(!csrf_ok(&m, &h, TokenSource::Cookie), "{m}");
            assert!(csrf_ok(&m, &h, TokenSource::Bearer), "{m}");
        }
        h.insert(CSRF_HEADER, HeaderValue::from_static("1"));
        assert!(csrf_ok(&Method::POST, &h, TokenSource::Cookie));
        h.insert(header::COOKIE, HeaderValue::from_static("labbeam_session=abc"));
        assert_eq!(request_credential(&h), Some(("abc".into(), TokenSource::Cookie)));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer xyz"));
        assert_eq!(request_credential(&h), Some(("xyz".into(), TokenSource::Bearer)));
    }

    #[tokio::test]
    async fn permission_names_exist_in_the_seeded_admin_role() {
        let pool = db::test_store().await;
        let admin = roles::by_name(&pool, "admin").await.unwrap().unwrap();
        let seeded = roles::permissions(&pool, admin.id).await.unwrap();
        // The admin role is seeded with every permission there is.
        for p in Permission::ALL {
            assert!(seeded.iter().any(|s| s == p.name()), "{p}");
        }
        assert_eq!(seeded.len(), Permission::ALL.len(), "{seeded:?}");
    }
}
