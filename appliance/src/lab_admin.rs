//! Lab lifecycle shared by the command line and the portal: create, change ranges, remove,
//! make a user responsible, name seats — each with its rules (`labs`: names, ranges that do
//! not overlap another lab's; `seats`: seat addresses and names) and its audit event, in one
//! call. Callers only parse input and show results. A change acts on live sockets by itself
//! (the store's access generation, see ARCHITECTURE.md, "The path of an access change"): a
//! renamed seat's devices re-join under the new name.

use thiserror::Error;

use crate::audit::{self, Actor, AuditEvent};
use crate::db::labs::Lab;
use crate::db::{self, DbError, Store, labs, seats, users};
use crate::exam_schedule::Window;
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
/// students are cancelled. A switch to the state the lab is already in writes nothing and is
/// not audited. Switching it off also ends the lab's exam window if that has started (the
/// schedule would switch it on again a second later); a window still to come stays.
pub async fn set_exam(pool: &Store, actor: &Actor, lab: &Lab, on: bool) -> Result<ExamSwitched, LabError> {
    let ended_window = if on { None } else { end_started_window(pool, actor, lab, db::now()).await? };
    let changed = switch_exam(pool, actor, lab, on, None).await?;
    Ok(ExamSwitched { changed, ended_window })
}

/// What `set_exam` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExamSwitched {
    /// The lab's exam mode changed (else it was in that state already).
    pub changed: bool,
    /// Switching off ended this exam window of the lab, which had started.
    pub ended_window: Option<Window>,
}

/// Writes and audits an exam-mode switch; with `within`, only while the lab's window holds
/// that time (the schedule's switch). Returns whether it changed.
async fn switch_exam(pool: &Store, actor: &Actor, lab: &Lab, on: bool, within: Option<i64>) -> Result<bool, LabError> {
    if !labs::set_exam(pool, lab.id, on, within).await? {
        // Unchanged, outside the window, or the lab went meanwhile.
        labs::exam_of(pool, lab.id).await?.ok_or(LabError::NoLabWithId(lab.id))?;
        return Ok(false);
    }
    audit::record(pool, actor, AuditEvent::LabPolicySet { lab: &lab.name, exam: on }).await?;
    Ok(true)
}

/// Clears and audits `lab`'s exam window if it has started by `now`; returns it if this call
/// cleared it (another server, or person, may have just done so).
async fn end_started_window(pool: &Store, actor: &Actor, lab: &Lab, now: i64) -> Result<Option<Window>, LabError> {
    let Some(Some(pair)) = labs::exam_window_of(pool, lab.id).await? else { return Ok(None) };
    if !Window::of(pair).started(now) || !labs::clear_exam_window(pool, lab.id, pair).await? {
        return Ok(None);
    }
    audit::record(pool, actor, AuditEvent::LabExamWindowSet { lab: &lab.name, window: None, before: Some(pair) })
        .await?;
    Ok(Some(Window::of(pair)))
}

/// `lab`'s exam window, if it has one.
pub async fn exam_window(pool: &Store, lab: &Lab) -> Result<Option<Window>, LabError> {
    Ok(labs::exam_window_of(pool, lab.id).await?.ok_or(LabError::NoLabWithId(lab.id))?.map(Window::of))
}

/// What `set_exam_window` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSet {
    /// The lab's window now.
    pub window: Option<Window>,
    /// Its window before.
    pub before: Option<Window>,
    /// Whether the lab is in exam mode (a cleared window leaves it as it is).
    pub exam: bool,
}

impl WindowSet {
    pub fn changed(&self) -> bool {
        self.window != self.before
    }

    /// What happened, in the cases the command line and the portal each put in words.
    pub fn outcome(&self, now: i64) -> WindowOutcome {
        match (self.window, self.changed()) {
            (Some(w), true) if w.started(now) => WindowOutcome::Started(w),
            (Some(w), true) => WindowOutcome::Scheduled(w),
            (Some(w), false) => WindowOutcome::Unchanged(w),
            (None, true) if self.exam => WindowOutcome::ClearedExamOn,
            (None, true) => WindowOutcome::Cleared,
            (None, false) => WindowOutcome::NoWindow,
        }
    }
}

/// `WindowSet::outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowOutcome {
    /// Set, and its start has passed: exam mode goes on within a second.
    Started(Window),
    /// Set, to start later.
    Scheduled(Window),
    /// The lab had that window already.
    Unchanged(Window),
    /// Cleared while the lab is in exam mode, which stays on.
    ClearedExamOn,
    Cleared,
    /// There was no window to clear.
    NoWindow,
}

