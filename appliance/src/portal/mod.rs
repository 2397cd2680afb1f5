//! The admin portal: server-rendered pages (askama templates in `portal-templates/`) for
//! IT admins and, as far as their permissions go, instructors. Works without JavaScript;
//! a small script only refreshes the dashboard's figures.
//!
//! Invariants:
//! - every page needs a live session with `portal.access` (not signed in → the portal's
//!   login page; no permission → 403), and each handler names its permission in its
//!   signature (`guard`: `PortalPage<G>`, `PortalForm<G, T>`, `PortalUpload<G>`), checked
//!   before its body runs;
//! - every state-changing request carries the session's CSRF token and is refused (403,
//!   nothing changed) without it: only the form and upload guards accept anything but GET;
//! - every change is written to the audit log with who, what, before/after and from where;
//! - all output is escaped by the templates; no secret (password hash, token) is rendered;
//! - every CSV export writes its cells through `csv_cell`, so a name that starts like a
//!   formula stays text in a spreadsheet.

mod announcements_page;
mod audit_page;
mod auth_page;
mod dashboard;
mod guard;
mod handins_page;
mod health_page;
mod lab_seats;
mod labs;
mod login;
mod roles;
mod sessions;
mod settings_page;
mod transfers_page;
mod users;
mod view;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::audit::Actor;
use crate::auth::{self, AuthError, CurrentUser, Grant, ViewAllTransfers};
use crate::permission::Permission;

use crate::state::AppState;
pub use guard::{PortalForm, PortalPage, PortalUpload};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/login", get(login::form).post(login::submit))
        .route("/admin/logout", post(login::logout))
        .route("/admin", get(dashboard::page))
        .route("/admin/dashboard.json", get(dashboard::figures_json))
        .route("/admin/static/portal.css", get(static_css))
        .route("/admin/static/portal.js", get(static_js))
        .route("/admin/users", get(users::list).post(users::create))
        .route("/admin/users.csv", get(users::export))
        .route("/admin/users/import", get(users::import_form).post(users::import_preview))
        .route("/admin/users/import/confirm", post(users::import_confirm))
        .route("/admin/users/{id}", get(users::edit).post(users::update))
        .route("/admin/users/{id}/disable", post(users::disable))
        .route("/admin/users/{id}/enable", post(users::enable))
        .route("/admin/users/{id}/reset-password", post(users::reset_password))
        .route("/admin/users/{id}/delete", post(users::delete))
        .route("/admin/roles", get(roles::page).post(roles::create))
        .route("/admin/roles/{id}", post(roles::update))
        .route("/admin/roles/{id}/delete", post(roles::delete))
        .route("/admin/labs", get(labs::page).post(labs::create))
        .route("/admin/labs/{id}", post(labs::update))
        .route("/admin/labs/{id}/delete", post(labs::delete))
        .route("/admin/labs/{id}/policy", post(labs::policy))
        .route("/admin/labs/{id}/schedule", post(labs::schedule))
        .route("/admin/labs/{id}/seats", get(lab_seats::page).post(lab_seats::set))
        .route("/admin/labs/{id}/seats/remove", post(lab_seats::remove))
        .route("/admin/labs/{id}/seats/map", post(lab_seats::save_map))
        .route("/admin/labs/{id}/seats/import", post(lab_seats::import))
        .route("/admin/transfers", get(transfers_page::list))
        .route("/admin/transfers.csv", get(transfers_page::export))
        .route("/admin/broadcasts", get(transfers_page::broadcasts))
        .route("/admin/broadcasts/{id}", get(transfers_page::broadcast))
        .route("/admin/audit", get(audit_page::list))
        .route("/admin/audit.csv", get(audit_page::export))
        .route("/admin/sessions", get(sessions::page))
        .route("/admin/sessions/{id}/revoke", post(sessions::revoke))
        .route("/admin/settings", get(settings_page::page).post(settings_page::save))
        .route("/admin/announcements", get(announcements_page::page))
        .route("/admin/announcements/{id}/withdraw", post(announcements_page::withdraw))
        .route("/admin/handins", get(handins_page::page))
        .route("/admin/handins/{id}/close", post(handins_page::close))
        .route("/admin/authentication", get(auth_page::page))
        .route("/admin/authentication/test", post(auth_page::test_user))
        .route("/admin/health", get(health_page::page))
        .route("/admin/health/ice", post(health_page::run_ice))
}

