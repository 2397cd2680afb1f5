//! What the server says over Socket.IO (docs/PROTOCOL.md): every event it emits, as one
//! enum, `ServerEvent`, whose variants carry typed payloads, and the answers (acks) of the
//! client events that return more than `{ok:true}`. Serde writes them; nothing else builds
//! a payload by hand.
//!
//! The browser's types of the same shapes are generated from these ones (ts-rs, in the
//! tests below) into `web-client/src/engine/generated/`, and `protocol.ts` builds on them: a
//! field renamed here fails `protocol_ts_is_generated_from_the_rust_types` until the
//! TypeScript is regenerated, and then the web client's type check wherever it reads that
//! field.
//!
//! Regenerate with `LABBEAM_WRITE_PROTOCOL_TS=1 cargo test --locked -p labbeam --bin labbeam
//! protocol_ts`. The build compiles the web client (`build.rs`), so once the regenerated types
//! no longer fit its code, the build fails too until the client is updated; to regenerate
//! while the committed TypeScript is the broken side, add `SKIP_WEB_CLIENT_BUILD=1`.

use serde::Serialize;
use serde_json::value::RawValue;

use super::broadcast::RecipientState;
use super::hub::{Peer, Role};
use super::ids::{LinkId, PeerId, TransferId};
use super::payloads::{FileMeta, FinishStatus, Part, PolicyVisibility, TextMeta};
use crate::labs::LabName;

macro_rules! server_events {
    ($( $(#[$doc:meta])* $variant:ident($payload:ty) = $name:literal, )*) => {
        /// Every event the server emits: its name (the `event` tag) and its payload (`data`).
        /// On the wire, Socket.IO sends the name and then the payload alone (`ServerEvent::data`).
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[cfg_attr(test, derive(ts_rs::TS))]
        #[serde(tag = "event", content = "data")]
        pub enum ServerEvent {
            $( $(#[$doc])* #[serde(rename = $name)] $variant($payload), )*
        }

        impl ServerEvent {
            /// The Socket.IO event name.
            pub fn name(&self) -> &'static str {
                match self {
                    $( ServerEvent::$variant(_) => $name, )*
                }
            }
        }

        impl Serialize for Data<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self.0 {
                    $( ServerEvent::$variant(payload) => payload.serialize(s), )*
                }
            }
        }
    };
}

server_events! {
    /// To a device that joined: itself and the devices it may see.
    PresenceSnapshot(Snapshot) = "presence:snapshot",
    /// A device that this one may see came online.
    PresenceJoined(Peer) = "presence:joined",
    PresenceLeft(PeerLeft) = "presence:left",
    /// This device's lab went into exam mode or out of it.
    ExamState(ExamState) = "exam:state",
    /// A transfer offered to this device.
    TransferIncoming(TransferIncoming) = "transfer:incoming",
    TransferAccepted(TransferRef) = "transfer:accepted",
    TransferDeclined(TransferRef) = "transfer:declined",
    /// Nobody answered the request in time (to both sides).
    TransferExpired(TransferRef) = "transfer:expired",
    TransferCancelled(TransferCancelled) = "transfer:cancelled",
    /// The other side's socket is gone; the transfer waits for it to come back.
    TransferPaused(TransferPaused) = "transfer:paused",
    /// Both sides are back: signaling may go on, with this peer.
    TransferResumed(TransferResumed) = "transfer:resumed",
    /// SDP or ICE from the other party of a transfer or of a link.
    Signal(SignalRelay) = "signal",
    Announcement(Announcement) = "announcement",
    /// An announcement was withdrawn before it expired: stop showing it.
    AnnouncementWithdrawn(AnnouncementWithdrawn) = "announcement:withdrawn",
    BroadcastOffer(BroadcastOffer) = "broadcast:offer",
    /// To the sender: one recipient's state.
    BroadcastProgress(BroadcastProgress) = "broadcast:progress",
    /// Part of the sender's per-piece hashes, for checking pieces from other receivers.
    BroadcastManifest(ManifestChunk) = "broadcast:manifest",
    /// A relay-tree edge, to both of its ends.
    BroadcastLink(BroadcastLink) = "broadcast:link",
    /// To a parent: that child now receives from another parent.
    BroadcastUnlink(BroadcastUnlink) = "broadcast:unlink",
    BroadcastEnded(BroadcastEnded) = "broadcast:ended",
    /// A hand-in opened for this device's lab (also to late joiners while it is open).
    HandinOpened(HandinOpened) = "handin:opened",
    /// A hand-in was closed: stop offering it.
    HandinClosed(HandinClosed) = "handin:closed",
    /// To the student's devices: the collecting browser verified what they handed in.
    HandinReceived(HandinReceived) = "handin:received",
}

impl ServerEvent {
    /// The payload alone, as Socket.IO sends it after the event's name.
    pub fn data(&self) -> Data<'_> {
        Data(self)
    }
}

