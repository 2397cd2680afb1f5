//! Labs: names and address ranges (CIDR), validated; ranges that overlap another lab's are
//! refused with the lab they collide with; each lab links to its seat map (`lab_seats`) and
//! has its exam-mode switch and exam window (README "Exam mode"; the window's times are the
//! server's local time, which the page names).
//! The rules, the writes and the audit are `lab_admin`'s; this page parses the forms and
//! shows the result.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::view::{self, Layout};
use super::{NoFields, NoticeQuery, PortalError, PortalForm, PortalPage, done};
use crate::auth::UsersManage;
use crate::db::{labs, seats};
use crate::exam_schedule::{self, Window};
use crate::lab_admin::{self, LabError};
use crate::labs::Visibility;
use crate::state::AppState;

impl From<LabError> for PortalError {
    fn from(e: LabError) -> Self {
        match e {
            LabError::Db(d) => d.into(),
            LabError::NoLabWithId(id) => PortalError::NotFound(format!("lab {id}")),
            LabError::Lines(lines) => PortalError::BadRequest(format!("{}; nothing was changed.", lines.join("; "))),
            LabError::NoSuchLab(name) => PortalError::NotFound(format!("lab {name:?}")),
            other => PortalError::BadRequest(other.to_string()),
        }
    }
}

pub struct LabView {
    pub id: i64,
    pub name: String,
    pub ranges: String,
    pub online: usize,
    /// How many seats its seat map names.
    pub seats: i64,
    /// In exam mode.
    pub exam: bool,
    /// Its own visibility as the form names it: `own`, `all` or `default`.
    pub visibility: &'static str,
    /// What applies to its students now, in words.
    pub visibility_now: String,
    /// Its exam window in words; empty for none.
    pub window: String,
    /// The window's start and end as `datetime-local` values (empty for none).
    pub window_from: String,
    pub window_until: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "labs.html")]
struct LabsPage {
    layout: Layout,
    notice: String,
    labs: Vec<LabView>,
    /// What the TURN relay reaches under these labs, in words.
    relay_reach: String,
    /// The server's offset from UTC, which the exam windows' times are in.
    zone: String,
}

pub async fn page(
    State(state): State<AppState>,
    portal: PortalPage<UsersManage>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let ranges = labs::ranges(&state.db).await?;
    let online = state.signaling.with_hub(|h| h.online_by_lab());
    let seat_counts = seats::counts(&state.db).await?;
    let exams = labs::in_exam(&state.db).await?;
    let own = labs::visibilities(&state.db).await?;
    let scope_all = crate::settings::get_str(&state.db, "presence.scope").await? == "all";
    let windows = labs::exam_windows(&state.db).await?;
    let window_of =
        |id: i64| windows.iter().find(|w| w.id == id).map(|w| Window { from: w.exam_from, until: w.exam_until });
    let views = labs::list(&state.db)
        .await?
        .into_iter()
        .map(|l| LabView {
            ranges: ranges.iter().filter(|r| r.lab == l.name).map(|r| r.cidr.as_str()).collect::<Vec<_>>().join("\n"),
            online: online.iter().find(|(lab, _)| *lab == l.name).map(|(_, n)| *n).unwrap_or(0),
            seats: seat_counts.iter().find(|(id, _)| *id == l.id).map(|(_, n)| *n).unwrap_or(0),
            exam: exams.contains(&l.name),
            visibility: own
                .iter()
                .find(|(lab, _)| *lab == l.name)
                .and_then(|(_, w)| Visibility::from_stored(w))
                .map_or("default", Visibility::as_str),
            visibility_now: visibility_now(
                own.iter().find(|(lab, _)| *lab == l.name).map(|(_, w)| w.as_str()),
                scope_all,
            ),
            window: window_of(l.id).map(exam_schedule::describe).unwrap_or_default(),
            window_from: window_of(l.id).map(|w| exam_schedule::input_value(w.from)).unwrap_or_default(),
            window_until: window_of(l.id).map(|w| exam_schedule::input_value(w.until)).unwrap_or_default(),
            id: l.id,
            name: l.name,
        })
        .collect();
    let relay_reach = crate::turn::describe_peer_policy(&state.db, &state.config.turn).await?;
    Ok(LabsPage {
        layout: portal.layout("labs"),
        notice: view::notice(q.notice.as_deref()),
        labs: views,
        relay_reach,
        zone: exam_schedule::zone_now(),
    }
    .into_response())
}

