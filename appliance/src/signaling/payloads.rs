//! Client→server event payloads, parsed strictly (unknown fields refused) and validated
//! into plain values before any rule is applied.

use serde::{Deserialize, Serialize};

use super::SignalError;

/// Largest `data` of a `signal` (an SDP or ICE candidate), serialized.
pub const MAX_SIGNAL_BYTES: usize = 16 * 1024;

// A file list must reach its handler to be answered: a Socket.IO message larger than
// `MAX_MESSAGE_BYTES` (64 KiB) is dropped by the transport, which closes the socket without a
// word. So the limits below keep the largest valid request well under it: 100 entries of at
// most 46 bytes of JSON syntax and digits, a 255-byte name and a 255-byte MIME type are
// 55,600 bytes; with `to`, `part` and the Socket.IO envelope 55,893 (the test
// `a_request_at_the_limits_fits_in_one_message`). Larger selections go in several requests
// (the web client splits them; `part` says which send they belong to).

/// Files per `transfer:request` or `broadcast:start`; more get `too_many_files`.
pub const MAX_FILES_PER_REQUEST: usize = 100;
/// Longest file name or relative path, and longest MIME type: bytes of JSON text (UTF-8; a
/// character that JSON escapes, such as `"`, counts as its escape).
pub const MAX_NAME_BYTES: usize = 255;
pub const MAX_MIME_BYTES: usize = 255;
/// Parts one send may be split into (`part.count`): a million files.
pub const MAX_PARTS: u32 = 10_000;

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
    /// Set when this request is one of several that send one selection (too many files for
    /// one request); passed on to the receiver in `transfer:incoming`.
    #[serde(default)]
    pub part: Option<Part>,
}

/// Which part of a larger send a request is. The server checks its shape only: the receiving
/// client decides what it means (the web client accepts the later parts of a send whose
/// first part its user accepted, within the totals announced there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Part {
    /// The send's id, chosen by the sender, the same in each of its parts.
    pub batch: String,
    /// 1-based.
    pub index: u32,
    pub count: u32,
    /// Files and bytes of the whole send.
    pub total_files: u64,
    pub total_bytes: u64,
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
    if files.len() > MAX_FILES_PER_REQUEST {
        return Err(SignalError::TooManyFiles(MAX_FILES_PER_REQUEST));
    }
    let mut total: u64 = 0;
    for f in files {
        validate_name(&f.name)?;
        if json_len(&f.mime) > MAX_MIME_BYTES || f.mime.chars().any(char::is_control) {
            return Err(SignalError::Invalid(format!(
                "mime type of {:?} is not valid (at most {MAX_MIME_BYTES} bytes, no control characters)",
                f.name
            )));
        }
        if f.size > max_file_bytes {
            return Err(SignalError::TooLarge { name: f.name.clone(), size: f.size, max: max_file_bytes });
        }
        total = total.saturating_add(f.size);
    }
    Ok(total)
}

/// Checks `part` of a request of `files`.
pub fn validate_part(part: &Part, files: &[FileMeta]) -> Result<(), SignalError> {
    let bad = |why: &str| Err(SignalError::Invalid(format!("part: {why}")));
    validate_id("part.batch", &part.batch)?;
    if part.count == 0 || part.count > MAX_PARTS || part.index == 0 || part.index > part.count {
        return bad(&format!("index must be from 1 to count, and count from 1 to {MAX_PARTS}"));
    }
    let most = u64::from(part.count) * MAX_FILES_PER_REQUEST as u64;
    if part.total_files < files.len() as u64 || part.total_files > most {
        return bad(&format!("totalFiles must be from this part's file count to {most}"));
    }
    let bytes = files.iter().fold(0u64, |n, f| n.saturating_add(f.size));
    if part.total_bytes < bytes {
        return bad("totalBytes must be at least this part's bytes");
    }
    Ok(())
}

/// Bytes of `s` as JSON string contents (UTF-8, escapes included; without the quotes).
fn json_len(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
            c if c < ' ' => 6,
            c => c.len_utf8(),
        })
        .sum()
}

