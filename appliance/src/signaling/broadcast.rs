//! Broadcast sessions: one sender, many receivers, a relay tree between them (`tree`).
//!
//! The server never sees a file byte. It keeps, per running broadcast: the files and the
//! sender's per-piece SHA-256 manifest (which it hands to every receiver, so a receiver can
//! check a piece that came from another receiver before storing or forwarding it), the
//! recipients and their reported status, and the tree's edges as *links*: a link id works
//! like a transfer id for `signal`, and only the link's parent and child may signal over it.
//!
//! Like `hub`, every method is synchronous and returns the effects (emits to send, transfer
//! log records to write); `signaling::events` executes them.
//!
//! Invariants: a receiver gets a link only after it accepted and the manifest is complete;
//! a link stays valid only while it is the child's current edge; a forwarder that sent a bad
//! piece never forwards again; each recipient's transfer row is finished exactly once.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::SignalError;
use super::hub::{Emit, Member, Peer, Record, RequestedTransfer};
use super::ids::{LinkId, PeerId, TransferId};
use super::payloads::{FileMeta, Target};
use super::protocol::{
    BroadcastEnded, BroadcastLink, BroadcastOffer, BroadcastProgress, BroadcastSummary, BroadcastUnlink, LinkRole,
    ManifestChunk, ServerEvent,
};
use super::tree::{Move, RelayTree};
use crate::db::transfers::{Outcome, TransferStatus};
use crate::labs::LabName;
use crate::permission::Permission;

/// Bytes per piece: the unit that is hashed, verified, stored and forwarded.
pub const PIECE_BYTES: u64 = 1024 * 1024;
/// Hashes per `broadcast:manifest` message (64 KiB messages hold about 900).
pub const MANIFEST_PART: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum RecipientState {
    /// Offered, the user has not answered yet.
    Asked,
    /// Accepted, nothing arrived yet.
    Waiting,
    Receiving,
    Done,
    Failed,
}

impl RecipientState {
    fn terminal(self) -> bool {
        matches!(self, RecipientState::Done | RecipientState::Failed)
    }
}

/// One receiving device and what it last reported.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    pub peer: Peer,
    pub transfer_id: TransferId,
    pub state: RecipientState,
    pub bytes: u64,
    pub reason: String,
}

/// A recipient of a running broadcast as the portal shows it: plain text, like the hub's
/// other reports for the portal.
#[derive(Debug, Clone)]
pub struct LiveRecipient {
    pub peer: LivePeer,
    pub state: RecipientState,
    pub bytes: u64,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct LivePeer {
    pub username: String,
    pub device: String,
    pub lab: String,
}

impl LiveRecipient {
    fn of(r: &Recipient) -> LiveRecipient {
        let p = &r.peer;
        LiveRecipient {
            peer: LivePeer { username: p.username.clone(), device: p.device.clone(), lab: p.lab.to_string() },
            state: r.state,
            bytes: r.bytes,
            reason: r.reason.clone(),
        }
    }
}

/// Where the sender may broadcast or announce (checked again for late joiners).
#[derive(Debug, Clone)]
pub enum Reach {
    Anywhere,
    Labs(Vec<LabName>),
}

impl Reach {
    /// Admins (user managers) reach every lab, "Other" and everyone; anybody else only the
    /// labs they are responsible for.
    pub fn of(member: &Member) -> Reach {
        if member.has(Permission::UsersManage) { Reach::Anywhere } else { Reach::Labs(member.owned_labs.clone()) }
    }

    pub fn is_anywhere(&self) -> bool {
        matches!(self, Reach::Anywhere)
    }

    pub fn allows(&self, lab: &LabName) -> bool {
        match self {
            Reach::Anywhere => true,
            Reach::Labs(labs) => labs.contains(lab),
        }
    }
}

/// What a `broadcast:start` sets up; checked by the caller.
pub struct Start {
    pub id: String,
    pub target: Target,
    pub reach: Reach,
    pub files: Vec<FileMeta>,
    pub fanout: usize,
    pub auto_accept: bool,
}

#[derive(Debug, Default)]
pub struct Effects {
    pub emits: Vec<Emit>,
    pub records: Vec<Record>,
    /// Broadcasts that gained a recipient (a late joiner): their row's count goes up.
    pub added: Vec<String>,
    /// Recipients offered without auto-accept: (broadcast, peer) to expire if unanswered.
    pub asked: Vec<(String, PeerId)>,
}

impl Effects {
    fn to(&mut self, peer: &PeerId, event: ServerEvent) {
        self.emits.push(Emit::to_peer(peer, event));
    }
}

struct Session {
    id: String,
    sender: Peer,
    target: Target,
    reach: Reach,
    files: Vec<FileMeta>,
    total: u64,
    auto_accept: bool,
    /// Per file: the piece hashes received so far, and the whole file's SHA-256.
    hashes: Vec<Vec<String>>,
    file_sha: Vec<Option<String>>,
    manifest_done: bool,
    tree: RelayTree,
    recipients: BTreeMap<PeerId, Recipient>,
    /// link id → (parent, child); only current edges are here.
    links: HashMap<LinkId, (PeerId, PeerId)>,
    child_link: HashMap<PeerId, LinkId>,
    next_link: u64,
    started: Instant,
}

fn pieces_of(size: u64) -> usize {
    size.div_ceil(PIECE_BYTES) as usize
}

impl Session {
    /// Whether this recipient receives without being asked: never a device that is in its
    /// lab only because its user picked the lab.
    fn auto_accepts(&self, peer: &Peer) -> bool {
        self.auto_accept && !peer.self_selected
    }

