//! The transfer log (filter by user, lab, status, path, date; CSV export) and broadcasts
//! with their per-recipient status. Every page here shows other users' transfers, so each
//! needs `transfers.view_all` (or `users.manage`, as `GET /api/transfers` does for the
//! same rows); `portal.access` alone is not enough.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::view::{self, Layout};
use super::{PortalError, PortalPage};
use crate::auth::ViewAllTransfers;
use crate::db::transfers::{self, TransferFilter, TransferRow};
use crate::state::AppState;

const PAGE_SIZE: i64 = 100;
const EXPORT_MAX: i64 = 1_000_000;

pub struct TransferView {
    pub requested: String,
    pub sender: String,
    pub receiver: String,
    pub labs: String,
    pub files: String,
    pub size: String,
    pub status: String,
    pub path: String,
    pub duration: String,
    pub reason: String,
}

fn files_summary(json: &str) -> String {
    let list: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    let first = list.first().and_then(|f| f["name"].as_str()).unwrap_or("");
    match list.len() {
        0 => String::new(),
        1 => first.to_string(),
        n => format!("{first} and {} more", n - 1),
    }
}

/// What a transfer carried: its files, or for a text its length (the text is never stored).
fn contents(t: &TransferRow) -> String {
    match t.text_chars {
        Some(1) => "Text, 1 character".into(),
        Some(n) => format!("Text, {n} characters"),
        None => files_summary(&t.files),
    }
}

fn view_of(t: &TransferRow) -> TransferView {
    TransferView {
        requested: view::when(Some(t.requested_at)),
        sender: format!("{} ({})", t.sender_username, t.sender_device),
        receiver: format!("{} ({})", t.receiver_username, t.receiver_device),
        labs: if t.sender_lab == t.receiver_lab {
            t.sender_lab.clone()
        } else {
            format!("{} → {}", t.sender_lab, t.receiver_lab)
        },
        files: contents(t),
        size: view::bytes(t.total_bytes),
        status: t.status.clone(),
        path: t.path.clone(),
        duration: t.duration_ms.map(|ms| format!("{:.1} s", ms as f64 / 1000.0)).unwrap_or_default(),
        reason: t.failure_reason.clone(),
    }
}

