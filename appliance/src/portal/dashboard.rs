//! The dashboard: who is online per lab, transfers under way, today's figures.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::view::{self, Layout};
use super::{NoticeQuery, PortalError, PortalPage};
use crate::auth::PortalAccess;
use crate::db;
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    layout: Layout,
    notice: String,
    figures: Vec<(&'static str, &'static str, String)>,
    online: Vec<(String, usize)>,
}

/// (key, label, value) of each figure card.
async fn figures(
    state: &AppState,
) -> Result<(Vec<(&'static str, &'static str, String)>, Vec<(String, usize)>), PortalError> {
    let (online, (waiting, active)) = state.signaling.with_hub(|h| (h.online_by_lab(), h.transfer_counts()));
    let now = db::now();
    let midnight = now - now.rem_euclid(86_400);
    let day = db::transfers::stats_since(&state.db, midnight).await?;
    let devices: usize = online.iter().map(|(_, n)| n).sum();
    let turn = &state.metrics.turn;
    let relayed = turn.bytes_to_peer.get().saturating_add(turn.bytes_to_client.get());
    Ok((
        vec![
            ("online", "devices online", devices.to_string()),
            ("active", "transfers under way", active.to_string()),
            ("waiting", "requests waiting", waiting.to_string()),
            ("today", "transfers today", day.total.to_string()),
            ("completed", "completed today", day.completed.to_string()),
            ("failed", "failed today", day.failed.to_string()),
            ("direct", "sent direct today", view::bytes(day.bytes_direct)),
            ("relay", "relayed today", view::bytes(day.bytes_relay)),
            ("turn_allocations", "TURN allocations now", turn.allocations_active.get().to_string()),
            ("turn_bytes", "bytes through TURN since start", view::bytes(i64::try_from(relayed).unwrap_or(i64::MAX))),
        ],
        online,
    ))
}

pub async fn page(
    State(state): State<AppState>,
    portal: PortalPage<PortalAccess>,
    Query(q): Query<NoticeQuery>,
) -> Result<DashboardPage, PortalError> {
    let (figures, online) = figures(&state).await?;
    Ok(DashboardPage { layout: portal.layout("dashboard"), notice: view::notice(q.notice.as_deref()), figures, online })
}

/// The same figures as JSON, for the page's live refresh.
pub async fn figures_json(
    State(state): State<AppState>,
    _portal: PortalPage<PortalAccess>,
) -> Result<Json<Value>, PortalError> {
    let (figures, online) = figures(&state).await?;
    let map: serde_json::Map<String, Value> =
        figures.into_iter().map(|(k, _, v)| (k.to_string(), Value::from(v))).collect();
    let online: Vec<Value> = online.into_iter().map(|(lab, n)| json!({ "lab": lab, "devices": n })).collect();
    Ok(Json(json!({ "figures": map, "online": online })))
}
