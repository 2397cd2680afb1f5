//! Seat names, plain and unit-tested: the rules of a lab's seat map (an address in one of
//! the lab's ranges, one name per address, names cleaned, short and distinct within the
//! lab), the `address,name` lines it is imported from, and the name a device is shown
//! under.
//!
//! The name shown for a device (`Peer.device`), first that applies:
//! 1. the seat name of its address, when the lab's ranges place the address in that lab;
//! 2. the name its user gave that computer (the web client's "This computer's name", sent as
//!    `device` when connecting);
//! 3. a name from the address's last part: `PC .14` for 10.0.2.14, `PC :a3f` for an IPv6
//!    address ending in `:a3f` (the web client sends no name while its user kept the
//!    browser's own, "Chrome on Linux", which tells no two lab PCs apart).
//!
//! `lab_admin` applies these rules to every change, whoever makes it; `signaling::access`
//! names devices with `SeatMap` and `shown_name`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::db::labs::LabRange;
use crate::db::seats::Seat;
use crate::labs::LabName;
use crate::text::clean_text;

/// Longest seat name, in characters (as long as a device name may be).
pub const MAX_NAME_CHARS: usize = 64;
/// Most lines in one import: a /20 of PCs, more than any lab has.
pub const MAX_IMPORT_ROWS: usize = 4096;

/// A seat name as typed, cleaned (`text::clean_text`): 1 to 64 characters.
pub fn clean_name(raw: &str) -> Result<String, String> {
    let name = clean_text(raw, usize::MAX);
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("a seat name must have 1 to {MAX_NAME_CHARS} printable characters"));
    }
    Ok(name)
}

/// One IP address as typed (IPv4-mapped IPv6 addresses become IPv4).
pub fn parse_address(raw: &str) -> Result<IpAddr, String> {
    let raw = raw.trim();
    raw.parse::<IpAddr>().map(|a| a.to_canonical()).map_err(|_| format!("{raw:?} is not an address like 10.0.2.14"))
}

/// The lab's ranges, parsed (stored ones are valid).
fn ranges_of(lab: &str, ranges: &[LabRange]) -> Vec<IpNet> {
    ranges.iter().filter(|r| r.lab == lab).filter_map(|r| r.cidr.parse::<IpNet>().ok()).collect()
}

/// Checks that `addr` lies in one of lab `lab`'s ranges.
pub fn check_in_lab(addr: IpAddr, lab: &str, ranges: &[LabRange]) -> Result<(), String> {
    let mine = ranges_of(lab, ranges);
    if mine.iter().any(|n| n.contains(&addr)) {
        return Ok(());
    }
    if mine.is_empty() {
        return Err(format!("{addr} is not in lab {lab:?}, which has no address ranges"));
    }
    let list: Vec<String> = mine.iter().map(ToString::to_string).collect();
    Err(format!("{addr} is not in the ranges of lab {lab:?} ({})", list.join(", ")))
}

/// The name of a device whose address has no seat and whose user gave it none.
pub fn fallback_name(addr: IpAddr) -> String {
    match addr.to_canonical() {
        IpAddr::V4(v4) => format!("PC .{}", v4.octets()[3]),
        IpAddr::V6(v6) => format!("PC :{:x}", v6.segments()[7]),
    }
}

/// The name a device is shown under: its seat's, else its user's, else from its address.
pub fn shown_name(seat: Option<&str>, given: Option<&str>, addr: IpAddr) -> String {
    seat.or(given).map(str::to_string).unwrap_or_else(|| fallback_name(addr))
}

/// Every lab's seats, for naming devices.
#[derive(Debug, Default)]
pub struct SeatMap {
    seats: HashMap<(LabName, IpAddr), String>,
}

impl SeatMap {
    /// Rows whose address does not parse are skipped (they are checked when stored).
    pub fn new(rows: &[Seat]) -> Self {
        let seats = rows
            .iter()
            .filter_map(|s| {
                let addr = s.address.parse::<IpAddr>().ok()?.to_canonical();
                Some(((LabName::from(s.lab.as_str()), addr), s.name.clone()))
            })
            .collect();
        SeatMap { seats }
    }

