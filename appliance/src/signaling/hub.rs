//! The signaling hub: who is online (one member per connected device), which transfers are
//! pending or under way, and the rules between them. Every method is synchronous, takes
//! plain values and returns what must happen next (`Emit`s to send, `Record`s to store), so
//! the rules are unit-tested without sockets or a database; `signaling::events` executes
//! the effects.
//!
//! Invariants:
//! - a peer sees only peers it may see (same lab, or everyone with the all-labs scope);
//! - a `signal` passes only between the two parties of an accepted, unfinished transfer;
//! - a transfer is logged exactly once with its final outcome;
//! - an accepted transfer outlives its parties' sockets: a side whose socket leaves is
//!   *away* (the transfer is paused for the other side) until the same user on the same
//!   device (its client-generated device key) re-claims it with `transfer:resume`, or
//!   until the resume grace period ends it.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::SignalError;
pub use super::ids::{DeviceKey, PeerId, TransferId};
use super::payloads::{FileMeta, FinishStatus, Part, TextMeta, TransferFinish};
use super::protocol::{
    CancelReason, ExamState, HandinDelivery, PeerLeft, ResumeAck, ServerEvent, Snapshot, TransferCancelled,
    TransferIncoming, TransferPaused, TransferRef, TransferResumed,
};
use super::reconcile::reconcile;
use crate::db::transfers::{Outcome, TransferStatus};
use crate::labs::LabName;
use crate::permission::{Permission, PermissionSet};

/// One connected device, as other clients see it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    pub peer_id: PeerId,
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub lab: LabName,
    pub device: String,
    /// In `lab` because its user picked it (`presence.lab_self_select`), not by address:
    /// such a device never gets that lab's announcements or auto-accepted broadcasts.
    #[serde(skip)]
    pub self_selected: bool,
}

/// A connected device and what the server knows about its user.
#[derive(Debug, Clone)]
pub struct Member {
    pub peer: Peer,
    pub session_id: String,
    pub permissions: PermissionSet,
    /// Sees peers of every lab (by its role, or by its lab's visibility; see `sees`), else
    /// only its own lab's.
    pub sees_all: bool,
    /// Labs this user is responsible for (instructors' broadcast scope).
    pub owned_labs: Vec<LabName>,
    /// The device's own id (client-generated, kept by the browser across reloads and
    /// reconnections): what lets a new socket re-claim this device's transfers. Never sent to
    /// other clients.
    pub device_key: DeviceKey,
    /// The device's address (behind a trusted proxy, from `X-Forwarded-For`), the lab its
    /// user asked for and the name its user gave it (none: the browser's own was kept): what
    /// its lab and its name (`peer.device`) are derived from again when labs, seats or
    /// settings change.
    pub addr: std::net::IpAddr,
    pub lab_pick: Option<LabName>,
    pub given_device: Option<String>,
    /// A student (`is_student`) in a lab in exam mode: no one-to-one transfers, and no
    /// other student in sight.
    pub exam: bool,
}

/// Sees every lab because of its role (`portal.access` or `broadcast.send`: admins,
/// instructors), whatever its lab's visibility.
pub fn sees_every_lab_by_role(permissions: &PermissionSet) -> bool {
    permissions.has(Permission::PortalAccess) || permissions.has(Permission::BroadcastSend)
}

/// A student, for the lab policies: a user who can neither broadcast nor manage users (not
/// an instructor or an admin, whatever the role is called).
pub fn is_student(permissions: &PermissionSet) -> bool {
    !permissions.has(Permission::BroadcastSend) && !permissions.has(Permission::UsersManage)
}

impl Member {
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.has(permission)
    }

    /// Who did it, for the audit log: this device's user, from its address.
    pub fn actor(&self) -> crate::audit::Actor {
        crate::audit::Actor {
            user_id: Some(self.peer.user_id),
            username: self.peer.username.clone(),
            client_addr: self.addr.to_string(),
        }
    }

    pub fn is_student(&self) -> bool {
        is_student(&self.permissions)
    }

    pub fn sees_every_lab_by_role(&self) -> bool {
        sees_every_lab_by_role(&self.permissions)
    }

    /// Devices of the same lab see each other. Across labs, a device that sees every lab by
    /// its role sees everyone; one that sees every lab by its lab's visibility sees those
    /// that see every lab too, not a device kept to its own lab (visibility `own`): so two
    /// students of different labs see each other only when both labs let them. Exam mode
    /// keeps students apart on top of that.
    fn sees(&self, other: &Member) -> bool {
        let across = self.sees_all && (other.sees_all || self.sees_every_lab_by_role());
        (self.peer.lab == other.peer.lab || across) && !exam_apart(self, other)
    }

    /// Who, beyond its own lab, is told of this device's presence.
    fn seen_beyond_its_lab_by(&self) -> Beyond {
        if self.sees_all { Beyond::AllLabViewers } else { Beyond::RoleViewers }
    }

    /// Who is not told of this device's presence: exam-bound devices hide students and
    /// students hide from exam-bound devices (see `Audience::ViewersOf`).
    fn unseen_by(&self) -> Unseen {
        if self.exam {
            Unseen::Students
        } else if self.is_student() {
            Unseen::ExamBound
        } else {
            Unseen::Nobody
        }
    }
}

/// Two different devices kept apart by exam mode: both students, one of them exam-bound.
fn exam_apart(a: &Member, b: &Member) -> bool {
    a.peer.peer_id != b.peer.peer_id && (a.exam || b.exam) && a.is_student() && b.is_student()
}

/// Devices that a presence event skips although they see the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unseen {
    Nobody,
    /// Devices of students (not instructors or admins).
    Students,
    /// Exam-bound devices (`Member::exam`).
    ExamBound,
}

/// Which devices of other labs a presence event reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beyond {
    /// Every device that sees every lab (`Member::sees_all`).
    AllLabViewers,
    /// Only those that see every lab by their role: the device is kept to its own lab.
    RoleViewers,
}

/// Who an event goes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Audience {
    Peer(PeerId),
    /// Every device that can see a peer of this lab (its lab and the all-labs viewers, or
    /// only those by role), except those exam mode keeps apart from it.
    ViewersOf(LabName, Unseen, Beyond),
    /// Devices located in this lab.
    InLab(LabName),
    Everyone,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Emit {
    pub to: Audience,
    pub except: Option<PeerId>,
    pub event: ServerEvent,
}

impl Emit {
    pub fn to_peer(peer: &PeerId, event: ServerEvent) -> Emit {
        Emit { to: Audience::Peer(peer.clone()), except: None, event }
    }
}

/// A change for the transfer log.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Requested(Box<RequestedTransfer>),
    Accepted(TransferId),
    Finished(TransferId, Outcome),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestedTransfer {
    pub id: TransferId,
    pub from: Peer,
    pub to: Peer,
    pub files: Vec<FileMeta>,
    pub total_bytes: u64,
    pub broadcast_id: Option<String>,
    /// The devices, which may re-claim the transfer (none for a broadcast's deliveries,
    /// which the relay tree repairs instead).
    pub sender_device_key: Option<DeviceKey>,
    pub receiver_device_key: Option<DeviceKey>,
    /// The length of the text the transfer carries, when it carries a text (`tag_text`).
    pub text_chars: Option<u64>,
    /// The hand-in it delivers to (`tag_handin`).
    pub handin_id: Option<String>,
}

/// An accepted, unfinished transfer read back from the transfer log at start-up: both of
/// its sides are away until they re-claim it.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredTransfer {
    pub id: TransferId,
    pub sender_user: i64,
    pub receiver_user: i64,
    pub sender_device_key: DeviceKey,
    pub receiver_device_key: DeviceKey,
    pub files: Vec<FileMeta>,
    pub total_bytes: u64,
}

/// Which side of a transfer a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Sender,
    Receiver,
}

impl Role {
    fn other(self) -> Role {
        match self {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        }
    }
}

/// What `Hub::resume` decided: the emits and the ack body for the claimant.
#[derive(Debug)]
pub struct Resumed {
    pub emits: Vec<Emit>,
    pub ack: ResumeAck,
}

/// Limits from the settings, read by the caller.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_file_bytes: u64,
    pub requests_per_minute: usize,
    pub max_pending_per_user: usize,
    /// How long a request (or a broadcast offer) waits for its answer.
    pub request_expiry: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Requested,
    Accepted,
}

/// One side of a transfer (the sender or the receiver): its device and where it stands.
#[derive(Debug)]
struct Side {
    /// The side's socket (its latest, when it is away); none for a transfer restored from
    /// the log whose device has not come back yet.
    peer: Option<PeerId>,
    user: i64,
    /// The device's key: only this device of this user may re-claim the side.
    device: DeviceKey,
    /// Since when the side's socket is gone (accepted transfers only).
    away: Option<Instant>,
    /// What the side said with `transfer:finish`.
    report: Option<TransferFinish>,
}

impl Side {
    /// The side of `member`, online.
    fn of(member: &Member) -> Side {
        Side {
            peer: Some(member.peer.peer_id.clone()),
            user: member.peer.user_id,
            device: member.device_key.clone(),
            away: None,
            report: None,
        }
    }

