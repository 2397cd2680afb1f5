//! Client→server event payloads, parsed strictly (unknown fields refused) and validated
//! into plain values before any rule is applied.

use serde::{Deserialize, Serialize};

use super::SignalError;
use super::ids::{PeerId, TransferId};
use crate::db::transfers::TransferStatus;
use crate::labs::LabName;

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
/// Largest text of a `transfer:request` with `text` (UTF-8 bytes): a page of notes or any
/// link, small enough to show whole in a dialog. Its bytes go over the data channel, never
/// through the server.
pub const MAX_TEXT_BYTES: u64 = 64 * 1024;
/// The one "file" a text travels as: the request's file list, the log row and a client that
/// does not know texts (it sees a small text file) all name it so.
pub const TEXT_FILE_NAME: &str = "text.txt";
pub const TEXT_MIME: &str = "text/plain;charset=utf-8";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
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
    pub to: PeerId,
    /// The files; empty (or left out) when the request carries a text instead.
    #[serde(default)]
    pub files: Vec<FileMeta>,
    /// Set when this request is one of several that send one selection (too many files for
    /// one request); passed on to the receiver in `transfer:incoming`.
    #[serde(default)]
    pub part: Option<Part>,
    /// A text (a note, a link) instead of files: its size and length only. The text itself
    /// goes over the data channel as one file (`text_file`), like any file's bytes.
    #[serde(default)]
    pub text: Option<TextMeta>,
}

/// What the server knows of a text sent with `transfer:request`: how long it is. Passed on to
/// the receiver in `transfer:incoming` and logged (`text_chars`); never the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct TextMeta {
    /// Its size in UTF-8, 1 to `MAX_TEXT_BYTES`: the size of the file it travels as.
    pub bytes: u64,
    /// Its length in Unicode code points (what people call characters), as the sender counted.
    pub chars: u64,
}

impl TransferRequest {
    /// The files this request sends: its own, or the one file its text travels as. Refuses a
    /// text with files or `part` (a text is one request of its own) and a text that cannot be
    /// (empty, too long, a length that its size cannot have).
    pub fn files_to_send(&mut self) -> Result<Vec<FileMeta>, SignalError> {
        let Some(text) = self.text else { return Ok(std::mem::take(&mut self.files)) };
        if !self.files.is_empty() {
            return Err(SignalError::Invalid("a request carries files or a text, not both".into()));
        }
        if self.part.is_some() {
            return Err(SignalError::Invalid("a text is sent in one request: part is not allowed with text".into()));
        }
        validate_text(&text)?;
        Ok(vec![text_file(&text)])
    }
}

/// Checks a text's size and length.
pub fn validate_text(text: &TextMeta) -> Result<(), SignalError> {
    if text.bytes == 0 || text.chars == 0 {
        return Err(SignalError::Invalid("text must not be empty (bytes and chars at least 1)".into()));
    }
    if text.bytes > MAX_TEXT_BYTES {
        return Err(SignalError::TextTooLong { bytes: text.bytes, max: MAX_TEXT_BYTES });
    }
    // UTF-8 takes 1 to 4 bytes a character.
    if text.chars > text.bytes || text.bytes > text.chars.saturating_mul(4) {
        return Err(SignalError::Invalid(format!(
            "text.chars ({}) cannot be the length of {} bytes of UTF-8 (1 to 4 bytes a character)",
            text.chars, text.bytes
        )));
    }
    Ok(())
}

/// The file a text travels as.
pub fn text_file(text: &TextMeta) -> FileMeta {
    FileMeta { name: TEXT_FILE_NAME.into(), size: text.bytes, mime: TEXT_MIME.into() }
}

/// Which part of a larger send a request is. The server checks its shape only: the receiving
/// client decides what it means (the web client accepts the later parts of a send whose
/// first part its user accepted, within the totals announced there).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
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
    pub transfer_id: TransferId,
    pub accept: bool,
}

