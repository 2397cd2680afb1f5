//! A lab's seat map (`/admin/labs/{id}/seats`): which name a device connecting from each
//! address is shown under. One seat is named, renamed or removed at a time, or the whole map
//! edited as `address,name` lines, or a CSV file of such lines imported (added to the map,
//! or replacing it). The rules, the writes and the audit are `lab_admin`'s; a list with a bad
//! line changes nothing, and the page shows every bad line with the text as entered.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::view::{self, Layout};
use super::{NoticeQuery, PortalError, PortalForm, PortalPage, PortalUpload, PortalUser, done};
use crate::auth::UsersManage;
use crate::db::labs::{self, Lab};
use crate::lab_admin::{self, LabError};
use crate::seats::Mode;
use crate::state::AppState;

pub struct SeatView {
    pub address: String,
    pub name: String,
    /// The lab's ranges still hold the address (else the seat names no device).
    pub in_use: bool,
    /// Who is connected from there now (user names).
    pub online: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "lab_seats.html")]
struct SeatsPage {
    layout: Layout,
    notice: String,
    lab_id: i64,
    lab: String,
    ranges: String,
    seats: Vec<SeatView>,
    /// What could not be applied (nothing was).
    errors: Vec<String>,
    /// The whole map as `address,name` lines (or the text as entered, after an error).
    map_text: String,
    /// The one-seat form's values as entered, after an error.
    address: String,
    name: String,
}

/// What the forms entered, to show again next to their errors.
#[derive(Default)]
struct Entered {
    errors: Vec<String>,
    map_text: Option<String>,
    address: String,
    name: String,
}

/// One `address,name` line; a name holding a comma or a quote is quoted (CSV).
fn seat_line(address: &str, name: &str) -> String {
    if name.contains([',', '"']) {
        format!("{address},\"{}\"", name.replace('"', "\"\""))
    } else {
        format!("{address},{name}")
    }
}

async fn render(
    state: &AppState,
    portal: &PortalUser,
    lab: Lab,
    notice: String,
    entered: Entered,
) -> Result<SeatsPage, PortalError> {
    let seats = lab_admin::seats_of(&state.db, &lab).await?;
    let ranges = labs::ranges(&state.db).await?;
    let ranges: Vec<&str> = ranges.iter().filter(|r| r.lab == lab.name).map(|r| r.cidr.as_str()).collect();
    let online: Vec<(std::net::IpAddr, String)> = state.signaling.with_hub(|h| {
        h.members()
            .filter(|m| m.peer.lab.as_str() == lab.name && !m.peer.self_selected)
            .map(|m| (m.addr, m.peer.username.clone()))
            .collect()
    });
    let map_text =
        entered.map_text.unwrap_or_else(|| seats.iter().map(|(a, n, _)| seat_line(a, n) + "\n").collect::<String>());
    let seats = seats
        .into_iter()
        .map(|(address, name, in_use)| {
            let mut here: Vec<&str> = online
                .iter()
                .filter(|(addr, _)| address.parse::<std::net::IpAddr>().is_ok_and(|a| a == *addr))
                .map(|(_, user)| user.as_str())
                .collect();
            here.sort_unstable();
            here.dedup();
            SeatView { address, name, in_use, online: here.join(", ") }
        })
        .collect();
    Ok(SeatsPage {
        layout: portal.layout("labs"),
        notice,
        lab_id: lab.id,
        lab: lab.name,
        ranges: if ranges.is_empty() { "none".into() } else { ranges.join(", ") },
        seats,
        errors: entered.errors,
        map_text,
        address: entered.address,
        name: entered.name,
    })
}

/// The page again with what could not be applied (400), or the error page for anything else.
async fn refused(
    state: &AppState,
    portal: &PortalUser,
    lab: Lab,
    error: LabError,
    mut entered: Entered,
) -> Result<Response, PortalError> {
    entered.errors = match error {
        LabError::Lines(lines) => lines,
        e @ (LabError::Invalid(_) | LabError::NoSuchSeat { .. }) => vec![e.to_string()],
        other => return Err(other.into()),
    };
    let page = render(state, portal, lab, String::new(), entered).await?;
    Ok((StatusCode::BAD_REQUEST, page).into_response())
}

fn back(id: i64) -> String {
    format!("/admin/labs/{id}/seats")
}

pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    portal: PortalPage<UsersManage>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let lab = lab_admin::lab_with_id(&state.db, id).await?;
    let notice = view::notice(q.notice.as_deref());
    Ok(render(&state, &portal, lab, notice, Entered::default()).await?.into_response())
}

#[derive(Deserialize)]
pub struct SeatForm {
    address: String,
    #[serde(default)]
    name: String,
}

/// Names (or renames) one seat.
pub async fn set(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, form: f, .. }: PortalForm<UsersManage, SeatForm>,
) -> Result<Response, PortalError> {
    let lab = lab_admin::lab_with_id(&state.db, id).await?;
    match lab_admin::set_seat(&state.db, &portal.actor, &lab, &f.address, &f.name).await {
        Ok(set) => {
            let what = match &set.before {
                None => format!("{} is now {}.", set.address, set.name),
                Some(_) if set.unchanged() => format!("{} is {} already.", set.address, set.name),
                Some(before) => format!("Renamed {} from {before} to {}.", set.address, set.name),
            };
            Ok(done(&back(id), &format!("{what} Devices there show the new name at once.")))
        }
        Err(e) => {
            let entered = Entered { address: f.address, name: f.name, ..Entered::default() };
            refused(&state, &portal, lab, e, entered).await
        }
    }
}

#[derive(Deserialize)]
pub struct RemoveForm {
    address: String,
}

pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, form: f, .. }: PortalForm<UsersManage, RemoveForm>,
) -> Result<Response, PortalError> {
    let lab = lab_admin::lab_with_id(&state.db, id).await?;
    match lab_admin::remove_seat(&state.db, &portal.actor, &lab, &f.address).await {
        Ok((address, name)) => Ok(done(&back(id), &format!("Removed seat {name} ({address})."))),
        Err(e) => refused(&state, &portal, lab, e, Entered::default()).await,
    }
}

#[derive(Deserialize)]
pub struct MapForm {
    #[serde(default)]
    seats: String,
}

fn summary(d: &lab_admin::SeatsImported) -> String {
    format!("{} added, {} renamed, {} removed, {} kept.", d.added, d.renamed, d.removed, d.kept)
}

/// The edited map: its lines become the lab's whole seat map.
pub async fn save_map(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, form: f, .. }: PortalForm<UsersManage, MapForm>,
) -> Result<Response, PortalError> {
    let lab = lab_admin::lab_with_id(&state.db, id).await?;
    match lab_admin::import_seats(&state.db, &portal.actor, &lab, &f.seats, Mode::Replace).await {
        Ok(d) => Ok(done(&back(id), &format!("Saved the seat map: {}", summary(&d)))),
        Err(e) => {
            let entered = Entered { map_text: Some(f.seats), ..Entered::default() };
            refused(&state, &portal, lab, e, entered).await
        }
    }
}

/// A CSV file of `address,name` lines: added to the map, or (`replace` ticked) as the map.
pub async fn import(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalUpload { portal, parts, .. }: PortalUpload<UsersManage>,
) -> Result<Response, PortalError> {
    let lab = lab_admin::lab_with_id(&state.db, id).await?;
    let file = parts.get("file").cloned().unwrap_or_default();
    let text = match String::from_utf8(file.to_vec()) {
        Ok(t) if !t.trim().is_empty() => t,
        Ok(_) => {
            let e = LabError::Invalid("Choose a CSV file of address,name lines.".into());
            return refused(&state, &portal, lab, e, Entered::default()).await;
        }
        Err(_) => {
            let e = LabError::Invalid("The file is not UTF-8 text.".into());
            return refused(&state, &portal, lab, e, Entered::default()).await;
        }
    };
    let mode = if parts.contains_key("replace") { Mode::Replace } else { Mode::Merge };
    match lab_admin::import_seats(&state.db, &portal.actor, &lab, &text, mode).await {
        Ok(d) => Ok(done(&back(id), &format!("Imported the file: {}", summary(&d)))),
        Err(e) => refused(&state, &portal, lab, e, Entered::default()).await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_with_commas_or_quotes_are_quoted_and_read_back() {
        let text: String = [("10.0.2.1", "PC 1"), ("10.0.2.2", "Back, left \"B\""), ("10.0.2.3", "#3")]
            .iter()
            .map(|(a, n)| super::seat_line(a, n) + "\n")
            .collect();
        let lines = crate::seats::read_lines(&text).unwrap();
        let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["PC 1", "Back, left \"B\"", "#3"]);
    }
}
