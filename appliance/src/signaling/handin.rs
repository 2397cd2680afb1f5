//! Hand-ins: an instructor collects files from every student PC of a lab
//! (docs/PROTOCOL.md, "Hand-ins").
//!
//! - `handin:open` (permission `collect`, for a lab the user is responsible for; admins any
//!   lab): stored, told to the lab's devices (`handin:opened`) and to late joiners while it
//!   is open. The browser that opened it collects.
//! - `handin:submit` from a device in the lab: checked against the hand-in (open, deadline or
//!   late allowed, extensions, size per student), then offered to the collecting browser as
//!   a transfer (`Hub::handin_request`): exam mode does not stand in its way, the files go
//!   peer-to-peer and the server stores none of them. Its `transfer:incoming` carries
//!   `handin`; the log row names the hand-in.
//! - `handin:receipt` from the collecting browser once it verified a delivery: stored as the
//!   student's next version and sent to the student's devices (`handin:received`).
//! - `handin:close` (its owner, or an admin): told to the lab (`handin:closed`).

use std::time::{Duration, Instant};

use serde_json::Value;

use super::hub::{Audience, Emit, Member};
use super::ids::{DeviceKey, PeerId, TransferId};
use super::payloads::{self, HandinOpen, HandinReceipt, HandinRef, HandinSubmit};
use super::protocol::{
    self, HandinClosed, HandinDelivery, HandinOpenAck, HandinOpened, HandinReceiptsAck, HandinReceived, ServerEvent,
    StudentReceipt,
};
use super::{SignalError, deliver, member_of, store};
use crate::audit::{self, Actor, AuditEvent};
use crate::db;
use crate::db::handins::{Handin, ReceiptFile};
use crate::labs::{self, LabName};
use crate::permission::Permission;
use crate::state::AppState;
use crate::text::clean_text;

/// Longest title and instructions, in characters.
pub const MAX_TITLE: usize = 120;
pub const MAX_INSTRUCTIONS: usize = 2000;
/// Most allowed extensions, and the longest one.
pub const MAX_EXTENSIONS: usize = 20;
const MAX_EXTENSION_CHARS: usize = 16;
/// Furthest deadline: a term's project, not a forgotten one.
const MAX_DEADLINE_SECS: i64 = 60 * 24 * 3600;
/// How long a delivery waits for the collecting browser to take it: it takes a few at a
/// time (the others are shown "queued" on both sides), so this is long.
pub const DELIVERY_WAIT: Duration = Duration::from_secs(30 * 60);
/// After the deadline, how long a student who first tried before it is still on time: the
/// collecting browser was away (closed, reloading, offline), and their client sends again
/// when it is back. Seconds.
pub const GRACE_SECS: i64 = 15 * 60;

/// Whether a delivery requested at `at` by `student` is late: after the deadline, unless the
/// student first tried before it and `at` is within the grace period.
async fn is_late(state: &AppState, h: &Handin, student: i64, at: i64) -> Result<bool, SignalError> {
    if at <= h.deadline {
        return Ok(false);
    }
    if at > h.deadline + GRACE_SECS {
        return Ok(true);
    }
    let first = db::handins::first_attempt(&state.db, &h.id, student).await?;
    Ok(first.is_none_or(|first| first > h.deadline))
}

/// `pdf`, `.PDF` and ` pdf ` are the same extension; anything but letters and digits is not
/// one.
fn extension(raw: &str) -> Result<String, SignalError> {
    let e = raw.trim().trim_start_matches('.').to_ascii_lowercase();
    if e.is_empty() || e.chars().count() > MAX_EXTENSION_CHARS || !e.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(SignalError::Invalid(format!(
            "extension {raw:?} must be 1 to {MAX_EXTENSION_CHARS} letters or digits, like \"pdf\""
        )));
    }
    Ok(e)
}

fn extension_of(name: &str) -> Option<String> {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.rsplit_once('.').filter(|(stem, _)| !stem.is_empty()).map(|(_, ext)| ext.to_ascii_lowercase())
}

