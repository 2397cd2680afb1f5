//! Lab lifecycle shared by the command line and the portal: create, change ranges, remove,
//! make a user responsible, name seats — each with its rules (`labs`: names, ranges that do
//! not overlap another lab's; `seats`: seat addresses and names) and its audit event, in one
//! call. Callers only parse input and show results. A change acts on live sockets by itself
//! (the store's access generation, see ARCHITECTURE.md, "The path of an access change"): a
//! renamed seat's devices re-join under the new name.

use thiserror::Error;

use crate::audit::{self, Actor, AuditEvent};
use crate::db::labs::Lab;
use crate::db::{DbError, Store, labs, seats, users};
use crate::labs::Visibility;
use crate::seats::{Line, Mode};

#[derive(Debug, Error)]
pub enum LabError {
    #[error("{0}")]
    Invalid(String),
    #[error("no lab named {0:?}")]
    NoSuchLab(String),
    #[error("no lab with id {0}")]
    NoLabWithId(i64),
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error("lab {lab:?} has no seat at {address}")]
    NoSuchSeat { lab: String, address: String },
    /// Lines of a seat list that cannot be applied, each "line N: what"; nothing was.
    #[error("{}; nothing was changed", .0.join("; "))]
    Lines(Vec<String>),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Creates lab `name` (trimmed) with its address ranges; returns its name and the ranges in
/// canonical form.
pub async fn create(pool: &Store, actor: &Actor, name: &str, cidrs: &[String]) -> Result<Created, LabError> {
    let name = name.trim();
    crate::labs::check_name(name).map_err(LabError::Invalid)?;
    let existing = labs::ranges(pool).await?;
    let ranges = crate::labs::validate_ranges(name, cidrs, &existing).map_err(LabError::Invalid)?;
    labs::create(pool, name, &ranges).await?;
    audit::record(pool, actor, AuditEvent::LabCreated { lab: name, ranges: &ranges }).await?;
    Ok(Created { name: name.to_string(), ranges })
}

/// What `create` made.
#[derive(Debug)]
pub struct Created {
    pub name: String,
    pub ranges: Vec<String>,
}

/// Replaces the address ranges of lab `id`; returns the lab.
pub async fn set_ranges(pool: &Store, actor: &Actor, id: i64, cidrs: &[String]) -> Result<Lab, LabError> {
    let lab = labs::by_id(pool, id).await?.ok_or(LabError::NoLabWithId(id))?;
    let existing = labs::ranges(pool).await?;
    let before: Vec<String> = existing.iter().filter(|r| r.lab == lab.name).map(|r| r.cidr.clone()).collect();
    let after = crate::labs::validate_ranges(&lab.name, cidrs, &existing).map_err(LabError::Invalid)?;
    labs::set_ranges(pool, id, &after).await?;
    audit::record(pool, actor, AuditEvent::LabUpdated { lab: &lab.name, before: &before, after: &after }).await?;
    Ok(lab)
}

/// Deletes lab `name` (its devices fall into "Other").
pub async fn remove(pool: &Store, actor: &Actor, name: &str) -> Result<(), LabError> {
    labs::remove(pool, name).await?;
    audit::record(pool, actor, AuditEvent::LabRemoved { lab: name }).await?;
    Ok(())
}

/// Makes `username` responsible for lab `name` (they may broadcast and announce to it);
/// returns the lab and the user.
pub async fn assign(pool: &Store, actor: &Actor, name: &str, username: &str) -> Result<(Lab, users::User), LabError> {
    let lab = labs::by_name(pool, name).await?.ok_or_else(|| LabError::NoSuchLab(name.to_string()))?;
    let user = users::by_username(pool, username).await?.ok_or_else(|| LabError::NoSuchUser(username.to_string()))?;
    labs::assign(pool, user.id, lab.id).await?;
    audit::record(pool, actor, AuditEvent::LabAssigned { lab: &lab.name, username: &user.username }).await?;
    Ok((lab, user))
}

/// The lab named `name`.
pub async fn lab_named(pool: &Store, name: &str) -> Result<Lab, LabError> {
    labs::by_name(pool, name).await?.ok_or_else(|| LabError::NoSuchLab(name.to_string()))
}

