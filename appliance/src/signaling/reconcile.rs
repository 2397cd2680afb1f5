//! Turning the two sides' `transfer:finish` reports into one transfer-log outcome. The
//! receiver is the authority on what arrived (it verified the hash); the sender on what
//! was sent. Disagreement is recorded, never smoothed over.

use super::payloads::{FinishStatus, PathKind, TransferFinish};
use crate::db::transfers::{Outcome, TransferStatus};

fn path_str(p: Option<PathKind>) -> &'static str {
    match p {
        Some(PathKind::Direct) => "direct",
        Some(PathKind::Relay) => "relay",
        None => "",
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn reconcile(sender: Option<&TransferFinish>, receiver: Option<&TransferFinish>, total_bytes: u64) -> Outcome {
    let path = sender.and_then(|s| s.path).or(receiver.and_then(|r| r.path));
    let duration = receiver.and_then(|r| r.duration_ms).or(sender.and_then(|s| s.duration_ms)).map(clamp);
    let base = |status: TransferStatus, bytes: u64, sha: &str, reason: String| Outcome {
        status,
        bytes: clamp(bytes),
        sha256: sha.into(),
        path: path_str(path).into(),
        duration_ms: duration,
        failure_reason: reason,
    };
    let reason_of = |side: &str, r: &TransferFinish| {
        if r.reason.is_empty() { format!("{side}: {}", r.status.as_str()) } else { format!("{side}: {}", r.reason) }
    };
    match (sender, receiver) {
        (Some(s), Some(r)) => {
            let failures: Vec<String> = [("sender", s), ("receiver", r)]
                .iter()
                .filter(|(_, x)| x.status != FinishStatus::Completed)
                .map(|(side, x)| reason_of(side, x))
                .collect();
            if !failures.is_empty() {
                let status = if s.status == FinishStatus::Cancelled || r.status == FinishStatus::Cancelled {
                    TransferStatus::Cancelled
                } else {
                    TransferStatus::Failed
                };
                return base(status, r.bytes, &r.sha256, failures.join("; "));
            }
            if !s.sha256.is_empty() && s.sha256 != r.sha256 {
                return base(
                    TransferStatus::Failed,
                    r.bytes,
                    &r.sha256,
                    "hash_mismatch: receiver and sender hashes differ".into(),
                );
            }
            if r.bytes != total_bytes {
                return base(
                    TransferStatus::Failed,
                    r.bytes,
                    &r.sha256,
                    format!("size_mismatch: received {} of {total_bytes} bytes", r.bytes),
                );
            }
            base(TransferStatus::Completed, r.bytes, &r.sha256, String::new())
        }
        (None, Some(r)) => {
            let reason = if r.status == FinishStatus::Completed {
                "the sender did not report".to_string()
            } else {
                reason_of("receiver", r)
            };
            base(r.status.into(), r.bytes, &r.sha256, reason)
        }
        (Some(s), None) => {
            let reason = if s.status == FinishStatus::Completed {
                "the receiver did not confirm".to_string()
            } else {
                reason_of("sender", s)
            };
            // A transfer only counts as completed when the receiver verified it.
            let status = if s.status == FinishStatus::Completed { TransferStatus::Failed } else { s.status.into() };
            base(status, s.bytes, &s.sha256, reason)
        }
        (None, None) => base(TransferStatus::Failed, 0, "", "neither side reported".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(status: FinishStatus, bytes: u64, sha: &str) -> TransferFinish {
        TransferFinish {
            transfer_id: "t".into(),
            status,
            bytes,
            sha256: sha.into(),
            path: Some(PathKind::Direct),
            duration_ms: Some(10),
            reason: String::new(),
        }
    }

    #[test]
    fn agreeing_reports_complete() {
        let h = "a".repeat(64);
        let o =
            reconcile(Some(&report(FinishStatus::Completed, 5, &h)), Some(&report(FinishStatus::Completed, 5, &h)), 5);
        assert_eq!(o.status, TransferStatus::Completed);
        assert_eq!(o.path, "direct");
        assert!(o.failure_reason.is_empty());
    }

    #[test]
    fn hash_or_size_disagreement_fails() {
        let o = reconcile(
            Some(&report(FinishStatus::Completed, 5, &"a".repeat(64))),
            Some(&report(FinishStatus::Completed, 5, &"b".repeat(64))),
            5,
        );
        assert_eq!(o.status, TransferStatus::Failed);
        assert!(o.failure_reason.starts_with("hash_mismatch"));
        let h = "a".repeat(64);
        let o =
            reconcile(Some(&report(FinishStatus::Completed, 5, &h)), Some(&report(FinishStatus::Completed, 4, &h)), 5);
        assert!(o.failure_reason.starts_with("size_mismatch"));
    }

    #[test]
    fn a_failure_or_cancel_on_either_side_wins() {
        let mut r = report(FinishStatus::Failed, 2, "");
        r.reason = "disk full".into();
        let o = reconcile(Some(&report(FinishStatus::Completed, 5, "")), Some(&r), 5);
        assert_eq!(o.status, TransferStatus::Failed);
        assert_eq!(o.failure_reason, "receiver: disk full");
        let o = reconcile(Some(&report(FinishStatus::Cancelled, 1, "")), Some(&r), 5);
        assert_eq!(o.status, TransferStatus::Cancelled);
    }

    #[test]
    fn one_sided_reports() {
        let o = reconcile(Some(&report(FinishStatus::Completed, 5, "")), None, 5);
        assert_eq!(o.status, TransferStatus::Failed, "unconfirmed by the receiver");
        let o = reconcile(None, Some(&report(FinishStatus::Completed, 5, "")), 5);
        assert_eq!(o.status, TransferStatus::Completed);
        assert_eq!(reconcile(None, None, 5).status, TransferStatus::Failed);
    }
}