    fn offer(&self, r: &Recipient) -> ServerEvent {
        ServerEvent::BroadcastOffer(BroadcastOffer {
            broadcast_id: self.id.clone(),
            transfer_id: r.transfer_id.clone(),
            from: self.sender.clone(),
            files: self.files.clone(),
            total_bytes: self.total,
            piece_bytes: PIECE_BYTES,
            auto_accept: self.auto_accepts(&r.peer),
        })
    }

    fn progress(&self, r: &Recipient) -> BroadcastProgress {
        BroadcastProgress {
            broadcast_id: self.id.clone(),
            peer: r.peer.clone(),
            transfer_id: r.transfer_id.clone(),
            state: r.state,
            bytes: r.bytes,
            total_bytes: self.total,
            reason: r.reason.clone(),
        }
    }

    /// Tells the sender where recipient `r` stands.
    fn report(&self, r: &Recipient, fx: &mut Effects) {
        fx.to(&self.sender.peer_id, ServerEvent::BroadcastProgress(self.progress(r)));
    }

    fn manifest_emits(&self, peer: &PeerId, fx: &mut Effects) {
        for (file, hashes) in self.hashes.iter().enumerate() {
            let parts: Vec<&[String]> =
                if hashes.is_empty() { vec![&[]] } else { hashes.chunks(MANIFEST_PART).collect() };
            let mut first = 0;
            let count = parts.len();
            for (i, part) in parts.into_iter().enumerate() {
                let chunk = ManifestChunk {
                    broadcast_id: self.id.clone(),
                    file,
                    first,
                    hashes: part.to_vec(),
                    sha256: if i + 1 == count { self.file_sha[file].clone() } else { None },
                };
                fx.to(peer, ServerEvent::BroadcastManifest(chunk));
                first += part.len();
            }
        }
    }

    /// Turns tree moves into links (once the manifest is complete).
    fn apply_moves(&mut self, moves: Vec<Move>, fx: &mut Effects) {
        if !self.manifest_done {
            return;
        }
        for m in moves {
            if let Some(old) = self.child_link.remove(&m.child)
                && let Some((old_parent, _)) = self.links.remove(&old)
            {
                let unlink = BroadcastUnlink { broadcast_id: self.id.clone(), link_id: old };
                fx.to(&old_parent, ServerEvent::BroadcastUnlink(unlink));
            }
            self.next_link += 1;
            let link = LinkId::new(&self.id, self.next_link);
            self.links.insert(link.clone(), (m.parent.clone(), m.child.clone()));
            self.child_link.insert(m.child.clone(), link.clone());
            let end = |role, peer: &PeerId| {
                ServerEvent::BroadcastLink(BroadcastLink {
                    broadcast_id: self.id.clone(),
                    link_id: link.clone(),
                    role,
                    peer: peer.clone(),
                })
            };
            fx.to(&m.parent, end(LinkRole::Parent, &m.child));
            fx.to(&m.child, end(LinkRole::Child, &m.parent));
        }
    }

    fn drop_links_of(&mut self, peer: &PeerId) {
        self.links.retain(|_, (p, c)| p != peer && c != peer);
        self.child_link.retain(|c, l| c != peer && self.links.contains_key(l));
    }

    /// Sets a recipient's final state and its transfer row (once).
    fn end_recipient(
        &mut self,
        peer: &PeerId,
        state: RecipientState,
        reason: &str,
        report: Option<&StatusReport>,
        fx: &mut Effects,
    ) {
        let Some(r) = self.recipients.get_mut(peer) else { return };
        if r.state.terminal() {
            return;
        }
        let was_asked = r.state == RecipientState::Asked;
        r.state = state;
        // A recipient that is done keeps what was said about it (a flagged forwarder).
        if state != RecipientState::Done || r.reason.is_empty() {
            r.reason = reason.to_string();
        }
        if let Some(rep) = report {
            r.bytes = rep.bytes.min(self.total);
        }
        if state == RecipientState::Done {
            r.bytes = self.total;
        }
        let status = match state {
            RecipientState::Done => TransferStatus::Completed,
            _ if was_asked && reason.starts_with("declined") => TransferStatus::Declined,
            _ if was_asked => TransferStatus::Expired,
            _ => TransferStatus::Failed,
        };
        let outcome = Outcome {
            status,
            bytes: i64::try_from(r.bytes).unwrap_or(i64::MAX),
            sha256: report.map(|x| x.sha256.clone()).unwrap_or_default(),
            path: String::new(),
            duration_ms: report.and_then(|x| x.duration_ms).map(|d| i64::try_from(d).unwrap_or(i64::MAX)),
            failure_reason: reason.to_string(),
        };
        fx.records.push(Record::Finished(r.transfer_id.clone(), outcome));
        let r = r.clone();
        self.report(&r, fx);
    }