/// The lab with id `id`.
pub async fn lab_with_id(pool: &Store, id: i64) -> Result<Lab, LabError> {
    labs::by_id(pool, id).await?.ok_or(LabError::NoLabWithId(id))
}

/// Switches `lab`'s exam mode (README "Exam mode"): while it is on, the lab's students can
/// neither send nor receive one-to-one transfers and see only its instructors and admins;
/// connected devices follow within a second, and one-to-one transfers under way between
/// students are cancelled. Returns whether it changed; a switch to the state the lab is
/// already in writes nothing and is not audited.
pub async fn set_exam(pool: &Store, actor: &Actor, lab: &Lab, on: bool) -> Result<bool, LabError> {
    if !labs::set_exam(pool, lab.id, on).await? {
        // Unchanged, or the lab went meanwhile.
        labs::exam_of(pool, lab.id).await?.ok_or(LabError::NoLabWithId(lab.id))?;
        return Ok(false);
    }
    audit::record(pool, actor, AuditEvent::LabPolicySet { lab: &lab.name, exam: on }).await?;
    Ok(true)
}

/// Sets `lab`'s own visibility (README "Lab policies"), or with `None` lets it follow the
/// setting `presence.scope` again. The lab's connected devices re-join under it within a
/// second, and the presence lists of other labs follow. Returns whether it changed; setting
/// what the lab has already writes nothing and is not audited.
pub async fn set_visibility(
    pool: &Store,
    actor: &Actor,
    lab: &Lab,
    visibility: Option<Visibility>,
) -> Result<bool, LabError> {
    let before = labs::visibility_of(pool, lab.id).await?.ok_or(LabError::NoLabWithId(lab.id))?;
    let word = visibility.map(Visibility::as_str);
    if !labs::set_visibility(pool, lab.id, word).await? {
        // Unchanged, or the lab went meanwhile.
        labs::visibility_of(pool, lab.id).await?.ok_or(LabError::NoLabWithId(lab.id))?;
        return Ok(false);
    }
    audit::record(
        pool,
        actor,
        AuditEvent::LabVisibilitySet { lab: &lab.name, visibility: word, before: before.as_deref() },
    )
    .await?;
    Ok(true)
}

/// What `set_seat` did.
#[derive(Debug, PartialEq, Eq)]
pub struct SeatSet {
    /// The address in canonical form.
    pub address: String,
    /// The name, cleaned.
    pub name: String,
    /// The seat's name before: `None` for a new seat.
    pub before: Option<String>,
}

impl SeatSet {
    /// The seat had that name already: nothing was written.
    pub fn unchanged(&self) -> bool {
        self.before.as_deref() == Some(self.name.as_str())
    }
}

/// Names the seat at `address` of `lab` (a new seat, or a new name): a device connecting
/// from there is shown as `name`. The address must lie in one of the lab's ranges; the name
/// is cleaned and must differ from the lab's other seats'.
pub async fn set_seat(pool: &Store, actor: &Actor, lab: &Lab, address: &str, name: &str) -> Result<SeatSet, LabError> {
    let addr = crate::seats::parse_address(address).map_err(LabError::Invalid)?.to_string();
    let current = seats::of_lab(pool, lab.id).await?;
    let ranges = labs::ranges(pool).await?;
    let listed = [Line { line: 1, address: addr.clone(), name: name.to_string() }];
    let map = crate::seats::plan(&lab.name, &ranges, &current, &listed, Mode::Merge).map_err(|problems| {
        LabError::Invalid(problems.into_iter().map(|(_, what)| what).collect::<Vec<_>>().join("; "))
    })?;
    let name = map.into_iter().find(|(a, _)| *a == addr).map(|(_, n)| n).unwrap_or_default();
    let before = current.into_iter().find(|(a, _)| *a == addr).map(|(_, n)| n);
    let set = SeatSet { address: addr, name, before };
    if set.unchanged() {
        return Ok(set);
    }
    seats::set(pool, lab.id, &set.address, &set.name).await?;
    let event =
        AuditEvent::SeatSet { lab: &lab.name, address: &set.address, name: &set.name, before: set.before.as_deref() };
    audit::record(pool, actor, event).await?;
    Ok(set)
}

