//! The rules of labs, plain and unit-tested: what a lab may be named, which address ranges a
//! lab may have (valid, not overlapping another lab's), and which lab an address is in (the
//! lab whose range holds it; the most specific range wins).
//!
//! Below everything that handles labs: signaling places devices with `LabMatcher` (what
//! happens to a device outside every range, picking a lab or "Other", is decided in
//! `signaling::access::place`; behind a trusted reverse proxy the address comes from
//! `X-Forwarded-For`, `crate::net`), and `lab_admin` applies the name and range rules to
//! every change, whoever makes it.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::db::labs::LabRange;

/// The group of devices that match no lab.
pub const OTHER: &str = "Other";

/// A lab's name, or `OTHER`: where a device is, whose devices see each other, what an
/// instructor is responsible for. Its text on the wire (serde-transparent).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(transparent)]
pub struct LabName(String);

impl LabName {
    /// The group of devices that match no lab.
    pub fn other() -> LabName {
        LabName(OTHER.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for LabName {
    fn from(s: String) -> Self {
        LabName(s)
    }
}

impl From<&str> for LabName {
    fn from(s: &str) -> Self {
        LabName(s.to_string())
    }
}

impl fmt::Display for LabName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a lab's students see (README "Lab policies"), as the lab chose it; a lab without a
/// choice of its own follows the setting `presence.scope` (`lab` is `Own`, `all` is `All`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// The lab's students see only their own lab's devices, and students of other labs do
    /// not see them.
    Own,
    /// The lab's students also see the other labs, except the students of labs kept to
    /// themselves.
    All,
}

impl Visibility {
    /// The word stored and typed: `own` or `all`.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Own => "own",
            Visibility::All => "all",
        }
    }

    /// A stored word (anything else reads as no choice).
    pub fn from_stored(word: &str) -> Option<Visibility> {
        match word {
            "own" => Some(Visibility::Own),
            "all" => Some(Visibility::All),
            _ => None,
        }
    }

    /// A lab's choice as typed on the command line or posted by the portal: `own`, `all`,
    /// or `default` (no choice: follow `presence.scope`).
    pub fn parse_choice(word: &str) -> Result<Option<Visibility>, String> {
        match word {
            "default" => Ok(None),
            w => Visibility::from_stored(w)
                .map(Some)
                .ok_or_else(|| format!("visibility is \"own\", \"all\" or \"default\", not {w:?}")),
        }
    }

    /// What applies to a lab: its own choice, else the setting `presence.scope`.
    pub fn effective(choice: Option<Visibility>, scope_all: bool) -> Visibility {
        choice.unwrap_or(if scope_all { Visibility::All } else { Visibility::Own })
    }
}

/// Longest lab name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Checks a lab name (already trimmed): 1 to 64 printable characters, and not "Other" in
/// any case, which names the devices outside every lab.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(format!("a lab name must have 1 to {MAX_NAME_CHARS} printable characters"));
    }
    if name.eq_ignore_ascii_case(OTHER) {
        return Err(format!("{name:?} is reserved for devices outside every lab"));
    }
    Ok(())
}

pub struct LabMatcher {
    ranges: Vec<(IpNet, LabName)>,
}

impl LabMatcher {
    /// Ranges that do not parse are skipped (they are validated when stored).
    pub fn new(rows: &[LabRange]) -> Self {
        let mut ranges: Vec<(IpNet, LabName)> = rows
            .iter()
            .filter_map(|r| r.cidr.parse::<IpNet>().ok().map(|n| (n.trunc(), LabName::from(r.lab.as_str()))))
            .collect();
        ranges.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        Self { ranges }
    }

    pub fn lab_of(&self, addr: IpAddr) -> Option<&LabName> {
        let addr = addr.to_canonical();
        self.ranges.iter().find(|(net, _)| net.contains(&addr)).map(|(_, lab)| lab)
    }
}