pub async fn open(state: AppState, peer: PeerId, req: HandinOpen) -> Result<Value, SignalError> {
    let member = member_of(&state, &peer)?;
    if !member.has(Permission::Collect) {
        return Err(SignalError::Forbidden(Permission::Collect.name()));
    }
    let lab = req.lab;
    if lab.as_str() == labs::OTHER {
        return Err(SignalError::Invalid("a hand-in is for a lab, not for devices outside every lab".into()));
    }
    let Some(stored) = db::labs::by_name(&state.db, lab.as_str()).await? else {
        return Err(SignalError::UnknownLab(lab.to_string()));
    };
    let lab = LabName::from(stored.name);
    if !super::broadcast::Reach::of(&member).allows(&lab) {
        return Err(SignalError::Forbidden("collect (from this lab: you are not responsible for it)"));
    }
    let title = clean_text(&req.title, MAX_TITLE);
    if title.is_empty() {
        return Err(SignalError::Invalid("title must not be empty".into()));
    }
    let instructions = clean_text(req.instructions.as_deref().unwrap_or(""), MAX_INSTRUCTIONS);
    let raw_extensions = req.extensions.unwrap_or_default();
    if raw_extensions.len() > MAX_EXTENSIONS {
        return Err(SignalError::Invalid(format!("at most {MAX_EXTENSIONS} extensions")));
    }
    let mut extensions: Vec<String> = Vec::new();
    for raw in &raw_extensions {
        let e = extension(raw)?;
        if !extensions.contains(&e) {
            extensions.push(e);
        }
    }
    let now = db::now();
    if req.deadline <= now {
        return Err(SignalError::Invalid("deadline must be in the future (unix seconds)".into()));
    }
    if req.deadline > now + MAX_DEADLINE_SECS {
        return Err(SignalError::Invalid("deadline must be within 60 days".into()));
    }
    let max_bytes = match req.max_bytes {
        Some(0) => return Err(SignalError::Invalid("maxBytes must be at least 1, or left out".into())),
        Some(b) => Some(i64::try_from(b).map_err(|_| SignalError::Invalid("maxBytes is too large".into()))?),
        None => None,
    };
    let handin = Handin {
        id: super::events::new_id(),
        lab: lab.to_string(),
        owner_id: member.peer.user_id,
        owner_username: member.peer.username.clone(),
        collector_device_key: member.device_key.as_str().to_string(),
        title,
        instructions,
        extensions: extensions.join(","),
        max_bytes,
        allow_late: i64::from(req.allow_late.unwrap_or(false)),
        deadline: req.deadline,
        created_at: now,
        closed_at: None,
    };
    db::handins::create(&state.db, &handin).await?;
    audit::record(
        &state.db,
        &member.actor(),
        AuditEvent::HandinOpened { id: &handin.id, lab: lab.as_str(), title: &handin.title, deadline: handin.deadline },
    )
    .await?;
    let name = &member.peer.display_name;
    deliver(
        &state,
        vec![
            Emit {
                to: Audience::InLab(lab),
                except: Some(peer.clone()),
                event: ServerEvent::HandinOpened(HandinOpened::of(&handin, name, false)),
            },
            Emit::to_peer(&peer, ServerEvent::HandinOpened(HandinOpened::of(&handin, name, true))),
        ],
    )
    .await;
    Ok(protocol::ack(&HandinOpenAck { handin_id: handin.id }))
}

async fn handin(state: &AppState, id: &str) -> Result<Handin, SignalError> {
    payloads::validate_id("handinId", id)?;
    db::handins::by_id(&state.db, id).await?.ok_or(SignalError::UnknownHandin)
}

pub async fn close(state: AppState, peer: PeerId, req: HandinRef) -> Result<Value, SignalError> {
    let member = member_of(&state, &peer)?;
    let h = handin(&state, &req.handin_id).await?;
    if h.owner_id != member.peer.user_id && !member.has(Permission::UsersManage) {
        return Err(SignalError::Forbidden("collect (only who opened a hand-in, or an admin, closes it)"));
    }
    close_by(&state, &member.actor(), &h.id).await?;
    Ok(serde_json::json!({}))
}

