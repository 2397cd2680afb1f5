//! Permissions: what a role allows. The store keeps them as text
//! (`role_permissions.permission`) and the API shows them as text (`/api/me`); everywhere
//! in between they are this enum, so a misspelt permission is a compile error, not a check
//! that silently never passes.
//!
//! Invariant: the variants are in the order of their names, so a [`PermissionSet`] lists its
//! names sorted, exactly as the store's `ORDER BY permission` did.

use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "announce")]
    Announce,
    #[serde(rename = "audit.view")]
    AuditView,
    #[serde(rename = "broadcast.send")]
    BroadcastSend,
    #[serde(rename = "collect")]
    Collect,
    #[serde(rename = "portal.access")]
    PortalAccess,
    #[serde(rename = "transfer.receive")]
    TransferReceive,
    #[serde(rename = "transfer.send")]
    TransferSend,
    #[serde(rename = "transfers.view_all")]
    TransfersViewAll,
    #[serde(rename = "users.manage")]
    UsersManage,
}

impl Permission {
    /// Every permission, in the order of their names.
    pub const ALL: [Permission; 9] = [
        Permission::Announce,
        Permission::AuditView,
        Permission::BroadcastSend,
        Permission::Collect,
        Permission::PortalAccess,
        Permission::TransferReceive,
        Permission::TransferSend,
        Permission::TransfersViewAll,
        Permission::UsersManage,
    ];

    /// The name stored and shown (`users.manage`).
    pub const fn name(self) -> &'static str {
        match self {
            Permission::Announce => "announce",
            Permission::AuditView => "audit.view",
            Permission::BroadcastSend => "broadcast.send",
            Permission::Collect => "collect",
            Permission::PortalAccess => "portal.access",
            Permission::TransferReceive => "transfer.receive",
            Permission::TransferSend => "transfer.send",
            Permission::TransfersViewAll => "transfers.view_all",
            Permission::UsersManage => "users.manage",
        }
    }

    /// What it allows, in words (the portal's role matrix).
    pub const fn describe(self) -> &'static str {
        match self {
            Permission::Announce => "send announcements (to own labs without users.manage)",
            Permission::AuditView => "read the audit log (own actions without users.manage)",
            Permission::BroadcastSend => "broadcast files (to own labs without users.manage)",
            Permission::Collect => "collect students' files with a hand-in (from own labs without users.manage)",
            Permission::PortalAccess => "open this admin portal",
            Permission::TransferReceive => "receive files",
            Permission::TransferSend => "send files",
            Permission::TransfersViewAll => {
                "read and export everyone's transfers and broadcasts (users.manage includes it)"
            }
            Permission::UsersManage => "manage users, roles, labs, sessions and settings",
        }
    }

    pub fn from_name(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.name() == name)
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of permissions (what one role grants). Serialised as the sorted list of names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PermissionSet(u16);

impl PermissionSet {
    pub fn has(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn insert(&mut self, p: Permission) {
        self.0 |= p.bit();
    }

    /// The permissions held, in the order of their names.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.has(*p))
    }

    /// The set of the known names among `names`; unknown names (a store edited by hand, or
    /// written by a newer LabBeam) grant nothing and are logged.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> PermissionSet {
        let mut set = PermissionSet::default();
        for name in names {
            match Permission::from_name(name) {
                Some(p) => set.insert(p),
                None => tracing::warn!(permission = name, "unknown permission in the store; it grants nothing"),
            }
        }
        set
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = PermissionSet::default();
        iter.into_iter().for_each(|p| set.insert(p));
        set
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Permission::name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_in_order() {
        for p in Permission::ALL {
            assert_eq!(Permission::from_name(p.name()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.name());
        }
        let names: Vec<&str> = Permission::ALL.iter().map(|p| p.name()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "variants must follow the order of their names");
        assert_eq!(Permission::from_name("users.Manage"), None);
    }

    #[test]
    fn a_set_holds_what_it_was_given_and_lists_it_sorted() {
        let set = PermissionSet::from_names(["users.manage", "announce", "no.such.thing"]);
        assert!(set.has(Permission::UsersManage) && set.has(Permission::Announce));
        assert!(!set.has(Permission::PortalAccess));
        assert_eq!(serde_json::to_value(set).unwrap(), serde_json::json!(["announce", "users.manage"]));
        assert_eq!(PermissionSet::default().iter().count(), 0);
    }
}