/// `signal`: `data` (SDP or ICE) is kept as the client's JSON text and relayed as is, never
/// parsed into a tree and rebuilt (it is checked to be valid JSON and measured).
/// `transferId` names a transfer or a broadcast's link (`ids::Channel::parse`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signal {
    #[serde(rename = "transferId")]
    pub transfer_id: String,
    pub to: PeerId,
    pub data: Box<serde_json::value::RawValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
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

impl From<FinishStatus> for TransferStatus {
    fn from(s: FinishStatus) -> TransferStatus {
        match s {
            FinishStatus::Completed => TransferStatus::Completed,
            FinishStatus::Failed => TransferStatus::Failed,
            FinishStatus::Cancelled => TransferStatus::Cancelled,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    Direct,
    Relay,
}

/// `transfer:finish`: what each side reports at its end.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct TransferFinish {
    #[serde(rename = "transferId")]
    pub transfer_id: TransferId,
    pub status: FinishStatus,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub path: Option<PathKind>,
    #[serde(default, rename = "durationMs")]
    #[cfg_attr(test, ts(optional))]
    pub duration_ms: Option<u64>,
    /// Why it failed or was cancelled, in the client's words (shown in the log).
    #[serde(default)]
    #[cfg_attr(test, ts(optional, as = "Option<String>"))]
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged, deny_unknown_fields)]
pub enum Target {
    Lab { lab: LabName },
    All { all: bool },
    Peers { peers: Vec<PeerId> },
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

/// `lab:policy`: a lab's exam mode, its visibility, or both (docs/PROTOCOL.md, "Exam mode").
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct LabPolicy {
    pub lab: LabName,
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub exam: Option<bool>,
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub visibility: Option<PolicyVisibility>,
}

/// A lab's visibility as `lab:policy` sets it and `lab:policies` tells it: its own choice
/// (`own`, `all`), or `default`: none of its own, the setting `presence.scope` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum PolicyVisibility {
    Own,
    All,
    Default,
}

impl PolicyVisibility {
    /// The lab's own choice it stands for (`None`: it follows the setting).
    pub fn choice(self) -> Option<crate::labs::Visibility> {
        match self {
            PolicyVisibility::Own => Some(crate::labs::Visibility::Own),
            PolicyVisibility::All => Some(crate::labs::Visibility::All),
            PolicyVisibility::Default => None,
        }
    }

    /// A lab's stored visibility (`labs.visibility`) as this word.
    pub fn of_stored(word: Option<&str>) -> PolicyVisibility {
        match word.and_then(crate::labs::Visibility::from_stored) {
            Some(crate::labs::Visibility::Own) => PolicyVisibility::Own,
            Some(crate::labs::Visibility::All) => PolicyVisibility::All,
            None => PolicyVisibility::Default,
        }
    }
}

/// An event without a payload (`lab:policies`): nothing, `null` or `{}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// `handin:open`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HandinOpen {
    pub lab: LabName,
    pub title: String,
    /// Unix seconds.
    pub deadline: i64,
    #[serde(default)]
    pub instructions: Option<String>,
    /// Allowed file name endings (`pdf`, `.zip`); absent or empty: any.
    #[serde(default)]
    pub extensions: Option<Vec<String>>,
    #[serde(default)]
    pub max_bytes: Option<u64>,
    #[serde(default)]
    pub allow_late: Option<bool>,
}

/// `handin:close`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HandinRef {
    pub handin_id: String,
}

/// `handin:submit`: a student's files for a hand-in, sent to the collecting browser as a
/// transfer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HandinSubmit {
    pub handin_id: String,
    pub files: Vec<FileMeta>,
}

