//! Announcements: the newest ones, live or ended, and withdrawing a live one (the devices
//! showing it drop it at once; audited).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

use super::view::{self, Layout};
use super::{NoFields, NoticeQuery, PortalError, PortalForm, PortalPage, done};
use crate::auth::UsersManage;
use crate::db::{self, announcements};
use crate::signaling::SignalError;
use crate::state::AppState;

/// Announcements listed.
const SHOWN: i64 = 200;

pub struct AnnouncementRow {
    pub id: i64,
    pub from: String,
    pub to: String,
    pub text: String,
    pub at: String,
    pub until: String,
    pub live: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "announcements.html")]
struct AnnouncementsPage {
    layout: Layout,
    notice: String,
    rows: Vec<AnnouncementRow>,
}

pub async fn page(
    State(state): State<AppState>,
    portal: PortalPage<UsersManage>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let now = db::now();
    let rows = announcements::newest(&state.db, SHOWN)
        .await?
        .into_iter()
        .map(|a| AnnouncementRow {
            id: a.id,
            from: a.from_name,
            to: a.lab.unwrap_or_else(|| "everyone".into()),
            text: a.text,
            at: view::when(Some(a.created_at)),
            until: view::when(Some(a.expires_at)),
            live: a.expires_at > now,
        })
        .collect();
    Ok(AnnouncementsPage { layout: portal.layout("announcements"), notice: view::notice(q.notice.as_deref()), rows }
        .into_response())
}

pub async fn withdraw(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, .. }: PortalForm<UsersManage, NoFields>,
) -> Result<Response, PortalError> {
    match crate::signaling::announce::withdraw_by(&state, &portal.actor, true, id).await {
        Ok(()) => Ok(done("/admin/announcements", "Withdrawn: the devices showing it dropped it.")),
        Err(SignalError::UnknownAnnouncement) => {
            Err(PortalError::NotFound("that announcement (it may have expired or been withdrawn already)".into()))
        }
        Err(SignalError::StoreUnavailable(e)) => Err(PortalError::Unavailable(e)),
        Err(e) => Err(PortalError::Internal(e.to_string())),
    }
}
