//! The signaling hub: who is online (one member per connected device), which transfers are
//! pending or under way, and the rules between them. Every method is synchronous, takes
//! plain values and returns what must happen next (`Emit`s to send, `Record`s to store), so
//! the rules are unit-tested without sockets or a database; `signaling::events` executes
//! the effects.
//!
//! Invariants:
//! - a peer sees only peers it may see (same lab, or everyone with the all-labs scope);
//! - a `signal` passes only between the two parties of an accepted, unfinished transfer;
//! - a transfer is logged exactly once with its final outcome.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::SignalError;
use super::payloads::{FileMeta, FinishStatus, TransferFinish};
use super::reconcile::reconcile;
use crate::db::transfers::Outcome;

pub type PeerId = String;

/// One connected device, as other clients see it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Peer {
    pub peer_id: PeerId,
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub lab: String,
    pub device: String,
}

/// A connected device and what the server knows about its user.
#[derive(Debug, Clone)]
pub struct Member {
    pub peer: Peer,
    pub session_id: String,
    pub permissions: Vec<String>,
    /// Sees peers of every lab (else only its own lab's).
    pub sees_all: bool,
    /// Labs this user is responsible for (instructors' broadcast scope).
    pub owned_labs: Vec<String>,
}

impl Member {
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    fn sees(&self, other: &Peer) -> bool {
        self.sees_all || self.peer.lab == other.lab
    }
}

/// Who an event goes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Audience {
    Peer(PeerId),
    /// Every device that can see a peer of this lab (its lab and the all-labs viewers).
    ViewersOf(String),
    /// Devices located in this lab.
    InLab(String),
    Everyone,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Emit {
    pub to: Audience,
    pub except: Option<PeerId>,
    pub event: &'static str,
    pub data: Value,
}

impl Emit {
    fn to_peer(peer: &str, event: &'static str, data: Value) -> Emit {
        Emit { to: Audience::Peer(peer.to_string()), except: None, event, data }
    }
}

/// A change for the transfer log.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Requested(Box<RequestedTransfer>),
    Accepted(String),
    Finished(String, Outcome),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestedTransfer {
    pub id: String,
    pub from: Peer,
    pub to: Peer,
    pub files: Vec<FileMeta>,
    pub total_bytes: u64,
    pub broadcast_id: Option<String>,
}

/// What `Hub::broadcast` decided: offers to send, rows to write, (transfer, receiver) pairs.
#[derive(Debug)]
pub struct BroadcastPlan {
    pub emits: Vec<Emit>,
    pub records: Vec<Record>,
    pub created: Vec<(String, PeerId)>,
}

/// Limits from the settings, read by the caller.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_file_bytes: u64,
    pub requests_per_minute: usize,
    pub max_pending_per_user: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Requested,
    Accepted,
}

