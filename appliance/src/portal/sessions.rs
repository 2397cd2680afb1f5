//! Sessions: who is signed in, from where, on which devices; revoking one ends it at once
//! (its sockets are dropped).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};

use super::view::{self, Layout};
use super::{NoFields, NoticeQuery, PortalError, PortalForm, PortalPage, done};
use crate::audit::{self, AuditEvent};
use crate::auth::UsersManage;
use crate::db::sessions;
use crate::state::AppState;

pub struct SessionView {
    pub id: String,
    pub username: String,
    pub started: String,
    pub seen: String,
    pub expires: String,
    pub from: String,
    pub agent: String,
    pub devices: String,
    pub current: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "sessions.html")]
struct SessionsPage {
    layout: Layout,
    notice: String,
    sessions: Vec<SessionView>,
}

pub async fn page(
    State(state): State<AppState>,
    portal: PortalPage<UsersManage>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let devices = state.signaling.with_hub(|h| h.devices());
    let list = sessions::active(&state.db, 1000).await?;
    let views = list
        .into_iter()
        .map(|s| SessionView {
            devices: devices
                .iter()
                .filter(|(sid, _, _)| *sid == s.id)
                .map(|(_, device, lab)| format!("{device} ({lab})"))
                .collect::<Vec<_>>()
                .join(", "),
            current: s.id == portal.user.session_id,
            started: view::when(Some(s.created_at)),
            seen: view::when(Some(s.last_seen_at)),
            expires: view::when(Some(s.expires_at)),
            from: s.client_addr,
            agent: s.user_agent.chars().take(80).collect(),
            username: s.username,
            id: s.id,
        })
        .collect();
    Ok(SessionsPage { layout: portal.layout("sessions"), notice: view::notice(q.notice.as_deref()), sessions: views }
        .into_response())
}

pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    PortalForm { portal, .. }: PortalForm<UsersManage, NoFields>,
) -> Result<Response, PortalError> {
    let active = sessions::active(&state.db, 100_000).await?;
    let Some(s) = active.into_iter().find(|s| s.id == id) else {
        return Err(PortalError::NotFound("that session (it may have ended already)".into()));
    };
    sessions::revoke(&state.db, &id).await?;
    state.signaling.disconnect_sessions(std::slice::from_ref(&id)).await;
    audit::record(&state.db, &portal.actor, AuditEvent::SessionRevoked { username: &s.username, session: &id }).await?;
    Ok(done("/admin/sessions", &format!("Ended a session of {}; its devices were disconnected.", s.username)))
}