/// A `ServerEvent`'s payload, serialised without its name.
pub struct Data<'a>(&'a ServerEvent);

/// `presence:snapshot`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    #[serde(rename = "self")]
    pub me: Peer,
    pub peers: Vec<Peer>,
    /// How long an interrupted transfer waits for its device (and its partial data is worth
    /// keeping); absent when the setting could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub resume_grace_secs: Option<u64>,
    /// This device's lab's exam mode, as `exam:state` tells it later.
    pub exam: ExamState,
}

/// `exam:state`, and `presence:snapshot`'s `exam`: whether this device's lab is in exam mode
/// (`on`) and whether that binds this device (`bound`: a student's, so no one-to-one
/// transfers; instructors and admins are never bound).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ExamState {
    pub lab: LabName,
    pub on: bool,
    pub bound: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct PeerLeft {
    pub peer_id: PeerId,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct TransferIncoming {
    pub transfer_id: TransferId,
    pub from: Peer,
    pub files: Vec<FileMeta>,
    pub total_bytes: u64,
    /// Which part of a larger send this request is, when the sender said so.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub part: Option<Part>,
    /// Seconds from now until the request expires unanswered (`transfer.request_expiry_secs`):
    /// relative, so a receiver whose clock is off still counts down right.
    pub expires_in_secs: u64,
    /// Set when the request carries a text, not files: `files` is then the one text file it
    /// travels as (`payloads::text_file`), and a client may show it as a text once it arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub text: Option<TextMeta>,
    /// Set when the request delivers a student's files to a hand-in this device collects.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub handin: Option<HandinDelivery>,
}

/// `transfer:incoming`'s `handin`: which hand-in, from whom, on time or late.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct HandinDelivery {
    pub handin_id: String,
    pub late: bool,
}

/// `handin:opened`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct HandinOpened {
    pub handin_id: String,
    pub lab: LabName,
    pub title: String,
    /// Unix seconds.
    pub deadline: i64,
    pub instructions: String,
    /// Allowed file name endings, lowercase without the dot; empty: any.
    pub extensions: Vec<String>,
    /// Most bytes one student may hand in; absent: no limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub max_bytes: Option<u64>,
    pub allow_late: bool,
    /// Who collects (the instructor's name).
    pub collector: String,
    /// To its owner's devices: this device is the one that collects.
    pub collecting: bool,
}

impl HandinOpened {
    pub fn of(h: &crate::db::handins::Handin, collector: &str, collecting: bool) -> Self {
        HandinOpened {
            handin_id: h.id.clone(),
            lab: LabName::from(h.lab.as_str()),
            title: h.title.clone(),
            deadline: h.deadline,
            instructions: h.instructions.clone(),
            extensions: h.extension_list(),
            max_bytes: h.max_bytes.and_then(|b| u64::try_from(b).ok()),
            allow_late: h.allows_late(),
            collector: collector.to_string(),
            collecting,
        }
    }
}

/// `handin:closed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct HandinClosed {
    pub handin_id: String,
}