    fn all_ended(&self) -> bool {
        self.recipients.values().all(|r| r.state.terminal())
    }

    fn accept(&mut self, peer: &PeerId, fx: &mut Effects) {
        let Some(r) = self.recipients.get_mut(peer) else { return };
        r.state = RecipientState::Waiting;
        fx.records.push(Record::Accepted(r.transfer_id.clone()));
        let r = r.clone();
        self.report(&r, fx);
        if let Some(m) = self.tree.attach(peer) {
            if self.manifest_done {
                self.manifest_emits(peer, fx);
            }
            self.apply_moves(vec![m], fx);
        }
    }

    fn add_recipient(&mut self, peer: Peer, transfer_id: TransferId, fx: &mut Effects) {
        let r = Recipient {
            peer: peer.clone(),
            transfer_id: transfer_id.clone(),
            state: RecipientState::Asked,
            bytes: 0,
            reason: String::new(),
        };
        fx.records.push(Record::Requested(Box::new(RequestedTransfer {
            id: transfer_id,
            from: self.sender.clone(),
            to: peer.clone(),
            files: self.files.clone(),
            total_bytes: self.total,
            broadcast_id: Some(self.id.clone()),
            // Broadcast deliveries are repaired through the relay tree, not re-claimed with
            // `transfer:resume`, so their rows carry no device keys.
            sender_device_key: None,
            receiver_device_key: None,
            text_chars: None,
            handin_id: None,
        })));
        fx.to(&peer.peer_id, self.offer(&r));
        self.report(&r, fx);
        self.recipients.insert(peer.peer_id.clone(), r);
        if self.auto_accepts(&peer) {
            self.accept(&peer.peer_id, fx);
        } else {
            fx.asked.push((self.id.clone(), peer.peer_id));
        }
    }

    fn summary(&self) -> BroadcastSummary {
        let recipients = self.recipients.values().map(|r| self.progress(r)).collect();
        BroadcastSummary { broadcast_id: self.id.clone(), piece_bytes: PIECE_BYTES, recipients }
    }
}

/// `broadcast:status` from a receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    #[serde(rename = "broadcastId")]
    pub broadcast_id: String,
    pub state: ReportedState,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub sha256: String,
    #[serde(default, rename = "durationMs")]
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportedState {
    Receiving,
    Done,
    Failed,
}

/// `broadcast:problem` from a receiver about its parent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemReport {
    #[serde(rename = "broadcastId")]
    pub broadcast_id: String,
    #[serde(rename = "linkId")]
    pub link_id: LinkId,
    pub kind: ProblemKind,
    /// The global piece index that failed verification (`bad_piece`).
    #[serde(default)]
    pub piece: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Nothing arrived for a while although the parent has pieces this receiver lacks.
    Stalled,
    /// A piece did not match the manifest.
    BadPiece,
    /// The connection to the parent failed or closed.
    Lost,
}

/// `broadcast:manifest` from the sender.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestPart {
    #[serde(rename = "broadcastId")]
    pub broadcast_id: String,
    pub file: usize,
    pub first: usize,
    pub hashes: Vec<String>,
    /// The whole file's SHA-256, with the part that completes the file.
    #[serde(default)]
    pub sha256: Option<String>,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every running broadcast.
#[derive(Default)]
pub struct Book {
    sessions: HashMap<String, Session>,
}

impl Book {
    fn session(&mut self, id: &str) -> Result<&mut Session, SignalError> {
        self.sessions.get_mut(id).ok_or(SignalError::UnknownTransfer)
    }

    /// Starts a broadcast from `sender` to `recipients` (already filtered: online, in the
    /// target, within reach, allowed to receive). Returns the ack body and the effects.
    pub fn start(
        &mut self,
        sender: &Member,
        recipients: Vec<Peer>,
        start: Start,
        mut new_id: impl FnMut() -> TransferId,
    ) -> Result<(BroadcastSummary, Effects), SignalError> {
        if recipients.is_empty() {
            return Err(SignalError::NoRecipients);
        }
        let total = start.files.iter().map(|f| f.size).fold(0, u64::saturating_add);
        let n = start.files.len();
        let mut session = Session {
            id: start.id.clone(),
            sender: sender.peer.clone(),
            target: start.target,
            reach: start.reach,
            hashes: vec![Vec::new(); n],
            file_sha: vec![None; n],
            files: start.files,
            total,
            auto_accept: start.auto_accept,
            manifest_done: false,
            tree: RelayTree::new(&sender.peer.peer_id, start.fanout),
            recipients: BTreeMap::new(),
            links: HashMap::new(),
            child_link: HashMap::new(),
            next_link: 0,
            started: Instant::now(),
        };
        let mut fx = Effects::default();
        for peer in recipients {
            session.add_recipient(peer, new_id(), &mut fx);
        }
        let ack = session.summary();
        self.sessions.insert(start.id, session);
        Ok((ack, fx))
    }

