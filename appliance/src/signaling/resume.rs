//! Resumable transfers: a transfer outlives its parties' sockets.
//!
//! When a party's socket leaves, the hub marks that side *away* and tells the other side
//! `transfer:paused`; the device re-claims its side with `transfer:resume` from a new socket
//! (same user, same client-generated device key). A restarted server reads accepted,
//! unfinished transfers back from the transfer log (`restore`), so the re-claim works after
//! a restart too. A side that stays away longer than `transfer.resume_grace_secs` ends the
//! transfer (`expire_paused`, run by the sweep).
//!
//! The rules are in `hub` (plain and unit-tested); this file runs them against the store.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::hub::{RestoredTransfer, Resumed, Role};
use super::ids::{DeviceKey, PeerId, TransferId};
use super::payloads::{self, FileMeta};
use super::protocol;
use super::{SignalError, deliver, store};
use crate::db;
use crate::settings;
use crate::state::AppState;

/// `transfer:resume {transferId, role?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferResume {
    #[serde(rename = "transferId")]
    pub transfer_id: TransferId,
    #[serde(default)]
    pub role: Option<Role>,
}

/// The grace period from the settings.
pub async fn grace(state: &AppState) -> Result<Duration, SignalError> {
    Ok(Duration::from_secs(settings::get_u64(&state.db, "transfer.resume_grace_secs").await?))
}

/// Start-up: requests nobody can answer any more are expired; accepted, unfinished transfers
/// go back into the hub, both sides away from now (the grace period starts again).
pub async fn restore(state: &AppState) -> Result<usize, db::DbError> {
    let expired = db::transfers::expire_unanswered(&state.db).await?;
    if expired > 0 {
        tracing::info!(expired, "requests left unanswered by the last run were expired");
    }
    let broken = db::transfers::fail_interrupted_broadcasts(&state.db).await?;
    if broken > 0 {
        tracing::info!(recipients = broken, "broadcast deliveries cut by the restart were logged failed");
    }
    let rows = db::transfers::resumable(&state.db).await?;
    let restored: Vec<RestoredTransfer> = rows
        .into_iter()
        .map(|r| RestoredTransfer {
            id: TransferId::from(r.id),
            // A row whose user was deleted can never be re-claimed; the sweep ends it.
            sender_user: r.sender_id.unwrap_or(-1),
            receiver_user: r.receiver_id.unwrap_or(-1),
            sender_device_key: DeviceKey::from(r.sender_device_key),
            receiver_device_key: DeviceKey::from(r.receiver_device_key),
            files: serde_json::from_str::<Vec<FileMeta>>(&r.files).unwrap_or_default(),
            total_bytes: u64::try_from(r.total_bytes).unwrap_or(0),
        })
        .collect();
    let n = restored.len();
    state.signaling.with_hub(|h| h.restore(restored, Instant::now()));
    if n > 0 {
        tracing::info!(transfers = n, "accepted transfers wait to be resumed");
    }
    Ok(n)
}

/// The `transfer:resume` handler.
pub async fn transfer_resume(state: AppState, peer: PeerId, req: TransferResume) -> Result<Value, SignalError> {
    payloads::validate_id("transferId", req.transfer_id.as_str())?;
    let result = state.signaling.with_hub(|h| h.resume(&peer, &req.transfer_id, req.role));
    match result {
        Ok(Resumed { emits, ack }) => {
            tracing::info!(%peer, transfer = %req.transfer_id, "transfer resumed");
            deliver(&state, emits).await;
            Ok(protocol::ack(&ack))
        }
        // Not live here: say why from the log (finished, someone else's, or unknown).
        Err(SignalError::UnknownTransfer) => Err(why_not(&state, &peer, &req.transfer_id).await),
        Err(e) => Err(e),
    }
}

async fn why_not(state: &AppState, peer: &PeerId, id: &TransferId) -> SignalError {
    let Some(user) = state.signaling.with_hub(|h| h.member(peer).map(|m| m.peer.user_id)) else {
        return SignalError::NotConnected;
    };
    match db::transfers::parties(&state.db, id.as_str()).await {
        Ok(Some(row)) => {
            if row.sender_id != Some(user) && row.receiver_id != Some(user) {
                SignalError::NotParty
            } else if row.finished_at.is_some() {
                SignalError::TransferEnded(row.status)
            } else {
                SignalError::UnknownTransfer
            }
        }
        Ok(None) => SignalError::UnknownTransfer,
        Err(e) => SignalError::from(e),
    }
}

/// Ends transfers whose side stayed away longer than the grace period (run by the sweep).
pub async fn expire_paused(state: &AppState) {
    if !state.signaling.with_hub(|h| h.has_paused()) {
        return;
    }
    let grace = match grace(state).await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(error = %e, "could not read transfer.resume_grace_secs");
            return;
        }
    };
    let (emits, records) = state.signaling.with_hub(|h| h.expire_paused(Instant::now(), grace));
    if !records.is_empty() {
        tracing::info!(transfers = records.len(), "paused transfers expired");
    }
    store(state, records).await;
    deliver(state, emits).await;
}
