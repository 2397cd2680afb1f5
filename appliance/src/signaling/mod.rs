//! Signaling and presence over Socket.IO (socketioxide, namespace `/`, on the HTTPS
//! listener): who is online in which lab, the transfer handshake, WebRTC offer/answer/ICE
//! relay between the two parties of an accepted transfer, announcements and broadcasts.
//!
//! The rules live in `hub` (plain, synchronous, unit-tested); this file authenticates
//! sockets, parses events, applies the hub's decisions (emits, transfer-log rows) and runs
//! the timers (request expiry, report grace period, revocation sweep).
//!
//! Invariants: every connection is authenticated like an HTTP request (token or cookie,
//! live session, enabled user) and is dropped within seconds when its session is revoked
//! or its user disabled; every client event is validated and answered by an ack
//! `{ok:true,...}` or `{error:{code,message}}`; no file byte ever passes through here.

pub mod access;
pub mod announce;
pub mod broadcast;
mod broadcast_events;
mod error;
mod events;
pub mod handin;
pub mod hub;
pub mod ids;
mod lab_policy;
pub mod payloads;
pub mod protocol;
mod reconcile;
mod resume;
pub mod tree;

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use socketioxide::SocketIo;

use crate::db;
use crate::labs::LabName;
use crate::settings;
use crate::state::AppState;
pub use error::SignalError;
pub(crate) use error::ack_body;
use hub::{Audience, Beyond, Emit, Hub, Limits, Record, Unseen};
use ids::{PeerId, TransferId};

/// Largest Socket.IO message accepted (signaling payloads are small).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// How long after one side's report the other side may still report.
const REPORT_GRACE: Duration = Duration::from_secs(30);
/// How often connected sessions are checked against the store.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

/// The signaling part of the application state.
#[derive(Default)]
pub struct Signaling {
    hub: Mutex<Hub>,
    io: OnceLock<SocketIo>,
    broadcasts: Mutex<broadcast::Book>,
    /// Transfer-log records not written yet because the store was unavailable, oldest first.
    unwritten: Mutex<VecDeque<Record>>,
    /// The labs in exam mode as the last access change saw them (empty at start: the first
    /// change tells the devices of every lab in exam mode again, which they already know).
    exam_labs: Mutex<Vec<LabName>>,
}

impl Signaling {
    /// Runs `f` with the hub locked. Never awaits inside.
    pub fn with_hub<T>(&self, f: impl FnOnce(&mut Hub) -> T) -> T {
        let mut hub = self.hub.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut hub)
    }

    /// Runs `f` with the records waiting for the store locked. Never awaits inside.
    fn with_unwritten<T>(&self, f: impl FnOnce(&mut VecDeque<Record>) -> T) -> T {
        let mut queue = self.unwritten.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut queue)
    }

    /// Takes note of the labs in exam mode now; returns those whose exam mode changed since
    /// the last call, each with its new state.
    pub fn exam_changes(&self, now: &[LabName]) -> Vec<(LabName, bool)> {
        let mut seen = self.exam_labs.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed: Vec<(LabName, bool)> =
            now.iter().filter(|l| !seen.contains(l)).map(|l| (l.clone(), true)).collect();
        changed.extend(seen.iter().filter(|l| !now.contains(l)).map(|l| (l.clone(), false)));
        *seen = now.to_vec();
        changed
    }

    /// Runs `f` with the running broadcasts locked. Never awaits inside.
    pub fn with_broadcasts<T>(&self, f: impl FnOnce(&mut broadcast::Book) -> T) -> T {
        let mut book = self.broadcasts.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut book)
    }

    /// Drops every socket signed in with one of these sessions, at once.
    pub async fn disconnect_sessions(&self, sessions: &[String]) {
        let peers = self.with_hub(|h| h.peers_of_sessions(sessions));
        let Some(io) = self.io.get() else { return };
        for peer in peers {
            if let Err(e) = io.to(peer_room(&peer)).disconnect().await {
                tracing::warn!(%peer, error = %e, "could not disconnect a revoked socket");
            }
        }
    }
}