/// Removes the seat at `address` of `lab`; returns (address, the name it had).
pub async fn remove_seat(pool: &Store, actor: &Actor, lab: &Lab, address: &str) -> Result<(String, String), LabError> {
    let addr = crate::seats::parse_address(address).map_err(LabError::Invalid)?.to_string();
    let name = seats::of_lab(pool, lab.id).await?.into_iter().find(|(a, _)| *a == addr).map(|(_, n)| n);
    let no_seat = || LabError::NoSuchSeat { lab: lab.name.clone(), address: addr.clone() };
    let name = name.ok_or_else(no_seat)?;
    if !seats::remove(pool, lab.id, &addr).await? {
        return Err(no_seat());
    }
    audit::record(pool, actor, AuditEvent::SeatRemoved { lab: &lab.name, address: &addr, name: &name }).await?;
    Ok((addr, name))
}

/// What `import_seats` changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SeatsImported {
    pub added: usize,
    pub renamed: usize,
    pub removed: usize,
    pub kept: usize,
}

/// Applies `address,name` lines (`seats::read_lines`) to `lab`'s seat map: added to it
/// (`Mode::Merge`) or as its whole map (`Mode::Replace`). Every line is checked first; if
/// any cannot be applied, nothing is, and the error lists each such line.
pub async fn import_seats(
    pool: &Store,
    actor: &Actor,
    lab: &Lab,
    text: &str,
    mode: Mode,
) -> Result<SeatsImported, LabError> {
    let listed = crate::seats::read_lines(text).map_err(LabError::Lines)?;
    let current = seats::of_lab(pool, lab.id).await?;
    let ranges = labs::ranges(pool).await?;
    let map = crate::seats::plan(&lab.name, &ranges, &current, &listed, mode).map_err(|problems| {
        LabError::Lines(problems.into_iter().map(|(line, what)| format!("line {line}: {what}")).collect())
    })?;
    let mut done = SeatsImported::default();
    for (address, name) in &map {
        match current.iter().find(|(a, _)| a == address) {
            None => done.added += 1,
            Some((_, before)) if before != name => done.renamed += 1,
            Some(_) => done.kept += 1,
        }
    }
    done.removed = current.iter().filter(|(a, _)| !map.iter().any(|(m, _)| m == a)).count();
    if done.added + done.renamed + done.removed == 0 {
        return Ok(done);
    }
    seats::replace(pool, lab.id, &map).await?;
    let event = AuditEvent::SeatsImported {
        lab: &lab.name,
        added: done.added,
        renamed: done.renamed,
        removed: done.removed,
        replaced: mode == Mode::Replace,
    };
    audit::record(pool, actor, event).await?;
    Ok(done)
}