    /// The seat name of `addr` in `lab` (the lab its address places it in).
    pub fn name(&self, lab: &LabName, addr: IpAddr) -> Option<&str> {
        self.seats.get(&(lab.clone(), addr.to_canonical())).map(String::as_str)
    }
}

/// One `address,name` line as read: its line number (1-based) and its two cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub line: usize,
    pub address: String,
    pub name: String,
}

/// Reads `address,name` lines (each line is one CSV record: a name that holds a comma is
/// quoted). Empty lines and lines starting with `#` are skipped, and so is a first line
/// `address,name`. Returns the lines, or every line that is not two cells, with its number.
pub fn read_lines(text: &str) -> Result<Vec<Line>, Vec<String>> {
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    let mut first = true;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(raw.as_bytes());
        let record = match reader.records().next() {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                problems.push(format!("line {line}: not readable as CSV ({e})"));
                continue;
            }
            None => continue,
        };
        let cells: Vec<&str> = record.iter().collect();
        if std::mem::take(&mut first) && cells.first().is_some_and(|c| c.eq_ignore_ascii_case("address")) {
            continue;
        }
        match cells.as_slice() {
            [address, name] => lines.push(Line { line, address: address.to_string(), name: name.to_string() }),
            [_] => problems.push(format!("line {line}: expected an address and a name, separated by a comma")),
            _ => problems.push(format!(
                "line {line}: expected two cells, an address and a name (put a name that holds a comma in quotes)"
            )),
        }
        if lines.len() + problems.len() > MAX_IMPORT_ROWS {
            return Err(vec![format!("at most {MAX_IMPORT_ROWS} seats at once")]);
        }
    }
    if problems.is_empty() { Ok(lines) } else { Err(problems) }
}

/// Whether seats listed for a lab are added to its map or become its whole map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Add the listed seats and rename those already there; keep the others.
    Merge,
    /// The listed seats become the lab's whole map.
    Replace,
}

/// A lab's seat map after a change: (address, name) by address.
pub type Map = Vec<(String, String)>;

/// Checks seats listed for lab `lab` against its ranges and its current map (`current`,
/// (address, name)); returns the lab's map after the change, ordered by address, or every
/// problem as (line, what) — nothing may be applied then.
pub fn plan(
    lab: &str,
    ranges: &[LabRange],
    current: &[(String, String)],
    listed: &[Line],
    mode: Mode,
) -> Result<Map, Vec<(usize, String)>> {
    let mut problems = Vec::new();
    // address -> (name, line it came from; 0 for a seat kept from the current map)
    let mut result: HashMap<IpAddr, (String, usize)> = HashMap::new();
    if mode == Mode::Merge {
        for (address, name) in current {
            if let Ok(addr) = address.parse::<IpAddr>() {
                result.insert(addr.to_canonical(), (name.clone(), 0));
            }
        }
    }
    let mut given: HashMap<IpAddr, usize> = HashMap::new();
    for l in listed {
        let addr = match parse_address(&l.address) {
            Ok(a) => a,
            Err(e) => {
                problems.push((l.line, e));
                continue;
            }
        };
        if let Err(e) = check_in_lab(addr, lab, ranges) {
            problems.push((l.line, e));
        }
        let name = match clean_name(&l.name) {
            Ok(n) => n,
            Err(e) => {
                problems.push((l.line, e));
                continue;
            }
        };
        if let Some(first) = given.insert(addr, l.line) {
            problems.push((l.line, format!("{addr} is listed twice (also on line {first})")));
            continue;
        }
        result.insert(addr, (name, l.line));
    }
    // Names within the lab differ (whatever their case).
    let mut by_name: HashMap<String, Vec<(IpAddr, usize)>> = HashMap::new();
    for (addr, (name, line)) in &result {
        by_name.entry(name.to_lowercase()).or_default().push((*addr, *line));
    }
    let mut reported = HashSet::new();
    for holders in by_name.values().filter(|h| h.len() > 1) {
        let mut holders = holders.clone();
        holders.sort();
        for (addr, line) in holders.iter().filter(|(_, line)| *line > 0) {
            let (other, other_line) = holders.iter().find(|(a, _)| a != addr).copied().unwrap_or((*addr, 0));
            let name = result.get(addr).map(|(n, _)| n.as_str()).unwrap_or("");
            let also = if other_line > 0 { format!(" (line {other_line})") } else { String::new() };
            if reported.insert(*addr) {
                problems.push((*line, format!("{name:?} also names {other}{also}; each seat needs its own name")));
            }
        }
    }
    if !problems.is_empty() {
        problems.sort();
        return Err(problems);
    }
    let mut map: Vec<(IpAddr, String)> = result.into_iter().map(|(a, (n, _))| (a, n)).collect();
    map.sort();
    Ok(map.into_iter().map(|(a, n)| (a.to_string(), n)).collect())
}

