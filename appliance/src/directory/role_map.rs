//! `[[auth.role_map]]`: a directory user's groups to a role and the labs they are responsible
//! for. Plain and unit-tested.
//!
//! The first rule whose group the user is in decides the role; every matching rule adds its
//! labs (a teacher in two labs' staff groups is responsible for both). No rule matches: the
//! `default_role` without labs, or no role at all (the sign-in is refused).

use crate::config::RoleRule;

/// What a user's groups give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub role: String,
    pub labs: Vec<String>,
    /// The rule's group that decided the role; `None` for the default role.
    pub matched: Option<String>,
}

/// A DN as compared: lower case, no spaces around `,` and `=` (`CN=Staff, OU=Groups` is
/// `cn=staff,ou=groups`).
pub fn normalize_dn(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        let part = part.trim();
        match part.split_once('=') {
            Some((attr, value)) => {
                out.push_str(&attr.trim().to_lowercase());
                out.push('=');
                out.push_str(&value.trim().to_lowercase());
            }
            None => out.push_str(&part.to_lowercase()),
        }
    }
    out
}

pub fn map(rules: &[RoleRule], default_role: Option<&str>, groups: &[String]) -> Option<Mapping> {
    let held: Vec<String> = groups.iter().map(|g| normalize_dn(g)).collect();
    let matching: Vec<&RoleRule> = rules.iter().filter(|r| held.contains(&normalize_dn(&r.group))).collect();
    let mut labs: Vec<String> = Vec::new();
    for lab in matching.iter().flat_map(|r| r.labs.iter()) {
        if !labs.iter().any(|l| l.eq_ignore_ascii_case(lab)) {
            labs.push(lab.clone());
        }
    }
    match matching.first() {
        Some(first) => Some(Mapping { role: first.role.clone(), labs, matched: Some(first.group.clone()) }),
        None => default_role.map(|role| Mapping { role: role.to_string(), labs: Vec::new(), matched: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(group: &str, role: &str, labs: &[&str]) -> RoleRule {
        RoleRule { group: group.into(), role: role.into(), labs: labs.iter().map(|l| l.to_string()).collect() }
    }

    #[test]
    fn the_first_matching_rule_gives_the_role_and_every_match_its_labs() {
        let rules = [
            rule("cn=labtech,ou=groups,dc=campus", "admin", &[]),
            rule("CN=Staff, OU=Groups, DC=Campus", "instructor", &["Lab 2.14"]),
            rule("cn=physics,ou=groups,dc=campus", "instructor", &["Lab 1.01", "lab 2.14"]),
        ];
        let staff = ["cn=staff,ou=groups,dc=campus".to_string(), "cn=physics,ou=groups,dc=campus".into()];
        let m = map(&rules, None, &staff).unwrap();
        assert_eq!(m.role, "instructor");
        assert_eq!(m.labs, ["Lab 2.14", "Lab 1.01"]);
        assert_eq!(m.matched.as_deref(), Some("CN=Staff, OU=Groups, DC=Campus"));
        let both = ["cn=staff,ou=groups,dc=campus".to_string(), "cn=LabTech,ou=groups,dc=campus".into()];
        assert_eq!(map(&rules, None, &both).unwrap().role, "admin", "rule order decides, not group order");
    }

    #[test]
    fn no_match_gives_the_default_role_or_nothing() {
        let rules = [rule("cn=staff", "instructor", &["Lab 2.14"])];
        let none: [String; 1] = ["cn=students".into()];
        assert_eq!(map(&rules, None, &none), None);
        let m = map(&rules, Some("student"), &none).unwrap();
        assert_eq!((m.role.as_str(), m.labs.len(), m.matched), ("student", 0, None));
        assert_eq!(map(&[], Some("student"), &[]).unwrap().role, "student");
    }

    #[test]
    fn dns_compare_without_case_or_spaces() {
        assert_eq!(normalize_dn(" CN = Teaching-Staff , OU=Groups,DC=campus"), "cn=teaching-staff,ou=groups,dc=campus");
    }
}