impl Signaling {
    /// Drops these sockets, at once (they reconnect by themselves).
    pub async fn disconnect_peers(&self, peers: &[PeerId]) {
        let Some(io) = self.io.get() else { return };
        for peer in peers {
            if let Err(e) = io.to(peer_room(peer)).disconnect().await {
                tracing::warn!(%peer, error = %e, "could not disconnect a socket");
            }
        }
    }

    /// Drops every socket of a user, at once.
    pub async fn disconnect_user(&self, user_id: i64) {
        let sessions: Vec<String> = self
            .with_hub(|h| h.members().filter(|m| m.peer.user_id == user_id).map(|m| m.session_id.clone()).collect());
        self.disconnect_sessions(&sessions).await;
    }
}

pub(crate) fn peer_room(peer: &PeerId) -> String {
    format!("peer:{peer}")
}

pub(crate) fn lab_room(lab: &LabName) -> String {
    format!("lab:{lab}")
}

/// Devices that see every lab (`hub::Member::sees_all`), by role or by their lab's visibility.
pub(crate) const ALL_SCOPE_ROOM: &str = "scope:all";

/// Devices that see every lab by their role (`hub::sees_every_lab_by_role`): the only ones
/// of other labs told of a device kept to its own lab.
pub(crate) const ROLE_SCOPE_ROOM: &str = "scope:role";

/// Devices in a lab because their user picked it: they see the lab's presence but never get
/// its announcements (or auto-accepted broadcasts).
pub(crate) const SELF_SELECTED_ROOM: &str = "self-selected";

/// Devices of students (`hub::is_student`): presence of an exam-bound device skips them.
pub(crate) const STUDENT_ROOM: &str = "students";

/// Exam-bound devices (`hub::Member::exam`): presence of a student skips them.
pub(crate) const EXAM_ROOM: &str = "exam";

pub use resume::restore;

/// Builds the Socket.IO layer and registers the namespace. Call once at start.
pub fn layer(state: &AppState) -> socketioxide::layer::SocketIoLayer {
    let (layer, io) = SocketIo::builder()
        .with_state(state.clone())
        .max_payload(MAX_MESSAGE_BYTES as u64)
        .ws_max_message_size(MAX_MESSAGE_BYTES)
        .ws_max_frame_size(MAX_MESSAGE_BYTES)
        .max_buffer_size(1024)
        // Each connection keeps its WebSocket read buffer for life. Client messages are a few
        // hundred bytes (larger ones are read in more chunks), so 1 KiB instead of 4 KiB costs
        // nothing and lowers the memory per connection (bench/signaling/README.md).
        .ws_read_buffer_size(1024)
        .connect_timeout(Duration::from_secs(10))
        .build_layer();
    events::register(&io);
    let _ = state.signaling.io.set(io);
    tokio::spawn(sweep(state.clone()));
    layer
}

/// Sends the hub's emits.
/// The connected device behind socket `peer` (a handler's caller).
pub(crate) fn member_of(state: &AppState, peer: &PeerId) -> Result<hub::Member, SignalError> {
    state.signaling.with_hub(|h| h.member(peer).cloned()).ok_or(SignalError::NotConnected)
}

