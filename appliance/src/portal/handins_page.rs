//! Hand-ins: every hand-in opened from the web client (newest first), with what each student
//! handed in as the receipts say (the newest version counts; the files themselves were
//! never on the server), and closing an open one.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

use super::view::{self, Layout};
use super::{NoFields, NoticeQuery, PortalError, PortalForm, PortalPage, done};
use crate::auth::{UsersManage, ViewAllTransfers};
use crate::db::handins;
use crate::signaling::SignalError;
use crate::state::AppState;

/// Hand-ins listed.
const SHOWN: i64 = 100;

pub struct StudentRow {
    pub username: String,
    pub version: i64,
    pub files: String,
    pub bytes: String,
    pub at: String,
    pub late: bool,
}

pub struct HandinRow {
    pub id: String,
    pub title: String,
    pub lab: String,
    pub by: String,
    pub opened: String,
    pub deadline: String,
    pub open: bool,
    pub rules: String,
    pub students: Vec<StudentRow>,
    pub late: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "handins.html")]
struct HandinsPage {
    layout: Layout,
    notice: String,
    rows: Vec<HandinRow>,
}

pub async fn page(
    State(state): State<AppState>,
    portal: PortalPage<ViewAllTransfers>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let mut rows = Vec::new();
    for h in handins::list(&state.db, SHOWN).await? {
        let receipts = handins::receipts(&state.db, &h.id).await?;
        // The newest version of each student (receipts come by student, then version).
        let mut students: Vec<StudentRow> = Vec::new();
        for r in &receipts {
            let files = r.file_list();
            let row = StudentRow {
                username: r.username.clone(),
                version: r.version,
                files: files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
                bytes: view::bytes(r.total_bytes),
                at: view::when(Some(r.received_at)),
                late: r.late != 0,
            };
            match students.last_mut() {
                Some(last) if last.username == row.username => *last = row,
                _ => students.push(row),
            }
        }
        let mut rules = Vec::new();
        if !h.extensions.is_empty() {
            rules.push(format!("only {}", h.extension_list().join(", ")));
        }
        if let Some(max) = h.max_bytes {
            rules.push(format!("at most {} each", view::bytes(max)));
        }
        rules.push(if h.allows_late() { "late accepted, marked late".into() } else { "no late hand-ins".into() });
        rows.push(HandinRow {
            late: students.iter().filter(|s| s.late).count(),
            id: h.id.clone(),
            title: h.title.clone(),
            lab: h.lab.clone(),
            by: h.owner_username.clone(),
            opened: view::when(Some(h.created_at)),
            deadline: view::when(Some(h.deadline)),
            open: h.closed_at.is_none(),
            rules: rules.join("; "),
            students,
        });
    }
    Ok(HandinsPage { layout: portal.layout("handins"), notice: view::notice(q.notice.as_deref()), rows }
        .into_response())
}

pub async fn close(
    State(state): State<AppState>,
    Path(id): Path<String>,
    PortalForm { portal, .. }: PortalForm<UsersManage, NoFields>,
) -> Result<Response, PortalError> {
    match crate::signaling::handin::close_by(&state, &portal.actor, &id).await {
        Ok(()) => Ok(done("/admin/handins", "Closed: the lab's devices no longer offer it.")),
        Err(SignalError::UnknownHandin) => Err(PortalError::NotFound("that hand-in".into())),
        Err(SignalError::HandinClosed) => Ok(done("/admin/handins", "It was closed already.")),
        Err(SignalError::StoreUnavailable(e)) => Err(PortalError::Unavailable(e)),
        Err(e) => Err(PortalError::Internal(e.to_string())),
    }
}