/// Ranges typed one per line (or separated by commas or spaces).
fn split_ranges(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

#[derive(Deserialize)]
pub struct LabForm {
    name: Option<String>,
    ranges: String,
}

pub async fn create(
    State(state): State<AppState>,
    PortalForm { portal, form: f, .. }: PortalForm<UsersManage, LabForm>,
) -> Result<Response, PortalError> {
    let name = f.name.unwrap_or_default();
    let lab = lab_admin::create(&state.db, &portal.actor, &name, &split_ranges(&f.ranges)).await?;
    Ok(done("/admin/labs", &format!("Created lab {}.", lab.name)))
}

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, form: f, .. }: PortalForm<UsersManage, LabForm>,
) -> Result<Response, PortalError> {
    let lab = lab_admin::set_ranges(&state.db, &portal.actor, id, &split_ranges(&f.ranges)).await?;
    Ok(done("/admin/labs", &format!("Saved {}. Devices in its ranges move to it at once.", lab.name)))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, .. }: PortalForm<UsersManage, NoFields>,
) -> Result<Response, PortalError> {
    let lab = labs::by_id(&state.db, id).await?.ok_or_else(|| PortalError::NotFound(format!("lab {id}")))?;
    lab_admin::remove(&state.db, &portal.actor, &lab.name).await?;
    Ok(done("/admin/labs", &format!("Deleted lab {}.", lab.name)))
}

/// What applies to a lab's students, in words: its own choice (stored word), else the
/// setting.
fn visibility_now(own: Option<&str>, scope_all: bool) -> String {
    let choice = own.and_then(Visibility::from_stored);
    let what = match Visibility::effective(choice, scope_all) {
        Visibility::Own => "own lab only",
        Visibility::All => "all labs",
    };
    match choice {
        Some(_) => what.to_string(),
        None => format!("{what}, from presence.scope"),
    }
}

/// One policy of a lab per form: `exam` (`on`/`off`) or `visibility`
/// (`own`/`all`/`default`).
#[derive(Deserialize)]
pub struct PolicyForm {
    exam: Option<String>,
    visibility: Option<String>,
}

/// The exam-mode switch: `exam` is `on` or `off`.
fn exam_switch(value: &str) -> Result<bool, PortalError> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(PortalError::BadRequest(format!("exam mode is \"on\" or \"off\", not {other:?}"))),
    }
}

pub async fn policy(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, form: f, .. }: PortalForm<UsersManage, PolicyForm>,
) -> Result<Response, PortalError> {
    let (exam, visibility) = match (f.exam.as_deref(), f.visibility.as_deref()) {
        (Some(exam), None) => (exam, None),
        (None, Some(word)) => ("", Some(Visibility::parse_choice(word).map_err(PortalError::BadRequest)?)),
        _ => return Err(PortalError::BadRequest("send either exam (on|off) or visibility (own|all|default)".into())),
    };
    let lab = lab_admin::lab_with_id(&state.db, id).await?;
    if let Some(choice) = visibility {
        let changed = lab_admin::set_visibility(&state.db, &portal.actor, &lab, choice).await?;
        let what = match choice {
            Some(Visibility::Own) => "see only their own lab, and other labs' students do not see them",
            Some(Visibility::All) => "see every lab that shows every lab",
            None => "follow the setting presence.scope",
        };
        let notice = if changed {
            format!("{}'s students now {what}.", lab.name)
        } else {
            format!("{}'s students {what} already.", lab.name)
        };
        return Ok(done("/admin/labs", &notice));
    }
    let on = exam_switch(exam)?;
    let switched = lab_admin::set_exam(&state.db, &portal.actor, &lab, on).await?;
    let mut notice = match (switched.changed, on) {
        (true, true) => format!(
            "{} is in exam mode: its students can no longer send or receive files one to one, and see only its instructors.",
            lab.name
        ),
        (true, false) => format!("Exam mode of {} ended: its students can send and receive again.", lab.name),
        (false, true) => format!("{} is in exam mode already.", lab.name),
        (false, false) => format!("{} is not in exam mode.", lab.name),
    };
    if let Some(w) = switched.ended_window {
        notice.push_str(&format!(" Its exam window ({}) ended with it.", exam_schedule::describe(w)));
    }
    Ok(done("/admin/labs", &notice))
}

