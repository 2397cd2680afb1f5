//! What templates display: preformatted strings, so templates hold no logic beyond loops.

/// Fields of the shared page layout (navigation, CSRF token for the logout form).
pub struct Layout {
    pub active: &'static str,
    pub display_name: String,
    pub role: String,
    pub csrf: String,
    pub manage_users: bool,
    pub view_audit: bool,
    /// Everyone's transfers and broadcasts (`transfers.view_all` or `users.manage`).
    pub view_transfers: bool,
}

/// Unix seconds as `2026-11-25 14:03` (UTC); empty for none.
pub fn when(unix: Option<i64>) -> String {
    let Some(unix) = unix else { return String::new() };
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Bytes as a short human figure (1.5 GB).
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n.max(0) as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[unit]) }
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `YYYY-MM-DD` (a date input's value) as unix seconds at 00:00 UTC; `end` gives 23:59:59.
pub fn parse_date(s: &str, end: bool) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(s.trim(), &format).ok()?;
    let t = date.midnight().assume_utc().unix_timestamp();
    Some(if end { t + 86_399 } else { t })
}

/// A notice code from a redirect, as a sentence; unknown codes show nothing.
pub fn notice(code: Option<&str>) -> String {
    code.map(|c| c.chars().filter(|ch| !ch.is_control()).take(200).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(when(Some(0)), "1970-01-01 00:00");
        assert_eq!(when(None), "");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_500_000_000), "1.5 GB");
        assert_eq!(url_encode("/admin/users?q=a b&x"), "/admin/users%3Fq%3Da%20b%26x");
        assert_eq!(parse_date("2026-11-25", false), Some(1_795_564_800));
        assert_eq!(parse_date("2026-11-25", true), Some(1_795_564_800 + 86_399));
        assert_eq!(parse_date("25/11/2026", false), None);
    }
}