pub(crate) async fn deliver(state: &AppState, emits: Vec<Emit>) {
    let Some(io) = state.signaling.io.get() else { return };
    for e in emits {
        let (event, data) = (e.event.name(), e.event.data());
        let result = match &e.to {
            Audience::Peer(p) => io.to(peer_room(p)).emit(event, &data).await,
            Audience::ViewersOf(lab, unseen, beyond) => {
                let mut except: Vec<String> = e.except.iter().map(peer_room).collect();
                match unseen {
                    Unseen::Nobody => {}
                    Unseen::Students => except.push(STUDENT_ROOM.to_string()),
                    Unseen::ExamBound => except.push(EXAM_ROOM.to_string()),
                }
                let beyond = match beyond {
                    Beyond::AllLabViewers => ALL_SCOPE_ROOM,
                    Beyond::RoleViewers => ROLE_SCOPE_ROOM,
                };
                io.to([lab_room(lab), beyond.to_string()]).except(except).emit(event, &data).await
            }
            Audience::InLab(lab) => {
                let mut except: Vec<String> = e.except.iter().map(peer_room).collect();
                except.push(SELF_SELECTED_ROOM.to_string());
                io.to(lab_room(lab)).except(except).emit(event, &data).await
            }
            Audience::Everyone => io.emit(event, &data).await,
        };
        if let Err(err) = result {
            tracing::debug!(event, error = %err, "emit failed (receiver gone?)");
        }
    }
}

/// Writes transfer-log changes, in order.
/// Most transfer-log records kept in memory while the store is unavailable; past it the
/// oldest are dropped, each with an error in the log.
const MAX_UNWRITTEN: usize = 100_000;

/// Writes transfer-log records. While the store is unavailable (a database restart, a lost
/// connection) they wait in memory, in order, and the sweep writes them once it is back,
/// before any newer record: a transfer that ends during the gap is still logged as it
/// ended, not left `accepted`. A record the store refuses for another reason is logged and
/// dropped.
pub(crate) async fn store(state: &AppState, records: Vec<Record>) {
    for r in records {
        if let Record::Finished(_, outcome) = &r {
            state.metrics.transfer_finished(outcome.status.as_str());
        }
        if state.signaling.with_unwritten(|q| !q.is_empty()) {
            defer(state, r);
            continue;
        }
        match write_record(state, &r).await {
            Ok(()) => {}
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, "the transfer log waits for the store");
                defer(state, r);
            }
            Err(e) => tracing::error!(error = %e, record = ?r, "could not write the transfer log"),
        }
    }
}

fn defer(state: &AppState, r: Record) {
    let (dropped, waiting) = state.signaling.with_unwritten(|q| {
        q.push_back(r);
        ((q.len() > MAX_UNWRITTEN).then(|| q.pop_front()).flatten(), q.len())
    });
    state.metrics.transfer_log_waiting.set(waiting as i64);
    if let Some(lost) = dropped {
        tracing::error!(record = ?lost, "the store was unavailable for too long: transfer-log record dropped");
    }
}

/// Writes the records that waited for the store, oldest first, until the store fails again.
async fn write_deferred(state: &AppState) {
    while let Some(r) = state.signaling.with_unwritten(|q| q.front().cloned()) {
        match write_record(state, &r).await {
            Ok(()) => {}
            Err(e) if e.is_unavailable() => return,
            Err(e) => tracing::error!(error = %e, record = ?r, "could not write the transfer log"),
        }
        let waiting = state.signaling.with_unwritten(|q| {
            q.pop_front();
            q.len()
        });
        state.metrics.transfer_log_waiting.set(waiting as i64);
    }
}

async fn write_record(state: &AppState, r: &Record) -> Result<(), db::DbError> {
    match &r {
        Record::Requested(t) => {
            let files = serde_json::to_string(&t.files).unwrap_or_else(|_| "[]".into());
            db::transfers::insert(
                &state.db,
                &db::transfers::NewTransfer {
                    id: t.id.as_str(),
                    sender_id: t.from.user_id,
                    receiver_id: t.to.user_id,
                    sender_username: &t.from.username,
                    receiver_username: &t.to.username,
                    sender_device: &t.from.device,
                    receiver_device: &t.to.device,
                    sender_lab: t.from.lab.as_str(),
                    receiver_lab: t.to.lab.as_str(),
                    files_json: &files,
                    file_count: t.files.len() as i64,
                    total_bytes: i64::try_from(t.total_bytes).unwrap_or(i64::MAX),
                    broadcast_id: t.broadcast_id.as_deref(),
                    sender_device_key: t.sender_device_key.as_ref().map(|k| k.as_str()),
                    receiver_device_key: t.receiver_device_key.as_ref().map(|k| k.as_str()),
                    text_chars: t.text_chars.map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                    handin_id: t.handin_id.as_deref(),
                },
            )
            .await
        }
        Record::Accepted(id) => db::transfers::mark_accepted(&state.db, id.as_str()).await,
        Record::Finished(id, outcome) => db::transfers::finish(&state.db, id.as_str(), outcome).await,
    }
}