/// Checks new ranges for a lab: valid CIDRs, not overlapping each other or another lab's.
/// Returns them in canonical form (`10.0.2.7/24` becomes `10.0.2.0/24`).
pub fn validate_ranges(lab: &str, cidrs: &[String], existing: &[LabRange]) -> Result<Vec<String>, String> {
    let mut parsed: Vec<IpNet> = Vec::new();
    for c in cidrs {
        let net = c.trim().parse::<IpNet>().map_err(|_| format!("{c:?} is not an address range like 10.0.2.0/24"))?;
        let net = net.trunc();
        if let Some(other) = parsed.iter().find(|n| n.contains(&net) || net.contains(*n)) {
            return Err(format!("{net} overlaps {other}, given for the same lab"));
        }
        for r in existing.iter().filter(|r| r.lab != lab) {
            if let Ok(theirs) = r.cidr.parse::<IpNet>()
                && (theirs.contains(&net) || net.contains(&theirs))
            {
                return Err(format!("{net} overlaps {theirs} of lab {:?}", r.lab));
            }
        }
        parsed.push(net);
    }
    Ok(parsed.iter().map(|n| n.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_labs_own_visibility_wins_over_the_setting_and_bad_words_are_refused() {
        assert_eq!(Visibility::parse_choice("own"), Ok(Some(Visibility::Own)));
        assert_eq!(Visibility::parse_choice("all"), Ok(Some(Visibility::All)));
        assert_eq!(Visibility::parse_choice("default"), Ok(None));
        for bad in ["", "Own", "lab", "none"] {
            assert!(Visibility::parse_choice(bad).unwrap_err().contains("\"own\", \"all\" or \"default\""), "{bad:?}");
        }
        assert_eq!(Visibility::effective(None, true), Visibility::All);
        assert_eq!(Visibility::effective(None, false), Visibility::Own);
        assert_eq!(Visibility::effective(Some(Visibility::Own), true), Visibility::Own);
        assert_eq!(Visibility::effective(Some(Visibility::All), false), Visibility::All);
        assert_eq!(Visibility::from_stored("bogus"), None);
    }

    fn range(lab: &str, cidr: &str) -> LabRange {
        LabRange { lab: lab.into(), cidr: cidr.into() }
    }

    #[test]
    fn most_specific_range_wins_and_mapped_addresses_match() {
        let m = LabMatcher::new(&[range("Building", "10.0.0.0/16"), range("Lab 2", "10.0.2.0/24"), range("Bad", "x")]);
        let lab_of = |a: &str| m.lab_of(a.parse().unwrap()).map(LabName::as_str);
        assert_eq!(lab_of("10.0.2.7"), Some("Lab 2"));
        assert_eq!(lab_of("10.0.3.7"), Some("Building"));
        assert_eq!(lab_of("::ffff:10.0.2.9"), Some("Lab 2"));
        assert_eq!(lab_of("192.168.1.1"), None);
    }

    #[test]
    fn names_are_printable_short_and_not_other() {
        assert!(check_name("Lab 2.01").is_ok());
        assert!(check_name(&"é".repeat(64)).is_ok());
        for bad in ["", "Lab\n2", "Lab\u{7}"] {
            assert!(check_name(bad).unwrap_err().contains("1 to 64 printable"), "{bad:?}");
        }
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name("other").unwrap_err().contains("reserved"));
        assert!(check_name("OTHER").is_err());
    }

    #[test]
    fn ranges_are_canonical_and_must_not_overlap() {
        let existing = vec![range("Lab 2", "10.0.2.0/24")];
        assert_eq!(validate_ranges("Lab 3", &["10.0.3.9/24".into()], &existing).unwrap(), vec!["10.0.3.0/24"]);
        let e = validate_ranges("Lab 3", &["10.0.0.0/16".into()], &existing).unwrap_err();
        assert!(e.contains("Lab 2"), "{e}");
        assert!(validate_ranges("Lab 3", &["10.0.3.0/24".into(), "10.0.3.128/25".into()], &existing).is_err());
        assert!(validate_ranges("Lab 3", &["nonsense".into()], &existing).is_err());
        assert!(validate_ranges("Lab 2", &["10.0.2.0/25".into()], &existing).is_ok(), "own ranges may be replaced");
    }
}
