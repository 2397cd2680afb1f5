//! Exam windows (README "Exam mode"): a lab may have one window, from–until, in which the
//! server keeps it in exam mode by itself. The store holds it as unix seconds
//! (`labs.exam_from`, `labs.exam_until`, migration 0018); `lab_admin` sets, clears and
//! applies it. This module holds what is plain about it, unit-tested: the window's rules
//! (`Window::new`), the times people type (RFC 3339, or the server's local time) and read
//! (the server's local time, with its offset); and `run`, the task of `serve` that applies
//! the windows.
//!
//! The task looks at the clock every second but reads the store only when it must: when
//! the time of the next window's start or end it knows of has come, when the store's access
//! counter moved (a window set or cleared, by any process, moves it: migration 0018), and
//! at least every 30 s. So a window starts and ends within about a second of its times, and
//! an idle server does not query its store every second. Several servers on one store may
//! run it at once: each switch is conditional (`lab_admin::apply_exam_schedule`), so one of
//! them makes it and the audit log has it once.

use std::time::{Duration, Instant};

use chrono::{DateTime, Local, LocalResult, NaiveDateTime, Offset, TimeZone};

use crate::db;
use crate::lab_admin;
use crate::state::AppState;

/// The longest window: an exam, not a term.
pub const MAX_WINDOW_SECS: i64 = 24 * 3600;
/// How often the task looks at the clock.
const TICK: Duration = Duration::from_secs(1);
/// The windows are read at least this often, whatever else happens.
const READ_AT_LEAST_EVERY: Duration = Duration::from_secs(30);

/// A lab's exam window: exam mode from `from` until `until` (unix seconds, `until`
/// excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: i64,
    pub until: i64,
}

impl Window {
    /// A window to set at `now`: it ends after it starts, its end is still to come, and it
    /// lasts at most 24 hours. Its start may have passed (exam mode then starts at once).
    pub fn new(from: i64, until: i64, now: i64) -> Result<Window, String> {
        if until <= from {
            return Err(format!(
                "the exam window must end after it starts ({} is not after {})",
                when(until),
                when(from)
            ));
        }
        if until <= now {
            return Err(format!("the exam window's end ({}) has passed already", when(until)));
        }
        if until - from > MAX_WINDOW_SECS {
            return Err(format!("an exam window lasts at most 24 hours; this one lasts {}", length(until - from)));
        }
        Ok(Window { from, until })
    }

    /// Its start has come (it may have ended too).
    pub fn started(&self, now: i64) -> bool {
        self.from <= now
    }

    /// Its end has come: exam mode stops and the window goes.
    pub fn ended(&self, now: i64) -> bool {
        self.until <= now
    }

    /// `now` is in it.
    pub fn running(&self, now: i64) -> bool {
        self.started(now) && !self.ended(now)
    }

    pub fn pair(self) -> (i64, i64) {
        (self.from, self.until)
    }

    pub fn of(pair: (i64, i64)) -> Window {
        Window { from: pair.0, until: pair.1 }
    }
}

/// Seconds as `1 h 30 min`, `25 h`, `45 min` (a started minute counts).
fn length(secs: i64) -> String {
    let minutes = (secs.max(0) + 59) / 60;
    let (hours, minutes) = (minutes / 60, minutes % 60);
    match (hours, minutes) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// How a time without an offset may be written (the server's local time).
const LOCAL_FORMATS: [&str; 4] = ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"];

/// A time as people type it, as unix seconds: RFC 3339 (`2026-12-03T10:15:00+01:00`, or
/// with `Z`), or `2026-12-03 10:15` (also with a `T`, or with seconds) in the server's
/// local time zone. A local time that the clocks skip or pass twice (daylight saving) is
/// refused with what to give instead.
pub fn parse_time(text: &str) -> Result<i64, String> {
    parse_time_in(text, &Local)
}

/// `parse_time` in `zone`.
pub fn parse_time_in<Tz: TimeZone>(text: &str, zone: &Tz) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(at.timestamp());
    }
    let Some(naive) = LOCAL_FORMATS.iter().find_map(|f| NaiveDateTime::parse_from_str(t, f).ok()) else {
        return Err(format!(
            "{t:?} is not a time: give it as 2026-12-03 10:15 (the server's local time) or 2026-12-03T10:15:00+01:00 (RFC 3339)"
        ));
    };
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(at) => Ok(at.timestamp()),
        LocalResult::Ambiguous(a, b) => {
            let (first, second) = if a.timestamp() <= b.timestamp() { (a, b) } else { (b, a) };
            Err(format!(
                "{t} happens twice in the server's time zone (the clocks go back then): give it with its offset, {} or {}",
                first.fixed_offset().to_rfc3339(),
                second.fixed_offset().to_rfc3339()
            ))
        }
        LocalResult::None => {
            Err(format!("{t} does not exist in the server's time zone (the clocks go forward then): give another time"))
        }
    }
}