/// Sets `lab`'s exam window (README "Exam mode"), checked at `now` (`Window::new`), replacing
/// the one it had; or with `None` clears it, which leaves exam mode as it is. The server
/// switches exam mode on at the window's start (at once if that has passed) and off at its
/// end (`apply_exam_schedule`). While a window runs, a new one must have started already (it
/// moves the running exam's end): one still to come would leave exam mode on until then.
/// Setting what the lab has already writes nothing and is not audited.
pub async fn set_exam_window(
    pool: &Store,
    actor: &Actor,
    lab: &Lab,
    window: Option<(i64, i64)>,
    now: i64,
) -> Result<WindowSet, LabError> {
    let window = window.map(|(from, until)| Window::new(from, until, now)).transpose().map_err(LabError::Invalid)?;
    let before = exam_window(pool, lab).await?;
    let exam = labs::exam_of(pool, lab.id).await?.ok_or(LabError::NoLabWithId(lab.id))?;
    let set = WindowSet { window, before, exam };
    if !set.changed() {
        return Ok(set);
    }
    if let (Some(new), Some(old)) = (window, before)
        && old.running(now)
        && !new.started(now)
    {
        return Err(LabError::Invalid(format!(
            "the exam window of {} runs until {}: end exam mode first, or give a window that has started already to move its end",
            lab.name,
            crate::exam_schedule::when(old.until)
        )));
    }
    if labs::set_exam_window(pool, lab.id, window.map(Window::pair)).await? {
        let event = AuditEvent::LabExamWindowSet {
            lab: &lab.name,
            window: window.map(Window::pair),
            before: before.map(Window::pair),
        };
        audit::record(pool, actor, event).await?;
    }
    Ok(set)
}

/// What one pass of the exam schedule did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScheduleStep {
    /// The labs whose exam mode it switched, each with its new state.
    pub switched: Vec<(String, bool)>,
    /// When the next start or end of a window comes (unix seconds); `None`: no window left.
    pub next: Option<i64>,
}

