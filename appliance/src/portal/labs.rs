//! Labs: names and address ranges (CIDR), validated; ranges that overlap another lab's are
//! refused with the lab they collide with; each lab links to its seat map (`lab_seats`) and
//! has its exam-mode switch (README "Exam mode").
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
}

#[derive(Template, WebTemplate)]
#[template(path = "labs.html")]
struct LabsPage {
    layout: Layout,
    notice: String,
    labs: Vec<LabView>,
    /// What the TURN relay reaches under these labs, in words.
    relay_reach: String,
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
            id: l.id,
            name: l.name,
        })
        .collect();
    let relay_reach = crate::turn::describe_peer_policy(&state.db, &state.config.turn).await?;
    Ok(LabsPage { layout: portal.layout("labs"), notice: view::notice(q.notice.as_deref()), labs: views, relay_reach }
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
    let notice = match (lab_admin::set_exam(&state.db, &portal.actor, &lab, on).await?, on) {
        (true, true) => format!(
            "{} is in exam mode: its students can no longer send or receive files one to one, and see only its instructors.",
            lab.name
        ),
        (true, false) => format!("Exam mode of {} ended: its students can send and receive again.", lab.name),
        (false, true) => format!("{} is in exam mode already.", lab.name),
        (false, false) => format!("{} is not in exam mode.", lab.name),
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
