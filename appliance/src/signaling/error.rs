//! What can go wrong with a client's Socket.IO event, and how the client is told: every
//! event's ack is `{ok:true,...}` or `{error:{code,message}}` (docs/PROTOCOL.md, "Errors"),
//! the same shape and the same snake_case codes as the HTTP API's errors. The codes are
//! also the `outcome` label of the signaling metrics.
//!
//! Signaling owns this; `api::error` maps a `SignalError` to an HTTP status when an HTTP
//! route runs a signaling rule, never the other way round.

use serde_json::{Value, json};
use thiserror::Error;

use crate::db;
use crate::db::transfers::TransferStatus;

/// What the client reads when the server itself failed: the detail goes to the log only.
const INTERNAL_MESSAGE: &str = "something went wrong on the server; it was logged";

#[derive(Debug, Error, PartialEq)]
pub enum SignalError {
    #[error("the payload is not valid: {0}")]
    Invalid(String),
    #[error("{name:?} is {size} bytes; the largest file allowed is {max} bytes")]
    TooLarge { name: String, size: u64, max: u64 },
    #[error("at most {0} files per request; send more files in several requests")]
    TooManyFiles(usize),
    #[error("the text is {bytes} bytes (UTF-8); at most {max} bytes (64 KiB) can be sent at once: split it")]
    TextTooLong { bytes: u64, max: u64 },
    #[error("this needs the permission {0}")]
    Forbidden(&'static str),
    #[error("that device is not online (or not visible to you)")]
    PeerOffline,
    #[error("that user may not receive files")]
    PeerCannotReceive,
    #[error("you already have {0} requests waiting for an answer")]
    TooManyPending(usize),
    #[error("too many requests; wait a moment")]
    RateLimited,
    #[error("no such transfer")]
    UnknownTransfer,
    #[error("no such announcement (it may have expired or been withdrawn already)")]
    UnknownAnnouncement,
    #[error("you are not a party to that transfer")]
    NotParty,
    #[error("not possible now: {0}")]
    WrongState(&'static str),
    #[error("no device in the target can receive")]
    NoRecipients,
    #[error("no lab named {0:?}")]
    UnknownLab(String),
    #[error("this connection is not registered")]
    NotConnected,
    #[error("the lab is in exam mode: students cannot send or receive files one to one")]
    ExamMode,
    #[error("that transfer already ended ({0}); it cannot be resumed")]
    TransferEnded(TransferStatus),
    #[error("no such hand-in")]
    UnknownHandin,
    #[error("this hand-in is closed")]
    HandinClosed,
    #[error("the deadline has passed and this hand-in does not accept late work")]
    DeadlinePassed,
    #[error("this hand-in is for the devices of lab {0:?}")]
    NotInLab(String),
    #[error("{name:?} is not accepted here: allowed are {allowed}")]
    ExtensionNotAllowed { name: String, allowed: String },
    #[error("these files are {total} bytes; this hand-in takes at most {max} bytes per student")]
    HandinTooLarge { total: u64, max: u64 },
    #[error("the browser that collects this hand-in is not connected; send again when it is back")]
    CollectorOffline,
    /// The database cannot be reached (the detail is for the log).
    #[error("{}", db::UNAVAILABLE_MESSAGE)]
    StoreUnavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl SignalError {
    /// Stable snake_case code (also the metrics label).
    pub fn code(&self) -> &'static str {
        match self {
            SignalError::Invalid(_) => "invalid_payload",
            SignalError::TooLarge { .. } => "file_too_large",
            SignalError::TooManyFiles(_) => "too_many_files",
            SignalError::TextTooLong { .. } => "text_too_long",
            SignalError::Forbidden(_) => "forbidden",
            SignalError::PeerOffline => "peer_offline",
            SignalError::PeerCannotReceive => "peer_cannot_receive",
            SignalError::TooManyPending(_) => "too_many_pending",
            SignalError::RateLimited => "rate_limited",
            SignalError::UnknownTransfer => "unknown_transfer",
            SignalError::UnknownAnnouncement => "unknown_announcement",
            SignalError::NotParty => "not_party",
            SignalError::WrongState(_) => "wrong_state",
            SignalError::NoRecipients => "no_recipients",
            SignalError::UnknownLab(_) => "unknown_lab",
            SignalError::NotConnected => "not_connected",
            SignalError::ExamMode => "exam_mode",
            SignalError::TransferEnded(_) => "transfer_ended",
            SignalError::UnknownHandin => "unknown_handin",
            SignalError::HandinClosed => "handin_closed",
            SignalError::DeadlinePassed => "deadline_passed",
            SignalError::NotInLab(_) => "not_in_lab",
            SignalError::ExtensionNotAllowed { .. } => "extension_not_allowed",
            SignalError::HandinTooLarge { .. } => "handin_too_large",
            SignalError::CollectorOffline => "collector_offline",
            SignalError::StoreUnavailable(_) => "store_unavailable",
            SignalError::Internal(_) => "internal",
        }
    }

    /// The words the client reads. An internal failure is logged here and reaches the client
    /// only as a generic sentence.
    pub fn message(&self) -> String {
        match self {
            SignalError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                INTERNAL_MESSAGE.to_string()
            }
            SignalError::StoreUnavailable(detail) => {
                tracing::warn!(error = %detail, "store unavailable");
                db::UNAVAILABLE_MESSAGE.to_string()
            }
            other => other.to_string(),
        }
    }

    /// `{error:{code,message}}`.
    pub fn body(&self) -> Value {
        json!({ "error": { "code": self.code(), "message": self.message() } })
    }
}

impl From<db::DbError> for SignalError {
    fn from(e: db::DbError) -> Self {
        if e.is_unavailable() {
            SignalError::StoreUnavailable(e.to_string())
        } else {
            SignalError::Internal(e.to_string())
        }
    }
}

/// The ack body for a handler's result: its answer with `ok: true` added, or the error body.
pub fn ack_body(result: Result<Value, SignalError>) -> Value {
    match result {
        Ok(mut v) => {
            if let Value::Object(map) = &mut v {
                map.insert("ok".into(), Value::Bool(true));
                v
            } else {
                json!({ "ok": true })
            }
        }
        Err(e) => e.body(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn acks_carry_the_answer_or_the_error_shape() {
        assert_eq!(ack_body(Ok(json!({ "transferId": "t" }))), json!({ "transferId": "t", "ok": true }));
        assert_eq!(ack_body(Ok(Value::Null)), json!({ "ok": true }));
        assert_eq!(
            ack_body(Err(SignalError::NotParty)),
            json!({ "error": { "code": "not_party", "message": "you are not a party to that transfer" } })
        );
    }

    #[test]
    fn an_internal_detail_never_reaches_the_client() {
        let body = SignalError::Internal("disk I/O error at /var/lib/labbeam".into()).body();
        assert_eq!(body, json!({ "error": { "code": "internal", "message": INTERNAL_MESSAGE } }));
    }
}