/// A lab's seats ordered by address (numerically: .9 before .10).
pub fn sorted(seats: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut keyed: Vec<(Option<IpAddr>, (String, String))> =
        seats.into_iter().map(|s| (s.0.parse::<IpAddr>().ok(), s)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, s)| s).collect()
}

/// Whether a stored seat still lies in its lab's ranges (ranges may have moved since).
pub fn in_use(address: &str, lab: &str, ranges: &[LabRange]) -> bool {
    address.parse::<IpAddr>().is_ok_and(|a| check_in_lab(a, lab, ranges).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges() -> Vec<LabRange> {
        vec![
            LabRange { lab: "Lab 2".into(), cidr: "10.0.2.0/24".into() },
            LabRange { lab: "Lab 3".into(), cidr: "10.0.3.0/24".into() },
        ]
    }

    fn line(line: usize, address: &str, name: &str) -> Line {
        Line { line, address: address.into(), name: name.into() }
    }

    fn pairs(v: &[(&str, &str)]) -> Map {
        v.iter().map(|(a, n)| (a.to_string(), n.to_string())).collect()
    }

    #[test]
    fn names_are_cleaned_and_limited() {
        assert_eq!(clean_name("  PC\t14\n").unwrap(), "PC 14");
        assert_eq!(clean_name(&"é".repeat(64)).unwrap().chars().count(), 64);
        for bad in ["", " \u{7} ", &"x".repeat(65)] {
            assert!(clean_name(bad).unwrap_err().contains("1 to 64"), "{bad:?}");
        }
    }

    #[test]
    fn addresses_must_be_addresses_in_the_lab() {
        assert_eq!(parse_address(" ::ffff:10.0.2.14 ").unwrap(), "10.0.2.14".parse::<IpAddr>().unwrap());
        for bad in ["10.0.2", "10.0.2.0/24", "PC-14", ""] {
            assert!(parse_address(bad).unwrap_err().contains("not an address"), "{bad:?}");
        }
        let r = ranges();
        assert!(check_in_lab("10.0.2.14".parse().unwrap(), "Lab 2", &r).is_ok());
        let e = check_in_lab("10.0.3.14".parse().unwrap(), "Lab 2", &r).unwrap_err();
        assert!(e.contains("not in the ranges of lab \"Lab 2\" (10.0.2.0/24)"), "{e}");
        let e = check_in_lab("10.0.3.14".parse().unwrap(), "Lab 9", &r).unwrap_err();
        assert!(e.contains("no address ranges"), "{e}");
        assert!(in_use("10.0.2.14", "Lab 2", &r) && !in_use("10.0.2.14", "Lab 3", &r) && !in_use("x", "Lab 2", &r));
    }

    #[test]
    fn a_seat_beats_the_users_name_which_beats_the_address() {
        let addr: IpAddr = "10.0.2.14".parse().unwrap();
        assert_eq!(shown_name(Some("PC-14"), Some("Kim's laptop"), addr), "PC-14");
        assert_eq!(shown_name(None, Some("Kim's laptop"), addr), "Kim's laptop");
        assert_eq!(shown_name(None, None, addr), "PC .14");
        assert_eq!(fallback_name("::ffff:10.0.2.7".parse().unwrap()), "PC .7");
        assert_eq!(fallback_name("fd00::1:a3f".parse().unwrap()), "PC :a3f");
    }

    #[test]
    fn the_seat_map_names_an_address_only_in_its_lab() {
        let map = SeatMap::new(&[
            Seat { lab: "Lab 2".into(), address: "10.0.2.14".into(), name: "PC-14".into() },
            Seat { lab: "Lab 2".into(), address: "garbage".into(), name: "X".into() },
        ]);
        let addr: IpAddr = "::ffff:10.0.2.14".parse().unwrap();
        assert_eq!(map.name(&"Lab 2".into(), addr), Some("PC-14"));
        assert_eq!(map.name(&"Lab 3".into(), addr), None);
        assert_eq!(map.name(&"Lab 2".into(), "10.0.2.15".parse().unwrap()), None);
    }

    #[test]
    fn lines_are_csv_with_an_optional_header_comments_and_blank_lines() {
        let text = "address,name\n10.0.2.14, PC-14\n\n# the back row\n10.0.2.15,\"PC 15, back\"\n";
        assert_eq!(read_lines(text).unwrap(), vec![line(2, "10.0.2.14", "PC-14"), line(5, "10.0.2.15", "PC 15, back")]);
        let problems = read_lines("10.0.2.14,PC-14\n10.0.2.15\n10.0.2.16,PC,16\n").unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("line 2: expected an address and a name"), "{problems:?}");
        assert!(problems[1].starts_with("line 3: expected two cells"), "{problems:?}");
        let many = "10.0.2.1,x\n".repeat(MAX_IMPORT_ROWS + 1);
        assert!(read_lines(&many).unwrap_err()[0].contains("at most"));
    }

    #[test]
    fn a_plan_reports_every_bad_line_and_keeps_names_distinct() {
        let r = ranges();
        let current = pairs(&[("10.0.2.14", "PC-14"), ("10.0.2.20", "PC-20")]);
        let listed = [line(1, "10.0.2.15", "PC-15"), line(2, "10.0.2.14", "  PC-14b ")];
        assert_eq!(
            plan("Lab 2", &r, &current, &listed, Mode::Merge).unwrap(),
            pairs(&[("10.0.2.14", "PC-14b"), ("10.0.2.15", "PC-15"), ("10.0.2.20", "PC-20")])
        );
        assert_eq!(
            plan("Lab 2", &r, &current, &listed, Mode::Replace).unwrap(),
            pairs(&[("10.0.2.14", "PC-14b"), ("10.0.2.15", "PC-15")])
        );
        // Numeric order: .9 before .10.
        let listed = [line(1, "10.0.2.10", "ten"), line(2, "10.0.2.9", "nine")];
        assert_eq!(plan("Lab 2", &r, &[], &listed, Mode::Replace).unwrap()[0].0, "10.0.2.9");

        let bad = [
            line(1, "10.0.2.16", "PC-16"),
            line(2, "10.0.3.1", "elsewhere"),
            line(3, "nonsense", "x"),
            line(4, "10.0.2.17", ""),
            line(5, "10.0.2.16", "again"),
            line(6, "10.0.2.18", "pc-20"),
        ];
        let problems = plan("Lab 2", &r, &current, &bad, Mode::Merge).unwrap_err();
        let lines: Vec<usize> = problems.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6], "{problems:?}");
        assert!(problems[0].1.contains("not in the ranges"), "{problems:?}");
        assert!(problems[3].1.contains("listed twice (also on line 1)"), "{problems:?}");
        assert!(problems[4].1.contains("also names 10.0.2.20"), "{problems:?}");
        // Replacing, the current PC-20 goes, so its name is free.
        assert!(plan("Lab 2", &r, &current, &[line(1, "10.0.2.18", "PC-20")], Mode::Replace).is_ok());
        // Two new lines with one name: both are reported.
        let twice = [line(1, "10.0.2.1", "A"), line(2, "10.0.2.2", "a")];
        let problems = plan("Lab 2", &r, &[], &twice, Mode::Replace).unwrap_err();
        assert_eq!(problems.iter().map(|(l, _)| *l).collect::<Vec<_>>(), vec![1, 2], "{problems:?}");
        assert!(problems[0].1.contains("(line 2)"), "{problems:?}");
    }
}
