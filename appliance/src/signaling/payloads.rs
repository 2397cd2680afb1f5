//! Client→server event payloads, parsed strictly (unknown fields refused) and validated
//! into plain values before any rule is applied.

use serde::{Deserialize, Serialize};

use super::SignalError;

/// Largest `data` of a `signal` (an SDP or ICE candidate), serialized.
pub const MAX_SIGNAL_BYTES: usize = 16 * 1024;
pub const MAX_FILES: usize = 10_000;
const MAX_NAME_CHARS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMeta {
    /// File name, or a relative path (`folder/sub/file.txt`) for folder transfers.
    pub name: String,
    pub size: u64,
    #[serde(default)]
    pub mime: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    pub to: String,
    pub files: Vec<FileMeta>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferRespond {
    #[serde(rename = "transferId")]
    pub transfer_id: String,
    pub accept: bool,
}

/// `signal`: `data` (SDP or ICE) is kept as the client's JSON text and relayed as is, never
/// parsed into a tree and rebuilt (it is checked to be valid JSON and measured).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signal {
    #[serde(rename = "transferId")]
    pub transfer_id: String,
    pub to: String,
    pub data: Box<serde_json::value::RawValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishStatus {
    Completed,
    Failed,
    Cancelled,
}

impl FinishStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishStatus::Completed => "completed",
            FinishStatus::Failed => "failed",
            FinishStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    Direct,
    Relay,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferFinish {
    #[serde(rename = "transferId")]
    pub transfer_id: String,
    pub status: FinishStatus,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub path: Option<PathKind>,
    #[serde(default, rename = "durationMs")]
    pub duration_ms: Option<u64>,
    /// Why it failed or was cancelled, in the client's words (shown in the log).
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged, deny_unknown_fields)]
pub enum Target {
    Lab { lab: String },
    All { all: bool },
    Peers { peers: Vec<String> },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastStart {
    pub target: Target,
    pub files: Vec<FileMeta>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announce {
    pub text: String,
    pub target: Target,
    /// How long late joiners still see it; default one hour, at most a day.
    #[serde(default, rename = "ttlSecs")]
    pub ttl_secs: Option<u64>,
}

/// Checks a file list; returns the total size.
pub fn validate_files(files: &[FileMeta], max_file_bytes: u64) -> Result<u64, SignalError> {
    if files.is_empty() {
        return Err(SignalError::Invalid("files must list at least one file".into()));
    }
    if files.len() > MAX_FILES {
        return Err(SignalError::Invalid(format!("at most {MAX_FILES} files per transfer")));
    }
    let mut total: u64 = 0;
    for f in files {
        validate_name(&f.name)?;
        if f.mime.len() > 255 || f.mime.chars().any(char::is_control) {
            return Err(SignalError::Invalid(format!("mime type of {:?} is not valid", f.name)));
        }
        if f.size > max_file_bytes {
            return Err(SignalError::TooLarge { name: f.name.clone(), size: f.size, max: max_file_bytes });
        }
        total = total.saturating_add(f.size);
    }
    Ok(total)
}

/// A file name or relative path: no empty, `.` or `..` segments, no leading `/`, no
/// backslashes or control characters.
fn validate_name(name: &str) -> Result<(), SignalError> {
    let bad = |why: &str| Err(SignalError::Invalid(format!("file name {name:?} {why}")));
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return bad(&format!("must have 1 to {MAX_NAME_CHARS} characters"));
    }
    if name.chars().any(|c| c.is_control() || c == '\\') {
        return bad("contains control characters or backslashes");
    }
    if name.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return bad("must be a relative path without empty, '.' or '..' parts");
    }
    Ok(())
}

/// `sha256` is empty or 64 lowercase hex digits.
pub fn validate_sha256(s: &str) -> Result<(), SignalError> {
    if s.is_empty() || (s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))) {
        Ok(())
    } else {
        Err(SignalError::Invalid("sha256 must be 64 lowercase hex digits".into()))
    }
}

/// A transfer or peer id as sent by a client: short and printable.
pub fn validate_id(what: &str, s: &str) -> Result<(), SignalError> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(SignalError::Invalid(format!("{what} is not a valid id")));
    }
    Ok(())
}

/// Display text (announcements, device names): control characters removed, whitespace
/// folded, cut to `max` characters.
pub fn clean_text(s: &str, max: usize) -> String {
    let visible: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    visible.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, size: u64) -> FileMeta {
        FileMeta { name: name.into(), size, mime: String::new() }
    }

    #[test]
    fn file_lists_are_checked() {
        assert_eq!(validate_files(&[f("a.txt", 3), f("dir/b.bin", 4)], 10).unwrap(), 7);
        assert!(validate_files(&[], 10).is_err());
        assert!(matches!(validate_files(&[f("big.iso", 11)], 10), Err(SignalError::TooLarge { .. })));
        for bad in ["", "/etc/passwd", "../x", "a//b", "a/./b", "a\\b", "a\u{0}b", "dir/"] {
            assert!(validate_files(&[f(bad, 1)], 10).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn payloads_refuse_unknown_fields_and_wrong_types() {
        assert!(serde_json::from_str::<TransferRespond>(r#"{"transferId":"a","accept":true,"x":1}"#).is_err());
        assert!(serde_json::from_str::<TransferRespond>(r#"{"transferId":"a","accept":"yes"}"#).is_err());
        let t: BroadcastStart = serde_json::from_str(r#"{"target":{"lab":"L1"},"files":[]}"#).unwrap();
        assert_eq!(t.target, Target::Lab { lab: "L1".into() });
        let t: BroadcastStart = serde_json::from_str(r#"{"target":{"all":true},"files":[]}"#).unwrap();
        assert_eq!(t.target, Target::All { all: true });
        assert!(serde_json::from_str::<BroadcastStart>(r#"{"target":{"room":"x"},"files":[]}"#).is_err());
        let fin: TransferFinish = serde_json::from_str(
            r#"{"transferId":"t","status":"completed","bytes":5,"sha256":"","path":"relay","durationMs":9}"#,
        )
        .unwrap();
        assert_eq!(fin.path, Some(PathKind::Relay));
        assert!(serde_json::from_str::<TransferFinish>(r#"{"transferId":"t","status":"done"}"#).is_err());
        let s: Signal =
            serde_json::from_str(r#"{"transferId":"t","to":"p","data":{"candidate":"c","sdpMid":"0"}}"#).unwrap();
        assert_eq!(s.data.get(), r#"{"candidate":"c","sdpMid":"0"}"#);
        assert!(serde_json::from_str::<Signal>(r#"{"transferId":"t","to":"p","data":{"x":1},"y":2}"#).is_err());
        assert!(serde_json::from_str::<Signal>(r#"{"transferId":"t","to":"p","data":{"x":}}"#).is_err());
        assert!(serde_json::from_str::<Signal>(r#"{"transferId":"t","to":"p"}"#).is_err());
    }

    #[test]
    fn ids_hashes_and_text() {
        assert!(validate_id("to", "abc-DEF_1").is_ok());
        assert!(validate_id("to", "a b").is_err());
        assert!(validate_sha256(&"a".repeat(64)).is_ok());
        assert!(validate_sha256(&"A".repeat(64)).is_err());
        assert_eq!(clean_text("  Lab\tPC \u{7} 12\n", 64), "Lab PC 12");
        assert_eq!(clean_text(&"x".repeat(100), 5), "xxxxx");
    }
}
