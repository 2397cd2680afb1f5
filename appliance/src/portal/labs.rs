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
    let views = labs::list(&state.db)
        .await?
        .into_iter()
        .map(|l| LabView {
            ranges: ranges.iter().filter(|r| r.lab == l.name).map(|r| r.cidr.as_str()).collect::<Vec<_>>().join("\n"),
            online: online.iter().find(|(lab, _)| *lab == l.name).map(|(_, n)| *n).unwrap_or(0),
            seats: seat_counts.iter().find(|(id, _)| *id == l.id).map(|(_, n)| *n).unwrap_or(0),
            exam: exams.contains(&l.name),
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

#[derive(Deserialize)]
pub struct PolicyForm {
    exam: String,
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
    let on = exam_switch(&f.exam)?;
    let lab = lab_admin::lab_with_id(&state.db, id).await?;
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
    fn ranges_split_on_lines_commas_and_spaces() {
        assert_eq!(
            super::split_ranges("10.0.0.0/24\n10.0.1.0/24, 10.0.2.0/24  "),
            vec!["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"]
        );
    }
}