async fn static_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../../portal-templates/static/portal.css"))
        .into_response()
}

async fn static_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../../portal-templates/static/portal.js"),
    )
        .into_response()
}

/// The largest form the portal accepts (like the API's JSON bodies).
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// The largest upload (a CSV of users to import).
pub const MAX_UPLOAD_BYTES: usize = 1 << 20;

/// A signed-in user allowed into the portal, with what the page layout needs.
pub struct PortalUser {
    pub user: CurrentUser,
    pub csrf: String,
    pub actor: Actor,
}

impl PortalUser {
    pub fn has(&self, permission: Permission) -> bool {
        self.user.has(permission)
    }

    pub fn layout(&self, active: &'static str) -> view::Layout {
        view::Layout {
            active,
            display_name: self.user.display_name.clone(),
            role: self.user.role.clone(),
            csrf: self.csrf.clone(),
            manage_users: self.has(Permission::UsersManage),
            view_audit: self.has(Permission::AuditView),
            view_transfers: ViewAllTransfers::allows(self.user.permissions),
        }
    }
}

impl FromRequestParts<AppState> for PortalUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let back = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/admin").to_string();
        let to_login = || Redirect::to(&format!("/admin/login?next={}", view::url_encode(&back))).into_response();
        let Some(token) = auth::request_token(&parts.headers) else { return Err(to_login()) };
        let user = match auth::authenticate(state, &token).await {
            Ok(u) => u,
            Err(AuthError::Internal(e)) => return Err(PortalError::Internal(e).into_response()),
            Err(AuthError::StoreUnavailable(e)) => return Err(PortalError::Unavailable(e).into_response()),
            Err(_) => return Err(to_login()),
        };
        if user.must_change_password {
            // The web client has the password change form; it sends the user back here after.
            return Err(Redirect::to(&password_change_then(&back)).into_response());
        }
        if !user.has(Permission::PortalAccess) {
            return Err(PortalError::Forbidden(Permission::PortalAccess.name()).into_response());
        }
        let Ok(auth::ClientAddr(addr)) = auth::ClientAddr::from_request_parts(parts, state).await;
        let csrf = auth::csrf::token_for(&state.csrf_key, &user.session_id);
        let actor = Actor { user_id: Some(user.id), username: user.username.clone(), client_addr: addr.to_string() };
        Ok(PortalUser { user, csrf, actor })
    }
}

/// The web client's password change form, which sends a user with `portal.access` back to
/// the portal page `back` once the temporary password is changed.
fn password_change_then(back: &str) -> String {
    format!("/?next={}", view::url_encode(back))
}

/// Portal failures, rendered as a plain error page.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("This page needs the permission {0}.")]
    Forbidden(&'static str),
    #[error("The form expired or did not come from this portal. Go back, reload the page and try again.")]
    Csrf,
    #[error("{0}")]
    BadRequest(String),
    #[error("Not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Internal(String),
    /// The database cannot be reached (the detail is for the log).
    #[error("{}", crate::db::UNAVAILABLE_MESSAGE)]
    Unavailable(String),
}

impl From<crate::db::DbError> for PortalError {
    fn from(e: crate::db::DbError) -> Self {
        if e.is_unavailable() {
            return PortalError::Unavailable(e.to_string());
        }
        match e {
            crate::db::DbError::Conflict(what) => PortalError::BadRequest(format!("{what} already exists.")),
            crate::db::DbError::NotFound(what) => PortalError::NotFound(what),
            other => PortalError::Internal(other.to_string()),
        }
    }
}

