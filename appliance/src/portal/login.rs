//! The portal's own sign-in form (works without JavaScript) and sign-out.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{NoFields, PortalError, PortalForm};
use crate::audit::{self, AuditEvent};
use crate::auth::PortalAccess;
use crate::auth::{self, AuthError, ClientAddr, login};
use crate::db::sessions;
use crate::state::AppState;

const LOGIN_CSRF_COOKIE: &str = "labbeam_login_csrf";

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    username: String,
    error: String,
    /// One "Sign in with …" button per OpenID provider: its name and start URL.
    providers: Vec<(String, String)>,
}

/// The OpenID providers' buttons, coming back to `next` after signing in.
fn provider_buttons(state: &AppState, next: &str) -> Vec<(String, String)> {
    let back: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    state
        .oidc
        .iter()
        .map(|p| (p.name().to_string(), format!("/api/auth/oidc/{}/start?return_to={back}", p.slug)))
        .collect()
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only portal paths: never an open redirect to another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/admin") && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/admin".into(),
    }
}

fn page_with_cookie(page: LoginPage) -> Response {
    let cookie = cookie::Cookie::build((LOGIN_CSRF_COOKIE, page.csrf.clone()))
        .http_only(true)
        .secure(true)
        .same_site(cookie::SameSite::Strict)
        .path("/admin/login")
        .max_age(cookie::time::Duration::minutes(30))
        .build();
    let mut response = page.into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

pub async fn form(State(state): State<AppState>, Query(q): Query<NextQuery>) -> Result<Response, PortalError> {
    let csrf = login::random_hex(20)?;
    let next = safe_next(q.next.as_deref());
    Ok(page_with_cookie(LoginPage {
        csrf,
        providers: provider_buttons(&state, &next),
        next,
        username: String::new(),
        error: String::new(),
    }))
}

#[derive(Deserialize)]
pub struct LoginForm {
    /// Checked against the login page's own cookie (there is no session yet).
    csrf: String,
    next: Option<String>,
    username: String,
    password: String,
}

pub async fn submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, PortalError> {
    let cookie_token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .flatten()
        .find(|c| c.name() == LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    if !auth::csrf::matches(&cookie_token, &f.csrf) {
        return Err(PortalError::Csrf);
    }
    let next = safe_next(f.next.as_deref());
    let again = |error: String| -> Result<Response, PortalError> {
        let csrf = login::random_hex(20)?;
        Ok(page_with_cookie(LoginPage {
            csrf,
            providers: provider_buttons(&state, &next),
            next: next.clone(),
            username: f.username.clone(),
            error,
        }))
    };
    if f.username.trim().is_empty()
        || f.username.chars().any(char::is_control)
        || f.password.is_empty()
        || f.password.len() > 1024
    {
        return again("Enter your username and password.".into());
    }
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    match login::attempt(&state, &f.username, f.password.clone(), addr, user_agent).await {
        Ok(ok) => {
            let target = if ok.user.must_change_password { super::password_change_then(&next) } else { next.clone() };
            let mut response = Redirect::to(&target).into_response();
            response.headers_mut().insert(header::SET_COOKIE, login::session_cookie(&ok.token, ok.ttl)?);
            Ok(response)
        }
        Err(AuthError::Internal(e)) => Err(PortalError::Internal(e)),
        Err(AuthError::StoreUnavailable(e)) => Err(PortalError::Unavailable(e)),
        Err(e) => again(e.to_string()),
    }
}

pub async fn logout(
    State(state): State<AppState>,
    PortalForm { portal, .. }: PortalForm<PortalAccess, NoFields>,
) -> Result<Response, PortalError> {
    let end_session_url = sessions::end_session_url(&state.db, &portal.user.session_id).await?;
    sessions::revoke(&state.db, &portal.user.session_id).await?;
    state.signaling.disconnect_sessions(std::slice::from_ref(&portal.user.session_id)).await;
    audit::record(&state.db, &portal.actor, AuditEvent::LoggedOut { username: &portal.user.username }).await?;
    // Signed in through an OpenID provider: its session ends too.
    let mut response = Redirect::to(end_session_url.as_deref().unwrap_or("/admin/login")).into_response();
    response.headers_mut().insert(header::SET_COOKIE, login::session_cookie("", 0)?);
    Ok(response)
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_stays_inside_the_portal() {
        assert_eq!(super::safe_next(Some("/admin/users?q=a")), "/admin/users?q=a");
        for bad in ["https://evil.example", "//evil.example/admin", "/", "/admin\\@evil"] {
            assert_eq!(super::safe_next(Some(bad)), "/admin", "{bad}");
        }
        assert_eq!(super::safe_next(None), "/admin");
    }
}