    /// A part of the sender's manifest. When the last part arrives, every receiver that
    /// accepted gets the manifest and its link.
    pub fn manifest(&mut self, peer: &PeerId, part: ManifestPart) -> Result<Effects, SignalError> {
        let s = self.session(&part.broadcast_id)?;
        if s.sender.peer_id != *peer {
            return Err(SignalError::NotParty);
        }
        if s.manifest_done {
            return Err(SignalError::WrongState("the manifest is complete"));
        }
        let size = s.files.get(part.file).map(|f| f.size).ok_or_else(|| SignalError::Invalid("no such file".into()))?;
        let have = &s.hashes[part.file];
        if part.first != have.len() {
            return Err(SignalError::Invalid(format!("expected the part starting at piece {}", have.len())));
        }
        if part.hashes.len() > MANIFEST_PART * 2 || have.len() + part.hashes.len() > pieces_of(size) {
            return Err(SignalError::Invalid("more piece hashes than the file has pieces".into()));
        }
        if !part.hashes.iter().all(|h| is_hex64(h)) {
            return Err(SignalError::Invalid("piece hashes must be 64 lowercase hex digits".into()));
        }
        let complete = have.len() + part.hashes.len() == pieces_of(size);
        match (&part.sha256, complete) {
            (Some(h), true) if is_hex64(h) => {}
            (None, false) => {}
            (Some(_), true) => return Err(SignalError::Invalid("sha256 must be 64 lowercase hex digits".into())),
            (None, true) => return Err(SignalError::Invalid("the part completing a file carries its sha256".into())),
            (Some(_), false) => return Err(SignalError::Invalid("sha256 comes with the file's last part".into())),
        }
        s.hashes[part.file].extend(part.hashes);
        if complete {
            s.file_sha[part.file] = part.sha256;
        }
        let mut fx = Effects::default();
        if s.file_sha.iter().all(Option::is_some) {
            s.manifest_done = true;
            let accepted: Vec<PeerId> = s
                .recipients
                .values()
                .filter(|r| s.tree.contains(&r.peer.peer_id))
                .map(|r| r.peer.peer_id.clone())
                .collect();
            for p in &accepted {
                s.manifest_emits(p, &mut fx);
            }
            // Links in tree order (breadth-first), parents before their children.
            let mut moves = Vec::new();
            let mut queue = vec![s.tree.root().clone()];
            while let Some(p) = queue.pop() {
                for c in s.tree.children_of(&p).to_vec() {
                    moves.push(Move { child: c.clone(), parent: p.clone() });
                    queue.insert(0, c);
                }
            }
            s.apply_moves(moves, &mut fx);
        }
        Ok(fx)
    }

    /// A receiver's answer to an offer (without auto-accept).
    pub fn respond(&mut self, peer: &PeerId, id: &str, accept: bool) -> Result<Effects, SignalError> {
        let s = self.session(id)?;
        let r = s.recipients.get(peer).ok_or(SignalError::NotParty)?;
        if r.state != RecipientState::Asked {
            return Err(SignalError::WrongState("it was already answered"));
        }
        let mut fx = Effects::default();
        if accept {
            s.accept(peer, &mut fx);
        } else {
            s.end_recipient(peer, RecipientState::Failed, "declined by the recipient", None, &mut fx);
        }
        self.end_if_over(id, &mut fx);
        Ok(fx)
    }

    /// An offer nobody answered in time.
    pub fn expire(&mut self, id: &str, peer: &PeerId) -> Effects {
        let mut fx = Effects::default();
        if let Some(s) = self.sessions.get_mut(id)
            && s.recipients.get(peer).is_some_and(|r| r.state == RecipientState::Asked)
        {
            s.end_recipient(peer, RecipientState::Failed, "no answer in time", None, &mut fx);
            let ended = BroadcastEnded { broadcast_id: id.to_string(), reason: "expired".into() };
            fx.to(peer, ServerEvent::BroadcastEnded(ended));
        }
        self.end_if_over(id, &mut fx);
        fx
    }

    /// A receiver's progress or end.
    pub fn status(&mut self, peer: &PeerId, report: StatusReport) -> Result<Effects, SignalError> {
        let id = report.broadcast_id.clone();
        let s = self.session(&id)?;
        let r = s.recipients.get_mut(peer).ok_or(SignalError::NotParty)?;
        if r.state == RecipientState::Asked {
            return Err(SignalError::WrongState("it was not accepted"));
        }
        if r.state.terminal() {
            return Err(SignalError::WrongState("it already ended"));
        }
        let mut fx = Effects::default();
        match report.state {
            ReportedState::Receiving => {
                r.state = RecipientState::Receiving;
                r.bytes = report.bytes.min(s.total);
                let r = r.clone();
                s.report(&r, &mut fx);
            }
            ReportedState::Done => {
                if report.bytes != s.total {
                    return Err(SignalError::Invalid(format!("done with {} of {} bytes", report.bytes, s.total)));
                }
                s.end_recipient(peer, RecipientState::Done, "", Some(&report), &mut fx);
            }
            ReportedState::Failed => {
                let reason = crate::text::clean_text(&report.reason, 300);
                s.end_recipient(peer, RecipientState::Failed, &reason, Some(&report), &mut fx);
                // It forwards nothing any more.
                let moves = s.tree.detach(peer);
                s.drop_links_of(peer);
                s.apply_moves(moves, &mut fx);
            }
        }
        self.end_if_over(&id, &mut fx);
        Ok(fx)
    }