/// `handin:receipt`: from the collecting browser, what it verified of one delivery.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HandinReceipt {
    pub transfer_id: TransferId,
    pub files: Vec<ReceiptFileIn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptFileIn {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// `announce:withdraw`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnounceWithdraw {
    pub id: i64,
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
pub fn validate_name(name: &str) -> Result<(), SignalError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, size: u64) -> FileMeta {
        FileMeta { name: name.into(), size, mime: String::new() }
    }

    fn text_request(files: Vec<FileMeta>, part: Option<Part>, bytes: u64, chars: u64) -> TransferRequest {
        TransferRequest { to: "p".into(), files, part, text: Some(TextMeta { bytes, chars }) }
    }

    #[test]
    fn a_text_travels_as_one_text_file_of_its_size() {
        let mut req = text_request(Vec::new(), None, 5, 3);
        assert_eq!(
            req.files_to_send().unwrap(),
            vec![FileMeta { name: "text.txt".into(), size: 5, mime: "text/plain;charset=utf-8".into() }]
        );
        let mut files = TransferRequest { to: "p".into(), files: vec![f("a.txt", 1)], part: None, text: None };
        assert_eq!(files.files_to_send().unwrap(), vec![f("a.txt", 1)]);
    }

    #[test]
    fn texts_are_checked() {
        let at = MAX_TEXT_BYTES;
        assert!(text_request(Vec::new(), None, at, at).files_to_send().is_ok(), "64 KiB of ASCII");
        assert!(text_request(Vec::new(), None, 4, 1).files_to_send().is_ok(), "one emoji");
        let too_long = text_request(Vec::new(), None, at + 1, at + 1).files_to_send().unwrap_err();
        assert_eq!(too_long.code(), "text_too_long");
        assert_eq!(
            too_long.to_string(),
            "the text is 65537 bytes (UTF-8); at most 65536 bytes (64 KiB) can be sent at once: split it"
        );
        for (bytes, chars) in [(0, 0), (0, 1), (1, 0), (3, 4), (9, 2)] {
            let err = text_request(Vec::new(), None, bytes, chars).files_to_send().unwrap_err();
            assert_eq!(err.code(), "invalid_payload", "{bytes} bytes, {chars} chars");
        }
        let with_files = text_request(vec![f("a.txt", 1)], None, 1, 1).files_to_send().unwrap_err();
        assert_eq!(with_files.to_string(), "the payload is not valid: a request carries files or a text, not both");
        let part = Part { batch: "b".into(), index: 1, count: 1, total_files: 1, total_bytes: 1 };
        assert_eq!(text_request(Vec::new(), Some(part), 1, 1).files_to_send().unwrap_err().code(), "invalid_payload");
        let unknown = serde_json::from_value::<TransferRequest>(serde_json::json!({
            "to": "p", "text": { "bytes": 1, "chars": 1, "body": "x" }
        }));
        assert!(unknown.is_err(), "the text itself is never a field of the request");
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
    fn ids_and_hashes() {
        assert!(validate_id("to", "abc-DEF_1").is_ok());
        assert!(validate_id("to", "a b").is_err());
        assert!(validate_sha256(&"a".repeat(64)).is_ok());
        assert!(validate_sha256(&"A".repeat(64)).is_err());
    }

    // --- Property tests -------------------------------------------------------------------
    //
    // A payload reaches its handler as the client's JSON, read with `serde_json::from_value`
    // (`events::on`) or from the JSON text (`signal`'s inline handler), then checked by the
    // functions above. Whatever a client sends, that path must answer with a clear error or a
    // value, never panic; a valid payload must come out as it was sent; a field the payload
    // does not have must be refused at any depth. `CASES` cases per property keep CI fast.

    use crate::text::clean_text;
    use proptest::prelude::*;
    use proptest::test_runner::Config as ProptestConfig;
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    const CASES: u32 = 256;

    /// Every client→server event whose payload has a type of its own.
    const EVENTS: &[&str] = &[
        "transfer:request",
        "transfer:respond",
        "signal",
        "transfer:finish",
        "announce",
        "broadcast:start",
        "transfer:resume",
        "broadcast:manifest",
        "broadcast:status",
        "broadcast:problem",
    ];

    /// The largest file a transfer may declare by default, as the handlers read it.
    fn max_file_bytes() -> u64 {
        let spec = crate::settings::SETTINGS.iter().find(|s| s.key == "transfer.max_file_bytes").unwrap();
        spec.default.parse().unwrap()
    }

    /// What `events::on` does with a payload.
    fn parse<T: DeserializeOwned>(v: &Value) -> Result<T, SignalError> {
        serde_json::from_value(v.clone()).map_err(|e| SignalError::Invalid(e.to_string()))
    }

    /// What the `signal` handler does: it reads the payload from its JSON text.
    fn parse_text<T: DeserializeOwned>(v: &Value) -> Result<T, SignalError> {
        serde_json::from_str(&v.to_string()).map_err(|e| SignalError::Invalid(e.to_string()))
    }

    /// Each handler's checks that need no state, in the handler's order.
    fn handle(event: &str, v: &Value) -> Result<(), SignalError> {
        match event {
            "transfer:request" => {
                let r: TransferRequest = parse(v)?;
                validate_id("to", r.to.as_str())?;
                if let Some(part) = &r.part {
                    validate_part(part, &r.files)?;
                }
                validate_files(&r.files, max_file_bytes())?;
            }
            "transfer:respond" => validate_id("transferId", parse::<TransferRespond>(v)?.transfer_id.as_str())?,
            "signal" => {
                let r: Signal = parse_text(v)?;
                validate_id("transferId", &r.transfer_id)?;
                validate_id("to", r.to.as_str())?;
                if r.data.get().len() > MAX_SIGNAL_BYTES {
                    return Err(SignalError::Invalid("data is too large".into()));
                }
            }
            "transfer:finish" => {
                let r: TransferFinish = parse(v)?;
                validate_id("transferId", r.transfer_id.as_str())?;
                validate_sha256(&r.sha256)?;
                if r.reason.chars().count() > 500 {
                    return Err(SignalError::Invalid("reason is too long".into()));
                }
            }
            "announce" => {
                let r: Announce = parse(v)?;
                if clean_text(&r.text, 500).is_empty() {
                    return Err(SignalError::Invalid("text must not be empty".into()));
                }
                if !matches!(r.target, Target::Lab { .. } | Target::All { all: true }) {
                    return Err(SignalError::Invalid("announce to {lab} or {all:true}".into()));
                }
            }
            "broadcast:start" => {
                let r: BroadcastStart = parse(v)?;
                validate_files(&r.files, max_file_bytes())?;
                match &r.target {
                    Target::All { all: false } => return Err(SignalError::Invalid("target names nobody".into())),
                    Target::Peers { peers } if peers.len() > 1000 => {
                        return Err(SignalError::Invalid("too many peers".into()));
                    }
                    Target::Peers { peers } => {
                        for p in peers {
                            validate_id("peers", p.as_str())?;
                        }
                    }
                    _ => {}
                }
            }
            "transfer:resume" => {
                validate_id("transferId", parse::<super::super::resume::TransferResume>(v)?.transfer_id.as_str())?
            }
            "broadcast:manifest" => {
                validate_id("broadcastId", &parse::<super::super::broadcast::ManifestPart>(v)?.broadcast_id)?
            }
            "broadcast:status" => {
                let r: super::super::broadcast::StatusReport = parse(v)?;
                validate_id("broadcastId", &r.broadcast_id)?;
                validate_sha256(&r.sha256)?;
            }
            "broadcast:problem" => {
                let r: super::super::broadcast::ProblemReport = parse(v)?;
                validate_id("broadcastId", &r.broadcast_id)?;
                validate_id("linkId", r.link_id.as_str())?;
            }
            other => panic!("no such event in the test: {other}"),
        }
        Ok(())
    }

    /// The payloads' field names, so that random objects often come close to a payload.
    const FIELDS: &[&str] = &[
        "to",
        "files",
        "name",
        "size",
        "mime",
        "part",
        "batch",
        "index",
        "count",
        "totalFiles",
        "totalBytes",
        "transferId",
        "accept",
        "data",
        "status",
        "bytes",
        "sha256",
        "path",
        "durationMs",
        "reason",
        "target",
        "lab",
        "all",
        "peers",
        "text",
        "ttlSecs",
        "role",
        "broadcastId",
        "linkId",
        "kind",
        "piece",
        "state",
        "file",
        "first",
        "hashes",
    ];

    fn any_key() -> impl Strategy<Value = String> {
        prop_oneof![3 => prop::sample::select(FIELDS).prop_map(str::to_string), 1 => any::<String>()]
    }

    /// Any string, weighted towards what the checks look at: id characters, path syntax,
    /// characters JSON escapes, control characters, emoji, lengths around the limits.
    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_-]{0,70}",
            path_like(),
            r#"[\x00-\x1f\x7f"\\é😀 a/]{0,130}"#,
            prop::collection::vec(any::<char>(), 200..300).prop_map(|c| c.into_iter().collect()),
        ]
    }

    /// Relative paths, most of them valid, some with a `..`, `.` or empty segment, a
    /// backslash or a leading `/`.
    fn path_like() -> impl Strategy<Value = String> {
        let segment = prop_oneof![6 => "[a-zé😀 ._-]{1,6}", 1 => Just("..".to_string()), 1 => Just(".".to_string()),
            1 => Just(String::new()), 1 => "[a-z]\\\\[a-z]"];
        (any::<bool>(), prop::collection::vec(segment, 1..5))
            .prop_map(|(rooted, segments)| format!("{}{}", if rooted { "/" } else { "" }, segments.join("/")))
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter_map("JSON has no NaN or infinity", |f| serde_json::Number::from_f64(f).map(Value::Number)),
            any_text().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(any_key(), inner, 0..7)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A name the rules accept, stated without the code under test (serde_json measures it).
    fn name_is_acceptable(name: &str) -> bool {
        !name.is_empty()
            && serde_json::to_string(name).unwrap().len() - 2 <= MAX_NAME_BYTES
            && !name.chars().any(|c| c.is_control() || c == '\\')
            && name.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
    }

    fn id() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_-]{1,64}"
    }

    fn file_name() -> impl Strategy<Value = String> {
        prop::collection::vec(r"[^/\\\p{Cc}]{1,24}".prop_filter("not . or ..", |s| s != "." && s != ".."), 1..4)
            .prop_map(|segments| segments.join("/"))
            .prop_filter("at most 255 bytes of JSON", |n| json_len(n) <= MAX_NAME_BYTES)
    }

    fn files(max_size: u64) -> impl Strategy<Value = Vec<FileMeta>> {
        let mime = prop_oneof![Just(String::new()), "[a-z]{1,12}/[a-z0-9.+-]{1,24}"];
        prop::collection::vec(
            (file_name(), 0..=max_size, mime).prop_map(|(name, size, mime)| FileMeta { name, size, mime }),
            1..=8,
        )
    }

    /// A `part` that fits `files`.
    fn part_for(files: &[FileMeta]) -> impl Strategy<Value = Part> + use<> {
        let (n, bytes) = (files.len() as u64, files.iter().map(|f| f.size).sum::<u64>());
        (id(), 1..=MAX_PARTS).prop_flat_map(move |(batch, count)| {
            let most = u64::from(count) * MAX_FILES_PER_REQUEST as u64;
            (Just(batch), 1..=count, Just(count), n.max(1)..=most, bytes..=u64::MAX).prop_map(
                |(batch, index, count, total_files, total_bytes)| Part {
                    batch,
                    index,
                    count,
                    total_files,
                    total_bytes,
                },
            )
        })
    }

    fn target(with_peers: bool) -> impl Strategy<Value = Target> {
        let lab = r"\PC{1,64}".prop_map(|lab: String| Target::Lab { lab: lab.into() });
        let peers = prop::collection::vec(id(), 1..5)
            .prop_map(|peers| Target::Peers { peers: peers.into_iter().map(PeerId::from).collect() });
        if with_peers {
            prop_oneof![lab, Just(Target::All { all: true }), peers].boxed()
        } else {
            prop_oneof![lab, Just(Target::All { all: true })].boxed()
        }
    }

    /// A valid payload of some event, as a client sends it. With `full`, every optional
    /// field is there, so that the fields of each object are exactly the keys it has.
    fn valid_payload(full: bool) -> impl Strategy<Value = (&'static str, Value)> {
        let some =
            move |v: BoxedStrategy<Value>| if full { v.prop_map(Some).boxed() } else { prop::option::of(v).boxed() };
        let max = max_file_bytes();
        let request = (id(), files(max)).prop_flat_map(move |(to, files)| {
            let part = some(part_for(&files).prop_map(|p| json!(p)).boxed());
            (Just(to), Just(files), part).prop_map(|(to, files, part)| {
                let mut v = json!({ "to": to, "files": files });
                if let Some(part) = part {
                    v["part"] = part;
                }
                ("transfer:request", v)
            })
        });
        let respond = (id(), any::<bool>())
            .prop_map(|(id, accept)| ("transfer:respond", json!({ "transferId": id, "accept": accept })));
        let signal = (id(), id(), any_json())
            .prop_map(|(id, to, data)| ("signal", json!({ "transferId": id, "to": to, "data": data })));
        let finish = (
            id(),
            prop::sample::select(&["completed", "failed", "cancelled"][..]),
            any::<u64>(),
            prop_oneof![Just(String::new()), "[0-9a-f]{64}"],
            some(prop::sample::select(&["direct", "relay"][..]).prop_map(Value::from).boxed()),
            some(any::<u64>().prop_map(Value::from).boxed()),
            r"\PC{0,40}",
        )
            .prop_map(|(id, status, bytes, sha256, path, duration, reason)| {
                let mut v =
                    json!({ "transferId": id, "status": status, "bytes": bytes, "sha256": sha256, "reason": reason });
                if let Some(path) = path {
                    v["path"] = path;
                }
                if let Some(d) = duration {
                    v["durationMs"] = d;
                }
                ("transfer:finish", v)
            });
        let announce = (r"[a-zA-Z0-9]\PC{0,80}", target(false), some(any::<u64>().prop_map(Value::from).boxed()))
            .prop_map(|(text, target, ttl)| {
                let mut v = json!({ "text": text, "target": target });
                if let Some(ttl) = ttl {
                    v["ttlSecs"] = ttl;
                }
                ("announce", v)
            });
        let broadcast = (target(true), files(max))
            .prop_map(|(target, files)| ("broadcast:start", json!({ "target": target, "files": files })));
        prop_oneof![request, respond, signal, finish, announce, broadcast]
    }

    /// A valid payload with one value anywhere in it replaced by any JSON, or one field
    /// taken out: it usually parses, so the checks after parsing see odd values.
    fn near_valid_payload() -> impl Strategy<Value = Value> {
        let value = prop_oneof![edge_value(), edge_value(), any_json()];
        (valid_payload(false), any::<prop::sample::Index>(), value, any::<bool>()).prop_map(
            |((_, mut v), at, value, remove)| {
                let mut nodes = Vec::new();
                every_node(&v, "", &mut nodes);
                let pointer = at.get(&nodes).clone();
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                match v.pointer_mut(parent) {
                    Some(Value::Object(map)) if remove => {
                        map.remove(key);
                    }
                    _ => *v.pointer_mut(&pointer).unwrap() = value,
                }
                v
            },
        )
    }

    /// Values at the edges of what a field takes.
    fn edge_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!("")),
            Just(json!(null)),
            Just(json!(0)),
            Just(json!(-1)),
            Just(json!(u64::MAX)),
            Just(json!(1e300)),
            Just(json!([])),
            Just(json!({})),
            any_text().prop_map(Value::from),
        ]
    }

    /// JSON pointers of every value in `v` but `v` itself.
    fn every_node(v: &Value, at: &str, found: &mut Vec<String>) {
        let children: Vec<(String, &Value)> = match v {
            Value::Object(map) => map.iter().map(|(k, c)| (k.replace('~', "~0").replace('/', "~1"), c)).collect(),
            Value::Array(items) => items.iter().enumerate().map(|(i, c)| (i.to_string(), c)).collect(),
            _ => Vec::new(),
        };
        for (key, child) in children {
            let pointer = format!("{at}/{key}");
            found.push(pointer.clone());
            every_node(child, &pointer, found);
        }
    }

    /// JSON pointers of the objects of a payload whose fields are checked (all but `data`,
    /// which `signal` relays as it is).
    fn checked_objects(v: &Value, at: &str, found: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                found.push(at.to_string());
                for (key, child) in map.iter().filter(|(key, _)| *key != "data") {
                    checked_objects(child, &format!("{at}/{key}"), found);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    checked_objects(child, &format!("{at}/{i}"), found);
                }
            }
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_json_gets_an_answer_and_no_panic(v in prop_oneof![
            1 => any_json(),
            1 => prop::collection::btree_map(any_key(), any_json(), 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
            2 => near_valid_payload(),
        ]) {
            for event in EVENTS {
                if let Err(e) = handle(event, &v) {
                    prop_assert!(["invalid_payload", "file_too_large", "too_many_files"].contains(&e.code()), "{event}: {e:?}");
                    prop_assert!(!e.to_string().trim().is_empty(), "{event}: an empty message");
                }
            }
        }

        #[test]
        fn any_strings_as_names_ids_and_text(
            to in any_text(),
            names in prop::collection::vec(any_text(), 1..4),
            mime in any_text(),
            batch in any_text(),
            text in any_text(),
            sha256 in any_text(),
            size in any::<u64>(),
            max in 0..600usize,
        ) {
            // Each field alone, the rest valid: accepted exactly when the rule allows it.
            let one = |name: &str, mime: &str| json!({ "to": "p", "files": [{ "name": name, "size": 1, "mime": mime }] });
            for name in &names {
                prop_assert_eq!(handle("transfer:request", &one(name, "")).is_ok(), name_is_acceptable(name), "name {:?}", name);
            }
            let mime_ok = serde_json::to_string(&mime).unwrap().len() - 2 <= MAX_MIME_BYTES && !mime.chars().any(char::is_control);
            prop_assert_eq!(handle("transfer:request", &one("a", &mime)).is_ok(), mime_ok, "mime {:?}", mime);
            let valid_id = |s: &str| (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            prop_assert_eq!(handle("transfer:respond", &json!({ "transferId": to, "accept": true })).is_ok(), valid_id(&to));

            // All of them in one request.
            let files: Vec<Value> = names.iter().map(|n| json!({ "name": n, "size": size, "mime": mime })).collect();
            let part = json!({ "batch": batch, "index": 1, "count": 1, "totalFiles": names.len(), "totalBytes": u64::MAX });
            let accepted = handle("transfer:request", &json!({ "to": to, "files": files, "part": part })).is_ok();
            let expected = valid_id(&to) && valid_id(&batch) && names.iter().all(|n| name_is_acceptable(n))
                && mime_ok && size <= max_file_bytes();
            prop_assert_eq!(accepted, expected, "to {:?}, names {:?}, mime {:?}, batch {:?}", to, names, mime, batch);

            let finish = json!({ "transferId": "t", "status": "completed", "sha256": sha256, "reason": text });
            let hex = sha256.is_empty() || (sha256.len() == 64 && sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            prop_assert_eq!(handle("transfer:finish", &finish).is_ok(), hex && text.chars().count() <= 500);

            // JSON bytes as the transport counts them: the same as serde_json's.
            prop_assert_eq!(json_len(&text), serde_json::to_string(&text).unwrap().len() - 2);

            // Display text: no control characters or runs of spaces, at most `max` characters,
            // a prefix of the whole cleaned text.
            let cleaned = clean_text(&text, max);
            let whole = clean_text(&text, usize::MAX);
            prop_assert!(cleaned.chars().count() <= max);
            prop_assert!(whole.starts_with(&cleaned));
            prop_assert!(!cleaned.chars().any(char::is_control));
            prop_assert!(!cleaned.starts_with(char::is_whitespace) && !whole.ends_with(char::is_whitespace));
            prop_assert!(!cleaned.contains("  "));
        }

        #[test]
        fn valid_payloads_come_out_as_they_were_sent((event, v) in valid_payload(false)) {
            prop_assert_eq!(handle(event, &v).map_err(|e| e.to_string()), Ok(()), "{}: {}", event, v);
            match event {
                "transfer:request" => {
                    let r: TransferRequest = parse(&v).unwrap();
                    prop_assert_eq!(json!({ "to": r.to, "files": r.files }), json!({ "to": v["to"], "files": v["files"] }));
                    // `part` goes on to the receiver in `transfer:incoming` as it came.
                    prop_assert_eq!(r.part.map(|p| json!(p)), v.get("part").cloned());
                }
                "transfer:respond" => {
                    let r: TransferRespond = parse(&v).unwrap();
                    prop_assert_eq!(json!({ "transferId": r.transfer_id, "accept": r.accept }), v);
                }
                "signal" => {
                    let r: Signal = parse_text(&v).unwrap();
                    prop_assert_eq!((r.transfer_id.as_str(), r.to.as_str()), (v["transferId"].as_str().unwrap(), v["to"].as_str().unwrap()));
                    // `data` is relayed as the client's own text, byte for byte (the client
                    // sends `v` as `v.to_string()`).
                    prop_assert_eq!(r.data.get(), v["data"].to_string());
                }
                "transfer:finish" => {
                    let r: TransferFinish = parse(&v).unwrap();
                    let mut back = json!({ "transferId": r.transfer_id, "status": r.status.as_str(), "bytes": r.bytes,
                        "sha256": r.sha256, "reason": r.reason });
                    if let Some(path) = r.path {
                        back["path"] = json!(path);
                    }
                    if let Some(d) = r.duration_ms {
                        back["durationMs"] = json!(d);
                    }
                    prop_assert_eq!(back, v);
                }
                "announce" => {
                    let r: Announce = parse(&v).unwrap();
                    prop_assert_eq!(json!(r.target), v["target"].clone());
                    prop_assert_eq!(r.text.as_str(), v["text"].as_str().unwrap());
                    prop_assert_eq!(r.ttl_secs.map(Value::from), v.get("ttlSecs").cloned());
                }
                "broadcast:start" => {
                    let r: BroadcastStart = parse(&v).unwrap();
                    prop_assert_eq!(json!({ "target": r.target, "files": r.files }), v);
                }
                other => prop_assert!(false, "{}", other),
            }
        }

        #[test]
        fn unknown_fields_are_refused_at_any_depth(
            (event, v) in valid_payload(true),
            at in any::<prop::sample::Index>(),
            key in any_key(),
            value in any_json(),
        ) {
            let mut objects = Vec::new();
            checked_objects(&v, "", &mut objects);
            let pointer = at.get(&objects).clone();
            let mut sent = v.clone();
            let object = sent.pointer_mut(&pointer).and_then(Value::as_object_mut).unwrap();
            let mut key = key;
            while object.contains_key(&key) {
                key.push('_');
            }
            object.insert(key.clone(), value);
            let answer = handle(event, &sent);
            prop_assert!(
                matches!(answer, Err(SignalError::Invalid(_))),
                "{} with {:?} added at {:?}: {:?}\n{}", event, key, pointer, answer, sent
            );
        }
    }
}