/// `unix` in `zone` as its date, its time of day and its offset: ("2026-12-03", "10:15",
/// "UTC+01:00").
fn parts_in<Tz: TimeZone>(unix: i64, zone: &Tz) -> (String, String, String) {
    match zone.timestamp_opt(unix, 0) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => {
            let local = at.naive_local();
            let offset = offset_words(at.offset().fix().local_minus_utc());
            (local.format("%Y-%m-%d").to_string(), local.format("%H:%M").to_string(), offset)
        }
        LocalResult::None => (unix.to_string(), String::new(), String::new()),
    }
}

/// An offset from UTC in seconds as `UTC+01:00` (`UTC` for none).
fn offset_words(secs: i32) -> String {
    if secs == 0 {
        return "UTC".to_string();
    }
    let sign = if secs < 0 { '-' } else { '+' };
    let secs = secs.unsigned_abs();
    format!("UTC{sign}{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

/// A window in `zone`: `2026-12-03 10:15 to 12:15 UTC+01:00`; the end's date when it is
/// another day, each offset when daylight saving changes in between.
pub fn describe_in<Tz: TimeZone>(w: Window, zone: &Tz) -> String {
    let (from_date, from_time, from_offset) = parts_in(w.from, zone);
    let (until_date, until_time, until_offset) = parts_in(w.until, zone);
    if from_offset != until_offset {
        format!("{from_date} {from_time} {from_offset} to {until_date} {until_time} {until_offset}")
    } else if from_date == until_date {
        format!("{from_date} {from_time} to {until_time} {from_offset}")
    } else {
        format!("{from_date} {from_time} to {until_date} {until_time} {from_offset}")
    }
}

/// A window in the server's local time (`describe_in`).
pub fn describe(w: Window) -> String {
    describe_in(w, &Local)
}

/// A time in the server's local time: `2026-12-03 10:15 UTC+01:00`.
pub fn when(unix: i64) -> String {
    let (date, time, offset) = parts_in(unix, &Local);
    format!("{date} {time} {offset}")
}

/// A time as a `datetime-local` input's value in the server's local time: `2026-12-03T10:15`.
pub fn input_value(unix: i64) -> String {
    let (date, time, _) = parts_in(unix, &Local);
    format!("{date}T{time}")
}

/// The server's offset from UTC now, in words (`UTC+01:00`): what a local time typed now means.
pub fn zone_now() -> String {
    parts_in(db::now(), &Local).2
}

/// Applies the exam windows for as long as the server runs (see the module's header).
pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut changes = state.access_changes.subscribe();
    // When the next known start or end comes (unix seconds); `None`: no window known.
    let mut due: Option<i64> = Some(i64::MIN);
    let mut last_read = Instant::now();
    let mut failing = false;
    loop {
        tick.tick().await;
        let now = db::now();
        let changed = changes.has_changed().unwrap_or(false);
        if !changed && due.is_none_or(|t| now < t) && last_read.elapsed() < READ_AT_LEAST_EVERY {
            continue;
        }
        // Before the read: a change during it is seen at the next tick.
        changes.mark_unchanged();
        last_read = Instant::now();
        match lab_admin::apply_exam_schedule(&state.db, now).await {
            Ok(step) => {
                for (lab, on) in &step.switched {
                    let what =
                        if *on { "exam window started: exam mode on" } else { "exam window ended: exam mode off" };
                    tracing::info!(lab = lab.as_str(), "{what}");
                }
                due = step.next;
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot apply the exam windows; trying again every second");
                }
                failing = true;
                due = Some(i64::MIN);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{FixedOffset, Local, TimeZone};

    use super::*;

    const NOW: i64 = 1_796_292_000; // 2026-12-03 10:00 UTC

    #[test]
    fn a_window_ends_after_it_starts_in_the_future_within_a_day() {
        assert_eq!(Window::new(NOW + 60, NOW + 3600, NOW), Ok(Window { from: NOW + 60, until: NOW + 3600 }));
        assert!(Window::new(NOW - 600, NOW + 60, NOW).is_ok(), "a window that started already: exam mode starts now");
        assert!(Window::new(NOW, NOW + MAX_WINDOW_SECS, NOW).is_ok(), "24 hours exactly");
        let refused = |from, until| Window::new(from, until, NOW).unwrap_err();
        assert!(refused(NOW + 60, NOW + 60).starts_with("the exam window must end after it starts"));
        assert!(refused(NOW + 60, NOW + 30).starts_with("the exam window must end after it starts"));
        assert!(refused(NOW - 600, NOW).starts_with("the exam window's end ("), "ends now: passed");
        assert!(refused(NOW - 600, NOW).ends_with(") has passed already"));
        assert_eq!(
            refused(NOW, NOW + MAX_WINDOW_SECS + 1800),
            "an exam window lasts at most 24 hours; this one lasts 24 h 30 min"
        );
        let w = Window { from: NOW, until: NOW + 60 };
        assert!(w.started(NOW) && w.running(NOW) && !w.ended(NOW));
        assert!(!w.started(NOW - 1) && !w.running(NOW - 1));
        assert!(w.ended(NOW + 60) && !w.running(NOW + 60));
        assert_eq!(length(3600), "1 h");
        assert_eq!(length(5400), "1 h 30 min");
        assert_eq!(length(61), "2 min");
        assert_eq!(length(MAX_WINDOW_SECS + 1), "24 h 1 min");
        assert_eq!(length(3599), "1 h");
    }

    #[test]
    fn times_are_read_as_rfc_3339_or_as_local_time() {
        let cet = FixedOffset::east_opt(3600).unwrap();
        let at = 1_796_289_300; // 2026-12-03 09:15 UTC, 10:15 at +01:00
        for text in [
            "2026-12-03T10:15:00+01:00",
            "2026-12-03T09:15:00Z",
            " 2026-12-03 10:15 ",
            "2026-12-03T10:15",
            "2026-12-03 10:15:00",
        ] {
            assert_eq!(parse_time_in(text, &cet), Ok(at), "{text}");
        }
        assert_eq!(parse_time_in("2026-12-03T10:15:00+01:00", &Local), Ok(at), "an offset wins over the zone");
        for bad in ["", "tomorrow", "2026-12-03", "10:15", "2026-13-03 10:15", "2026-12-03 25:00", "03.12.2026 10:15"] {
            let e = parse_time_in(bad, &cet).unwrap_err();
            assert!(e.contains("is not a time: give it as 2026-12-03 10:15"), "{bad:?}: {e}");
        }
    }

    /// A zone whose clocks go forward at 02:00 and back at 03:00 on given days, like
    /// central Europe's (UTC+1 in winter, UTC+2 in summer).
    #[test]
    fn local_times_the_clocks_skip_or_pass_twice_are_refused_with_what_to_give() {
        // A fixed offset has no such night; tests/cli.rs checks a real zone (TZ) end to end.
        #[derive(Clone, Copy, Debug)]
        struct Central;
        impl TimeZone for Central {
            type Offset = FixedOffset;
            fn from_offset(_: &FixedOffset) -> Central {
                Central
            }
            fn offset_from_local_date(&self, _: &chrono::NaiveDate) -> LocalResult<FixedOffset> {
                LocalResult::Single(FixedOffset::east_opt(3600).unwrap())
            }
            fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<FixedOffset> {
                let (winter, summer) = (FixedOffset::east_opt(3600).unwrap(), FixedOffset::east_opt(7200).unwrap());
                match local.format("%m-%d %H").to_string().as_str() {
                    "03-29 02" => LocalResult::None,
                    "10-25 02" => LocalResult::Ambiguous(winter, summer),
                    _ => LocalResult::Single(winter),
                }
            }
            fn offset_from_utc_date(&self, _: &chrono::NaiveDate) -> FixedOffset {
                FixedOffset::east_opt(3600).unwrap()
            }
            fn offset_from_utc_datetime(&self, _: &NaiveDateTime) -> FixedOffset {
                FixedOffset::east_opt(3600).unwrap()
            }
        }
        assert_eq!(
            parse_time_in("2026-10-25 02:30", &Central).unwrap_err(),
            "2026-10-25 02:30 happens twice in the server's time zone (the clocks go back then): give it with its \
             offset, 2026-10-25T02:30:00+02:00 or 2026-10-25T02:30:00+01:00"
        );
        assert!(
            parse_time_in("2026-03-29 02:30", &Central)
                .unwrap_err()
                .contains("does not exist in the server's time zone")
        );
        assert!(parse_time_in("2026-03-29 03:30", &Central).is_ok());
    }

    #[test]
    fn windows_are_shown_in_local_time_with_the_offset() {
        let cet = FixedOffset::east_opt(3600).unwrap();
        let at = |h: u32, m: u32| cet.with_ymd_and_hms(2026, 12, 3, h, m, 0).unwrap().timestamp();
        assert_eq!(
            describe_in(Window { from: at(10, 15), until: at(12, 15) }, &cet),
            "2026-12-03 10:15 to 12:15 UTC+01:00"
        );
        let late = Window { from: at(22, 0), until: at(22, 0) + 4 * 3600 };
        assert_eq!(describe_in(late, &cet), "2026-12-03 22:00 to 2026-12-04 02:00 UTC+01:00");
        let utc = chrono::Utc;
        assert_eq!(describe_in(Window { from: at(10, 15), until: at(11, 0) }, &utc), "2026-12-03 09:15 to 10:00 UTC");
        assert_eq!(offset_words(-(3 * 3600 + 30 * 60)), "UTC-03:30");
    }
}