    fn is_device(&self, user: i64, device: &DeviceKey) -> bool {
        self.user == user && self.device == *device
    }

    fn is(&self, peer: &PeerId) -> bool {
        self.peer.as_ref() == Some(peer)
    }
}

#[derive(Debug)]
struct Transfer {
    sender: Side,
    receiver: Side,
    files: Vec<FileMeta>,
    total_bytes: u64,
    stage: Stage,
}

impl Transfer {
    /// A new offer from `sender` to `target`, waiting for an answer.
    fn offered(sender: &Member, target: &Member, files: Vec<FileMeta>, total_bytes: u64) -> Transfer {
        Transfer { sender: Side::of(sender), receiver: Side::of(target), files, total_bytes, stage: Stage::Requested }
    }

    fn side(&self, role: Role) -> &Side {
        match role {
            Role::Sender => &self.sender,
            Role::Receiver => &self.receiver,
        }
    }

    fn side_mut(&mut self, role: Role) -> &mut Side {
        match role {
            Role::Sender => &mut self.sender,
            Role::Receiver => &mut self.receiver,
        }
    }

    /// Which side socket `peer` is, if any.
    fn role_of(&self, peer: &PeerId) -> Option<Role> {
        if self.sender.is(peer) {
            Some(Role::Sender)
        } else if self.receiver.is(peer) {
            Some(Role::Receiver)
        } else {
            None
        }
    }

    fn away_since(&self) -> Option<Instant> {
        match (self.sender.away, self.receiver.away) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether either side has reported its end.
    fn reported(&self) -> bool {
        self.sender.report.is_some() || self.receiver.report.is_some()
    }

    fn outcome(&self) -> Outcome {
        reconcile(self.sender.report.as_ref(), self.receiver.report.as_ref(), self.total_bytes)
    }
}

/// Per-device event budget: `rate` events a second, bursts of `burst` (settings
/// `signaling.events_per_second` and `signaling.event_burst`; defaults 50 and 200).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventBudget {
    pub rate: f64,
    pub burst: f64,
}