    /// A receiver says its parent stalls, is lost, or sent a bad piece: it gets another
    /// parent, and a bad forwarder loses all its children.
    pub fn problem(&mut self, peer: &PeerId, report: &ProblemReport) -> Result<Effects, SignalError> {
        let s = self.session(&report.broadcast_id)?;
        let current = s.child_link.get(peer).ok_or(SignalError::NotParty)?;
        if *current != report.link_id {
            // An old link: that problem was already dealt with.
            return Ok(Effects::default());
        }
        let (parent, _) = s.links.get(current).cloned().ok_or(SignalError::NotParty)?;
        let mut fx = Effects::default();
        let moves = match report.kind {
            ProblemKind::BadPiece => {
                tracing::warn!(broadcast = report.broadcast_id, forwarder = %parent, reporter = %peer, piece = ?report.piece,
                    "a forwarder sent a piece that does not match the manifest");
                let mut moves = s.tree.flag(&parent);
                if !moves.iter().any(|m| m.child == *peer) {
                    moves.extend(s.tree.reparent(peer));
                }
                if let Some(r) = s.recipients.get_mut(&parent) {
                    r.reason = "sent a damaged piece; no longer forwards".into();
                    let r = r.clone();
                    s.report(&r, &mut fx);
                }
                moves
            }
            ProblemKind::Lost => s.tree.reparent(peer).into_iter().collect(),
            ProblemKind::Stalled => {
                // A parent that is itself still waiting for those pieces is not at fault.
                let mine = s.recipients.get(peer).map(|r| r.bytes).unwrap_or(0);
                let theirs = s.recipients.get(&parent).map(|r| r.bytes);
                if theirs.is_some_and(|t| t <= mine) {
                    return Ok(fx);
                }
                s.tree.reparent(peer).into_iter().collect()
            }
        };
        s.apply_moves(moves, &mut fx);
        Ok(fx)
    }

    /// The sender cancels.
    pub fn cancel(&mut self, peer: &PeerId, id: &str) -> Result<Effects, SignalError> {
        let s = self.session(id)?;
        if s.sender.peer_id != *peer {
            return Err(SignalError::NotParty);
        }
        let mut fx = Effects::default();
        self.stop(id, "cancelled by the sender", &mut fx);
        Ok(fx)
    }

    /// `signal` over a link: only between its parent and child, while it is current.
    /// Ok means `peer` may send this link's signal to `to` (the caller relays it).
    pub fn signal(&self, peer: &PeerId, link: &LinkId, to: &PeerId) -> Result<(), SignalError> {
        let s = self.sessions.get(link.broadcast()).ok_or(SignalError::UnknownTransfer)?;
        let (parent, child) = s.links.get(link).ok_or(SignalError::UnknownTransfer)?;
        let ok = (peer == parent && to == child) || (peer == child && to == parent);
        if ok { Ok(()) } else { Err(SignalError::NotParty) }
    }

    /// A device left: as a sender it ends its broadcasts; as a receiver it fails (unless
    /// done) and its children are re-attached.
    pub fn leave(&mut self, peer: &PeerId) -> Effects {
        let mut fx = Effects::default();
        let ids: Vec<String> = self.sessions.keys().cloned().collect();
        for id in ids {
            let Some(s) = self.sessions.get_mut(&id) else { continue };
            if s.sender.peer_id == *peer {
                self.stop(&id, "the sender went offline", &mut fx);
                continue;
            }
            if !s.recipients.contains_key(peer) {
                continue;
            }
            s.end_recipient(peer, RecipientState::Failed, "went offline before it had the whole file", None, &mut fx);
            let moves = s.tree.detach(peer);
            s.drop_links_of(peer);
            s.apply_moves(moves, &mut fx);
            self.end_if_over(&id, &mut fx);
        }
        fx
    }

    /// A device came online: a running broadcast to its lab (or to all) offers it the files.
    pub fn join(&mut self, member: &Member, mut new_id: impl FnMut() -> TransferId) -> Effects {
        let mut fx = Effects::default();
        if !member.has(Permission::TransferReceive) {
            return fx;
        }
        for s in self.sessions.values_mut() {
            let lab = &member.peer.lab;
            let in_target = match &s.target {
                Target::Lab { lab: l } => l == lab,
                Target::All { all } => *all,
                Target::Peers { .. } => false,
            };
            if !in_target || !s.reach.allows(lab) || s.sender.peer_id == member.peer.peer_id {
                continue;
            }
            if s.recipients.contains_key(&member.peer.peer_id) {
                continue;
            }
            s.add_recipient(member.peer.clone(), new_id(), &mut fx);
            fx.added.push(s.id.clone());
        }
        fx
    }

