//! OpenID Connect sign-in routes: the list of providers for the sign-in pages, the start
//! (a redirect to the provider) and the callback (the session cookie, then the page the
//! person was going to). README "Campus sign-in"; the flow itself is `oidc::flow`.
//!
//! Start and callback are browser navigations: an error is a small page saying what went
//! wrong with a way back to sign-in, for a browser (`Accept: text/html`); the usual JSON
//! error for anything else.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::auth::{ClientAddr, login};
use crate::oidc::Provider;
use crate::oidc::flow::{self, BINDING_COOKIE, BINDING_COOKIE_PATH, CallbackQuery};
use crate::state::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderView {
    /// The slug, as used in the routes.
    id: String,
    position: usize,
    name: String,
    start_url: String,
}

/// `GET /api/auth/providers`: the OpenID providers people may sign in with, in the order of
/// the configuration file (no session needed: the sign-in pages ask).
pub async fn providers(State(state): State<AppState>) -> Json<serde_json::Value> {
    let list: Vec<ProviderView> = state
        .oidc
        .iter()
        .map(|p| ProviderView {
            id: p.slug.clone(),
            position: p.position,
            name: p.name().to_string(),
            start_url: format!("/api/auth/oidc/{}/start", p.slug),
        })
        .collect();
    Json(serde_json::json!({ "providers": list }))
}

#[derive(Deserialize)]
pub struct StartQuery {
    return_to: Option<String>,
}

fn provider<'a>(state: &'a AppState, id: &str) -> Result<&'a std::sync::Arc<Provider>, ApiError> {
    state
        .oidc
        .find(id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_provider", format!("no sign-in provider {id:?}")))
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .flatten()
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

#[derive(Template)]
#[template(path = "oidc_result.html")]
struct ResultPage<'a> {
    title: &'a str,
    message: &'a str,
    /// Where to go: the page after signing in, or back to sign-in.
    next: &'a str,
    next_label: &'a str,
    /// Go there at once (after a sign-in): the session cookie is SameSite=Strict, so it is
    /// sent only on a navigation that starts on this site, not on the provider's redirect.
    go_now: bool,
}

fn page(status: StatusCode, p: ResultPage<'_>) -> Response {
    match p.render() {
        Ok(html) => {
            let mut response = (status, axum::response::Html(html)).into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// An error as the client can take it: a page for a browser, JSON for a program.
fn error_response(headers: &HeaderMap, error: ApiError, return_to: &str) -> Response {
    if !wants_html(headers) {
        return error.into_response();
    }
    let sign_in = if return_to.starts_with("/admin") { "/admin/login" } else { "/" };
    let status = error.status;
    page(
        status,
        ResultPage {
            title: "Sign-in did not work",
            message: &error.message,
            next: sign_in,
            next_label: "Back to sign-in",
            go_now: false,
        },
    )
}

/// `GET /api/auth/oidc/{provider}/start?return_to=/admin`: sends the browser to the
/// provider (303), with the cookie that binds the sign-in to this browser.
pub async fn start(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
    Query(q): Query<StartQuery>,
    headers: HeaderMap,
) -> Response {
    let return_to = flow::safe_return_to(q.return_to.as_deref());
    let provider = match provider(&state, &id) {
        Ok(p) => p,
        Err(e) => return error_response(&headers, e, &return_to),
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let binding = cookie_value(&headers, BINDING_COOKIE);
    match flow::start(&state, provider, host, &return_to, binding.as_deref(), addr).await {
        Ok(started) => {
            let cookie = cookie::Cookie::build((BINDING_COOKIE, started.binding))
                .http_only(true)
                .secure(true)
                // Lax: sent back on the provider's top-level redirect to the callback.
                .same_site(cookie::SameSite::Lax)
                .path(BINDING_COOKIE_PATH)
                .max_age(cookie::time::Duration::seconds(crate::db::oidc_flows::LIFETIME_SECS))
                .build();
            let mut response = Redirect::to(&started.authorization_url).into_response();
            match HeaderValue::from_str(&cookie.to_string()) {
                Ok(v) => {
                    response.headers_mut().insert(header::SET_COOKIE, v);
                    response
                }
                Err(e) => ApiError::internal(e).into_response(),
            }
        }
        Err(e) => error_response(&headers, e.into(), &return_to),
    }
}

/// `GET /api/auth/oidc/{provider}/callback?code=…&state=…`: where the provider sends the
/// browser back. Sets the session cookie; a browser is then taken to the page it was going
/// to; a program gets `{token, user}` as `POST /api/auth/login` answers.
pub async fn callback(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Path(id): Path<String>,
    Query(q): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    let provider = match provider(&state, &id) {
        Ok(p) => p,
        Err(e) => return error_response(&headers, e, "/"),
    };
    let binding = cookie_value(&headers, BINDING_COOKIE);
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let finished = match flow::finish(&state, provider, q, binding.as_deref(), addr, user_agent).await {
        Ok(f) => f,
        Err(failed) => return error_response(&headers, failed.error.into(), &failed.return_to),
    };
    let cookie = match login::session_cookie(&finished.login.token, finished.login.ttl) {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut response = if wants_html(&headers) {
        page(
            StatusCode::OK,
            ResultPage {
                title: "Signed in",
                message: &format!("Signed in as {}.", finished.login.user.display_name),
                next: &finished.return_to,
                next_label: "Continue",
                go_now: true,
            },
        )
    } else {
        Json(serde_json::json!({ "token": finished.login.token, "user": finished.login.user })).into_response()
    };
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    response
}
