//! What a connected device may do and see, and what it is called: its permissions, its
//! scope, its lab, the labs its user is responsible for and the name others see, derived
//! from the user's standing (`db::access`), the device's address, the labs' seat maps and
//! the settings.
//!
//! The same derivation runs when a socket connects and whenever an access change is seen
//! (the store's `access_generation`, bumped by triggers on every relevant table, watched by
//! [`crate::access_watch`]). A socket whose derived access differs from the one it holds is
//! disconnected: the client reconnects by itself and joins with the new access, its
//! accepted transfers pause and resume, and its broadcasts end. So a demoted instructor, a
//! role that lost a permission, a lab whose ranges moved, a renamed seat or a disabled user
//! act on live sockets at once, whichever process (portal, API, command line) made the
//! change.
//!
//! Invariant: a member in the hub never holds more than its user's current standing allows
//! for longer than one watch interval plus the time to disconnect it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::db::access::UserAccess;
use crate::db::{self, DbError};
use crate::labs::{LabMatcher, LabName, Visibility};
use crate::permission::PermissionSet;
use crate::seats::{self, SeatMap};
use crate::settings;
use crate::state::AppState;

use super::hub::{Member, PeerId};

/// What the derivation needs besides the user: labs, their seats and the settings that
/// place devices.
pub struct Surroundings {
    matcher: LabMatcher,
    known_labs: Vec<LabName>,
    seats: SeatMap,
    /// `presence.scope = all`: students of labs without a visibility of their own (and of
    /// "Other") see every lab.
    scope_all: bool,
    /// The labs with a visibility of their own (`labbeam lab policy NAME --visibility`),
    /// which wins over `presence.scope` for their students.
    lab_visibility: HashMap<LabName, Visibility>,
    /// `presence.lab_self_select = on`: a device outside every range may pick a lab.
    self_select: bool,
    /// The labs in exam mode (`labbeam lab policy NAME --exam on`).
    exam_labs: Vec<LabName>,
}

impl Surroundings {
    /// The labs in exam mode.
    pub fn exam_labs(&self) -> &[LabName] {
        &self.exam_labs
    }

    /// What applies to the students of `lab`: its own visibility, else `presence.scope`.
    pub fn visibility(&self, lab: &LabName) -> Visibility {
        Visibility::effective(self.lab_visibility.get(lab).copied(), self.scope_all)
    }

    pub async fn load(pool: &db::Store) -> Result<Self, DbError> {
        let ranges = db::labs::ranges(pool).await?;
        let known_labs = db::labs::list(pool).await?.into_iter().map(|l| LabName::from(l.name)).collect();
        Ok(Surroundings {
            matcher: LabMatcher::new(&ranges),
            known_labs,
            seats: SeatMap::new(&db::seats::all(pool).await?),
            scope_all: settings::get_str(pool, "presence.scope").await? == "all",
            lab_visibility: db::labs::visibilities(pool)
                .await?
                .into_iter()
                .filter_map(|(lab, word)| Visibility::from_stored(&word).map(|v| (LabName::from(lab), v)))
                .collect(),
            self_select: settings::get_str(pool, "presence.lab_self_select").await? == "on",
            exam_labs: db::labs::in_exam(pool).await?.into_iter().map(LabName::from).collect(),
        })
    }
}

/// A device's lab: the lab whose range holds its address; else, only when self-selection
/// is allowed, the existing lab its user picked (marked self-selected); else "Other".
pub fn place(env: &Surroundings, addr: IpAddr, pick: Option<&LabName>) -> (LabName, bool) {
    if let Some(lab) = env.matcher.lab_of(addr) {
        return (lab.clone(), false);
    }
    match pick {
        Some(p) if env.self_select && env.known_labs.contains(p) => (p.clone(), true),
        _ => (LabName::other(), false),
    }
}

/// Everything about a device that follows from its user's standing and its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAccess {
    /// The name others see (`seats::shown_name`): its seat's, else its user's, else one
    /// made from its address.
    pub device: String,
    pub display_name: String,
    pub role: String,
    pub permissions: PermissionSet,
    pub sees_all: bool,
    pub owned_labs: Vec<LabName>,
    pub lab: LabName,
    pub self_selected: bool,
    /// A student (`hub::is_student`) in a lab in exam mode, however it was placed there.
    pub exam: bool,
}

