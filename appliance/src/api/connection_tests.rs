//! `POST /api/connection-tests`: a browser's "Test my connection" result (what it reached
//! on the appliance's STUN and TURN), stored with the lab its address is in for the
//! portal's Health page, and answered with the verdict the admin will read.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiJson};
use crate::auth::{ClientAddr, CurrentUser};
use crate::db::connection_tests::{self, NewTest, Paths};
use crate::db::{self, labs};
use crate::health::{self, RelayPorts};
use crate::labs::LabMatcher;
use crate::state::AppState;
use crate::text::clean_text;

/// Results one account may send per hour: a person testing, not a script filling the log.
const MAX_PER_HOUR: i64 = 20;
const MAX_DEVICE_CHARS: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestReport {
    /// The device's name as the web client shows it (a seat name of its address wins).
    device: String,
    paths: Paths,
}

pub async fn record(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    user: CurrentUser,
    ApiJson(report): ApiJson<TestReport>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let device = clean_text(&report.device, MAX_DEVICE_CHARS);
    if device.is_empty() {
        return Err(ApiError::bad_request("device must name this device (1 to 64 characters)"));
    }
    let sent = connection_tests::count_by_user_since(&state.db, user.id, db::now() - 3600).await?;
    if sent >= MAX_PER_HOUR {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("at most {MAX_PER_HOUR} connection tests an hour; the ones sent are on record"),
        );
        e.retry_after = Some(600);
        return Err(e);
    }
    let ranges = labs::ranges(&state.db).await?;
    let lab = LabMatcher::new(&ranges).lab_of(addr).map(|l| l.as_str().to_string()).unwrap_or_default();
    let address = crate::turn::canonical_ip(addr).to_string();
    // The lab's seat name for this address, as presence shows the device.
    let seat = if lab.is_empty() { None } else { db::seats::name_at(&state.db, &lab, &address).await? };
    let device = seat.unwrap_or(device);
    let stored = connection_tests::record(
        &state.db,
        &NewTest {
            user_id: user.id,
            username: &user.username,
            device: &device,
            client_addr: &address,
            lab: &lab,
            paths: report.paths,
        },
    )
    .await?;
    let verdict = health::verdict(&stored.paths, &RelayPorts::of(&state.config));
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "test": {
                "id": stored.id,
                "tested_at": stored.tested_at,
                "lab": if stored.lab.is_empty() { crate::labs::LabName::other().as_str().to_string() } else { stored.lab },
                "verdict": { "code": verdict.code, "words": verdict.words },
            }
        })),
    ))
}