impl From<AuthError> for PortalError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::WeakPassword(m) => PortalError::BadRequest(m),
            AuthError::Internal(m) => PortalError::Internal(m),
            AuthError::StoreUnavailable(m) => PortalError::Unavailable(m),
            other => PortalError::BadRequest(other.to_string()),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    title: &'static str,
    message: String,
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            PortalError::Forbidden(_) | PortalError::Csrf => (StatusCode::FORBIDDEN, "Not allowed"),
            PortalError::BadRequest(_) => (StatusCode::BAD_REQUEST, "That did not work"),
            PortalError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            PortalError::Internal(detail) => {
                tracing::error!(error = %detail, "portal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "Server error")
            }
            PortalError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "portal: store unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "Database unavailable")
            }
        };
        let message = match &self {
            PortalError::Internal(_) => "Something went wrong on the server; it was logged.".to_string(),
            other => other.to_string(),
        };
        (status, ErrorPage { title, message }).into_response()
    }
}

/// `?notice=` of a page reached by a redirect after a form.
#[derive(serde::Deserialize)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

/// A form with no field but the CSRF token, which the guard checks (buttons such as Disable
/// or Revoke).
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// A CSV export being written. Every cell goes through [`csv_cell`], so no export can hand
/// a spreadsheet a formula.
pub struct CsvExport {
    out: csv::Writer<Vec<u8>>,
}

impl CsvExport {
    /// An export whose first row is `header`.
    pub fn new<'a>(header: impl IntoIterator<Item = &'a str>) -> Result<Self, PortalError> {
        let mut export = CsvExport { out: csv::Writer::from_writer(Vec::new()) };
        export.row(header)?;
        Ok(export)
    }

    pub fn row<'a>(&mut self, cells: impl IntoIterator<Item = &'a str>) -> Result<(), PortalError> {
        let internal = |e: csv::Error| PortalError::Internal(e.to_string());
        for cell in cells {
            self.out.write_field(csv_cell(cell).as_bytes()).map_err(internal)?;
        }
        // An empty record after `write_field` ends the row.
        self.out.write_record(None::<&[u8]>).map_err(internal)
    }

    /// The download response.
    pub fn download(self, filename: &str) -> Result<Response, PortalError> {
        let body = self.out.into_inner().map_err(|e| PortalError::Internal(e.to_string()))?;
        let disposition = format!("attachment; filename=\"{filename}\"");
        Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, disposition)],
            body,
        )
            .into_response())
    }
}

/// One exported cell, safe to open in a spreadsheet: a value that starts with a character
/// that makes a spreadsheet read it as a formula (`=`, `+`, `-`, `@`, tab, carriage
/// return) gets a single quote in front (OWASP's advice on CSV injection); anything else
/// is unchanged. Usernames typed at a failed login and names sent by browsers reach the
/// exports, so any cell may come from an attacker.
pub fn csv_cell(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}").into() } else { value.into() }
}

/// A redirect after a successful form (post/redirect/get), with a notice for the page.
pub fn done(path: &str, notice: &str) -> Response {
    let sep = if path.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{path}{sep}notice={}", view::url_encode(notice))).into_response()
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn csv_cells_that_start_a_formula_get_a_quote_and_keep_their_value() {
        for lead in ['=', '+', '-', '@', '\t', '\r'] {
            let value = format!("{lead}HYPERLINK(\"https://evil.example\",\"x\")");
            assert_eq!(csv_cell(&value), format!("'{value}"), "{lead:?}");
        }
        for safe in ["", "ann", "Ann =1", "'=already quoted", " =1", "1-2", "user:=x", "\n=1", "é=1"] {
            assert_eq!(csv_cell(safe), safe);
        }
    }
}