impl DeviceAccess {
    /// What `user` on a device at `addr` (which asked for lab `pick` and was named `given`
    /// by its user) may do and see, and what it is called.
    pub fn derive(
        user: &UserAccess,
        addr: IpAddr,
        pick: Option<&LabName>,
        given: Option<&str>,
        env: &Surroundings,
    ) -> DeviceAccess {
        let (lab, self_selected) = place(env, addr, pick);
        let mut owned_labs: Vec<LabName> = user.owned_labs.iter().map(|l| LabName::from(l.as_str())).collect();
        owned_labs.sort_unstable();
        // A seat names the device only in the lab its address places it in.
        let seat = if self_selected { None } else { env.seats.name(&lab, addr) };
        let exam = env.exam_labs.contains(&lab) && super::hub::is_student(&user.permissions);
        DeviceAccess {
            device: seats::shown_name(seat, given, addr),
            display_name: user.display_name.clone(),
            role: user.role.clone(),
            permissions: user.permissions,
            sees_all: super::hub::sees_every_lab_by_role(&user.permissions) || env.visibility(&lab) == Visibility::All,
            owned_labs,
            lab,
            self_selected,
            exam,
        }
    }

    /// What a member holds now.
    pub fn held_by(m: &Member) -> DeviceAccess {
        DeviceAccess {
            device: m.peer.device.clone(),
            display_name: m.peer.display_name.clone(),
            role: m.peer.role.clone(),
            permissions: m.permissions,
            sees_all: m.sees_all,
            owned_labs: m.owned_labs.clone(),
            lab: m.peer.lab.clone(),
            self_selected: m.peer.self_selected,
            exam: m.exam,
        }
    }
}

/// What the store now says of some members.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Those whose held access is no longer what their user's standing gives them, or whose
    /// user is gone or disabled: they are disconnected and re-join.
    pub stale: Vec<PeerId>,
    /// Those that exam mode now binds (`DeviceAccess::exam`), whatever they hold.
    pub exam_bound: HashSet<PeerId>,
}

/// Derives the access of each of `members` again, once, against the users' standing and
/// the surroundings.
pub fn judge<'a>(
    members: impl Iterator<Item = &'a Member>,
    users: &HashMap<i64, UserAccess>,
    env: &Surroundings,
) -> Verdict {
    let mut verdict = Verdict::default();
    for m in members {
        let id = m.peer.peer_id.clone();
        let Some(user) = users.get(&m.peer.user_id).filter(|u| !u.disabled) else {
            verdict.stale.push(id);
            continue;
        };
        let now = DeviceAccess::derive(user, m.addr, m.lab_pick.as_ref(), m.given_device.as_deref(), env);
        if now.exam {
            verdict.exam_bound.insert(id.clone());
        }
        if now != DeviceAccess::held_by(m) {
            verdict.stale.push(id);
        }
    }
    verdict
}