#[derive(Deserialize, Default)]
pub struct Filters {
    user: Option<String>,
    lab: Option<String>,
    status: Option<String>,
    path: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl Filters {
    fn to_filter(&self) -> Result<TransferFilter, PortalError> {
        let date = |v: &Option<String>, end: bool| -> Result<Option<i64>, PortalError> {
            match nonempty(v) {
                Some(s) => view::parse_date(&s, end)
                    .map(Some)
                    .ok_or_else(|| PortalError::BadRequest(format!("{s:?} is not a date (YYYY-MM-DD)."))),
                None => Ok(None),
            }
        };
        let before = match nonempty(&self.cursor) {
            Some(c) => {
                let (at, id) = c.split_once('.').ok_or_else(|| PortalError::BadRequest("Bad page cursor.".into()))?;
                Some((at.parse().map_err(|_| PortalError::BadRequest("Bad page cursor.".into()))?, id.to_string()))
            }
            None => None,
        };
        Ok(TransferFilter {
            party: None,
            username: nonempty(&self.user),
            lab: nonempty(&self.lab),
            status: nonempty(&self.status),
            path: nonempty(&self.path),
            from: date(&self.from, false)?,
            to: date(&self.to, true)?,
            before,
        })
    }

    fn query_without_cursor(&self) -> String {
        let pairs = [
            ("user", &self.user),
            ("lab", &self.lab),
            ("status", &self.status),
            ("path", &self.path),
            ("from", &self.from),
            ("to", &self.to),
        ];
        pairs
            .iter()
            .filter_map(|(k, v)| nonempty(v).map(|v| format!("{k}={}", view::url_encode(&v))))
            .collect::<Vec<_>>()
            .join("&")
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "transfers.html")]
struct TransfersPage {
    layout: Layout,
    notice: String,
    user: String,
    lab: String,
    status: String,
    path: String,
    from: String,
    to: String,
    rows: Vec<TransferView>,
    next_link: String,
    export_link: String,
}

pub async fn list(
    State(state): State<AppState>,
    portal: PortalPage<ViewAllTransfers>,
    Query(f): Query<Filters>,
) -> Result<Response, PortalError> {
    let filter = f.to_filter()?;
    let rows = transfers::list(&state.db, &filter, PAGE_SIZE).await?;
    let base = f.query_without_cursor();
    let next_link = match rows.last() {
        Some(last) if rows.len() as i64 == PAGE_SIZE => {
            format!("/admin/transfers?{base}&cursor={}.{}", last.requested_at, last.id)
        }
        _ => String::new(),
    };
    let get = |v: &Option<String>| nonempty(v).unwrap_or_default();
    Ok(TransfersPage {
        layout: portal.layout("transfers"),
        notice: String::new(),
        user: get(&f.user),
        lab: get(&f.lab),
        status: get(&f.status),
        path: get(&f.path),
        from: get(&f.from),
        to: get(&f.to),
        rows: rows.iter().map(view_of).collect(),
        next_link,
        export_link: format!("/admin/transfers.csv?{base}"),
    }
    .into_response())
}

pub async fn export(
    State(state): State<AppState>,
    _portal: PortalPage<ViewAllTransfers>,
    Query(f): Query<Filters>,
) -> Result<Response, PortalError> {
    let rows = transfers::list(&state.db, &f.to_filter()?, EXPORT_MAX).await?;
    let mut out = super::CsvExport::new([
        "id",
        "requested_utc",
        "sender",
        "sender_device",
        "sender_lab",
        "receiver",
        "receiver_device",
        "receiver_lab",
        "files",
        "total_bytes",
        "bytes",
        "status",
        "path",
        "duration_ms",
        "sha256",
        "failure_reason",
        "broadcast_id",
    ])?;
    for t in &rows {
        out.row([
            t.id.as_str(),
            &view::when(Some(t.requested_at)),
            &t.sender_username,
            &t.sender_device,
            &t.sender_lab,
            &t.receiver_username,
            &t.receiver_device,
            &t.receiver_lab,
            &contents(t),
            &t.total_bytes.to_string(),
            &t.bytes.to_string(),
            &t.status,
            &t.path,
            &t.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
            &t.sha256,
            &t.failure_reason,
            t.broadcast_id.as_deref().unwrap_or(""),
        ])?;
    }
    out.download("labbeam-transfers.csv")
}

pub struct BroadcastView {
    pub id: String,
    pub when: String,
    pub sender: String,
    pub target: String,
    pub files: String,
    pub size: String,
    pub recipients: i64,
    pub completed: i64,
    pub failed: i64,
}

fn broadcast_view(b: transfers::BroadcastRow) -> BroadcastView {
    BroadcastView {
        when: view::when(Some(b.created_at)),
        target: b.target.clone(),
        files: files_summary(&b.files),
        size: view::bytes(b.total_bytes),
        id: b.id,
        sender: b.sender_username,
        recipients: b.recipients,
        completed: b.completed,
        failed: b.failed,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "broadcasts.html")]
struct BroadcastsPage {
    layout: Layout,
    notice: String,
    broadcasts: Vec<BroadcastView>,
    detail: Option<BroadcastView>,
    recipients: Vec<TransferView>,
    /// While the broadcast runs: each recipient's state as reported by its browser.
    live: Vec<LiveRecipient>,
}

/// A recipient of a running broadcast, from the signaling hub's memory.
pub struct LiveRecipient {
    pub who: String,
    pub lab: String,
    pub state: String,
    pub progress: String,
    pub reason: String,
}

fn live_of(state: &AppState, id: &str) -> Vec<LiveRecipient> {
    let Some(list) = state.signaling.with_broadcasts(|b| b.live(id)) else { return Vec::new() };
    let total = state.signaling.with_broadcasts(|b| b.total_bytes(id)).unwrap_or(0);
    list.into_iter()
        .map(|r| LiveRecipient {
            who: format!("{} ({})", r.peer.username, r.peer.device),
            lab: r.peer.lab,
            state: serde_json::to_value(r.state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default(),
            progress: format!("{}%", r.bytes.saturating_mul(100).checked_div(total).unwrap_or(100)),
            reason: r.reason,
        })
        .collect()
}

pub async fn broadcasts(
    State(state): State<AppState>,
    portal: PortalPage<ViewAllTransfers>,
) -> Result<Response, PortalError> {
    let rows = transfers::broadcasts(&state.db, 200).await?;
    Ok(BroadcastsPage {
        layout: portal.layout("broadcasts"),
        notice: String::new(),
        broadcasts: rows.into_iter().map(broadcast_view).collect(),
        detail: None,
        recipients: Vec::new(),
        live: Vec::new(),
    }
    .into_response())
}

pub async fn broadcast(
    State(state): State<AppState>,
    portal: PortalPage<ViewAllTransfers>,
    Path(id): Path<String>,
) -> Result<Response, PortalError> {
    let b =
        transfers::broadcast(&state.db, &id).await?.ok_or_else(|| PortalError::NotFound(format!("broadcast {id}")))?;
    let recipients = transfers::of_broadcast(&state.db, &id).await?;
    Ok(BroadcastsPage {
        layout: portal.layout("broadcasts"),
        notice: String::new(),
        broadcasts: Vec::new(),
        detail: Some(broadcast_view(b)),
        recipients: recipients.iter().map(view_of).collect(),
        live: live_of(&state, &id),
    }
    .into_response())
}
