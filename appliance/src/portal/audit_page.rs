//! The audit log: logins, failures and every admin action; filter and export. Without
//! `users.manage` a reader sees the rows of their own actions only.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::view::{self, Layout};
use super::{PortalError, PortalPage, PortalUser};
use crate::auth;
use crate::db::audit::{self, AuditFilter, AuditRow};
use crate::permission::Permission;
use crate::state::AppState;

const PAGE_SIZE: i64 = 200;

#[derive(Deserialize, Default)]
pub struct Filters {
    action: Option<String>,
    actor: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<i64>,
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

async fn rows(state: &AppState, portal: &PortalUser, f: &Filters, limit: i64) -> Result<Vec<AuditRow>, PortalError> {
    let date = |v: &Option<String>, end: bool| -> Result<Option<i64>, PortalError> {
        match nonempty(v) {
            Some(s) => view::parse_date(s, end)
                .map(Some)
                .ok_or_else(|| PortalError::BadRequest(format!("{s:?} is not a date (YYYY-MM-DD)."))),
            None => Ok(None),
        }
    };
    let filter = AuditFilter {
        action: nonempty(&f.action),
        actor_user_id: (!portal.has(Permission::UsersManage)).then_some(portal.user.id),
        before: f.before,
        actor: nonempty(&f.actor),
        from: date(&f.from, false)?,
        to: date(&f.to, true)?,
    };
    Ok(audit::list(&state.db, &filter, limit).await?)
}

pub struct AuditView {
    pub when: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub details: String,
    pub from: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    notice: String,
    action: String,
    actor: String,
    from: String,
    to: String,
    rows: Vec<AuditView>,
    next_link: String,
    export_link: String,
}

fn query(f: &Filters) -> String {
    [("action", &f.action), ("actor", &f.actor), ("from", &f.from), ("to", &f.to)]
        .iter()
        .filter_map(|(k, v)| nonempty(v).map(|v| format!("{k}={}", view::url_encode(v))))
        .collect::<Vec<_>>()
        .join("&")
}

pub async fn list(
    State(state): State<AppState>,
    portal: PortalPage<auth::AuditView>,
    Query(f): Query<Filters>,
) -> Result<Response, PortalError> {
    let list = rows(&state, &portal, &f, PAGE_SIZE).await?;
    let next_link = match list.last() {
        Some(last) if list.len() as i64 == PAGE_SIZE => format!("/admin/audit?{}&before={}", query(&f), last.id),
        _ => String::new(),
    };
    let get = |v: &Option<String>| nonempty(v).unwrap_or("").to_string();
    Ok(AuditPage {
        layout: portal.layout("audit"),
        notice: String::new(),
        action: get(&f.action),
        actor: get(&f.actor),
        from: get(&f.from),
        to: get(&f.to),
        rows: list
            .into_iter()
            .map(|r| AuditView {
                when: view::when(Some(r.at)),
                actor: r.actor_username,
                action: r.action,
                target: r.target,
                details: r.details,
                from: r.client_addr,
            })
            .collect(),
        next_link,
        export_link: format!("/admin/audit.csv?{}", query(&f)),
    }
    .into_response())
}

pub async fn export(
    State(state): State<AppState>,
    portal: PortalPage<auth::AuditView>,
    Query(f): Query<Filters>,
) -> Result<Response, PortalError> {
    let list = rows(&state, &portal, &f, 1_000_000).await?;
    let mut out = super::CsvExport::new(["id", "at_utc", "actor", "action", "target", "details", "from"])?;
    for r in &list {
        out.row([
            r.id.to_string().as_str(),
            &view::when(Some(r.at)),
            &r.actor_username,
            &r.action,
            &r.target,
            &r.details,
            &r.client_addr,
        ])?;
    }
    out.download("labbeam-audit.csv")
}