/// A lab's exam window: `from` and `until` (`datetime-local` values, the server's local
/// time; RFC 3339 is taken too), or `clear`.
#[derive(Deserialize)]
pub struct ScheduleForm {
    from: Option<String>,
    until: Option<String>,
    clear: Option<String>,
}

/// `from`/`until` of a schedule form, as unix seconds; `what` names the field in an error.
fn form_time(value: Option<&str>, what: &str) -> Result<i64, PortalError> {
    let value = value.map(str::trim).unwrap_or("");
    if value.is_empty() {
        return Err(PortalError::BadRequest(format!("Give the exam window's {what} (date and time).")));
    }
    exam_schedule::parse_time(value).map_err(|e| PortalError::BadRequest(format!("The exam window's {what}: {e}.")))
}

pub async fn schedule(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, form: f, .. }: PortalForm<UsersManage, ScheduleForm>,
) -> Result<Response, PortalError> {
    let window = match (f.clear.is_some(), f.from.is_some() || f.until.is_some()) {
        (true, false) => None,
        (false, true) => Some((form_time(f.from.as_deref(), "start")?, form_time(f.until.as_deref(), "end")?)),
        _ => return Err(PortalError::BadRequest("send either from and until, or clear".into())),
    };
    let lab = lab_admin::lab_with_id(&state.db, id).await?;
    let now = crate::db::now();
    let set = lab_admin::set_exam_window(&state.db, &portal.actor, &lab, window, now).await?;
    let name = &lab.name;
    use lab_admin::WindowOutcome as O;
    let notice = match set.outcome(now) {
        O::Started(w) => format!(
            "{name}'s exam window is now {}. It has started: exam mode goes on within a second, and off at its end.",
            exam_schedule::describe(w)
        ),
        O::Scheduled(w) => format!(
            "{name}'s exam window is now {}: the server switches exam mode on at its start and off at its end.",
            exam_schedule::describe(w)
        ),
        O::Unchanged(w) => format!("{name}'s exam window is {} already.", exam_schedule::describe(w)),
        O::ClearedExamOn => {
            format!("{name}'s exam window is cleared. Exam mode stays on until you end it.")
        }
        O::Cleared => format!("{name}'s exam window is cleared."),
        O::NoWindow => format!("{name} has no exam window."),
    };
    Ok(done("/admin/labs", &notice))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_exam_switch_takes_on_or_off_only() {
        assert!(super::exam_switch("on").unwrap());
        assert!(!super::exam_switch("off").unwrap());
        for bad in ["", "ON", "yes", "1"] {
            assert!(super::exam_switch(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_visibility_column_says_what_applies_and_where_it_comes_from() {
        assert_eq!(super::visibility_now(Some("own"), true), "own lab only");
        assert_eq!(super::visibility_now(Some("all"), false), "all labs");
        assert_eq!(super::visibility_now(None, true), "all labs, from presence.scope");
        assert_eq!(super::visibility_now(None, false), "own lab only, from presence.scope");
    }

    #[test]
    fn ranges_split_on_lines_commas_and_spaces() {
        assert_eq!(
            super::split_ranges("10.0.0.0/24\n10.0.1.0/24, 10.0.2.0/24  "),
            vec!["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]
        );
    }
}