/// One verified file of a receipt.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct HandinFile {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// `handin:received`: a student's receipt.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct HandinReceived {
    pub handin_id: String,
    pub transfer_id: String,
    /// 1 for the first hand-in, 2 for the re-submission that replaced it, …: the highest is
    /// the one that counts.
    pub version: i64,
    pub files: Vec<HandinFile>,
    pub total_bytes: u64,
    /// Unix seconds.
    pub received_at: i64,
    pub late: bool,
}

impl From<&crate::db::handins::Receipt> for HandinReceived {
    fn from(r: &crate::db::handins::Receipt) -> Self {
        HandinReceived {
            handin_id: r.handin_id.clone(),
            transfer_id: r.transfer_id.clone(),
            version: r.version,
            files: r
                .file_list()
                .into_iter()
                .map(|f| HandinFile { name: f.name, size: f.size, sha256: f.sha256 })
                .collect(),
            total_bytes: u64::try_from(r.total_bytes).unwrap_or(0),
            received_at: r.received_at,
            late: r.late != 0,
        }
    }
}

/// The ack of `handin:receipts`: every receipt of a hand-in, by student then version.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct HandinReceiptsAck {
    pub receipts: Vec<StudentReceipt>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct StudentReceipt {
    pub username: String,
    #[serde(flatten)]
    pub receipt: HandinReceived,
}

/// The ack of `handin:open`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct HandinOpenAck {
    pub handin_id: String,
}

/// The ack of `handin:submit`: the delivery's transfer, and the collecting browser's device
/// (the student's browser signals to it once it accepts).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct HandinSubmitAck {
    pub transfer_id: TransferId,
    pub collector: Peer,
}

/// A transfer, by id: `transfer:accepted`, `transfer:declined`, `transfer:expired`, and the
/// ack of `transfer:request`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct TransferRef {
    pub transfer_id: TransferId,
}

/// Why a transfer ended for the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The other side cancelled (`detail`: its words).
    Cancelled,
    /// The other side failed (`detail`: its words).
    Failed,
    /// The other device went offline before the request was answered.
    PeerLeft,
    /// A side stayed away longer than the resume grace period.
    ResumeExpired,
    /// A side is a student in a lab that was put in exam mode (`labbeam lab policy`).
    ExamMode,
}

