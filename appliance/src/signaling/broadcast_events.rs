//! Socket.IO handlers of broadcasts (docs/PROTOCOL.md, "Broadcasts"): thin like `events`
//! — parse → authorise → `broadcast::Book` → effects → ack.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use socketioxide::extract::SocketRef;

use super::broadcast::{Effects, ManifestPart, ProblemReport, Reach, Start, StatusReport};
use super::events::{new_id, on};
use super::hub::{Member, Peer};
use super::ids::{PeerId, TransferId};
use super::payloads::{self, BroadcastStart, Target};
use super::protocol;
use super::{SignalError, deliver, store};
use crate::db;
use crate::permission::Permission;
use crate::settings;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastRespond {
    #[serde(rename = "broadcastId")]
    broadcast_id: String,
    accept: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastCancel {
    #[serde(rename = "broadcastId")]
    broadcast_id: String,
}

pub(super) fn register(socket: &SocketRef) {
    on(socket, "broadcast:manifest", manifest);
    on(socket, "broadcast:respond", respond);
    on(socket, "broadcast:status", status);
    on(socket, "broadcast:problem", problem);
    on(socket, "broadcast:cancel", cancel);
}

/// Executes what the book decided: transfer-log rows first (a row exists before anyone can
/// act on it), then the emits, then the answer timers.
pub(super) async fn apply(state: &AppState, mut fx: Effects) {
    let asked = std::mem::take(&mut fx.asked);
    execute(state, fx).await;
    if asked.is_empty() {
        return;
    }
    let expiry = match super::limits(state).await {
        Ok(limits) => limits.request_expiry,
        Err(_) => Duration::from_secs(60),
    };
    for (id, peer) in asked {
        let state = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(expiry).await;
            let fx = state.signaling.with_broadcasts(|b| b.expire(&id, &peer));
            execute(&state, fx).await;
        });
    }
}

async fn execute(state: &AppState, fx: Effects) {
    store(state, fx.records).await;
    for id in fx.added {
        if let Err(e) = db::transfers::add_broadcast_recipient(&state.db, &id).await {
            tracing::error!(error = %e, broadcast = id, "could not count a late recipient");
        }
    }
    deliver(state, fx.emits).await;
}

/// Whether a broadcast from `role` is received without asking.
async fn auto_accepts(state: &AppState, role: &str) -> Result<bool, SignalError> {
    let roles = settings::get_str(&state.db, "broadcast.auto_accept_roles").await?;
    Ok(roles.split(',').any(|r| r.trim() == role))
}

pub(super) async fn start(state: AppState, peer: PeerId, req: BroadcastStart) -> Result<Value, SignalError> {
    let member = state.signaling.with_hub(|h| h.member(&peer).cloned()).ok_or(SignalError::NotConnected)?;
    if !member.has(Permission::BroadcastSend) {
        return Err(SignalError::Forbidden(Permission::BroadcastSend.name()));
    }
    let limits = super::limits(&state).await?;
    let total = payloads::validate_files(&req.files, limits.max_file_bytes)?;
    let reach = Reach::of(&member);
    match &req.target {
        Target::Lab { lab } if !reach.allows(lab) => {
            return Err(SignalError::Forbidden("broadcast.send (to this lab)"));
        }
        Target::All { all: true } if !reach.is_anywhere() => {
            return Err(SignalError::Forbidden("broadcast.send (to all labs)"));
        }
        Target::All { all: false } => return Err(SignalError::Invalid("target {all:false} names nobody".into())),
        Target::Peers { peers } if peers.len() > 1000 => {
            return Err(SignalError::Invalid("at most 1000 peers per broadcast".into()));
        }
        Target::Peers { peers } => {
            for p in peers {
                payloads::validate_id("peers", p.as_str())?;
            }
        }
        _ => {}
    }
    let recipients: Vec<Peer> = state.signaling.with_hub(|h| {
        let in_target = |m: &Member| match &req.target {
            Target::Lab { lab } => m.peer.lab == *lab,
            Target::All { all } => *all,
            Target::Peers { peers } => peers.contains(&m.peer.peer_id),
        };
        let mut list: Vec<Peer> = h
            .members()
            .filter(|m| {
                m.peer.peer_id != peer
                    && in_target(m)
                    && reach.allows(&m.peer.lab)
                    && m.has(Permission::TransferReceive)
            })
            .map(|m| m.peer.clone())
            .collect();
        // Deterministic placement: by lab, then name.
        list.sort_by(|a, b| (&a.lab, &a.username, &a.peer_id).cmp(&(&b.lab, &b.username, &b.peer_id)));
        list
    });
    if recipients.is_empty() {
        return Err(SignalError::NoRecipients);
    }
    let fanout = settings::get_u64(&state.db, "broadcast.fanout").await? as usize;
    let auto_accept = auto_accepts(&state, &member.peer.role).await?;
    let broadcast_id = new_id();
    let target_json = serde_json::to_string(&req.target).unwrap_or_default();
    let files_json = serde_json::to_string(&req.files).unwrap_or_default();
    db::transfers::insert_broadcast(
        &state.db,
        &db::transfers::NewBroadcast {
            id: &broadcast_id,
            sender_id: member.peer.user_id,
            sender_username: &member.peer.username,
            target_json: &target_json,
            files_json: &files_json,
            total_bytes: i64::try_from(total).unwrap_or(i64::MAX),
            recipients: recipients.len() as i64,
        },
    )
    .await?;
    let start = Start { id: broadcast_id, target: req.target, reach, files: req.files, fanout, auto_accept };
    let (ack, fx) = state.signaling.with_broadcasts(|b| b.start(&member, recipients, start, new_transfer_id))?;
    apply(&state, fx).await;
    Ok(protocol::ack(&ack))
}