/// Limits that apply to transfer requests, from the settings (with defaults).
pub async fn limits(state: &AppState) -> Result<Limits, SignalError> {
    let db = &state.db;
    let expiry = settings::get_u64(db, "transfer.request_expiry_secs").await?;
    Ok(Limits {
        max_file_bytes: settings::get_u64(db, "transfer.max_file_bytes").await?,
        requests_per_minute: settings::get_u64(db, "transfer.requests_per_minute").await? as usize,
        max_pending_per_user: settings::get_u64(db, "transfer.max_pending").await? as usize,
        request_expiry: Duration::from_secs(expiry.clamp(5, 3600)),
    })
}

/// The per-device event budget from the settings.
async fn event_budget(state: &AppState) -> Result<hub::EventBudget, SignalError> {
    Ok(hub::EventBudget {
        rate: settings::get_u64(&state.db, "signaling.events_per_second").await? as f64,
        burst: settings::get_u64(&state.db, "signaling.event_burst").await? as f64,
    })
}

/// Expires a request when its answer time is up.
pub(crate) fn schedule_expiry(state: &AppState, id: TransferId, after: Duration) {
    let state = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if let Some((emits, record)) = state.signaling.with_hub(|h| h.expire(&id)) {
            store(&state, vec![record]).await;
            deliver(&state, emits).await;
        }
    });
}

/// Logs a transfer with what was reported once the other side's grace period is over.
pub(crate) fn schedule_finalize(state: &AppState, id: TransferId) {
    let state = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(REPORT_GRACE).await;
        if let Some(record) = state.signaling.with_hub(|h| h.finalize(&id)) {
            store(&state, vec![record]).await;
        }
    });
}

/// Every `SWEEP_EVERY`: drops sockets whose session was revoked, expired or whose user was
/// disabled (also by the command line, which is another process), and ends paused transfers
/// whose resume grace period is over. The event budget is read again when a setting
/// changed (settings move the access generation, `access_watch`), not on every sweep.
async fn sweep(state: AppState) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    let mut access_changes = state.access_changes.subscribe();
    let mut budget_stale = true;
    loop {
        tick.tick().await;
        resume::expire_paused(&state).await;
        if access_changes.has_changed().unwrap_or(false) {
            access_changes.mark_unchanged();
            budget_stale = true;
        }
        if budget_stale {
            match event_budget(&state).await {
                Ok(b) => {
                    state.signaling.with_hub(|h| h.set_event_budget(b));
                    budget_stale = false;
                }
                Err(e) => tracing::warn!(error = %e, "could not read the event budget"),
            }
        }
        if let Err(e) = drop_ended_sessions(&state).await {
            tracing::warn!(error = %e, "session sweep failed");
        }
        write_deferred(&state).await;
    }
}

/// Drops the sockets whose session was revoked or expired, or whose user was disabled.
pub async fn drop_ended_sessions(state: &AppState) -> Result<(), db::DbError> {
    let live = state.signaling.with_hub(|h| h.live_sessions());
    if !live.is_empty() {
        let dead = db::sessions::dead_among(&state.db, &live).await?;
        if !dead.is_empty() {
            state.signaling.disconnect_sessions(&dead).await;
        }
    }
    Ok(())
}