/// `lab`'s seats as (address, name), by address, each with whether the lab's ranges still
/// hold its address (a seat outside them names no device).
pub async fn seats_of(pool: &Store, lab: &Lab) -> Result<Vec<(String, String, bool)>, LabError> {
    let ranges = labs::ranges(pool).await?;
    let list = crate::seats::sorted(seats::of_lab(pool, lab.id).await?);
    Ok(list
        .into_iter()
        .map(|(address, name)| {
            let used = crate::seats::in_use(&address, &lab.name, &ranges);
            (address, name, used)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    async fn audit_actions(pool: &Store) -> Vec<String> {
        let rows = db::audit::list(pool, &Default::default(), 100).await.unwrap();
        rows.into_iter().map(|r| r.action).collect()
    }

    #[tokio::test]
    async fn every_change_is_checked_written_and_audited() {
        let pool = db::test_store().await;
        let actor = Actor::system();
        let lab = create(&pool, &actor, "  Lab 1 ", &["10.1.0.7/24".into()]).await.unwrap();
        assert_eq!((lab.name.as_str(), lab.ranges.as_slice()), ("Lab 1", &["10.1.0.0/24".to_string()][..]));
        for (name, ranges) in [("", vec![]), ("Other", vec![]), ("Lab 2", vec!["10.1.0.0/16".to_string()])] {
            assert!(matches!(create(&pool, &actor, name, &ranges).await, Err(LabError::Invalid(_))), "{name:?}");
        }
        assert!(matches!(create(&pool, &actor, "lab 1", &[]).await, Err(LabError::Db(DbError::Conflict(_)))));
        assert_eq!(labs::list(&pool).await.unwrap().len(), 1, "nothing written for a refused change");

        create(&pool, &actor, "Lab 2", &["10.2.0.0/24".into()]).await.unwrap();
        let two = labs::by_name(&pool, "Lab 2").await.unwrap().unwrap();
        assert!(matches!(set_ranges(&pool, &actor, two.id, &["10.1.0.0/25".into()]).await, Err(LabError::Invalid(_))));
        set_ranges(&pool, &actor, two.id, &["10.2.1.0/24".into()]).await.unwrap();
        assert!(matches!(set_ranges(&pool, &actor, 99, &[]).await, Err(LabError::NoLabWithId(99))));

        let teacher = db::users::NewUser {
            username: "t",
            display_name: "T",
            password_hash: "h",
            role_id: 2,
            must_change_password: false,
        };
        db::users::create(&pool, &teacher).await.unwrap();
        let (lab, user) = assign(&pool, &actor, "Lab 2", "t").await.unwrap();
        assert_eq!(db::labs::owned_by(&pool, user.id).await.unwrap(), vec![lab.name]);
        assert!(matches!(assign(&pool, &actor, "Lab 9", "t").await, Err(LabError::NoSuchLab(_))));
        assert!(matches!(assign(&pool, &actor, "Lab 2", "nobody").await, Err(LabError::NoSuchUser(_))));

        assert_eq!(labs::exam_of(&pool, two.id).await.unwrap(), Some(false));
        assert!(set_exam(&pool, &actor, &two, true).await.unwrap());
        assert!(!set_exam(&pool, &actor, &two, true).await.unwrap(), "already on: not written again");
        assert_eq!(labs::exam_of(&pool, two.id).await.unwrap(), Some(true));
        let gone = Lab { id: 99, name: "Gone".into() };
        assert!(matches!(set_exam(&pool, &actor, &gone, true).await, Err(LabError::NoLabWithId(99))));
        assert_eq!(labs::visibility_of(&pool, two.id).await.unwrap(), Some(None));
        assert!(set_visibility(&pool, &actor, &two, Some(Visibility::Own)).await.unwrap());
        assert!(!set_visibility(&pool, &actor, &two, Some(Visibility::Own)).await.unwrap(), "not written again");
        assert_eq!(labs::visibility_of(&pool, two.id).await.unwrap(), Some(Some("own".to_string())));
        assert!(matches!(set_visibility(&pool, &actor, &gone, None).await, Err(LabError::NoLabWithId(99))));
        let rows = db::audit::list(&pool, &Default::default(), 1).await.unwrap();
        assert_eq!(rows[0].action, "lab.policy");
        assert!(rows[0].details.contains("\"visibility\":\"own\""), "{}", rows[0].details);

        remove(&pool, &actor, "Lab 1").await.unwrap();
        assert!(matches!(remove(&pool, &actor, "Lab 1").await, Err(LabError::Db(DbError::NotFound(_)))));
        assert_eq!(
            audit_actions(&pool).await,
            ["lab.remove", "lab.policy", "lab.policy", "lab.assign", "lab.update", "lab.create", "lab.create"]
        );
    }

    #[tokio::test]
    async fn seats_are_checked_written_and_audited_and_a_refused_list_changes_nothing() {
        let pool = db::test_store().await;
        let actor = Actor::system();
        create(&pool, &actor, "Lab 2", &["10.0.2.0/24".into()]).await.unwrap();
        create(&pool, &actor, "Lab 3", &["10.0.3.0/24".into()]).await.unwrap();
        let lab = lab_named(&pool, "lab 2").await.unwrap();
        assert!(matches!(lab_named(&pool, "Lab 9").await, Err(LabError::NoSuchLab(_))));
        assert!(matches!(lab_with_id(&pool, 99).await, Err(LabError::NoLabWithId(99))));

        let set = set_seat(&pool, &actor, &lab, "::ffff:10.0.2.14", " PC-14 ").await.unwrap();
        assert_eq!(set, SeatSet { address: "10.0.2.14".into(), name: "PC-14".into(), before: None });
        assert!(set_seat(&pool, &actor, &lab, "10.0.2.14", "PC-14").await.unwrap().unchanged());
        let renamed = set_seat(&pool, &actor, &lab, "10.0.2.14", "PC 14").await.unwrap();
        assert_eq!(renamed.before.as_deref(), Some("PC-14"));
        for (address, name, want) in [
            ("10.0.3.14", "X", "not in the ranges of lab \"Lab 2\""),
            ("10.0.2", "X", "not an address"),
            ("10.0.2.15", "", "1 to 64"),
            ("10.0.2.15", "pc 14", "also names 10.0.2.14"),
        ] {
            match set_seat(&pool, &actor, &lab, address, name).await {
                Err(LabError::Invalid(e)) => assert!(e.contains(want), "{address} {name}: {e}"),
                other => panic!("{address} {name}: {other:?}"),
            }
        }

        let imported =
            import_seats(&pool, &actor, &lab, "address,name\n10.0.2.15,PC 15\n10.0.2.14,PC-14\n", Mode::Merge)
                .await
                .unwrap();
        assert_eq!(imported, SeatsImported { added: 1, renamed: 1, removed: 0, kept: 0 });
        let refused =
            import_seats(&pool, &actor, &lab, "10.0.2.16,PC 16\n10.0.3.1,far\n10.0.2.17\n", Mode::Replace).await;
        match refused {
            Err(LabError::Lines(lines)) => assert_eq!(lines.len(), 1, "the unreadable line first: {lines:?}"),
            other => panic!("{other:?}"),
        }
        match import_seats(&pool, &actor, &lab, "10.0.2.16,PC 16\n10.0.3.1,far\n", Mode::Replace).await {
            Err(e @ LabError::Lines(_)) => {
                let text = e.to_string();
                assert!(
                    text.starts_with("line 2: 10.0.3.1 is not in the ranges") && text.ends_with("nothing was changed"),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
        let names =
            |v: Vec<(String, String, bool)>| v.into_iter().map(|(a, n, _)| format!("{a}={n}")).collect::<Vec<_>>();
        assert_eq!(names(seats_of(&pool, &lab).await.unwrap()), ["10.0.2.14=PC-14", "10.0.2.15=PC 15"]);
        let replaced =
            import_seats(&pool, &actor, &lab, "10.0.2.16,PC 16\n10.0.2.15,PC 15\n", Mode::Replace).await.unwrap();
        assert_eq!(replaced, SeatsImported { added: 1, renamed: 0, removed: 1, kept: 1 });
        assert_eq!(import_seats(&pool, &actor, &lab, "10.0.2.16,PC 16", Mode::Merge).await.unwrap().kept, 2);

        assert_eq!(remove_seat(&pool, &actor, &lab, "10.0.2.16").await.unwrap(), ("10.0.2.16".into(), "PC 16".into()));
        assert!(matches!(remove_seat(&pool, &actor, &lab, "10.0.2.16").await, Err(LabError::NoSuchSeat { .. })));
        // A seat whose address the lab's ranges no longer hold is listed as not in use.
        set_ranges(&pool, &actor, lab.id, &["10.0.4.0/24".into()]).await.unwrap();
        assert_eq!(seats_of(&pool, &lab).await.unwrap(), vec![("10.0.2.15".to_string(), "PC 15".to_string(), false)]);
        let seat_actions: Vec<String> = audit_actions(&pool).await.into_iter().filter(|a| a.contains("seat")).collect();
        assert_eq!(seat_actions, ["lab.unseat", "lab.seats", "lab.seats", "lab.seat", "lab.seat"]);
    }
}