/// Closes hand-in `id` for `actor` (who may: the caller checked) and tells the lab's devices
/// and its owner's; the portal's Hand-ins page closes through this too.
pub async fn close_by(state: &AppState, actor: &Actor, id: &str) -> Result<(), SignalError> {
    let h = handin(state, id).await?;
    if !db::handins::close(&state.db, &h.id).await? {
        return Err(SignalError::HandinClosed);
    }
    audit::record(&state.db, actor, AuditEvent::HandinClosed { id: &h.id, lab: &h.lab }).await?;
    let closed = || ServerEvent::HandinClosed(HandinClosed { handin_id: h.id.clone() });
    let mut emits = vec![Emit { to: Audience::InLab(LabName::from(h.lab.as_str())), except: None, event: closed() }];
    for device in state.signaling.with_hub(|hub| hub.devices_of_user(h.owner_id)) {
        emits.push(Emit::to_peer(&device, closed()));
    }
    deliver(state, emits).await;
    Ok(())
}

pub async fn submit(state: AppState, peer: PeerId, req: HandinSubmit) -> Result<Value, SignalError> {
    let member = member_of(&state, &peer)?;
    let h = handin(&state, &req.handin_id).await?;
    if h.closed_at.is_some() {
        return Err(SignalError::HandinClosed);
    }
    if member.peer.self_selected || member.peer.lab != LabName::from(h.lab.as_str()) {
        return Err(SignalError::NotInLab(h.lab.clone()));
    }
    let now = db::now();
    let late = is_late(&state, &h, member.peer.user_id, now).await?;
    if late && !h.allows_late() {
        return Err(SignalError::DeadlinePassed);
    }
    let limits = super::limits(&state).await?;
    let total = payloads::validate_files(&req.files, limits.max_file_bytes)?;
    let allowed = h.extension_list();
    if !allowed.is_empty() {
        for f in &req.files {
            if !extension_of(&f.name).is_some_and(|e| allowed.contains(&e)) {
                return Err(SignalError::ExtensionNotAllowed { name: f.name.clone(), allowed: allowed.join(", ") });
            }
        }
    }
    if let Some(max) = h.max_bytes.and_then(|m| u64::try_from(m).ok())
        && total > max
    {
        return Err(SignalError::HandinTooLarge { total, max });
    }
    // Files that pass every check, before the deadline: on time even if the collecting
    // browser is away now and the delivery starts after the deadline (within GRACE_SECS).
    if now <= h.deadline {
        db::handins::note_attempt(&state.db, &h.id, member.peer.user_id, now).await?;
    }
    let id = TransferId::from(super::events::new_id());
    let collector = DeviceKey::from(h.collector_device_key.as_str());
    let (mut emits, mut record, collector_peer) = state.signaling.with_hub(|hub| {
        hub.handin_request(&peer, (h.owner_id, &collector), req.files, total, id.clone(), &limits, Instant::now())
    })?;
    super::hub::tag_handin(&mut emits, &mut record, HandinDelivery { handin_id: h.id.clone(), late }, DELIVERY_WAIT);
    store(&state, vec![record]).await;
    deliver(&state, emits).await;
    super::schedule_expiry(&state, id.clone(), DELIVERY_WAIT);
    Ok(protocol::ack(&protocol::HandinSubmitAck { transfer_id: id, collector: collector_peer }))
}