    /// Live status of a running broadcast (for the portal), by recipient.
    pub fn live(&self, id: &str) -> Option<Vec<LiveRecipient>> {
        let s = self.sessions.get(id)?;
        Some(s.recipients.values().map(LiveRecipient::of).collect())
    }

    /// Bytes of a running broadcast's files.
    pub fn total_bytes(&self, id: &str) -> Option<u64> {
        self.sessions.get(id).map(|s| s.total)
    }

    /// Ids of running broadcasts.
    #[cfg(test)]
    pub fn running(&self) -> Vec<String> {
        self.sessions.keys().cloned().collect()
    }

    fn stop(&mut self, id: &str, reason: &str, fx: &mut Effects) {
        let Some(mut s) = self.sessions.remove(id) else { return };
        let peers: Vec<PeerId> = s.recipients.keys().cloned().collect();
        for p in &peers {
            s.end_recipient(p, RecipientState::Failed, reason, None, fx);
        }
        let ended = ServerEvent::BroadcastEnded(BroadcastEnded { broadcast_id: id.to_string(), reason: reason.into() });
        for p in peers {
            fx.to(&p, ended.clone());
        }
        fx.to(&s.sender.peer_id, ended);
    }

    fn end_if_over(&mut self, id: &str, fx: &mut Effects) {
        let Some(s) = self.sessions.get(id) else { return };
        if !s.all_ended() {
            return;
        }
        let done = s.recipients.values().filter(|r| r.state == RecipientState::Done).count();
        tracing::info!(
            broadcast = id,
            done,
            recipients = s.recipients.len(),
            secs = s.started.elapsed().as_secs(),
            "broadcast ended"
        );
        self.stop(id, "finished", fx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::Value;

    fn to_json<T: serde::Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap()
    }

    fn p(id: &str) -> PeerId {
        id.into()
    }

    fn link(id: &str) -> LinkId {
        id.into()
    }

    fn member(id: &str, lab: &str, perms: &[&str]) -> Member {
        Member {
            peer: Peer {
                peer_id: id.into(),
                user_id: id.len() as i64,
                username: id.into(),
                display_name: id.to_uppercase(),
                role: "student".into(),
                lab: lab.into(),
                device: "pc".into(),
                self_selected: false,
            },
            session_id: format!("s-{id}"),
            permissions: crate::permission::PermissionSet::from_names(perms.iter().copied()),
            sees_all: false,
            owned_labs: Vec::new(),
            device_key: format!("dev-{id}").into(),
            addr: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            lab_pick: None,
            given_device: Some("pc".into()),
            exam: false,
        }
    }

    const RECV: &[&str] = &["transfer.receive"];

    fn hex(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn files() -> Vec<FileMeta> {
        vec![FileMeta { name: "handout.pdf".into(), size: 3 * PIECE_BYTES + 5, mime: String::new() }]
    }

    fn start(book: &mut Book, receivers: &[&str], fanout: usize, auto: bool) -> Effects {
        let sender = member("s", "Lab A", &["broadcast.send"]);
        let peers = receivers.iter().map(|r| member(r, "Lab A", RECV).peer).collect();
        let mut n = 0;
        let (ack, fx) = book
            .start(
                &sender,
                peers,
                Start {
                    id: "b1".into(),
                    target: Target::Lab { lab: "Lab A".into() },
                    reach: Reach::Labs(vec!["Lab A".into()]),
                    files: files(),
                    fanout,
                    auto_accept: auto,
                },
                || {
                    n += 1;
                    TransferId::from(format!("t{n}"))
                },
            )
            .unwrap();
        assert_eq!(ack.recipients.len(), receivers.len());
        fx
    }

    fn manifest(book: &mut Book) -> Effects {
        let part = ManifestPart {
            broadcast_id: "b1".into(),
            file: 0,
            first: 0,
            hashes: (0..4).map(hex).collect(),
            sha256: Some(hex(9)),
        };
        book.manifest(&p("s"), part).unwrap()
    }

    fn links(fx: &Effects) -> Vec<(String, String, String)> {
        fx.emits
            .iter()
            .filter(|e| e.event.name() == "broadcast:link" && to_json(&e.event.data())["role"] == "child")
            .map(|e| {
                let super::super::hub::Audience::Peer(to) = &e.to else { panic!() };
                (
                    to.to_string(),
                    to_json(&e.event.data())["peer"].as_str().unwrap().to_string(),
                    to_json(&e.event.data())["linkId"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn a_self_selected_device_is_asked_even_when_the_sender_auto_accepts() {
        let mut book = Book::default();
        let sender = member("s", "Lab A", &["broadcast.send"]);
        let mut picked = member("p", "Lab A", RECV).peer;
        picked.self_selected = true;
        let placed = member("a", "Lab A", RECV).peer;
        let mut n = 0;
        let start = Start {
            id: "b1".into(),
            target: Target::Lab { lab: "Lab A".into() },
            reach: Reach::Labs(vec!["Lab A".into()]),
            files: files(),
            fanout: 1,
            auto_accept: true,
        };
        let (_, fx) = book
            .start(&sender, vec![placed, picked], start, || {
                n += 1;
                TransferId::from(format!("t{n}"))
            })
            .unwrap();
        let offer_to = |peer: &str| {
            let offer = fx
                .emits
                .iter()
                .find(|e| e.event.name() == "broadcast:offer" && e.to == super::super::hub::Audience::Peer(peer.into()))
                .unwrap();
            to_json(&offer.event.data())["autoAccept"].clone()
        };
        assert_eq!(offer_to("a"), true);
        assert_eq!(offer_to("p"), false);
        assert_eq!(fx.records.iter().filter(|r| matches!(r, Record::Accepted(_))).count(), 1);
    }

    #[test]
    fn links_follow_the_manifest_and_only_their_ends_may_signal() {
        let mut book = Book::default();
        let fx = start(&mut book, &["a", "b", "c"], 2, true);
        assert_eq!(fx.emits.iter().filter(|e| e.event.name() == "broadcast:offer").count(), 3);
        assert!(links(&fx).is_empty(), "no link before the manifest");
        assert_eq!(fx.records.iter().filter(|r| matches!(r, Record::Accepted(_))).count(), 3);
        // A receiver may not send the manifest; parts must be in order and complete.
        let bad = ManifestPart { broadcast_id: "b1".into(), file: 0, first: 0, hashes: vec![hex(1)], sha256: None };
        assert_eq!(book.manifest(&p("a"), bad.clone()).unwrap_err(), SignalError::NotParty);
        let too_many = ManifestPart { hashes: (0..5).map(hex).collect(), sha256: Some(hex(1)), ..bad.clone() };
        assert!(book.manifest(&p("s"), too_many).is_err());
        let no_sha = ManifestPart { hashes: (0..4).map(hex).collect(), ..bad.clone() };
        assert!(book.manifest(&p("s"), no_sha).is_err());
        let fx = manifest(&mut book);
        assert_eq!(fx.emits.iter().filter(|e| e.event.name() == "broadcast:manifest").count(), 3);
        let l = links(&fx);
        assert_eq!(l.len(), 3);
        let parent_of = |c: &str| l.iter().find(|x| x.0 == c).unwrap().1.clone();
        assert_eq!((parent_of("a"), parent_of("b"), parent_of("c")), ("s".into(), "s".into(), "a".into()));
        let link_c = &l.iter().find(|x| x.0 == "c").unwrap().2;
        assert!(book.signal(&p("a"), &link(link_c), &p("c")).is_ok());
        assert!(book.signal(&p("c"), &link(link_c), &p("a")).is_ok());
        assert_eq!(book.signal(&p("b"), &link(link_c), &p("c")).unwrap_err(), SignalError::NotParty);
        assert_eq!(book.signal(&p("s"), &link(link_c), &p("c")).unwrap_err(), SignalError::NotParty);
        assert_eq!(book.signal(&p("a"), &link("b1-99"), &p("c")).unwrap_err(), SignalError::UnknownTransfer);
        assert!(book.manifest(&p("s"), bad).is_err(), "complete already");
    }

    #[test]
    fn a_leaving_forwarder_is_replaced_and_its_old_links_die() {
        let mut book = Book::default();
        start(&mut book, &["a", "b", "c", "d"], 1, true);
        let fx = manifest(&mut book);
        // A chain: s → a → b → c → d.
        let old = links(&fx).into_iter().find(|x| x.0 == "c").unwrap().2;
        let fx = book.leave(&p("b"));
        let l = links(&fx);
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].0.as_str(), l[0].1.as_str()), ("c", "a"));
        assert!(
            fx.emits
                .iter()
                .any(|e| e.event.name() == "broadcast:progress" && to_json(&e.event.data())["state"] == "failed")
        );
        assert!(matches!(&fx.records[0], Record::Finished(id, o) if id == "t2" && o.status == TransferStatus::Failed));
        assert_eq!(book.signal(&p("b"), &link(&old), &p("c")).unwrap_err(), SignalError::UnknownTransfer);
        assert!(book.signal(&p("a"), &link(&l[0].2), &p("c")).is_ok());
    }

    #[test]
    fn a_bad_piece_flags_the_forwarder_and_moves_its_children() {
        let mut book = Book::default();
        start(&mut book, &["a", "b", "c", "d"], 2, true);
        let fx = manifest(&mut book);
        // s: a b; a: c d.
        let link_c = links(&fx).into_iter().find(|x| x.0 == "c").unwrap().2;
        let report = ProblemReport {
            broadcast_id: "b1".into(),
            link_id: link(&link_c),
            kind: ProblemKind::BadPiece,
            piece: Some(2),
        };
        // d's link is another one: c's report is not d's to make.
        assert!(links(&book.problem(&p("d"), &report).unwrap()).is_empty());
        let fx = book.problem(&p("c"), &report).unwrap();
        let l = links(&fx);
        assert_eq!(l.len(), 2, "c and d both leave the bad forwarder");
        assert!(l.iter().all(|x| x.1 != "a"));
        assert!(
            fx.emits
                .iter()
                .any(|e| e.event.name() == "broadcast:unlink" && e.to == super::super::hub::Audience::Peer("a".into()))
        );
        // The same report over the old link changes nothing.
        assert!(links(&book.problem(&p("c"), &report).unwrap()).is_empty());
    }

    #[test]
    fn stall_reports_move_a_child_only_when_its_parent_has_more() {
        let mut book = Book::default();
        start(&mut book, &["a", "b", "c"], 1, true);
        let fx = manifest(&mut book);
        let link_b = links(&fx).into_iter().find(|x| x.0 == "b").unwrap().2;
        let st = |bytes| StatusReport {
            broadcast_id: "b1".into(),
            state: ReportedState::Receiving,
            bytes,
            sha256: String::new(),
            duration_ms: None,
            reason: String::new(),
        };
        book.status(&p("a"), st(PIECE_BYTES)).unwrap();
        book.status(&p("b"), st(PIECE_BYTES)).unwrap();
        let stalled = ProblemReport {
            broadcast_id: "b1".into(),
            link_id: link(&link_b),
            kind: ProblemKind::Stalled,
            piece: None,
        };
        assert!(links(&book.problem(&p("b"), &stalled).unwrap()).is_empty(), "a waits too");
        book.status(&p("a"), st(2 * PIECE_BYTES)).unwrap();
        let l = links(&book.problem(&p("b"), &stalled).unwrap());
        assert_eq!((l[0].0.as_str(), l[0].1.as_str()), ("b", "s"));
    }

    #[test]
    fn offers_wait_for_an_answer_and_late_joiners_are_added() {
        let mut book = Book::default();
        let fx = start(&mut book, &["a", "b"], 2, false);
        assert_eq!(fx.asked.len(), 2);
        assert!(fx.records.iter().all(|r| matches!(r, Record::Requested(_))));
        assert!(links(&manifest(&mut book)).is_empty(), "nobody accepted yet");
        let fx = book.respond(&p("a"), "b1", true).unwrap();
        assert_eq!(links(&fx), vec![("a".into(), "s".into(), "b1-1".into())]);
        assert!(fx.emits.iter().any(|e| e.event.name() == "broadcast:manifest"));
        assert!(book.respond(&p("a"), "b1", true).is_err(), "twice");
        assert!(book.respond(&p("zz"), "b1", true).is_err());
        let fx = book.respond(&p("b"), "b1", false).unwrap();
        assert!(matches!(&fx.records[0], Record::Finished(_, o) if o.status == TransferStatus::Declined));
        // A late joiner of the lab gets an offer; one of another lab does not.
        let fx = book.join(&member("late", "Lab A", RECV), || "t9".into());
        assert_eq!(fx.added, vec!["b1".to_string()]);
        assert!(fx.emits.iter().any(|e| e.event.name() == "broadcast:offer"));
        assert!(book.join(&member("far", "Lab B", RECV), || "t10".into()).emits.is_empty());
        assert!(book.join(&member("nr", "Lab A", &[]), || "t11".into()).emits.is_empty());
        let fx = book.expire("b1", &p("late"));
        assert!(matches!(&fx.records[0], Record::Finished(_, o) if o.status == TransferStatus::Expired));
    }

    #[test]
    fn the_broadcast_ends_when_every_recipient_did() {
        let mut book = Book::default();
        start(&mut book, &["a", "b"], 2, true);
        manifest(&mut book);
        let done = |bytes| StatusReport {
            broadcast_id: "b1".into(),
            state: ReportedState::Done,
            bytes,
            sha256: hex(9),
            duration_ms: Some(10),
            reason: String::new(),
        };
        assert!(book.status(&p("a"), done(5)).is_err(), "done needs every byte");
        let total = 3 * PIECE_BYTES + 5;
        let fx = book.status(&p("a"), done(total)).unwrap();
        assert!(
            matches!(&fx.records[0], Record::Finished(id, o) if id == "t1" && o.status == TransferStatus::Completed && o.sha256 == hex(9))
        );
        assert!(book.status(&p("a"), done(total)).is_err(), "twice");
        let fx = book.status(&p("b"), done(total)).unwrap();
        assert!(fx.emits.iter().any(|e| e.event.name() == "broadcast:ended"));
        assert!(book.running().is_empty());
    }

    #[test]
    fn the_sender_leaving_ends_it_for_everyone() {
        let mut book = Book::default();
        start(&mut book, &["a", "b"], 2, true);
        let fx = book.leave(&p("s"));
        assert_eq!(
            fx.records
                .iter()
                .filter(|r| matches!(r, Record::Finished(_, o) if o.status == TransferStatus::Failed))
                .count(),
            2
        );
        assert_eq!(fx.emits.iter().filter(|e| e.event.name() == "broadcast:ended").count(), 3);
        assert!(book.running().is_empty());
    }
}