/// Applies every lab's exam window at `now` (`exam_schedule::run`), as the schedule
/// (`Actor::schedule`) and through the same writes and audit as a switch by hand: a lab whose
/// window holds `now` goes into exam mode unless it is in it already; a lab whose window has
/// ended goes out of it (whoever switched it on) and its window is cleared (`set_exam`). Each
/// write is conditional, so that several servers on one store make each switch once.
pub async fn apply_exam_schedule(pool: &Store, now: i64) -> Result<ScheduleStep, LabError> {
    let actor = Actor::schedule();
    let mut step = ScheduleStep::default();
    for row in labs::exam_windows(pool).await? {
        let lab = Lab { id: row.id, name: row.name };
        let window = Window { from: row.exam_from, until: row.exam_until };
        let switched = if window.ended(now) {
            end_started_window(pool, &actor, &lab, now).await?;
            switch_exam(pool, &actor, &lab, false, None).await.map(|changed| changed.then_some(false))
        } else if window.started(now) {
            step.next = Some(step.next.map_or(window.until, |t| t.min(window.until)));
            if row.exam != 0 {
                continue;
            }
            switch_exam(pool, &actor, &lab, true, Some(now)).await.map(|changed| changed.then_some(true))
        } else {
            step.next = Some(step.next.map_or(window.from, |t| t.min(window.from)));
            continue;
        };
        match switched {
            Ok(Some(on)) => step.switched.push((lab.name, on)),
            Ok(None) | Err(LabError::NoLabWithId(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(step)
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
        assert!(set_exam(&pool, &actor, &two, true).await.unwrap().changed);
        assert!(!set_exam(&pool, &actor, &two, true).await.unwrap().changed, "already on: not written again");
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

    /// (action, details) of the newest `n` audit rows, newest first.
    async fn audit_rows(pool: &Store, n: i64) -> Vec<(String, String, String)> {
        let rows = db::audit::list(pool, &Default::default(), n).await.unwrap();
        rows.into_iter().map(|r| (r.actor_username, r.action, r.details)).collect()
    }

    #[tokio::test]
    async fn an_exam_window_is_checked_applied_once_and_ended_by_a_switch_off() {
        let pool = db::test_store().await;
        let admin = Actor::system();
        create(&pool, &admin, "Lab 2", &[]).await.unwrap();
        create(&pool, &admin, "Lab 3", &[]).await.unwrap();
        let two = lab_named(&pool, "Lab 2").await.unwrap();
        let three = lab_named(&pool, "Lab 3").await.unwrap();
        let now = 1_000_000;

        for (from, until) in [(now + 60, now + 60), (now - 120, now), (now, now + 25 * 3600)] {
            let refused = set_exam_window(&pool, &admin, &two, Some((from, until)), now).await;
            assert!(matches!(refused, Err(LabError::Invalid(_))), "{from}..{until}: {refused:?}");
        }
        let gone = Lab { id: 99, name: "Gone".into() };
        assert!(matches!(set_exam_window(&pool, &admin, &gone, None, now).await, Err(LabError::NoLabWithId(99))));
        let set = set_exam_window(&pool, &admin, &two, Some((now + 60, now + 120)), now).await.unwrap();
        assert_eq!((set.changed(), set.before, set.exam), (true, None, false));
        assert!(!set_exam_window(&pool, &admin, &two, Some((now + 60, now + 120)), now).await.unwrap().changed());
        set_exam_window(&pool, &admin, &three, Some((now + 30, now + 90)), now).await.unwrap();
        let (_, action, details) = audit_rows(&pool, 1).await.remove(0);
        assert_eq!(
            (action.as_str(), details.as_str()),
            ("lab.policy", r#"{"before":null,"exam_window":{"from":1000030,"until":1000090}}"#)
        );

        // Before any start: nothing switched; the next time to look is Lab 3's start.
        let step = apply_exam_schedule(&pool, now).await.unwrap();
        assert_eq!(step, ScheduleStep { switched: vec![], next: Some(now + 30) });
        // Lab 3 starts; a second server a moment later switches nothing again.
        let step = apply_exam_schedule(&pool, now + 30).await.unwrap();
        assert_eq!(step, ScheduleStep { switched: vec![("Lab 3".into(), true)], next: Some(now + 60) });
        assert_eq!(apply_exam_schedule(&pool, now + 31).await.unwrap().switched, vec![]);
        // While it runs, a window still to come is refused; one that started moves its end.
        let refused = set_exam_window(&pool, &admin, &three, Some((now + 600, now + 900)), now + 40).await;
        assert!(matches!(&refused, Err(LabError::Invalid(m)) if m.contains("end exam mode first")), "{refused:?}");
        set_exam_window(&pool, &admin, &three, Some((now + 30, now + 100)), now + 40).await.unwrap();
        let step = apply_exam_schedule(&pool, now + 60).await.unwrap();
        assert_eq!(step, ScheduleStep { switched: vec![("Lab 2".into(), true)], next: Some(now + 100) });
        // Lab 3's end: off, and its window gone; Lab 2's end comes next.
        let step = apply_exam_schedule(&pool, now + 100).await.unwrap();
        assert_eq!(step, ScheduleStep { switched: vec![("Lab 3".into(), false)], next: Some(now + 120) });
        assert_eq!(exam_window(&pool, &three).await.unwrap(), None);
        assert_eq!(labs::exam_of(&pool, three.id).await.unwrap(), Some(false));
        let rows = audit_rows(&pool, 2).await;
        assert_eq!(rows[0], ("schedule".into(), "lab.policy".into(), r#"{"exam":false}"#.into()));
        assert_eq!(
            rows[1],
            (
                "schedule".into(),
                "lab.policy".into(),
                r#"{"before":{"from":1000030,"until":1000100},"exam_window":null}"#.into()
            )
        );

        // Switched off by hand while Lab 2's window runs: the window ends with it, and the
        // schedule does not switch it on again.
        let off = set_exam(&pool, &admin, &two, false).await.unwrap();
        assert!(off.changed);
        assert_eq!(off.ended_window, Some(Window { from: now + 60, until: now + 120 }));
        assert_eq!(exam_window(&pool, &two).await.unwrap(), None);
        assert_eq!(apply_exam_schedule(&pool, now + 110).await.unwrap(), ScheduleStep::default());

        // A window still to come is not ended by a switch off, and a cleared window leaves exam
        // mode as it is.
        let real_now = db::now();
        set_exam_window(&pool, &admin, &two, Some((real_now + 600, real_now + 900)), real_now).await.unwrap();
        assert_eq!(
            set_exam(&pool, &admin, &two, false).await.unwrap(),
            ExamSwitched { changed: false, ended_window: None }
        );
        assert!(exam_window(&pool, &two).await.unwrap().is_some());
        set_exam_window(&pool, &admin, &two, Some((real_now - 60, real_now + 900)), real_now).await.unwrap();
        assert_eq!(apply_exam_schedule(&pool, real_now).await.unwrap().switched, vec![("Lab 2".to_string(), true)]);
        let off = set_exam(&pool, &admin, &two, false).await.unwrap();
        assert_eq!(off.ended_window, Some(Window { from: real_now - 60, until: real_now + 900 }));
        set_exam(&pool, &admin, &two, true).await.unwrap();
        set_exam_window(&pool, &admin, &two, Some((real_now + 600, real_now + 900)), real_now).await.unwrap();
        let cleared = set_exam_window(&pool, &admin, &two, None, real_now).await.unwrap();
        assert_eq!((cleared.changed(), cleared.exam), (true, true));
        assert_eq!(labs::exam_of(&pool, two.id).await.unwrap(), Some(true));
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