pub async fn receipt(state: AppState, peer: PeerId, req: HandinReceipt) -> Result<Value, SignalError> {
    let member = member_of(&state, &peer)?;
    payloads::validate_id("transferId", req.transfer_id.as_str())?;
    let row = db::transfers::by_id(&state.db, req.transfer_id.as_str()).await?.ok_or(SignalError::UnknownTransfer)?;
    let Some(handin_id) = row.handin_id.clone() else {
        return Err(SignalError::Invalid("that transfer did not deliver to a hand-in".into()));
    };
    if row.receiver_id != Some(member.peer.user_id) {
        return Err(SignalError::NotParty);
    }
    let Some(student) = row.sender_id else {
        return Err(SignalError::UnknownTransfer);
    };
    // The receipt names exactly the files that were offered, each with its hash.
    let offered: Vec<payloads::FileMeta> = serde_json::from_str(&row.files).unwrap_or_default();
    let mut files: Vec<ReceiptFile> = Vec::with_capacity(req.files.len());
    for f in req.files {
        payloads::validate_name(&f.name)?;
        payloads::validate_sha256(&f.sha256)?;
        files.push(ReceiptFile { name: f.name, size: f.size, sha256: f.sha256.to_ascii_lowercase() });
    }
    let mut want: Vec<(&str, u64)> = offered.iter().map(|f| (f.name.as_str(), f.size)).collect();
    let mut have: Vec<(&str, u64)> = files.iter().map(|f| (f.name.as_str(), f.size)).collect();
    want.sort_unstable();
    have.sort_unstable();
    if want != have {
        return Err(SignalError::Invalid("the receipt must name exactly the files of that transfer".into()));
    }
    let h = handin(&state, &handin_id).await?;
    let late = is_late(&state, &h, student, row.requested_at).await?;
    let r = db::handins::add_receipt(&state.db, &h.id, student, &row.sender_username, row.id.as_str(), &files, late)
        .await?;
    let received = HandinReceived::from(&r);
    let emits = state
        .signaling
        .with_hub(|hub| hub.devices_of_user(student))
        .iter()
        .map(|device| Emit::to_peer(device, ServerEvent::HandinReceived(received.clone())))
        .collect();
    deliver(&state, emits).await;
    Ok(serde_json::json!({ "version": r.version }))
}

/// `handin:receipts`: every receipt of a hand-in, for who opened it (its live table after a
/// reload) or an admin.
pub async fn receipts(state: AppState, peer: PeerId, req: HandinRef) -> Result<Value, SignalError> {
    let member = member_of(&state, &peer)?;
    let h = handin(&state, &req.handin_id).await?;
    if h.owner_id != member.peer.user_id && !member.has(Permission::UsersManage) {
        return Err(SignalError::Forbidden("collect (only who opened a hand-in, or an admin, reads its receipts)"));
    }
    let receipts = db::handins::receipts(&state.db, &h.id)
        .await?
        .iter()
        .map(|r| StudentReceipt { username: r.username.clone(), receipt: HandinReceived::from(r) })
        .collect();
    Ok(protocol::ack(&HandinReceiptsAck { receipts }))
}

/// A joining device: the open hand-ins of its lab (and those it collects, wherever they
/// are), and for a student the newest receipt of each.
pub async fn joined(state: &AppState, member: &Member) -> Result<Vec<ServerEvent>, db::DbError> {
    let mut events = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let in_lab = if member.peer.self_selected {
        Vec::new()
    } else {
        db::handins::open_in_lab(&state.db, member.peer.lab.as_str()).await?
    };
    let collected = db::handins::open_collected_by(&state.db, member.peer.user_id).await?;
    for h in in_lab.iter().chain(collected.iter()) {
        if seen.contains(&h.id) {
            continue;
        }
        seen.push(h.id.clone());
        let collecting = h.owner_id == member.peer.user_id && h.collector_device_key == member.device_key.as_str();
        let owner = db::users::by_id(&state.db, h.owner_id).await?.map(|u| u.display_name).unwrap_or_default();
        events.push(ServerEvent::HandinOpened(HandinOpened::of(h, &owner, collecting)));
        if let Some(r) = db::handins::receipts_of(&state.db, &h.id, member.peer.user_id).await?.last() {
            events.push(ServerEvent::HandinReceived(HandinReceived::from(r)));
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_compared_in_one_spelling() {
        assert_eq!(extension(" .PDF ").unwrap(), "pdf");
        for bad in ["", ".", "tar.gz", "p d f", "../x", "aaaaaaaaaaaaaaaaaaaaaaaa"] {
            assert!(extension(bad).is_err(), "{bad:?}");
        }
        assert_eq!(extension_of("report.final.PDF").as_deref(), Some("pdf"));
        assert_eq!(extension_of("project/src/main.rs").as_deref(), Some("rs"));
        assert_eq!(extension_of("Makefile"), None);
        assert_eq!(extension_of(".bashrc"), None, "a hidden file has no extension");
    }
}