/// A file name or relative path: no empty, `.` or `..` segments, no leading `/`, no
/// backslashes or control characters.
fn validate_name(name: &str) -> Result<(), SignalError> {
    let bad = |why: &str| Err(SignalError::Invalid(format!("file name {name:?} {why}")));
    if name.is_empty() || json_len(name) > MAX_NAME_BYTES {
        return bad(&format!("must have 1 to {MAX_NAME_BYTES} bytes (UTF-8)"));
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
    fn too_many_files_names_the_limit() {
        let list: Vec<FileMeta> = (0..=MAX_FILES_PER_REQUEST).map(|i| f(&format!("f{i}"), 1)).collect();
        let err = validate_files(&list, 10).unwrap_err();
        assert_eq!(err, SignalError::TooManyFiles(100));
        assert_eq!(err.code(), "too_many_files");
        assert!(err.to_string().contains("at most 100 files"), "{err}");
        assert_eq!(validate_files(&list[..MAX_FILES_PER_REQUEST], 10).unwrap(), 100);
    }

    #[test]
    fn names_and_mime_types_are_measured_in_json_bytes() {
        // 255 bytes: 'é' is two bytes, '"' is escaped to two.
        let at = format!("{}\"{}", "é".repeat(100), "n".repeat(53));
        assert_eq!(serde_json::to_string(&at).unwrap().len() - 2, 255);
        assert!(validate_files(&[f(&at, 1)], 10).is_ok());
        assert!(validate_files(&[f(&format!("{at}n"), 1)], 10).is_err());
        assert!(validate_files(&[f(&"😀".repeat(64), 1)], 10).is_err(), "256 bytes");
        let mut m = f("a", 1);
        m.mime = format!("x/{}", "\\".repeat(126));
        assert_eq!(serde_json::to_string(&m.mime).unwrap().len() - 2, 254);
        assert!(validate_files(std::slice::from_ref(&m), 10).is_ok());
        m.mime.push('\\');
        assert!(validate_files(&[m], 10).is_err());
    }

    #[test]
    fn a_request_at_the_limits_fits_in_one_message() {
        // The largest valid request: every field at its limit, and the names made of
        // characters that take the most bytes per character of JSON text.
        let name = "\"".repeat(MAX_NAME_BYTES / 2) + "n";
        assert_eq!(serde_json::to_string(&name).unwrap().len() - 2, MAX_NAME_BYTES);
        let mime = "\"".repeat(MAX_MIME_BYTES / 2) + "m";
        let files: Vec<FileMeta> = (0..MAX_FILES_PER_REQUEST)
            .map(|_| FileMeta { name: name.clone(), size: 1 << 50, mime: mime.clone() })
            .collect();
        assert!(validate_files(&files, 1 << 50).is_ok());
        let part = Part {
            batch: "b".repeat(64),
            index: MAX_PARTS,
            count: MAX_PARTS,
            total_files: u64::from(MAX_PARTS) * MAX_FILES_PER_REQUEST as u64,
            total_bytes: u64::MAX,
        };
        assert!(validate_part(&part, &files).is_ok());
        let payload = serde_json::json!({ "to": "p".repeat(64), "files": files, "part": part });
        // Socket.IO: `42` (event), the ack id, then the JSON array.
        let message = format!("42{}{}", u64::MAX, serde_json::json!(["transfer:request", payload]));
        let margin = 8 * 1024;
        assert!(
            message.len() + margin < super::super::MAX_MESSAGE_BYTES,
            "{} bytes: too close to the {}-byte cap",
            message.len(),
            super::super::MAX_MESSAGE_BYTES
        );
    }

    #[test]
    fn parts_are_checked() {
        let files = [f("a", 3), f("b", 4)];
        let part = |index, count, total_files, total_bytes| Part {
            batch: "0123456789abcdef".into(),
            index,
            count,
            total_files,
            total_bytes,
        };
        assert!(validate_part(&part(1, 3, 250, 7), &files).is_ok());
        assert!(validate_part(&part(3, 3, 2, 7), &files).is_ok());
        for bad in [
            part(0, 3, 250, 7),
            part(4, 3, 250, 7),
            part(1, 0, 250, 7),
            part(1, MAX_PARTS + 1, 250, 7),
            part(1, 3, 1, 7),
            part(1, 3, 301, 7),
            part(1, 3, 250, 6),
        ] {
            assert!(validate_part(&bad, &files).is_err(), "{bad:?}");
        }
        let mut bad_id = part(1, 1, 2, 7);
        bad_id.batch = "no spaces".into();
        assert!(validate_part(&bad_id, &files).is_err());
        let req: TransferRequest = serde_json::from_str(
            r#"{"to":"p","files":[],"part":{"batch":"b","index":1,"count":2,"totalFiles":5,"totalBytes":9}}"#,
        )
        .unwrap();
        assert_eq!(req.part.map(|p| (p.index, p.count, p.total_files)), Some((1, 2, 5)));
        assert!(
            serde_json::from_str::<TransferRequest>(
                r#"{"to":"p","files":[],"part":{"batch":"b","index":1,"count":2,"totalFiles":5,"totalBytes":9,"x":1}}"#
            )
            .is_err()
        );
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