impl Default for EventBudget {
    fn default() -> Self {
        EventBudget { rate: 50.0, burst: 200.0 }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Connections one device (one device key: the tabs of a browser, or a device that
/// reconnected before its old connection was noticed gone) may hold while the per-user device
/// cap is on.
pub const MAX_CONNECTIONS_PER_DEVICE: usize = 8;
/// How long an admitted connection holds its place before it joins (after that it counts only
/// once it has joined).
const ADMIT_HOLD: Duration = Duration::from_secs(30);

/// Why `Hub::admit` refused a connection; `code` is its `connect_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crowded {
    /// The user already has the most devices allowed.
    Devices,
    /// This device already holds `MAX_CONNECTIONS_PER_DEVICE` connections.
    Connections,
}

impl Crowded {
    pub fn code(self) -> &'static str {
        match self {
            Crowded::Devices => "too_many_devices",
            Crowded::Connections => "too_many_connections",
        }
    }
}

/// One connection of a user, for the device cap.
#[derive(Debug)]
struct Slot {
    device_key: DeviceKey,
    /// When it was admitted; `None` once it joined (it then counts while it is a member).
    admitted: Option<Instant>,
}

#[derive(Default)]
pub struct Hub {
    members: HashMap<PeerId, Member>,
    /// Each user's connections (joined, or admitted and about to join), by peer id.
    connections: HashMap<i64, HashMap<PeerId, Slot>>,
    /// The members of each lab: a device that sees its own lab only gets its snapshot
    /// in O(lab), not O(all devices).
    labs: HashMap<LabName, BTreeSet<PeerId>>,
    transfers: HashMap<TransferId, Transfer>,
    requests: HashMap<i64, VecDeque<Instant>>,
    buckets: HashMap<PeerId, Bucket>,
    budget: EventBudget,
}

impl Hub {
    pub fn member(&self, peer: &PeerId) -> Option<&Member> {
        self.members.get(peer)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Devices online per lab, by lab name.
    pub fn online_by_lab(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> =
            self.labs.iter().map(|(lab, ids)| (lab.to_string(), ids.len())).collect();
        counts.sort_unstable();
        counts
    }

    /// (requests waiting for an answer, accepted transfers not yet reported).
    pub fn transfer_counts(&self) -> (usize, usize) {
        let waiting = self.transfers.values().filter(|t| t.stage == Stage::Requested).count();
        (waiting, self.transfers.len() - waiting)
    }

    /// Connected devices of each session: (session id, device name, lab).
    pub fn devices(&self) -> Vec<(String, String, String)> {
        self.members.values().map(|m| (m.session_id.clone(), m.peer.device.clone(), m.peer.lab.to_string())).collect()
    }

    /// Sets the per-device event budget (from the settings).
    pub fn set_event_budget(&mut self, budget: EventBudget) {
        self.budget = budget;
    }

    /// Spends one event of `peer`'s budget.
    pub fn spend_event(&mut self, peer: &PeerId, now: Instant) -> Result<(), SignalError> {
        let EventBudget { rate, burst } = self.budget;
        if !self.buckets.contains_key(peer) {
            self.buckets.insert(peer.clone(), Bucket { tokens: burst, at: now });
        }
        let Some(b) = self.buckets.get_mut(peer) else { return Ok(()) };
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if b.tokens < 1.0 {
            return Err(SignalError::RateLimited);
        }
        b.tokens -= 1.0;
        Ok(())
    }

    /// Admits a new connection of `user` from device `device_key` (before it joins), unless
    /// the user already has `max_devices` devices connected (0: no limit) or this device
    /// holds `MAX_CONNECTIONS_PER_DEVICE` connections. A device is a device key: a connection
    /// from a device that is already connected does not count as another device, so a device
    /// reconnecting before its old connection was noticed gone is let in.
    pub fn admit(
        &mut self,
        user: i64,
        peer: &PeerId,
        device_key: &DeviceKey,
        max_devices: usize,
        now: Instant,
    ) -> Result<(), Crowded> {
        if max_devices == 0 {
            return Ok(());
        }
        let members = &self.members;
        let slots = self.connections.entry(user).or_default();
        slots.retain(|p, slot| match slot.admitted {
            Some(at) => now.saturating_duration_since(at) < ADMIT_HOLD,
            None => members.contains_key(p),
        });
        let same_device = slots.values().filter(|s| s.device_key == *device_key).count();
        if same_device >= MAX_CONNECTIONS_PER_DEVICE {
            return Err(Crowded::Connections);
        }
        if same_device == 0 {
            let devices: std::collections::HashSet<&DeviceKey> = slots.values().map(|s| &s.device_key).collect();
            if devices.len() >= max_devices {
                return Err(Crowded::Devices);
            }
        }
        slots.insert(peer.clone(), Slot { device_key: device_key.clone(), admitted: Some(now) });
        Ok(())
    }

    /// Adds a device; returns the snapshot for it and what others are told.
    pub fn join(&mut self, member: Member) -> (Snapshot, Vec<Emit>) {
        let visible: Vec<&Peer> = if member.sees_all {
            self.members.values().filter(|m| member.sees(m)).map(|m| &m.peer).collect()
        } else {
            let lab = self.labs.get(&member.peer.lab).into_iter().flatten();
            lab.filter_map(|id| self.members.get(id)).filter(|m| member.sees(m)).map(|m| &m.peer).collect()
        };
        let snapshot = Snapshot {
            me: member.peer.clone(),
            peers: visible.into_iter().cloned().collect(),
            resume_grace_secs: None,
            // The caller knows whether the lab is in exam mode for a device it does not bind.
            exam: ExamState { lab: member.peer.lab.clone(), on: member.exam, bound: member.exam },
        };
        let emit = Emit {
            to: Audience::ViewersOf(member.peer.lab.clone(), member.unseen_by(), member.seen_beyond_its_lab_by()),
            except: Some(member.peer.peer_id.clone()),
            event: ServerEvent::PresenceJoined(member.peer.clone()),
        };
        if let Some(old) = self.members.remove(&member.peer.peer_id) {
            self.unlist(&old);
        }
        self.labs.entry(member.peer.lab.clone()).or_default().insert(member.peer.peer_id.clone());
        let slot = Slot { device_key: member.device_key.clone(), admitted: None };
        self.connections.entry(member.peer.user_id).or_default().insert(member.peer.peer_id.clone(), slot);
        self.members.insert(member.peer.peer_id.clone(), member);
        (snapshot, vec![emit])
    }

    /// `exam:state` to every device of the labs whose exam mode just changed (`changed`:
    /// each lab with its new state), each told whether it binds it. Sent before the lab's
    /// students are dropped to re-join, so that the lab's instructors, who stay connected,
    /// learn it too.
    pub fn exam_notices(&self, changed: &[(LabName, bool)]) -> Vec<Emit> {
        let mut emits = Vec::new();
        for (lab, on) in changed {
            let ids = self.labs.get(lab).into_iter().flatten();
            for m in ids.filter_map(|id| self.members.get(id)) {
                let state = ExamState { lab: lab.clone(), on: *on, bound: *on && m.is_student() };
                emits.push(Emit::to_peer(&m.peer.peer_id, ServerEvent::ExamState(state)));
            }
        }
        emits
    }

    /// Takes a member out of its lab's list (not out of `members`).
    fn unlist(&mut self, m: &Member) {
        if let Some(ids) = self.labs.get_mut(&m.peer.lab) {
            ids.remove(&m.peer.peer_id);
            if ids.is_empty() {
                self.labs.remove(&m.peer.lab);
            }
        }
    }

    /// Removes a device. Requests it made or received and nobody answered are cancelled;
    /// accepted transfers stay (their data channel may outlive the signaling connection):
    /// this side is marked away from `now`, and the other side is told
    /// `transfer:paused` (unless a side already reported its end).
    pub fn leave(&mut self, peer: &PeerId, now: Instant) -> (Vec<Emit>, Vec<Record>) {
        self.buckets.remove(peer);
        let Some(m) = self.members.remove(peer) else { return (Vec::new(), Vec::new()) };
        self.unlist(&m);
        if let Some(slots) = self.connections.get_mut(&m.peer.user_id) {
            slots.remove(peer);
            if slots.is_empty() {
                self.connections.remove(&m.peer.user_id);
            }
        }
        let mut emits = vec![Emit {
            to: Audience::ViewersOf(m.peer.lab.clone(), m.unseen_by(), m.seen_beyond_its_lab_by()),
            except: None,
            event: ServerEvent::PresenceLeft(PeerLeft { peer_id: peer.clone() }),
        }];
        let mut records = Vec::new();
        let pending: Vec<TransferId> = self
            .transfers
            .iter()
            .filter(|(_, t)| t.stage == Stage::Requested && t.role_of(peer).is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for id in pending {
            if let Some(t) = self.transfers.remove(&id)
                && let Some(role) = t.role_of(peer)
                && let Some(other) = &t.side(role.other()).peer
            {
                let cancelled =
                    TransferCancelled { transfer_id: id.clone(), reason: CancelReason::PeerLeft, detail: None };
                emits.push(Emit::to_peer(other, ServerEvent::TransferCancelled(cancelled)));
                records.push(Record::Finished(
                    id,
                    ended(TransferStatus::Cancelled, "peer_left: the other device went offline"),
                ));
            }
        }
        for (id, t) in self.transfers.iter_mut().filter(|(_, t)| t.stage == Stage::Accepted) {
            // Either side's report ends the waiting for the other: nothing to pause then.
            let reported = t.reported();
            let Some(role) = t.role_of(peer) else { continue };
            if t.side(role).away.is_some() {
                continue;
            }
            t.side_mut(role).away = Some(now);
            let other = t.side(role.other());
            if !reported
                && other.away.is_none()
                && let Some(other) = &other.peer
            {
                let paused = TransferPaused { transfer_id: id.clone(), peer_id: peer.clone() };
                emits.push(Emit::to_peer(other, ServerEvent::TransferPaused(paused)));
            }
        }
        (emits, records)
    }

    /// `transfer:resume`: the device `peer` re-claims its side of an accepted, unfinished
    /// transfer after it reconnected (new socket) or after a server restart. Only the same
    /// user on the same device (device key) may; `role`, when given, must be its side. Both
    /// sides then get `transfer:resumed` with the other's peer (when the other side is
    /// online), so signaling between the two new sockets is allowed again.
    pub fn resume(&mut self, peer: &PeerId, id: &TransferId, role: Option<Role>) -> Result<Resumed, SignalError> {
        let m = self.members.get(peer).ok_or(SignalError::NotConnected)?;
        let claimant = m.peer.clone();
        let key = m.device_key.clone();
        let (may_send, may_receive) = (m.has(Permission::TransferSend), m.has(Permission::TransferReceive));
        let exam = m.exam;
        let t = self.transfers.get_mut(id).ok_or(SignalError::UnknownTransfer)?;
        let sender_match = t.sender.is_device(claimant.user_id, &key);
        let receiver_match = t.receiver.is_device(claimant.user_id, &key);
        let side = match role {
            Some(Role::Sender) if sender_match => Role::Sender,
            Some(Role::Receiver) if receiver_match => Role::Receiver,
            Some(_) => return Err(SignalError::NotParty),
            // One device sending to itself from two tabs matches both: it must say which.
            None if sender_match && receiver_match => {
                return Err(SignalError::Invalid("this device is both sides: say which with role".into()));
            }
            None if sender_match => Role::Sender,
            None if receiver_match => Role::Receiver,
            None => return Err(SignalError::NotParty),
        };
        if t.stage != Stage::Accepted {
            return Err(SignalError::WrongState("it was not accepted yet"));
        }
        if exam {
            return Err(SignalError::ExamMode);
        }
        // A user whose role lost the right since the transfer began may not take it up again.
        match side {
            Role::Sender if !may_send => return Err(SignalError::Forbidden(Permission::TransferSend.name())),
            Role::Receiver if !may_receive => return Err(SignalError::Forbidden(Permission::TransferReceive.name())),
            _ => {}
        }
        if t.side(side).report.is_some() {
            return Err(SignalError::WrongState("this side already reported its end"));
        }
        let mine = t.side_mut(side);
        mine.peer = Some(peer.clone());
        mine.away = None;
        let other = t.side(side.other());
        let (other, other_away) = (other.peer.clone(), other.away);
        let files = t.files.clone();
        let total = t.total_bytes;
        let other_peer = match (other_away, other) {
            (None, Some(other)) => self.members.get(&other).map(|m| m.peer.clone()),
            _ => None,
        };
        let mut emits = Vec::new();
        if let Some(o) = &other_peer {
            let resumed = |peer: &Peer| {
                ServerEvent::TransferResumed(TransferResumed { transfer_id: id.clone(), peer: peer.clone() })
            };
            emits.push(Emit::to_peer(&o.peer_id, resumed(&claimant)));
            emits.push(Emit::to_peer(peer, resumed(o)));
        }
        let ack = ResumeAck { transfer_id: id.clone(), role: side, files, total_bytes: total, peer: other_peer };
        Ok(Resumed { emits, ack })
    }

    /// Puts accepted, unfinished transfers read from the log back (at start-up, before any
    /// socket connects), both sides away since `now`.
    pub fn restore(&mut self, rows: Vec<RestoredTransfer>, now: Instant) {
        for r in rows {
            let away = |user, device| Side { peer: None, user, device, away: Some(now), report: None };
            self.transfers.entry(r.id.clone()).or_insert(Transfer {
                sender: away(r.sender_user, r.sender_device_key),
                receiver: away(r.receiver_user, r.receiver_device_key),
                files: r.files,
                total_bytes: r.total_bytes,
                stage: Stage::Accepted,
            });
        }
    }

    /// True when some accepted transfer has a side away (the sweep then checks the grace).
    pub fn has_paused(&self) -> bool {
        self.transfers.values().any(|t| t.away_since().is_some())
    }

    /// Ends transfers whose side has been away longer than `grace`: the side that stayed (if
    /// online) gets `transfer:cancelled` with reason `resume_expired`, and the log row says
    /// what was reported (or that it never came back).
    pub fn expire_paused(&mut self, now: Instant, grace: Duration) -> (Vec<Emit>, Vec<Record>) {
        let due: Vec<TransferId> = self
            .transfers
            .iter()
            .filter(|(_, t)| t.away_since().is_some_and(|at| now.saturating_duration_since(at) >= grace))
            .map(|(id, _)| id.clone())
            .collect();
        let (mut emits, mut records) = (Vec::new(), Vec::new());
        let minutes = grace.as_secs().div_ceil(60);
        for id in due {
            let Some(t) = self.transfers.remove(&id) else { continue };
            let who = match (t.sender.away.is_some(), t.receiver.away.is_some()) {
                (true, true) => "neither device came back",
                (true, false) => "the sender's device did not come back",
                _ => "the receiver's device did not come back",
            };
            let detail = format!("resume_expired: {who} within {minutes} min");
            for side in [&t.sender, &t.receiver] {
                if side.away.is_none()
                    && let Some(p) = side.peer.as_ref().filter(|p| self.members.contains_key(*p))
                {
                    let cancelled = TransferCancelled {
                        transfer_id: id.clone(),
                        reason: CancelReason::ResumeExpired,
                        detail: Some(detail.clone()),
                    };
                    emits.push(Emit::to_peer(p, ServerEvent::TransferCancelled(cancelled)));
                }
            }
            let outcome = if t.reported() { t.outcome() } else { ended(TransferStatus::Failed, &detail) };
            records.push(Record::Finished(id, outcome));
        }
        (emits, records)
    }

    /// Ends every one-to-one transfer, asked or accepted, that has a side on one of the
    /// `exam_bound` devices (students of a lab just put in exam mode): both sides get
    /// `transfer:cancelled` with reason `exam_mode` and the log row says `cancelled`. A
    /// transfer that a side already reported the end of is left to finish as reported.
    pub fn cancel_for_exam(&mut self, exam_bound: &HashSet<PeerId>) -> (Vec<Emit>, Vec<Record>) {
        let ids: Vec<TransferId> = self
            .transfers
            .iter()
            .filter(|(_, t)| !t.reported())
            .filter(|(_, t)| [&t.sender.peer, &t.receiver.peer].into_iter().flatten().any(|p| exam_bound.contains(p)))
            .map(|(id, _)| id.clone())
            .collect();
        let (mut emits, mut records) = (Vec::new(), Vec::new());
        for id in ids {
            let Some(t) = self.transfers.remove(&id) else { continue };
            for p in [&t.sender.peer, &t.receiver.peer].into_iter().flatten() {
                let cancelled = TransferCancelled {
                    transfer_id: id.clone(),
                    reason: CancelReason::ExamMode,
                    detail: Some("the lab is in exam mode".into()),
                };
                emits.push(Emit::to_peer(p, ServerEvent::TransferCancelled(cancelled)));
            }
            records.push(Record::Finished(id, ended(TransferStatus::Cancelled, "exam_mode: the lab is in exam mode")));
        }
        (emits, records)
    }

    fn check_target(&self, from: &Member, to: &PeerId) -> Result<&Member, SignalError> {
        let target = self.members.get(to).ok_or(SignalError::PeerOffline)?;
        // Before visibility: a student is told why another student is out of reach.
        if target.exam && target.peer.peer_id != from.peer.peer_id {
            return Err(SignalError::ExamMode);
        }
        let target = Some(target).filter(|t| from.sees(t)).ok_or(SignalError::PeerOffline)?;
        if target.peer.peer_id == from.peer.peer_id {
            return Err(SignalError::Invalid("a device cannot send to itself".into()));
        }
        if !target.has(Permission::TransferReceive) {
            return Err(SignalError::PeerCannotReceive);
        }
        Ok(target)
    }

    /// `transfer:request`. `id` is the new transfer's id (random, chosen by the caller).
    pub fn request(
        &mut self,
        from: &PeerId,
        to: &PeerId,
        files: Vec<FileMeta>,
        id: TransferId,
        limits: &Limits,
        now: Instant,
    ) -> Result<(Vec<Emit>, Record), SignalError> {
        let sender = self.members.get(from).ok_or(SignalError::NotConnected)?;
        if !sender.has(Permission::TransferSend) {
            return Err(SignalError::Forbidden(Permission::TransferSend.name()));
        }
        if sender.exam {
            return Err(SignalError::ExamMode);
        }
        let total = super::payloads::validate_files(&files, limits.max_file_bytes)?;
        let target_member = self.check_target(sender, to)?;
        self.offer(sender.peer.peer_id.clone(), target_member.peer.peer_id.clone(), files, total, id, limits, now)
    }

    /// The connected devices of a user.
    pub fn devices_of_user(&self, user_id: i64) -> Vec<PeerId> {
        self.members.values().filter(|m| m.peer.user_id == user_id).map(|m| m.peer.peer_id.clone()).collect()
    }

    /// A hand-in's delivery (`handin:submit`): from a student's device to the browser that
    /// collects the hand-in, the device `collector` of its owner. Exam mode and visibility do
    /// not stand in the way (students hand in during an exam, to their lab's instructor);
    /// the pending and per-minute limits do. The caller checked the hand-in's own rules and
    /// the files (`payloads::validate_files`, which gave `total`).
    #[allow(clippy::too_many_arguments)]
    pub fn handin_request(
        &mut self,
        from: &PeerId,
        collector: (i64, &DeviceKey),
        files: Vec<FileMeta>,
        total: u64,
        id: TransferId,
        limits: &Limits,
        now: Instant,
    ) -> Result<(Vec<Emit>, Record, Peer), SignalError> {
        let sender = self.members.get(from).ok_or(SignalError::NotConnected)?;
        let target = self
            .members
            .values()
            .find(|m| m.peer.user_id == collector.0 && m.device_key == *collector.1 && m.peer.peer_id != *from)
            .ok_or(SignalError::CollectorOffline)?;
        let collector = target.peer.clone();
        let (emits, record) =
            self.offer(sender.peer.peer_id.clone(), target.peer.peer_id.clone(), files, total, id, limits, now)?;
        Ok((emits, record, collector))
    }

    /// Offers `files` from device `from` to device `to` (both members), within the sender's
    /// pending and per-minute limits.
    #[allow(clippy::too_many_arguments)]
    fn offer(
        &mut self,
        from: PeerId,
        to: PeerId,
        files: Vec<FileMeta>,
        total: u64,
        id: TransferId,
        limits: &Limits,
        now: Instant,
    ) -> Result<(Vec<Emit>, Record), SignalError> {
        let sender = self.members.get(&from).ok_or(SignalError::NotConnected)?;
        let target_member = self.members.get(&to).ok_or(SignalError::PeerOffline)?;
        let transfer = Transfer::offered(sender, target_member, files.clone(), total);
        let (sender_key, receiver_key) = (sender.device_key.clone(), target_member.device_key.clone());
        let target = target_member.peer.clone();
        let sender = sender.peer.clone();
        let user = sender.user_id;
        let pending = self.transfers.values().filter(|t| t.sender.user == user && t.stage == Stage::Requested).count();
        if pending >= limits.max_pending_per_user {
            return Err(SignalError::TooManyPending(limits.max_pending_per_user));
        }
        let window = self.requests.entry(user).or_default();
        while window.front().is_some_and(|t| now.saturating_duration_since(*t) > Duration::from_secs(60)) {
            window.pop_front();
        }
        if window.len() >= limits.requests_per_minute {
            return Err(SignalError::RateLimited);
        }
        window.push_back(now);
        let incoming = TransferIncoming {
            transfer_id: id.clone(),
            from: sender.clone(),
            files: files.clone(),
            total_bytes: total,
            part: None,
            expires_in_secs: limits.request_expiry.as_secs(),
            text: None,
            handin: None,
        };
        let emit = Emit::to_peer(&to, ServerEvent::TransferIncoming(incoming));
        let record = Record::Requested(Box::new(RequestedTransfer {
            id: id.clone(),
            from: sender,
            to: target,
            files,
            total_bytes: total,
            broadcast_id: None,
            sender_device_key: Some(sender_key),
            receiver_device_key: Some(receiver_key),
            text_chars: None,
            handin_id: None,
        }));
        self.transfers.insert(id, transfer);
        Ok((vec![emit], record))
    }

    /// `transfer:respond` from the receiving device.
    pub fn respond(
        &mut self,
        peer: &PeerId,
        id: &TransferId,
        accept: bool,
    ) -> Result<(Vec<Emit>, Record), SignalError> {
        let t = self.transfers.get_mut(id).ok_or(SignalError::UnknownTransfer)?;
        if !t.receiver.is(peer) {
            return Err(SignalError::NotParty);
        }
        if t.stage != Stage::Requested {
            return Err(SignalError::WrongState("it was already answered"));
        }
        let from = t.sender.peer.clone();
        let tell = |event: fn(TransferRef) -> ServerEvent| {
            from.iter().map(|p| Emit::to_peer(p, event(TransferRef { transfer_id: id.clone() }))).collect()
        };
        if accept {
            t.stage = Stage::Accepted;
            Ok((tell(ServerEvent::TransferAccepted), Record::Accepted(id.clone())))
        } else {
            self.transfers.remove(id);
            Ok((tell(ServerEvent::TransferDeclined), Record::Finished(id.clone(), ended(TransferStatus::Declined, ""))))
        }
    }

    /// Called when a request's answer time is up; no effect if it was answered.
    pub fn expire(&mut self, id: &TransferId) -> Option<(Vec<Emit>, Record)> {
        if self.transfers.get(id)?.stage != Stage::Requested {
            return None;
        }
        let t = self.transfers.remove(id)?;
        let emits = [&t.sender.peer, &t.receiver.peer]
            .into_iter()
            .flatten()
            .map(|p| Emit::to_peer(p, ServerEvent::TransferExpired(TransferRef { transfer_id: id.clone() })))
            .collect();
        Some((emits, Record::Finished(id.clone(), ended(TransferStatus::Expired, "no answer in time"))))
    }

    /// `signal`: relayed only between the parties of an accepted, unfinished transfer. Ok
    /// means `peer` may send this transfer's signal to `to` (the caller relays it).
    pub fn signal(&self, peer: &PeerId, id: &TransferId, to: &PeerId) -> Result<(), SignalError> {
        let t = self.transfers.get(id).ok_or(SignalError::UnknownTransfer)?;
        let role = t.role_of(peer).ok_or(SignalError::NotParty)?;
        if !t.side(role.other()).is(to) {
            return Err(SignalError::NotParty);
        }
        if t.stage != Stage::Accepted {
            return Err(SignalError::WrongState("it is not accepted"));
        }
        if !self.members.contains_key(to) {
            return Err(SignalError::PeerOffline);
        }
        Ok(())
    }

    /// `transfer:finish` from either side. Returns the outcome to log once both sides have
    /// reported (or at once for a cancellation before acceptance).
    pub fn finish(
        &mut self,
        peer: &PeerId,
        report: TransferFinish,
    ) -> Result<(Vec<Emit>, Option<Record>), SignalError> {
        let id = report.transfer_id.clone();
        let t = self.transfers.get_mut(&id).ok_or(SignalError::UnknownTransfer)?;
        let role = t.role_of(peer).ok_or(SignalError::NotParty)?;
        let other = t.side(role.other()).peer.clone();
        let mut emits = Vec::new();
        if let Some(reason) = CancelReason::of(report.status)
            && let Some(other) = &other
        {
            let cancelled = TransferCancelled { transfer_id: id.clone(), reason, detail: Some(report.reason.clone()) };
            emits.push(Emit::to_peer(other, ServerEvent::TransferCancelled(cancelled)));
        }
        if t.stage == Stage::Requested {
            if report.status == FinishStatus::Completed {
                return Err(SignalError::WrongState("it was never accepted"));
            }
            self.transfers.remove(&id);
            let outcome = ended(
                TransferStatus::Cancelled,
                &format!("{}: {}", if role == Role::Sender { "sender" } else { "receiver" }, report.reason),
            );
            return Ok((emits, Some(Record::Finished(id, outcome))));
        }
        let slot = &mut t.side_mut(role).report;
        if slot.is_some() {
            return Err(SignalError::WrongState("this side already reported"));
        }
        *slot = Some(report);
        // A side that stopped early ends it for both: the other will not finish normally.
        let stopped = [&t.sender.report, &t.receiver.report]
            .iter()
            .any(|r| r.as_ref().is_some_and(|r| r.status != FinishStatus::Completed));
        if (t.sender.report.is_some() && t.receiver.report.is_some()) || stopped {
            let outcome = t.outcome();
            self.transfers.remove(&id);
            return Ok((emits, Some(Record::Finished(id, outcome))));
        }
        Ok((emits, None))
    }

    /// Ends a transfer that only one side (or no side) reported, after the grace period.
    pub fn finalize(&mut self, id: &TransferId) -> Option<Record> {
        let t = self.transfers.get(id)?;
        if t.stage != Stage::Accepted {
            return None;
        }
        let t = self.transfers.remove(id)?;
        Some(Record::Finished(id.clone(), t.outcome()))
    }

    /// Devices signed in with any of these sessions.
    pub fn peers_of_sessions(&self, sessions: &[String]) -> Vec<PeerId> {
        self.members.values().filter(|m| sessions.contains(&m.session_id)).map(|m| m.peer.peer_id.clone()).collect()
    }

    pub fn live_sessions(&self) -> Vec<String> {
        let mut s: Vec<String> = self.members.values().map(|m| m.session_id.clone()).collect();
        s.sort();
        s.dedup();
        s
    }
}

/// Passes a request's `part` (which part of a larger send it is) on to the receiver, in the
/// `transfer:incoming` of `Hub::request`.
pub fn tag_part(emits: &mut [Emit], part: &Part) {
    for e in emits.iter_mut() {
        if let ServerEvent::TransferIncoming(incoming) = &mut e.event {
            incoming.part = Some(part.clone());
        }
    }
}

/// Marks a request made by `Hub::request` as carrying a text (its files are the one file the
/// text travels as): the receiver is told in `transfer:incoming`, and the log row records the
/// text's length (never the text, which the server does not see).
pub fn tag_text(emits: &mut [Emit], record: &mut Record, text: TextMeta) {
    for e in emits.iter_mut() {
        if let ServerEvent::TransferIncoming(incoming) = &mut e.event {
            incoming.text = Some(text);
        }
    }
    if let Record::Requested(requested) = record {
        requested.text_chars = Some(text.chars);
    }
}

/// Marks a request made by `Hub::handin_request` as a hand-in's delivery: the collecting
/// browser is told which hand-in and whether it is late, and the log row names the hand-in.
/// It waits `expires_in` for the collecting browser, which accepts a few at a time.
pub fn tag_handin(emits: &mut [Emit], record: &mut Record, handin: HandinDelivery, expires_in: Duration) {
    if let Record::Requested(requested) = record {
        requested.handin_id = Some(handin.handin_id.clone());
    }
    for e in emits.iter_mut() {
        if let ServerEvent::TransferIncoming(incoming) = &mut e.event {
            incoming.handin = Some(handin.clone());
            incoming.expires_in_secs = expires_in.as_secs();
        }
    }
}

fn ended(status: TransferStatus, reason: &str) -> Outcome {
    Outcome {
        status,
        bytes: 0,
        sha256: String::new(),
        path: String::new(),
        duration_ms: None,
        failure_reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::{Value, json};

    fn to_json<T: serde::Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap()
    }

    fn p(id: &str) -> PeerId {
        id.into()
    }

    fn t(id: &str) -> TransferId {
        id.into()
    }

    fn k(key: &str) -> DeviceKey {
        key.into()
    }

    fn member(id: &str, user: i64, lab: &str, perms: &[&str], sees_all: bool) -> Member {
        Member {
            peer: Peer {
                peer_id: id.into(),
                user_id: user,
                username: format!("u{user}"),
                display_name: format!("User {user}"),
                role: "student".into(),
                lab: lab.into(),
                device: "pc".into(),
                self_selected: false,
            },
            session_id: format!("s{user}"),
            permissions: PermissionSet::from_names(perms.iter().copied()),
            sees_all,
            owned_labs: Vec::new(),
            device_key: format!("dev-{id}").into(),
            addr: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            lab_pick: None,
            given_device: Some("pc".into()),
            exam: false,
        }
    }

    /// Device `key` of user `user` connected again as socket `id`.
    fn back(id: &str, user: i64, key: &str) -> Member {
        let mut m = member(id, user, "Lab A", STUDENT, false);
        m.device_key = key.into();
        m
    }

    const STUDENT: &[&str] = &["transfer.send", "transfer.receive"];

    fn limits() -> Limits {
        Limits {
            max_file_bytes: 1 << 40,
            requests_per_minute: 5,
            max_pending_per_user: 3,
            request_expiry: Duration::from_secs(60),
        }
    }

    fn files() -> Vec<FileMeta> {
        vec![FileMeta { name: "a.txt".into(), size: 10, mime: "text/plain".into() }]
    }

    fn hub() -> Hub {
        let mut h = Hub::default();
        h.join(member("a", 1, "Lab A", STUDENT, false));
        h.join(member("b", 2, "Lab A", STUDENT, false));
        h.join(member("c", 3, "Lab B", STUDENT, false));
        h
    }

    fn finish(id: &str, status: FinishStatus, sha: &str) -> TransferFinish {
        TransferFinish {
            transfer_id: id.into(),
            status,
            bytes: 10,
            sha256: sha.into(),
            path: Some(super::super::payloads::PathKind::Direct),
            duration_ms: Some(5),
            reason: String::new(),
        }
    }

    #[test]
    fn snapshot_shows_only_visible_peers() {
        let mut h = hub();
        let (snap, emits) = h.join(member("d", 4, "Lab B", STUDENT, false));
        let peers: Vec<&str> = snap.peers.iter().map(|p| p.peer_id.as_str()).collect();
        assert_eq!(peers, vec!["c"]);
        assert_eq!(
            emits[0].to,
            Audience::ViewersOf("Lab B".into(), Unseen::ExamBound, Beyond::RoleViewers),
            "a student hides from exam-bound devices, and one kept to its lab from other labs' students"
        );
        let (snap, _) = h.join(member("e", 5, "Lab C", &["broadcast.send"], true));
        assert_eq!(to_json(&snap)["peers"].as_array().unwrap().len(), 4);
        assert_eq!(to_json(&snap)["self"]["peerId"], "e");
    }

    #[test]
    fn students_of_two_labs_see_each_other_only_when_both_labs_show_every_lab() {
        let mut h = Hub::default();
        // Lab A and Lab B show every lab; Lab C keeps its students to themselves.
        h.join(member("a", 1, "Lab A", STUDENT, true));
        h.join(member("c", 3, "Lab C", STUDENT, false));
        h.join(member("t", 9, "Lab C", &["broadcast.send", "transfer.send"], true));
        let (snap, emits) = h.join(member("b", 2, "Lab B", STUDENT, true));
        let seen: BTreeSet<&str> = snap.peers.iter().map(|p| p.peer_id.as_str()).collect();
        assert_eq!(seen, BTreeSet::from(["a", "t"]), "not the student of a lab kept to itself");
        assert_eq!(emits[0].to, Audience::ViewersOf("Lab B".into(), Unseen::ExamBound, Beyond::AllLabViewers));
        let (snap, emits) = h.join(member("d", 4, "Lab C", STUDENT, false));
        let seen: BTreeSet<&str> = snap.peers.iter().map(|p| p.peer_id.as_str()).collect();
        assert_eq!(seen, BTreeSet::from(["c", "t"]), "its own lab only");
        assert_eq!(emits[0].to, Audience::ViewersOf("Lab C".into(), Unseen::ExamBound, Beyond::RoleViewers));
        // Requests follow what each side sees.
        let mut h2 = h;
        let req = |h: &mut Hub, from: &str, to: &str| {
            h.request(&p(from), &p(to), files(), format!("{from}-{to}").into(), &limits(), Instant::now()).map(|_| ())
        };
        assert_eq!(req(&mut h2, "b", "c").unwrap_err(), SignalError::PeerOffline, "into a lab kept to itself");
        assert_eq!(req(&mut h2, "c", "b").unwrap_err(), SignalError::PeerOffline, "out of it");
        assert!(req(&mut h2, "b", "a").is_ok(), "between two labs that show every lab");
        assert!(req(&mut h2, "d", "c").is_ok(), "within the lab");
        assert!(req(&mut h2, "t", "b").is_ok(), "an instructor of a lab kept to itself still sees other labs");
        assert_eq!(req(&mut h2, "t", "d"), Ok(()), "an instructor sees everyone");
    }

    #[test]
    fn devices_per_user_are_capped_but_a_device_that_reconnects_is_let_in() {
        let mut h = Hub::default();
        let now = Instant::now();
        for i in 0..4 {
            let (id, key) = (format!("s{i}"), format!("dev-{i}"));
            h.admit(7, &p(&id), &k(&key), 4, now).unwrap();
            h.join(back(&id, 7, &key));
        }
        assert_eq!(h.admit(7, &p("s4"), &k("dev-4"), 4, now), Err(Crowded::Devices));
        assert_eq!(Crowded::Devices.code(), "too_many_devices");
        // Other users, and no limit at all.
        assert!(h.admit(8, &p("t0"), &k("dev-4"), 4, now).is_ok());
        assert!(h.admit(7, &p("s4"), &k("dev-4"), 0, now).is_ok());
        // Device 0 again (its old socket still a member): not a fifth device.
        h.admit(7, &p("s0b"), &k("dev-0"), 4, now).unwrap();
        h.join(back("s0b", 7, "dev-0"));
        // Device 1 leaves: a new device takes its place, and no other.
        h.leave(&p("s1"), now);
        h.admit(7, &p("s5"), &k("dev-5"), 4, now).unwrap();
        assert_eq!(h.admit(7, &p("s6"), &k("dev-6"), 4, now), Err(Crowded::Devices));
        // An admitted connection holds its place until it joins, or for ADMIT_HOLD.
        assert_eq!(
            h.admit(7, &p("s6"), &k("dev-6"), 4, now + ADMIT_HOLD - Duration::from_secs(1)),
            Err(Crowded::Devices)
        );
        assert!(h.admit(7, &p("s6"), &k("dev-6"), 4, now + ADMIT_HOLD).is_ok());
    }

    #[test]
    fn one_device_holds_a_bounded_number_of_connections() {
        let mut h = Hub::default();
        let now = Instant::now();
        for i in 0..MAX_CONNECTIONS_PER_DEVICE {
            let id = format!("tab{i}");
            h.admit(7, &p(&id), &k("dev"), 4, now).unwrap();
            h.join(back(&id, 7, "dev"));
        }
        assert_eq!(h.admit(7, &p("tab9"), &k("dev"), 4, now), Err(Crowded::Connections));
        assert_eq!(Crowded::Connections.code(), "too_many_connections");
        h.leave(&p("tab0"), now);
        assert!(h.admit(7, &p("tab9"), &k("dev"), 4, now).is_ok());
    }

    #[test]
    fn lab_lists_follow_joins_and_leaves() {
        let mut h = hub();
        h.leave(&p("a"), Instant::now());
        let (snap, _) = h.join(member("d", 4, "Lab A", STUDENT, false));
        let peers: Vec<&str> = snap.peers.iter().map(|p| p.peer_id.as_str()).collect();
        assert_eq!(peers, vec!["b"], "a left Lab A");
        h.leave(&p("c"), Instant::now());
        assert_eq!(h.online_by_lab(), vec![("Lab A".to_string(), 2)], "an empty lab is dropped");
        // The same device id again, now in another lab: listed there only.
        h.join(member("d", 4, "Lab B", STUDENT, false));
        assert_eq!(h.online_by_lab(), vec![("Lab A".to_string(), 1), ("Lab B".to_string(), 1)]);
        let (snap, _) = h.join(member("e", 5, "Lab B", STUDENT, false));
        assert_eq!(to_json(&snap)["peers"][0]["peerId"], "d");
        assert_eq!(to_json(&snap)["peers"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn handshake_then_signal_only_between_parties() {
        let mut h = hub();
        let now = Instant::now();
        let (emits, rec) = h.request(&p("a"), &p("b"), files(), "t1".into(), &limits(), now).unwrap();
        assert_eq!(emits[0].event.name(), "transfer:incoming");
        match &emits[0].event {
            ServerEvent::TransferIncoming(incoming) => assert_eq!(incoming.expires_in_secs, 60, "the request's expiry"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(rec, Record::Requested(_)));
        // Not accepted yet: no signaling.
        assert_eq!(h.signal(&p("a"), &t("t1"), &p("b")), Err(SignalError::WrongState("it is not accepted")));
        // Only the receiving device may answer.
        assert_eq!(h.respond(&p("a"), &t("t1"), true).unwrap_err(), SignalError::NotParty);
        let (emits, rec) = h.respond(&p("b"), &t("t1"), true).unwrap();
        assert_eq!(emits[0].to, Audience::Peer("a".into()));
        assert_eq!(rec, Record::Accepted("t1".into()));
        assert!(h.signal(&p("a"), &t("t1"), &p("b")).is_ok());
        assert!(h.signal(&p("b"), &t("t1"), &p("a")).is_ok());
        assert_eq!(h.signal(&p("c"), &t("t1"), &p("a")), Err(SignalError::NotParty));
        assert_eq!(h.signal(&p("a"), &t("t1"), &p("c")), Err(SignalError::NotParty));
        assert_eq!(h.signal(&p("a"), &t("nope"), &p("b")), Err(SignalError::UnknownTransfer));
        h.leave(&p("b"), Instant::now());
        assert_eq!(h.signal(&p("a"), &t("t1"), &p("b")), Err(SignalError::PeerOffline));
    }

    #[test]
    fn a_text_is_a_request_of_its_one_file_that_says_it_is_a_text() {
        let mut h = hub();
        let text = TextMeta { bytes: 27, chars: 25 };
        let file = super::super::payloads::text_file(&text);
        let (mut emits, mut rec) =
            h.request(&p("a"), &p("b"), vec![file.clone()], "t1".into(), &limits(), Instant::now()).unwrap();
        tag_text(&mut emits, &mut rec, text);
        let incoming = to_json(&emits[0].event.data());
        assert_eq!(incoming["text"], json!({ "bytes": 27, "chars": 25 }));
        assert_eq!(incoming["files"], json!([{ "name": "text.txt", "size": 27, "mime": "text/plain;charset=utf-8" }]));
        match rec {
            Record::Requested(r) => {
                assert_eq!(r.text_chars, Some(25), "the log keeps the length");
                assert_eq!(r.files, vec![file]);
            }
            other => panic!("{other:?}"),
        }
        // From then on it is a transfer like any: answered, signaled, reported.
        h.respond(&p("b"), &t("t1"), true).unwrap();
        assert!(h.signal(&p("a"), &t("t1"), &p("b")).is_ok());
        // A request of files says nothing of a text.
        let (emits, rec) = h.request(&p("a"), &p("b"), files(), "t2".into(), &limits(), Instant::now()).unwrap();
        assert_eq!(to_json(&emits[0].event.data()).get("text"), None);
        assert!(matches!(rec, Record::Requested(r) if r.text_chars.is_none()));
    }

    #[test]
    fn requests_respect_visibility_permissions_and_limits() {
        let mut h = hub();
        let now = Instant::now();
        assert_eq!(
            h.request(&p("a"), &p("c"), files(), "x".into(), &limits(), now).unwrap_err(),
            SignalError::PeerOffline
        );
        assert!(h.request(&p("a"), &p("a"), files(), "x".into(), &limits(), now).is_err());
        h.join(member("r", 9, "Lab A", &["transfer.send"], false));
        assert_eq!(
            h.request(&p("a"), &p("r"), files(), "x".into(), &limits(), now).unwrap_err(),
            SignalError::PeerCannotReceive
        );
        h.join(member("n", 10, "Lab A", &["transfer.receive"], false));
        assert_eq!(
            h.request(&p("n"), &p("a"), files(), "x".into(), &limits(), now).unwrap_err(),
            SignalError::Forbidden("transfer.send")
        );
        for i in 0..3 {
            h.request(&p("a"), &p("b"), files(), format!("p{i}").into(), &limits(), now).unwrap();
        }
        assert_eq!(
            h.request(&p("a"), &p("b"), files(), "p4".into(), &limits(), now).unwrap_err(),
            SignalError::TooManyPending(3)
        );
        h.respond(&p("b"), &t("p0"), false).unwrap();
        h.respond(&p("b"), &t("p1"), false).unwrap();
        h.request(&p("a"), &p("b"), files(), "p5".into(), &limits(), now).unwrap();
        h.respond(&p("b"), &t("p5"), false).unwrap();
        h.request(&p("a"), &p("b"), files(), "p6".into(), &limits(), now).unwrap();
        h.respond(&p("b"), &t("p6"), false).unwrap();
        // Five requests in this minute: the sixth is refused, and allowed a minute later.
        assert_eq!(
            h.request(&p("a"), &p("b"), files(), "p7".into(), &limits(), now).unwrap_err(),
            SignalError::RateLimited
        );
        assert!(h.request(&p("a"), &p("b"), files(), "p8".into(), &limits(), now + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn exam_mode_keeps_students_apart_but_not_from_instructors() {
        const TEACHER: &[&str] = &["transfer.send", "transfer.receive", "broadcast.send"];
        let exam = |id: &str, user: i64| Member { exam: true, ..member(id, user, "Lab E", STUDENT, false) };
        let mut h = Hub::default();
        h.join(member("t", 1, "Lab E", TEACHER, true));
        h.join(member("o", 2, "Lab O", STUDENT, true));
        h.join(exam("x", 3));
        let (snap, emits) = h.join(exam("y", 4));
        let seen: BTreeSet<&str> = snap.peers.iter().map(|p| p.peer_id.as_str()).collect();
        assert_eq!(seen, BTreeSet::from(["t"]), "an exam-bound student sees the instructor only");
        assert_eq!(emits[0].to, Audience::ViewersOf("Lab E".into(), Unseen::Students, Beyond::RoleViewers));
        let (snap, _) = h.join(member("u", 5, "Lab U", TEACHER, true));
        assert_eq!(snap.peers.len(), 4, "an instructor sees everyone");
        let (snap, _) = h.join(member("s", 6, "Lab S", STUDENT, true));
        let seen: BTreeSet<&str> = snap.peers.iter().map(|p| p.peer_id.as_str()).collect();
        assert_eq!(seen, BTreeSet::from(["t", "o", "u"]), "a student elsewhere does not see exam-bound students");

        let now = Instant::now();
        let refused =
            |h: &mut Hub, from: &str, to: &str| h.request(&p(from), &p(to), files(), "r".into(), &limits(), now);
        assert_eq!(refused(&mut h, "x", "y").unwrap_err(), SignalError::ExamMode, "student to student");
        assert_eq!(refused(&mut h, "o", "x").unwrap_err(), SignalError::ExamMode, "to an exam-bound student");
        assert_eq!(refused(&mut h, "x", "t").unwrap_err(), SignalError::ExamMode, "from an exam-bound student");
        assert_eq!(refused(&mut h, "t", "x").unwrap_err(), SignalError::ExamMode, "no one-to-one transfer at all");
        assert!(refused(&mut h, "u", "o").is_ok(), "others are not affected");
    }

    #[test]
    fn every_device_of_a_lab_whose_exam_mode_changed_is_told_whether_it_binds_it() {
        const TEACHER: &[&str] = &["transfer.send", "broadcast.send"];
        let mut h = hub();
        h.join(member("t", 9, "Lab A", TEACHER, true));
        let mut told: Vec<(String, serde_json::Value)> = h
            .exam_notices(&[("Lab A".into(), true)])
            .into_iter()
            .map(|e| match e.to {
                Audience::Peer(p) => (p.to_string(), to_json(&e.event.data())),
                other => panic!("{other:?}"),
            })
            .collect();
        told.sort_by(|a, b| a.0.cmp(&b.0));
        let state = |bound: bool| serde_json::json!({ "lab": "Lab A", "on": true, "bound": bound });
        assert_eq!(told, vec![("a".into(), state(true)), ("b".into(), state(true)), ("t".into(), state(false))]);
        let off = h.exam_notices(&[("Lab B".into(), false)]);
        assert_eq!(off.len(), 1, "Lab B's one device");
        assert_eq!(off[0].event.name(), "exam:state");
        assert_eq!(to_json(&off[0].event.data())["bound"], false);
        assert!(h.exam_notices(&[("Lab Z".into(), true)]).is_empty(), "nobody there");
    }

    #[test]
    fn exam_mode_cancels_the_transfers_of_exam_bound_devices_on_both_sides() {
        let mut h = hub();
        let now = Instant::now();
        h.request(&p("a"), &p("b"), files(), "t1".into(), &limits(), now).unwrap();
        h.respond(&p("b"), &t("t1"), true).unwrap();
        h.request(&p("b"), &p("a"), files(), "t2".into(), &limits(), now).unwrap();
        assert!(h.cancel_for_exam(&HashSet::from([p("c")])).0.is_empty(), "c has no transfer");
        let (emits, records) = h.cancel_for_exam(&HashSet::from([p("a")]));
        assert_eq!(records.len(), 2, "the accepted transfer and the asked one");
        assert_eq!(emits.len(), 4, "both sides of each are told");
        for e in &emits {
            assert_eq!(to_json(&e.event.data())["reason"], "exam_mode");
        }
        for r in &records {
            match r {
                Record::Finished(_, o) => {
                    assert_eq!(o.status, TransferStatus::Cancelled);
                    assert!(o.failure_reason.starts_with("exam_mode"), "{}", o.failure_reason);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(h.transfer_counts(), (0, 0));
    }

    #[test]
    fn the_part_of_a_request_reaches_the_receiver_only() {
        let mut h = hub();
        let (mut emits, _) = h.request(&p("a"), &p("b"), files(), "t1".into(), &limits(), Instant::now()).unwrap();
        emits.push(Emit::to_peer(&p("a"), ServerEvent::TransferAccepted(TransferRef { transfer_id: t("t1") })));
        let part = Part { batch: "0123456789abcdef".into(), index: 2, count: 3, total_files: 250, total_bytes: 99 };
        tag_part(&mut emits, &part);
        assert_eq!(
            to_json(&emits[0].event.data())["part"],
            json!({ "batch": "0123456789abcdef", "index": 2, "count": 3, "totalFiles": 250, "totalBytes": 99 })
        );
        assert_eq!(to_json(&emits[0].event.data())["transferId"], "t1");
        assert!(to_json(&emits[1].event.data()).get("part").is_none());
    }

    #[test]
    fn expiry_and_departure_cancel_pending_requests() {
        let mut h = hub();
        let now = Instant::now();
        h.request(&p("a"), &p("b"), files(), "t1".into(), &limits(), now).unwrap();
        h.request(&p("b"), &p("a"), files(), "t2".into(), &limits(), now).unwrap();
        let (emits, rec) = h.expire(&t("t1")).unwrap();
        assert_eq!(emits.len(), 2);
        assert!(matches!(rec, Record::Finished(_, ref o) if o.status == TransferStatus::Expired));
        assert!(h.expire(&t("t1")).is_none());
        let (emits, records) = h.leave(&p("a"), now);
        assert_eq!(emits[0].event.name(), "presence:left");
        assert_eq!(emits[1].to, Audience::Peer("b".into()));
        assert_eq!(records.len(), 1);
        assert!(h.respond(&p("a"), &t("t2"), true).is_err());
    }

    #[test]
    fn finish_logs_once_after_both_sides() {
        let mut h = hub();
        let now = Instant::now();
        h.request(&p("a"), &p("b"), files(), "t1".into(), &limits(), now).unwrap();
        h.respond(&p("b"), &t("t1"), true).unwrap();
        let sha = "c".repeat(64);
        let (_, rec) = h.finish(&p("a"), finish("t1", FinishStatus::Completed, &sha)).unwrap();
        assert!(rec.is_none());
        assert!(h.finish(&p("a"), finish("t1", FinishStatus::Completed, &sha)).is_err(), "twice");
        let (_, rec) = h.finish(&p("b"), finish("t1", FinishStatus::Completed, &sha)).unwrap();
        match rec {
            Some(Record::Finished(id, o)) => assert_eq!((id.as_str(), o.status.as_str()), ("t1", "completed")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            h.finish(&p("b"), finish("t1", FinishStatus::Completed, &sha)).unwrap_err(),
            SignalError::UnknownTransfer
        );
    }

    #[test]
    fn a_cancel_from_one_side_tells_the_other_and_logs() {
        let mut h = hub();
        h.request(&p("a"), &p("b"), files(), "t1".into(), &limits(), Instant::now()).unwrap();
        h.respond(&p("b"), &t("t1"), true).unwrap();
        let (emits, rec) = h.finish(&p("b"), finish("t1", FinishStatus::Cancelled, "")).unwrap();
        assert_eq!(emits[0].event.name(), "transfer:cancelled");
        assert_eq!(emits[0].to, Audience::Peer("a".into()));
        assert!(matches!(rec, Some(Record::Finished(_, ref o)) if o.status == TransferStatus::Cancelled));
        assert!(h.finish(&p("c"), finish("t1", FinishStatus::Completed, "")).is_err());
    }

    #[test]
    fn finalize_logs_what_one_side_reported() {
        let mut h = hub();
        let now = Instant::now();
        h.request(&p("a"), &p("b"), files(), "t1".into(), &limits(), now).unwrap();
        h.respond(&p("b"), &t("t1"), true).unwrap();
        h.finish(&p("b"), finish("t1", FinishStatus::Completed, &"d".repeat(64))).unwrap();
        let (emits, _) = h.leave(&p("a"), now);
        assert!(emits.iter().all(|e| e.event.name() != "transfer:paused"), "b already reported: nothing to wait for");
        let rec = h.finalize(&t("t1")).unwrap();
        assert!(matches!(rec, Record::Finished(_, ref o) if o.status == TransferStatus::Completed));
    }

    fn accepted(h: &mut Hub, id: &str) {
        h.request(&p("a"), &p("b"), files(), id.into(), &limits(), Instant::now()).unwrap();
        h.respond(&p("b"), &t(id), true).unwrap();
    }

    #[test]
    fn a_party_that_leaves_pauses_the_transfer_for_the_other() {
        let mut h = hub();
        accepted(&mut h, "t1");
        let now = Instant::now();
        let (emits, records) = h.leave(&p("b"), now);
        assert!(records.is_empty(), "an accepted transfer is not ended by a departure");
        let paused: Vec<&Emit> = emits.iter().filter(|e| e.event.name() == "transfer:paused").collect();
        assert_eq!(paused.len(), 1);
        assert_eq!(paused[0].to, Audience::Peer("a".into()));
        assert_eq!(to_json(&paused[0].event.data()), json!({ "transferId": "t1", "peerId": "b" }));
        assert!(h.has_paused());
        // No signaling to a device that is away.
        assert_eq!(h.signal(&p("a"), &t("t1"), &p("b")), Err(SignalError::PeerOffline));
        // The same user on the same device comes back on a new socket and re-claims it.
        h.join(back("b2", 2, "dev-b"));
        let r = h.resume(&p("b2"), &t("t1"), None).unwrap();
        assert_eq!(to_json(&r.ack)["role"], "receiver");
        assert_eq!(to_json(&r.ack)["peer"]["peerId"], "a");
        assert_eq!(to_json(&r.ack)["files"][0]["name"], "a.txt");
        let to: Vec<(&Audience, Value)> =
            r.emits.iter().map(|e| (&e.to, to_json(&e.event.data())["peer"]["peerId"].clone())).collect();
        assert_eq!(to, vec![(&Audience::Peer("a".into()), json!("b2")), (&Audience::Peer("b2".into()), json!("a"))]);
        assert!(r.emits.iter().all(|e| e.event.name() == "transfer:resumed"));
        assert!(!h.has_paused());
        // Signaling flows between the new sockets, and the old id is no party any more.
        assert!(h.signal(&p("a"), &t("t1"), &p("b2")).is_ok());
        assert!(h.signal(&p("b2"), &t("t1"), &p("a")).is_ok());
        assert_eq!(h.signal(&p("a"), &t("t1"), &p("b")), Err(SignalError::NotParty));
        // Re-claiming again from the same socket is harmless.
        assert!(h.resume(&p("b2"), &t("t1"), Some(Role::Receiver)).is_ok());
    }

    #[test]
    fn only_the_same_user_on_the_same_device_may_resume() {
        let mut h = hub();
        accepted(&mut h, "t1");
        h.leave(&p("b"), Instant::now());
        // Another user, even one who knows the device key.
        h.join(back("x", 3, "dev-b"));
        assert_eq!(h.resume(&p("x"), &t("t1"), None).unwrap_err(), SignalError::NotParty);
        // The same user on another device.
        h.join(back("y", 2, "another-device"));
        assert_eq!(h.resume(&p("y"), &t("t1"), None).unwrap_err(), SignalError::NotParty);
        // The right device claiming the wrong side.
        h.join(back("b2", 2, "dev-b"));
        assert_eq!(h.resume(&p("b2"), &t("t1"), Some(Role::Sender)).unwrap_err(), SignalError::NotParty);
        assert_eq!(h.resume(&p("b2"), &t("nope"), None).unwrap_err(), SignalError::UnknownTransfer);
        // A request not yet accepted cannot be resumed.
        h.request(&p("a"), &p("b2"), files(), "t2".into(), &limits(), Instant::now()).unwrap();
        assert_eq!(h.resume(&p("b2"), &t("t2"), None).unwrap_err(), SignalError::WrongState("it was not accepted yet"));
        // A side that already reported cannot claim it back.
        h.resume(&p("b2"), &t("t1"), None).unwrap();
        h.finish(&p("b2"), finish("t1", FinishStatus::Completed, &"e".repeat(64))).unwrap();
        assert_eq!(
            h.resume(&p("b2"), &t("t1"), None).unwrap_err(),
            SignalError::WrongState("this side already reported its end")
        );
        // A socket that never joined.
        assert_eq!(h.resume(&p("ghost"), &t("t1"), None).unwrap_err(), SignalError::NotConnected);
    }

    #[test]
    fn a_device_sending_to_itself_must_say_which_side() {
        let mut h = Hub::default();
        h.join(back("t1a", 1, "same"));
        h.join(back("t1b", 1, "same"));
        h.request(&p("t1a"), &p("t1b"), files(), "x".into(), &limits(), Instant::now()).unwrap();
        h.respond(&p("t1b"), &t("x"), true).unwrap();
        h.leave(&p("t1b"), Instant::now());
        h.join(back("t1c", 1, "same"));
        assert!(matches!(h.resume(&p("t1c"), &t("x"), None).unwrap_err(), SignalError::Invalid(_)));
        let r = h.resume(&p("t1c"), &t("x"), Some(Role::Receiver)).unwrap();
        assert_eq!(to_json(&r.ack)["peer"]["peerId"], "t1a");
    }

    #[test]
    fn paused_transfers_end_after_the_grace_period() {
        let mut h = hub();
        accepted(&mut h, "t1");
        let now = Instant::now();
        let grace = Duration::from_secs(900);
        h.leave(&p("b"), now);
        let (emits, records) = h.expire_paused(now + Duration::from_secs(899), grace);
        assert!(emits.is_empty() && records.is_empty());
        let (emits, records) = h.expire_paused(now + grace, grace);
        assert_eq!(emits.len(), 1);
        assert_eq!(emits[0].to, Audience::Peer("a".into()));
        assert_eq!(emits[0].event.name(), "transfer:cancelled");
        assert_eq!(to_json(&emits[0].event.data())["reason"], "resume_expired");
        match &records[..] {
            [Record::Finished(id, o)] => {
                assert_eq!((id.as_str(), o.status.as_str()), ("t1", "failed"));
                assert!(o.failure_reason.starts_with("resume_expired: the receiver"), "{}", o.failure_reason);
            }
            other => panic!("{other:?}"),
        }
        h.join(back("b2", 2, "dev-b"));
        assert_eq!(h.resume(&p("b2"), &t("t1"), None).unwrap_err(), SignalError::UnknownTransfer);
    }

    #[test]
    fn restored_transfers_wait_for_both_sides_then_resume() {
        let mut h = Hub::default();
        let now = Instant::now();
        h.restore(
            vec![RestoredTransfer {
                id: "r1".into(),
                sender_user: 1,
                receiver_user: 2,
                sender_device_key: "dev-a".into(),
                receiver_device_key: "dev-b".into(),
                files: files(),
                total_bytes: 10,
            }],
            now,
        );
        assert!(h.has_paused());
        h.join(back("a2", 1, "dev-a"));
        let r = h.resume(&p("a2"), &t("r1"), None).unwrap();
        assert_eq!(to_json(&r.ack)["role"], "sender");
        assert_eq!(to_json(&r.ack)["peer"], Value::Null, "the receiver is not back yet");
        assert!(r.emits.is_empty());
        // The receiver has no socket yet: no peer is its party.
        assert_eq!(h.signal(&p("a2"), &t("r1"), &p("b")), Err(SignalError::NotParty));
        h.join(back("b2", 2, "dev-b"));
        let r = h.resume(&p("b2"), &t("r1"), None).unwrap();
        assert_eq!(to_json(&r.ack)["peer"]["peerId"], "a2");
        assert_eq!(r.emits.len(), 2);
        assert!(h.signal(&p("a2"), &t("r1"), &p("b2")).is_ok());
        // Nothing left to expire.
        assert!(h.expire_paused(now + Duration::from_secs(100_000), Duration::from_secs(60)).1.is_empty());
    }

    #[test]
    fn dashboard_counts() {
        let mut h = hub();
        assert_eq!(h.online_by_lab(), vec![("Lab A".to_string(), 2), ("Lab B".to_string(), 1)]);
        h.request(&p("a"), &p("b"), files(), "t1".into(), &limits(), Instant::now()).unwrap();
        h.request(&p("b"), &p("a"), files(), "t2".into(), &limits(), Instant::now()).unwrap();
        h.respond(&p("b"), &t("t1"), true).unwrap();
        assert_eq!(h.transfer_counts(), (1, 1));
        assert_eq!(h.devices().len(), 3);
    }

    #[test]
    fn event_budget_refills() {
        let mut h = hub();
        let now = Instant::now();
        for _ in 0..200 {
            h.spend_event(&p("a"), now).unwrap();
        }
        assert_eq!(h.spend_event(&p("a"), now), Err(SignalError::RateLimited));
        assert!(h.spend_event(&p("a"), now + Duration::from_millis(100)).is_ok());
        // A raised budget applies to devices already connected.
        h.set_event_budget(EventBudget { rate: 1000.0, burst: 1000.0 });
        for _ in 0..100 {
            h.spend_event(&p("a"), now + Duration::from_millis(200)).unwrap();
        }
    }
}
