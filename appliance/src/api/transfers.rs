//! Transfer history. Everyone sees the transfers they sent or received; user managers see
//! everyone's unless they ask for their own (`scope=own`, the web client's history), and
//! may filter by user, lab, status, path and date.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use crate::auth::CurrentUser;
use crate::db::transfers::{self, TransferFilter, TransferStatus};
use crate::permission::Permission;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// `own`: the caller's transfers; `all`: everyone's (needs users.manage). Default: `all`
    /// for user managers, `own` for everyone else.
    scope: Option<String>,
    user: Option<String>,
    lab: Option<String>,
    status: Option<String>,
    path: Option<String>,
    /// Unix seconds, inclusive.
    from: Option<i64>,
    to: Option<i64>,
    /// The `next` cursor of the previous page.
    cursor: Option<String>,
    limit: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 500"));
    }
    if let Some(s) = &q.status
        && TransferStatus::parse(s).is_none()
    {
        let words: Vec<&str> = TransferStatus::ALL.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::bad_request(format!("status must be one of {}", words.join(", "))));
    }
    if let Some(p) = &q.path
        && p != "direct"
        && p != "relay"
    {
        return Err(ApiError::bad_request("path must be direct or relay"));
    }
    let admin = user.has(Permission::UsersManage);
    let everyone = match q.scope.as_deref() {
        None => admin,
        Some("own") => false,
        Some("all") if admin => true,
        Some("all") => {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "everyone's transfers (scope=all) need the permission users.manage",
            ));
        }
        Some(_) => return Err(ApiError::bad_request("scope must be own or all")),
    };
    if !admin && (q.user.is_some() || q.lab.is_some()) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "filtering by user or lab needs the permission users.manage",
        ));
    }
    let before = match &q.cursor {
        Some(c) => Some(parse_cursor(c).ok_or_else(|| ApiError::bad_request("cursor is not valid"))?),
        None => None,
    };
    let filter = TransferFilter {
        party: (!everyone).then_some(user.id),
        username: q.user,
        lab: q.lab,
        status: q.status,
        path: q.path,
        from: q.from,
        to: q.to,
        before,
    };
    let rows = transfers::list(&state.db, &filter, limit).await?;
    let next =
        (rows.len() as i64 == limit).then(|| rows.last().map(|r| format!("{}.{}", r.requested_at, r.id))).flatten();
    Ok(Json(json!({ "transfers": rows, "next": next })))
}

fn parse_cursor(c: &str) -> Option<(i64, String)> {
    let (at, id) = c.split_once('.')?;
    let valid_id = !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
    valid_id.then_some((at.parse().ok()?, id.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cursor_round_trip_and_garbage() {
        assert_eq!(super::parse_cursor("17.abc"), Some((17, "abc".into())));
        for bad in ["", "17", "x.abc", "17.", "17.a;b"] {
            assert_eq!(super::parse_cursor(bad), None, "{bad}");
        }
    }
}