#[derive(Debug)]
struct Transfer {
    from: PeerId,
    to: PeerId,
    from_user: i64,
    total_bytes: u64,
    stage: Stage,
    sender_report: Option<TransferFinish>,
    receiver_report: Option<TransferFinish>,
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

#[derive(Default)]
pub struct Hub {
    members: HashMap<PeerId, Member>,
    transfers: HashMap<String, Transfer>,
    requests: HashMap<i64, VecDeque<Instant>>,
    buckets: HashMap<PeerId, Bucket>,
    budget: EventBudget,
}

impl Hub {
    pub fn member(&self, peer: &str) -> Option<&Member> {
        self.members.get(peer)
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Devices online per lab, by lab name.
    pub fn online_by_lab(&self) -> Vec<(String, usize)> {
        let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for m in self.members.values() {
            *counts.entry(m.peer.lab.as_str()).or_default() += 1;
        }
        counts.into_iter().map(|(lab, n)| (lab.to_string(), n)).collect()
    }

    /// (requests waiting for an answer, accepted transfers not yet reported).
    pub fn transfer_counts(&self) -> (usize, usize) {
        let waiting = self.transfers.values().filter(|t| t.stage == Stage::Requested).count();
        (waiting, self.transfers.len() - waiting)
    }

    /// Connected devices of each session: (session id, device name, lab).
    pub fn devices(&self) -> Vec<(String, String, String)> {
        self.members.values().map(|m| (m.session_id.clone(), m.peer.device.clone(), m.peer.lab.clone())).collect()
    }

    /// Sets the per-device event budget (from the settings).
    pub fn set_event_budget(&mut self, budget: EventBudget) {
        self.budget = budget;
    }

    /// Spends one event of `peer`'s budget.
    pub fn spend_event(&mut self, peer: &str, now: Instant) -> Result<(), SignalError> {
        let EventBudget { rate, burst } = self.budget;
        if !self.buckets.contains_key(peer) {
            self.buckets.insert(peer.to_string(), Bucket { tokens: burst, at: now });
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

    /// Adds a device; returns the snapshot for it and what others are told.
    pub fn join(&mut self, member: Member) -> (Value, Vec<Emit>) {
        let visible: Vec<&Peer> = self.members.values().filter(|m| member.sees(&m.peer)).map(|m| &m.peer).collect();
        let snapshot = json!({ "self": member.peer, "peers": visible });
        let emit = Emit {
            to: Audience::ViewersOf(member.peer.lab.clone()),
            except: Some(member.peer.peer_id.clone()),
            event: "presence:joined",
            data: json!(member.peer),
        };
        self.members.insert(member.peer.peer_id.clone(), member);
        (snapshot, vec![emit])
    }

    /// Removes a device. Requests it made or received and nobody answered are cancelled;
    /// accepted transfers stay (their data channel may outlive the signaling connection).
    pub fn leave(&mut self, peer: &str) -> (Vec<Emit>, Vec<Record>) {
        self.buckets.remove(peer);
        let Some(m) = self.members.remove(peer) else { return (Vec::new(), Vec::new()) };
        let mut emits = vec![Emit {
            to: Audience::ViewersOf(m.peer.lab.clone()),
            except: None,
            event: "presence:left",
            data: json!({ "peerId": peer }),
        }];
        let mut records = Vec::new();
        let pending: Vec<String> = self
            .transfers
            .iter()
            .filter(|(_, t)| t.stage == Stage::Requested && (t.from == peer || t.to == peer))
            .map(|(id, _)| id.clone())
            .collect();
        for id in pending {
            if let Some(t) = self.transfers.remove(&id) {
                let other = if t.from == peer { &t.to } else { &t.from };
                emits.push(Emit::to_peer(
                    other,
                    "transfer:cancelled",
                    json!({ "transferId": id, "reason": "peer_left" }),
                ));
                records.push(Record::Finished(id, ended("cancelled", "peer_left: the other device went offline")));
            }
        }
        (emits, records)
    }

    fn check_target(&self, from: &Member, to: &str) -> Result<&Member, SignalError> {
        let target = self.members.get(to).filter(|t| from.sees(&t.peer)).ok_or(SignalError::PeerOffline)?;
        if target.peer.peer_id == from.peer.peer_id {
            return Err(SignalError::Invalid("a device cannot send to itself".into()));
        }
        if !target.has("transfer.receive") {
            return Err(SignalError::PeerCannotReceive);
        }
        Ok(target)
    }

    /// `transfer:request`. `id` is the new transfer's id (random, chosen by the caller).
    pub fn request(
        &mut self,
        from: &str,
        to: &str,
        files: Vec<FileMeta>,
        id: String,
        limits: &Limits,
        now: Instant,
    ) -> Result<(Vec<Emit>, Record), SignalError> {
        let sender = self.members.get(from).ok_or(SignalError::NotConnected)?;
        if !sender.has("transfer.send") {
            return Err(SignalError::Forbidden("transfer.send"));
        }
        let total = super::payloads::validate_files(&files, limits.max_file_bytes)?;
        let target = self.check_target(sender, to)?.peer.clone();
        let sender = sender.peer.clone();
        let user = sender.user_id;
        let pending = self.transfers.values().filter(|t| t.from_user == user && t.stage == Stage::Requested).count();
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
        let emit = Emit::to_peer(
            to,
            "transfer:incoming",
            json!({ "transferId": id, "from": sender, "files": files, "totalBytes": total }),
        );
        let record = Record::Requested(Box::new(RequestedTransfer {
            id: id.clone(),
            from: sender,
            to: target,
            files,
            total_bytes: total,
            broadcast_id: None,
        }));
        self.transfers.insert(
            id,
            Transfer {
                from: from.to_string(),
                to: to.to_string(),
                from_user: user,
                total_bytes: total,
                stage: Stage::Requested,
                sender_report: None,
                receiver_report: None,
            },
        );
        Ok((vec![emit], record))
    }

    /// `broadcast:start`: one transfer per receiving device, offered at once.
    pub fn broadcast(
        &mut self,
        from: &str,
        recipients: &[PeerId],
        files: &[FileMeta],
        broadcast_id: &str,
        mut new_id: impl FnMut() -> String,
    ) -> Result<BroadcastPlan, SignalError> {
        let sender = self.members.get(from).ok_or(SignalError::NotConnected)?.clone();
        let total: u64 = files.iter().map(|f| f.size).fold(0, u64::saturating_add);
        let (mut emits, mut records, mut created) = (Vec::new(), Vec::new(), Vec::new());
        for to in recipients {
            let Ok(target) = self.check_target(&sender, to) else { continue };
            let id = new_id();
            emits.push(Emit::to_peer(
                to,
                "transfer:incoming",
                json!({ "transferId": id, "from": sender.peer, "files": files, "totalBytes": total,
                        "broadcastId": broadcast_id }),
            ));
            records.push(Record::Requested(Box::new(RequestedTransfer {
                id: id.clone(),
                from: sender.peer.clone(),
                to: target.peer.clone(),
                files: files.to_vec(),
                total_bytes: total,
                broadcast_id: Some(broadcast_id.to_string()),
            })));
            self.transfers.insert(
                id.clone(),
                Transfer {
                    from: from.to_string(),
                    to: to.clone(),
                    from_user: sender.peer.user_id,
                    total_bytes: total,
                    // Broadcast offers do not count against the pending-request cap.
                    stage: Stage::Requested,
                    sender_report: None,
                    receiver_report: None,
                },
            );
            created.push((id, to.clone()));
        }
        if created.is_empty() {
            return Err(SignalError::NoRecipients);
        }
        Ok(BroadcastPlan { emits, records, created })
    }

    /// `transfer:respond` from the receiving device.
    pub fn respond(&mut self, peer: &str, id: &str, accept: bool) -> Result<(Vec<Emit>, Record), SignalError> {
        let t = self.transfers.get_mut(id).ok_or(SignalError::UnknownTransfer)?;
        if t.to != peer {
            return Err(SignalError::NotParty);
        }
        if t.stage != Stage::Requested {
            return Err(SignalError::WrongState("it was already answered"));
        }
        let from = t.from.clone();
        if accept {
            t.stage = Stage::Accepted;
            Ok((
                vec![Emit::to_peer(&from, "transfer:accepted", json!({ "transferId": id }))],
                Record::Accepted(id.into()),
            ))
        } else {
            self.transfers.remove(id);
            Ok((
                vec![Emit::to_peer(&from, "transfer:declined", json!({ "transferId": id }))],
                Record::Finished(id.into(), ended("declined", "")),
            ))
        }
    }

    /// Called when a request's answer time is up; no effect if it was answered.
    pub fn expire(&mut self, id: &str) -> Option<(Vec<Emit>, Record)> {
        if self.transfers.get(id)?.stage != Stage::Requested {
            return None;
        }
        let t = self.transfers.remove(id)?;
        let data = json!({ "transferId": id });
        Some((
            vec![
                Emit::to_peer(&t.from, "transfer:expired", data.clone()),
                Emit::to_peer(&t.to, "transfer:expired", data),
            ],
            Record::Finished(id.into(), ended("expired", "no answer in time")),
        ))
    }

    /// `signal`: relayed only between the parties of an accepted, unfinished transfer. Ok
    /// means `peer` may send this transfer's signal to `to` (the caller relays it).
    pub fn signal(&self, peer: &str, id: &str, to: &str) -> Result<(), SignalError> {
        let t = self.transfers.get(id).ok_or(SignalError::UnknownTransfer)?;
        let other = match peer {
            p if p == t.from => &t.to,
            p if p == t.to => &t.from,
            _ => return Err(SignalError::NotParty),
        };
        if to != other {
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
    pub fn finish(&mut self, peer: &str, report: TransferFinish) -> Result<(Vec<Emit>, Option<Record>), SignalError> {
        let id = report.transfer_id.clone();
        let t = self.transfers.get_mut(&id).ok_or(SignalError::UnknownTransfer)?;
        let is_sender = t.from == peer;
        if !is_sender && t.to != peer {
            return Err(SignalError::NotParty);
        }
        let other = if is_sender { t.to.clone() } else { t.from.clone() };
        let mut emits = Vec::new();
        if report.status != FinishStatus::Completed {
            emits.push(Emit::to_peer(
                &other,
                "transfer:cancelled",
                json!({ "transferId": id, "reason": report.status.as_str(), "detail": report.reason }),
            ));
        }
        if t.stage == Stage::Requested {
            if report.status == FinishStatus::Completed {
                return Err(SignalError::WrongState("it was never accepted"));
            }
            self.transfers.remove(&id);
            let outcome =
                ended("cancelled", &format!("{}: {}", if is_sender { "sender" } else { "receiver" }, report.reason));
            return Ok((emits, Some(Record::Finished(id, outcome))));
        }
        let slot = if is_sender { &mut t.sender_report } else { &mut t.receiver_report };
        if slot.is_some() {
            return Err(SignalError::WrongState("this side already reported"));
        }
        *slot = Some(report);
        // A side that stopped early ends it for both: the other will not finish normally.
        let stopped = [&t.sender_report, &t.receiver_report]
            .iter()
            .any(|r| r.as_ref().is_some_and(|r| r.status != FinishStatus::Completed));
        if (t.sender_report.is_some() && t.receiver_report.is_some()) || stopped {
            let outcome = reconcile(t.sender_report.as_ref(), t.receiver_report.as_ref(), t.total_bytes);
            self.transfers.remove(&id);
            return Ok((emits, Some(Record::Finished(id, outcome))));
        }
        Ok((emits, None))
    }

    /// Ends a transfer that only one side (or no side) reported, after the grace period.
    pub fn finalize(&mut self, id: &str) -> Option<Record> {
        let t = self.transfers.get(id)?;
        if t.stage != Stage::Accepted {
            return None;
        }
        let t = self.transfers.remove(id)?;
        Some(Record::Finished(
            id.into(),
            reconcile(t.sender_report.as_ref(), t.receiver_report.as_ref(), t.total_bytes),
        ))
    }

    /// Accepted transfers whose both devices are gone: nothing can report them any more.
    pub fn orphaned(&self) -> Vec<String> {
        self.transfers
            .iter()
            .filter(|(_, t)| {
                t.stage == Stage::Accepted && !self.members.contains_key(&t.from) && !self.members.contains_key(&t.to)
            })
            .map(|(id, _)| id.clone())
            .collect()
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

fn ended(status: &str, reason: &str) -> Outcome {
    Outcome {
        status: status.into(),
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
            },
            session_id: format!("s{user}"),
            permissions: perms.iter().map(|p| p.to_string()).collect(),
            sees_all,
            owned_labs: Vec::new(),
        }
    }

    const STUDENT: &[&str] = &["transfer.send", "transfer.receive"];

    fn limits() -> Limits {
        Limits { max_file_bytes: 1 << 40, requests_per_minute: 5, max_pending_per_user: 3 }
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
        let peers: Vec<&str> =
            snap["peers"].as_array().unwrap().iter().map(|p| p["peerId"].as_str().unwrap()).collect();
        assert_eq!(peers, vec!["c"]);
        assert_eq!(emits[0].to, Audience::ViewersOf("Lab B".into()));
        let (snap, _) = h.join(member("e", 5, "Lab C", STUDENT, true));
        assert_eq!(snap["peers"].as_array().unwrap().len(), 4);
        assert_eq!(snap["self"]["peerId"], "e");
    }

    #[test]
    fn handshake_then_signal_only_between_parties() {
        let mut h = hub();
        let now = Instant::now();
        let (emits, rec) = h.request("a", "b", files(), "t1".into(), &limits(), now).unwrap();
        assert_eq!(emits[0].event, "transfer:incoming");
        assert!(matches!(rec, Record::Requested(_)));
        // Not accepted yet: no signaling.
        assert_eq!(h.signal("a", "t1", "b"), Err(SignalError::WrongState("it is not accepted")));
        // Only the receiving device may answer.
        assert_eq!(h.respond("a", "t1", true).unwrap_err(), SignalError::NotParty);
        let (emits, rec) = h.respond("b", "t1", true).unwrap();
        assert_eq!(emits[0].to, Audience::Peer("a".into()));
        assert_eq!(rec, Record::Accepted("t1".into()));
        assert!(h.signal("a", "t1", "b").is_ok());
        assert!(h.signal("b", "t1", "a").is_ok());
        assert_eq!(h.signal("c", "t1", "a"), Err(SignalError::NotParty));
        assert_eq!(h.signal("a", "t1", "c"), Err(SignalError::NotParty));
        assert_eq!(h.signal("a", "nope", "b"), Err(SignalError::UnknownTransfer));
        h.leave("b");
        assert_eq!(h.signal("a", "t1", "b"), Err(SignalError::PeerOffline));
    }

    #[test]
    fn requests_respect_visibility_permissions_and_limits() {
        let mut h = hub();
        let now = Instant::now();
        assert_eq!(h.request("a", "c", files(), "x".into(), &limits(), now).unwrap_err(), SignalError::PeerOffline);
        assert!(h.request("a", "a", files(), "x".into(), &limits(), now).is_err());
        h.join(member("r", 9, "Lab A", &["transfer.send"], false));
        assert_eq!(
            h.request("a", "r", files(), "x".into(), &limits(), now).unwrap_err(),
            SignalError::PeerCannotReceive
        );
        h.join(member("n", 10, "Lab A", &["transfer.receive"], false));
        assert_eq!(
            h.request("n", "a", files(), "x".into(), &limits(), now).unwrap_err(),
            SignalError::Forbidden("transfer.send")
        );
        for i in 0..3 {
            h.request("a", "b", files(), format!("p{i}"), &limits(), now).unwrap();
        }
        assert_eq!(
            h.request("a", "b", files(), "p4".into(), &limits(), now).unwrap_err(),
            SignalError::TooManyPending(3)
        );
        h.respond("b", "p0", false).unwrap();
        h.respond("b", "p1", false).unwrap();
        h.request("a", "b", files(), "p5".into(), &limits(), now).unwrap();
        h.respond("b", "p5", false).unwrap();
        h.request("a", "b", files(), "p6".into(), &limits(), now).unwrap();
        h.respond("b", "p6", false).unwrap();
        // Five requests in this minute: the sixth is refused, and allowed a minute later.
        assert_eq!(h.request("a", "b", files(), "p7".into(), &limits(), now).unwrap_err(), SignalError::RateLimited);
        assert!(h.request("a", "b", files(), "p8".into(), &limits(), now + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn expiry_and_departure_cancel_pending_requests() {
        let mut h = hub();
        let now = Instant::now();
        h.request("a", "b", files(), "t1".into(), &limits(), now).unwrap();
        h.request("b", "a", files(), "t2".into(), &limits(), now).unwrap();
        let (emits, rec) = h.expire("t1").unwrap();
        assert_eq!(emits.len(), 2);
        assert!(matches!(rec, Record::Finished(_, ref o) if o.status == "expired"));
        assert!(h.expire("t1").is_none());
        let (emits, records) = h.leave("a");
        assert_eq!(emits[0].event, "presence:left");
        assert_eq!(emits[1].to, Audience::Peer("b".into()));
        assert_eq!(records.len(), 1);
        assert!(h.respond("a", "t2", true).is_err());
    }

    #[test]
    fn finish_logs_once_after_both_sides() {
        let mut h = hub();
        let now = Instant::now();
        h.request("a", "b", files(), "t1".into(), &limits(), now).unwrap();
        h.respond("b", "t1", true).unwrap();
        let sha = "c".repeat(64);
        let (_, rec) = h.finish("a", finish("t1", FinishStatus::Completed, &sha)).unwrap();
        assert!(rec.is_none());
        assert!(h.finish("a", finish("t1", FinishStatus::Completed, &sha)).is_err(), "twice");
        let (_, rec) = h.finish("b", finish("t1", FinishStatus::Completed, &sha)).unwrap();
        match rec {
            Some(Record::Finished(id, o)) => assert_eq!((id.as_str(), o.status.as_str()), ("t1", "completed")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            h.finish("b", finish("t1", FinishStatus::Completed, &sha)).unwrap_err(),
            SignalError::UnknownTransfer
        );
    }

    #[test]
    fn a_cancel_from_one_side_tells_the_other_and_logs() {
        let mut h = hub();
        h.request("a", "b", files(), "t1".into(), &limits(), Instant::now()).unwrap();
        h.respond("b", "t1", true).unwrap();
        let (emits, rec) = h.finish("b", finish("t1", FinishStatus::Cancelled, "")).unwrap();
        assert_eq!(emits[0].event, "transfer:cancelled");
        assert_eq!(emits[0].to, Audience::Peer("a".into()));
        assert!(matches!(rec, Some(Record::Finished(_, ref o)) if o.status == "cancelled"));
        assert!(h.finish("c", finish("t1", FinishStatus::Completed, "")).is_err());
    }

    #[test]
    fn orphaned_and_finalize() {
        let mut h = hub();
        h.request("a", "b", files(), "t1".into(), &limits(), Instant::now()).unwrap();
        h.respond("b", "t1", true).unwrap();
        h.finish("b", finish("t1", FinishStatus::Completed, &"d".repeat(64))).unwrap();
        h.leave("a");
        assert!(h.orphaned().is_empty());
        h.leave("b");
        assert_eq!(h.orphaned(), vec!["t1".to_string()]);
        let rec = h.finalize("t1").unwrap();
        assert!(matches!(rec, Record::Finished(_, ref o) if o.status == "completed"));
    }

    #[test]
    fn dashboard_counts() {
        let mut h = hub();
        assert_eq!(h.online_by_lab(), vec![("Lab A".to_string(), 2), ("Lab B".to_string(), 1)]);
        h.request("a", "b", files(), "t1".into(), &limits(), Instant::now()).unwrap();
        h.request("b", "a", files(), "t2".into(), &limits(), Instant::now()).unwrap();
        h.respond("b", "t1", true).unwrap();
        assert_eq!(h.transfer_counts(), (1, 1));
        assert_eq!(h.devices().len(), 3);
    }

    #[test]
    fn event_budget_refills() {
        let mut h = hub();
        let now = Instant::now();
        for _ in 0..200 {
            h.spend_event("a", now).unwrap();
        }
        assert_eq!(h.spend_event("a", now), Err(SignalError::RateLimited));
        assert!(h.spend_event("a", now + Duration::from_millis(100)).is_ok());
        // A raised budget applies to devices already connected.
        h.set_event_budget(EventBudget { rate: 1000.0, burst: 1000.0 });
        for _ in 0..100 {
            h.spend_event("a", now + Duration::from_millis(200)).unwrap();
        }
    }

    #[test]
    fn broadcast_offers_each_visible_receiver() {
        let mut h = hub();
        let mut n = 0;
        let recipients = vec!["b".to_string(), "c".to_string(), "zz".to_string()];
        let BroadcastPlan { emits, records, created } = h
            .broadcast("a", &recipients, &files(), "bc1", || {
                n += 1;
                format!("bt{n}")
            })
            .unwrap();
        // c is in another lab and zz is offline: only b is offered.
        assert_eq!(created, vec![("bt1".to_string(), "b".to_string())]);
        assert_eq!(emits[0].data["broadcastId"], "bc1");
        assert_eq!(records.len(), 1);
        assert_eq!(
            h.broadcast("a", &["zz".into()], &files(), "bc2", || "x".into()).unwrap_err(),
            SignalError::NoRecipients
        );
    }
}