/// Re-evaluates live sockets (every one, or only `only`) against the store and disconnects
/// those whose access changed; returns how many were disconnected. Before that, one-to-one
/// transfers of devices that exam mode now binds are cancelled (reason `exam_mode`), so
/// that they end instead of pausing while their sides re-join, and the devices of a lab
/// whose exam mode changed are told (`exam:state`).
pub async fn reevaluate(state: &AppState, only: Option<&PeerId>) -> Result<usize, DbError> {
    let users = db::access::all(&state.db).await?;
    let env = Surroundings::load(&state.db).await?;
    let exam_changed = state.signaling.exam_changes(env.exam_labs());
    let (stale, ended, told) = state.signaling.with_hub(|h| {
        let verdict = match only {
            Some(peer) => judge(h.member(peer).into_iter(), &users, &env),
            None => judge(h.members(), &users, &env),
        };
        let ended = if verdict.exam_bound.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            h.cancel_for_exam(&verdict.exam_bound)
        };
        (verdict.stale, ended, h.exam_notices(&exam_changed))
    });
    super::deliver(state, told).await;
    let (emits, records) = ended;
    if !records.is_empty() {
        tracing::info!(transfers = records.len(), "exam mode: one-to-one transfers of students cancelled");
    }
    super::deliver(state, emits).await;
    super::store(state, records).await;
    for peer in &stale {
        tracing::info!(%peer, "access changed: disconnecting the socket so it re-joins with its new rights");
    }
    state.signaling.disconnect_peers(&stale).await;
    Ok(stale.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::labs::LabRange;
    use crate::permission::Permission;
    use crate::signaling::hub::Peer;

    fn env(self_select: bool, scope_all: bool) -> Surroundings {
        let ranges = vec![LabRange { lab: "Lab 1".into(), cidr: "10.1.0.0/24".into() }];
        Surroundings {
            matcher: LabMatcher::new(&ranges),
            known_labs: vec!["Lab 1".into(), "Lab 2".into()],
            seats: SeatMap::default(),
            scope_all,
            lab_visibility: HashMap::new(),
            self_select,
            exam_labs: Vec::new(),
        }
    }

    fn student() -> UserAccess {
        UserAccess {
            display_name: "Kim".into(),
            role: "student".into(),
            disabled: false,
            permissions: PermissionSet::from_names(["transfer.receive", "transfer.send"]),
            owned_labs: Vec::new(),
        }
    }

    fn stale_members<'a>(
        members: impl Iterator<Item = &'a Member>,
        users: &HashMap<i64, UserAccess>,
        env: &Surroundings,
    ) -> Vec<PeerId> {
        judge(members, users, env).stale
    }

    fn member_of(user: &UserAccess, addr: &str, pick: Option<&str>, env: &Surroundings) -> Member {
        let addr: IpAddr = addr.parse().unwrap();
        let pick = pick.map(LabName::from);
        let a = DeviceAccess::derive(user, addr, pick.as_ref(), Some("Kim's PC"), env);
        Member {
            peer: Peer {
                peer_id: "p1".into(),
                user_id: 7,
                username: "kim".into(),
                display_name: a.display_name,
                role: a.role,
                lab: a.lab,
                device: a.device,
                self_selected: a.self_selected,
            },
            session_id: "s".into(),
            permissions: a.permissions,
            sees_all: a.sees_all,
            owned_labs: a.owned_labs,
            device_key: "d".into(),
            addr,
            lab_pick: pick,
            given_device: Some("Kim's PC".into()),
            exam: a.exam,
        }
    }

    #[test]
    fn a_device_outside_every_range_is_in_other_unless_self_selection_is_on() {
        let off = env(false, false);
        assert_eq!(place(&off, "10.1.0.7".parse().unwrap(), Some(&"Lab 2".into())), ("Lab 1".into(), false));
        assert_eq!(place(&off, "10.9.0.7".parse().unwrap(), Some(&"Lab 2".into())), (LabName::other(), false));
        let on = env(true, false);
        assert_eq!(place(&on, "10.9.0.7".parse().unwrap(), Some(&"Lab 2".into())), ("Lab 2".into(), true));
        assert_eq!(place(&on, "10.9.0.7".parse().unwrap(), Some(&"No such lab".into())), (LabName::other(), false));
        // The address wins over a pick even when self-selection is on.
        assert_eq!(place(&on, "10.1.0.7".parse().unwrap(), Some(&"Lab 2".into())), ("Lab 1".into(), false));
    }

    #[test]
    fn a_member_is_stale_exactly_when_its_standing_or_place_changed() {
        let e = env(false, false);
        let kim = student();
        let m = member_of(&kim, "10.1.0.7", None, &e);
        let users = |u: UserAccess| HashMap::from([(7, u)]);
        assert!(stale_members([&m].into_iter(), &users(kim.clone()), &e).is_empty());

        let mut lost_send = kim.clone();
        lost_send.permissions = PermissionSet::from_names(["transfer.receive"]);
        assert_eq!(stale_members([&m].into_iter(), &users(lost_send), &e), vec![PeerId::from("p1")]);

        let mut promoted = kim.clone();
        promoted.role = "instructor".into();
        promoted.permissions.insert(Permission::BroadcastSend);
        assert_eq!(stale_members([&m].into_iter(), &users(promoted), &e), vec![PeerId::from("p1")]);

        let mut owns = kim.clone();
        owns.owned_labs = vec!["Lab 1".into()];
        assert_eq!(stale_members([&m].into_iter(), &users(owns), &e), vec![PeerId::from("p1")]);

        let mut disabled = kim.clone();
        disabled.disabled = true;
        assert_eq!(stale_members([&m].into_iter(), &users(disabled), &e), vec![PeerId::from("p1")]);
        assert_eq!(stale_members([&m].into_iter(), &HashMap::new(), &e), vec![PeerId::from("p1")], "user deleted");

        // The lab's ranges moved away from the device, or presence became campus-wide.
        let moved = Surroundings { matcher: LabMatcher::new(&[]), ..env(false, false) };
        assert_eq!(stale_members([&m].into_iter(), &users(kim.clone()), &moved), vec![PeerId::from("p1")]);
        assert_eq!(stale_members([&m].into_iter(), &users(kim.clone()), &env(false, true)), vec![PeerId::from("p1")]);
    }

    #[test]
    fn a_seat_names_the_device_at_its_address_and_a_renamed_seat_makes_it_stale() {
        let seated = |name: &str| Surroundings {
            seats: SeatMap::new(&[crate::db::seats::Seat {
                lab: "Lab 1".into(),
                address: "10.1.0.7".into(),
                name: name.into(),
            }]),
            ..env(true, false)
        };
        let kim = student();
        let e = seated("PC-7");
        let m = member_of(&kim, "10.1.0.7", None, &e);
        assert_eq!(m.peer.device, "PC-7", "the seat's name beats the user's");
        assert_eq!(member_of(&kim, "10.1.0.8", None, &e).peer.device, "Kim's PC", "no seat: the user's name");
        let unnamed = DeviceAccess::derive(&kim, "10.1.0.8".parse().unwrap(), None, None, &e);
        assert_eq!(unnamed.device, "PC .8", "no name at all: from the address");
        // A device outside every range that picked Lab 1 is not that lab's seat.
        let picked = DeviceAccess::derive(&kim, "10.9.0.7".parse().unwrap(), Some(&"Lab 1".into()), None, &e);
        assert_eq!((picked.lab.as_str(), picked.device.as_str()), ("Lab 1", "PC .7"));

        let users = HashMap::from([(7, kim)]);
        assert!(stale_members([&m].into_iter(), &users, &e).is_empty());
        assert_eq!(stale_members([&m].into_iter(), &users, &seated("PC 7")), vec![PeerId::from("p1")], "renamed");
        assert_eq!(stale_members([&m].into_iter(), &users, &env(true, false)), vec![PeerId::from("p1")], "unseated");
    }

    #[test]
    fn exam_mode_binds_the_students_of_the_lab_only_and_makes_them_stale() {
        let off = env(false, false);
        let on = Surroundings { exam_labs: vec!["Lab 1".into()], ..env(false, false) };
        let kim = student();
        let m = member_of(&kim, "10.1.0.7", None, &off);
        assert!(!m.exam);
        let users = HashMap::from([(7, kim.clone())]);
        assert_eq!(stale_members([&m].into_iter(), &users, &on), vec![PeerId::from("p1")]);
        assert_eq!(judge([&m].into_iter(), &users, &on).exam_bound, HashSet::from([PeerId::from("p1")]));
        assert!(judge([&m].into_iter(), &users, &off).exam_bound.is_empty());
        assert!(member_of(&kim, "10.1.0.7", None, &on).exam);
        assert!(!member_of(&kim, "10.9.0.7", None, &on).exam, "a student in Other");
        let mut teacher = kim.clone();
        teacher.permissions.insert(Permission::BroadcastSend);
        assert!(!member_of(&teacher, "10.1.0.7", None, &on).exam, "an instructor");
        let mut admin = kim;
        admin.permissions.insert(Permission::UsersManage);
        assert!(!member_of(&admin, "10.1.0.7", None, &on).exam, "an admin");
    }

    #[test]
    fn a_labs_own_visibility_wins_over_presence_scope_for_its_students_only() {
        let kim = student();
        let own = |scope_all| Surroundings {
            lab_visibility: HashMap::from([(LabName::from("Lab 1"), Visibility::Own)]),
            ..env(false, scope_all)
        };
        let all = |scope_all| Surroundings {
            lab_visibility: HashMap::from([(LabName::from("Lab 1"), Visibility::All)]),
            ..env(false, scope_all)
        };
        assert!(!member_of(&kim, "10.1.0.7", None, &own(true)).sees_all, "own beats scope all");
        assert!(member_of(&kim, "10.1.0.7", None, &all(false)).sees_all, "all beats scope lab");
        assert!(member_of(&kim, "10.9.0.7", None, &own(true)).sees_all, "Other follows the setting");
        assert!(!member_of(&kim, "10.9.0.7", None, &all(false)).sees_all, "Other follows the setting");
        let mut teacher = kim.clone();
        teacher.permissions.insert(Permission::BroadcastSend);
        assert!(member_of(&teacher, "10.1.0.7", None, &own(false)).sees_all, "staff see every lab");
        // Switching the lab's visibility makes its students stale, and only when it changes
        // what applies.
        let m = member_of(&kim, "10.1.0.7", None, &env(false, true));
        let users = HashMap::from([(7, kim)]);
        assert_eq!(stale_members([&m].into_iter(), &users, &own(true)), vec![PeerId::from("p1")]);
        assert!(stale_members([&m].into_iter(), &users, &all(true)).is_empty(), "all = what scope all gave");
    }

    #[test]
    fn turning_self_selection_off_moves_self_selected_devices_out() {
        let on = env(true, false);
        let kim = student();
        let m = member_of(&kim, "10.9.0.7", Some("Lab 2"), &on);
        assert!(m.peer.self_selected);
        assert!(stale_members([&m].into_iter(), &HashMap::from([(7, kim.clone())]), &on).is_empty());
        assert_eq!(
            stale_members([&m].into_iter(), &HashMap::from([(7, kim)]), &env(false, false)),
            vec![PeerId::from("p1")]
        );
    }
}