async fn manifest(state: AppState, peer: PeerId, req: ManifestPart) -> Result<Value, SignalError> {
    payloads::validate_id("broadcastId", &req.broadcast_id)?;
    let fx = state.signaling.with_broadcasts(|b| b.manifest(&peer, req))?;
    apply(&state, fx).await;
    Ok(serde_json::json!({}))
}

async fn respond(state: AppState, peer: PeerId, req: BroadcastRespond) -> Result<Value, SignalError> {
    payloads::validate_id("broadcastId", &req.broadcast_id)?;
    let fx = state.signaling.with_broadcasts(|b| b.respond(&peer, &req.broadcast_id, req.accept))?;
    apply(&state, fx).await;
    Ok(serde_json::json!({}))
}

async fn status(state: AppState, peer: PeerId, req: StatusReport) -> Result<Value, SignalError> {
    payloads::validate_id("broadcastId", &req.broadcast_id)?;
    payloads::validate_sha256(&req.sha256)?;
    if req.reason.chars().count() > 500 {
        return Err(SignalError::Invalid("reason must have at most 500 characters".into()));
    }
    let fx = state.signaling.with_broadcasts(|b| b.status(&peer, req))?;
    apply(&state, fx).await;
    Ok(serde_json::json!({}))
}

async fn problem(state: AppState, peer: PeerId, req: ProblemReport) -> Result<Value, SignalError> {
    payloads::validate_id("broadcastId", &req.broadcast_id)?;
    payloads::validate_id("linkId", req.link_id.as_str())?;
    let fx = state.signaling.with_broadcasts(|b| b.problem(&peer, &req))?;
    apply(&state, fx).await;
    Ok(serde_json::json!({}))
}

async fn cancel(state: AppState, peer: PeerId, req: BroadcastCancel) -> Result<Value, SignalError> {
    payloads::validate_id("broadcastId", &req.broadcast_id)?;
    let fx = state.signaling.with_broadcasts(|b| b.cancel(&peer, &req.broadcast_id))?;
    apply(&state, fx).await;
    Ok(serde_json::json!({}))
}

fn new_transfer_id() -> TransferId {
    TransferId::from(new_id())
}

/// A device came online: offers of running broadcasts to its lab.
pub(super) async fn joined(state: &AppState, member: &Member) {
    let fx = state.signaling.with_broadcasts(|b| b.join(member, new_transfer_id));
    apply(state, fx).await;
}

/// A device went offline: its broadcasts end (sender) or are repaired (receiver).
pub(super) async fn left(state: &AppState, peer: &PeerId) {
    let fx = state.signaling.with_broadcasts(|b| b.leave(peer));
    apply(state, fx).await;
}