impl CancelReason {
    /// What the other side is told when one side finishes with `status`: nothing for a
    /// completed transfer.
    pub fn of(status: FinishStatus) -> Option<CancelReason> {
        match status {
            FinishStatus::Completed => None,
            FinishStatus::Failed => Some(CancelReason::Failed),
            FinishStatus::Cancelled => Some(CancelReason::Cancelled),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct TransferCancelled {
    pub transfer_id: TransferId,
    pub reason: CancelReason,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct TransferPaused {
    pub transfer_id: TransferId,
    /// The socket that left.
    pub peer_id: PeerId,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct TransferResumed {
    pub transfer_id: TransferId,
    /// The other side, on its current socket.
    pub peer: Peer,
}

/// A relayed `signal`. The sender's payload moves into it as it came: `data` is never
/// parsed into a tree or copied (`events::relay_signal`, the hot path).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct SignalRelay {
    /// The transfer or link it travels over.
    pub transfer_id: String,
    pub from: PeerId,
    /// The sender's SDP or ICE candidate, as its client wrote it.
    #[cfg_attr(test, ts(type = "unknown"))]
    pub data: Box<RawValue>,
}

impl PartialEq for SignalRelay {
    fn eq(&self, other: &Self) -> bool {
        self.transfer_id == other.transfer_id && self.from == other.from && self.data.get() == other.data.get()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct Announcement {
    pub id: i64,
    /// The author's display name.
    pub from: String,
    pub text: String,
    /// Unix seconds.
    pub at: i64,
    /// The lab it is for; none: everyone.
    pub lab: Option<LabName>,
    pub expires_at: i64,
}

/// `announcement:withdrawn`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct AnnouncementWithdrawn {
    pub id: i64,
}

impl From<&crate::db::announcements::Announcement> for Announcement {
    fn from(a: &crate::db::announcements::Announcement) -> Self {
        Announcement {
            id: a.id,
            from: a.from_name.clone(),
            text: a.text.clone(),
            at: a.created_at,
            lab: a.lab.as_deref().map(LabName::from),
            expires_at: a.expires_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct BroadcastOffer {
    pub broadcast_id: String,
    /// This recipient's own transfer (and transfer-log row).
    pub transfer_id: TransferId,
    pub from: Peer,
    pub files: Vec<FileMeta>,
    pub total_bytes: u64,
    pub piece_bytes: u64,
    /// Received without asking the user.
    pub auto_accept: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct BroadcastProgress {
    pub broadcast_id: String,
    pub peer: Peer,
    pub transfer_id: TransferId,
    pub state: RecipientState,
    pub bytes: u64,
    pub total_bytes: u64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ManifestChunk {
    pub broadcast_id: String,
    /// Index of the file in the broadcast's list.
    pub file: usize,
    /// Index of the first piece whose hash this part carries.
    pub first: usize,
    pub hashes: Vec<String>,
    /// The whole file's SHA-256, with the file's last part.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub sha256: Option<String>,
}

/// Which end of a link a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum LinkRole {
    /// Serves the pieces.
    Parent,
    /// Receives them.
    Child,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct BroadcastLink {
    pub broadcast_id: String,
    pub link_id: LinkId,
    pub role: LinkRole,
    /// The other end.
    pub peer: PeerId,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct BroadcastUnlink {
    pub broadcast_id: String,
    pub link_id: LinkId,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct BroadcastEnded {
    pub broadcast_id: String,
    /// In words: "finished", "cancelled by the sender", "the sender went offline",
    /// "expired" (this recipient did not answer).
    pub reason: String,
}

/// The ack of `transfer:resume`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct ResumeAck {
    pub transfer_id: TransferId,
    /// The side this device re-claimed.
    pub role: Role,
    pub files: Vec<FileMeta>,
    pub total_bytes: u64,
    /// The other side, when its device is online; null until it comes back.
    pub peer: Option<Peer>,
}

/// The ack of `broadcast:start`: every recipient's first state.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct BroadcastSummary {
    pub broadcast_id: String,
    pub piece_bytes: u64,
    pub recipients: Vec<BroadcastProgress>,
}

/// One lab's policies: the ack of `lab:policy` and each lab of `lab:policies`' ack.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase")]
pub struct LabPolicyState {
    pub lab: LabName,
    /// In exam mode.
    pub exam: bool,
    pub visibility: PolicyVisibility,
    /// Its exam window, when it has one (README "Exam window").
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub schedule: Option<ExamSchedule>,
}

/// A lab's exam window: exam mode from `from` until `until` (unix seconds), switched by the
/// server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ExamSchedule {
    pub from: i64,
    pub until: i64,
}

impl From<&crate::db::labs::LabPolicyRow> for LabPolicyState {
    fn from(row: &crate::db::labs::LabPolicyRow) -> Self {
        LabPolicyState {
            lab: LabName::from(row.name.as_str()),
            exam: row.exam != 0,
            visibility: PolicyVisibility::of_stored(row.visibility.as_deref()),
            schedule: row.exam_from.zip(row.exam_until).map(|(from, until)| ExamSchedule { from, until }),
        }
    }
}

/// The ack of `lab:policies`: the labs the caller may set, by name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct LabPoliciesAck {
    pub labs: Vec<LabPolicyState>,
}

/// The ack of `announce`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AnnounceAck {
    pub id: i64,
}

/// A typed answer as the ack's JSON (`ack_body` adds `ok: true`).
pub fn ack<T: Serialize>(answer: &T) -> serde_json::Value {
    serde_json::to_value(answer).unwrap_or_else(|e| {
        tracing::error!(error = %e, "an ack did not serialise");
        serde_json::Value::Object(Default::default())
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use serde_json::json;
    use ts_rs::{Config, TS};

    use super::*;
    use crate::signaling::payloads::{LabPolicy, TransferFinish};

    /// Where the browser's copy of these types lives (committed; bundled by `build.rs`).
    fn generated_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../web-client/src/engine/generated")
    }

    /// Writes the TypeScript of every type the browser reads or sends into `dir`. JavaScript
    /// numbers hold every size and count that occurs (a file's bytes are at most 2^50).
    fn export(dir: &Path) {
        let cfg = Config::new().with_large_int("number").with_out_dir(dir);
        ServerEvent::export_all(&cfg).unwrap();
        ResumeAck::export_all(&cfg).unwrap();
        BroadcastSummary::export_all(&cfg).unwrap();
        AnnounceAck::export_all(&cfg).unwrap();
        HandinOpenAck::export_all(&cfg).unwrap();
        HandinSubmitAck::export_all(&cfg).unwrap();
        HandinReceiptsAck::export_all(&cfg).unwrap();
        TransferFinish::export_all(&cfg).unwrap();
        LabPolicy::export_all(&cfg).unwrap();
        LabPoliciesAck::export_all(&cfg).unwrap();
    }

    fn ts_files(dir: &Path) -> BTreeMap<String, String> {
        let Ok(entries) = std::fs::read_dir(dir) else { return BTreeMap::new() };
        entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "ts"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).unwrap())
            })
            .collect()
    }

    #[test]
    fn protocol_ts_is_generated_from_the_rust_types() {
        let dir = generated_dir();
        if std::env::var_os("LABBEAM_WRITE_PROTOCOL_TS").is_some() {
            for name in ts_files(&dir).keys() {
                std::fs::remove_file(dir.join(name)).unwrap();
            }
            export(&dir);
        }
        let fresh = tempfile::tempdir().unwrap();
        export(fresh.path());
        let (want, have) = (ts_files(fresh.path()), ts_files(&dir));
        let mut wrong: Vec<String> = Vec::new();
        for (name, text) in &want {
            match have.get(name) {
                None => wrong.push(format!("{name} is missing")),
                Some(committed) if committed != text => wrong.push(format!("{name} differs")),
                Some(_) => {}
            }
        }
        wrong.extend(have.keys().filter(|n| !want.contains_key(*n)).map(|n| format!("{n} is not generated any more")));
        assert!(
            wrong.is_empty(),
            "web-client/src/engine/generated/ is not what the Rust types generate ({}); run \
             LABBEAM_WRITE_PROTOCOL_TS=1 cargo test --locked -p labbeam --bin labbeam protocol_ts, then \
             `npm run typecheck` in web-client/",
            wrong.join("; ")
        );
    }

    #[test]
    fn an_event_is_its_name_then_its_payload() {
        let paused = ServerEvent::TransferPaused(TransferPaused { transfer_id: "t1".into(), peer_id: "p2".into() });
        assert_eq!(paused.name(), "transfer:paused");
        assert_eq!(serde_json::to_value(paused.data()).unwrap(), json!({ "transferId": "t1", "peerId": "p2" }));
        // The tagged form is what the TypeScript union describes.
        assert_eq!(
            serde_json::to_value(&paused).unwrap(),
            json!({ "event": "transfer:paused", "data": { "transferId": "t1", "peerId": "p2" } })
        );
        let left = TransferCancelled { transfer_id: "t1".into(), reason: CancelReason::PeerLeft, detail: None };
        assert_eq!(
            serde_json::to_value(ServerEvent::TransferCancelled(left).data()).unwrap(),
            json!({ "transferId": "t1", "reason": "peer_left" }),
            "no detail key when there is none"
        );
        let data = serde_json::value::RawValue::from_string(r#"{"sdp":"v=0"}"#.into()).unwrap();
        let signal = ServerEvent::Signal(SignalRelay { transfer_id: "t1".into(), from: "p1".into(), data });
        assert_eq!(
            serde_json::to_string(&signal.data()).unwrap(),
            r#"{"transferId":"t1","from":"p1","data":{"sdp":"v=0"}}"#,
            "the client's data goes out as it came"
        );
    }
}
