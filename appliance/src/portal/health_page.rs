//! Health: doctor's checks run in the server process (the ICE run on demand, one per
//! `health::ICE_RUN_INTERVAL`) and the last day's failed transfers by cause.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};

use super::view::{self, Layout};
use super::{NoFields, NoticeQuery, PortalError, PortalForm, PortalPage, done};
use crate::auth::UsersManage;
use crate::db::{self, transfers};
use crate::doctor::{self, Check, Scope, Status};
use crate::health::{self, IceRun};
use crate::state::AppState;

/// The failures counted: a day of the transfer log, at most this many rows.
const FAILURE_WINDOW_SECS: i64 = 24 * 3600;
const MAX_FAILURES: i64 = 10_000;

pub struct CheckView {
    pub check: &'static str,
    /// ok, warn, fail.
    pub status: &'static str,
    pub message: String,
}

fn check_views(checks: &[Check]) -> Vec<CheckView> {
    checks
        .iter()
        .map(|c| CheckView {
            check: c.check,
            status: match c.status {
                Status::Ok => "ok",
                Status::Warn => "warn",
                Status::Fail => "fail",
            },
            message: c.message.clone(),
        })
        .collect()
}

pub struct IceView {
    pub when: String,
    pub by: String,
    pub checks: Vec<CheckView>,
}

pub struct CauseView {
    pub code: String,
    pub words: &'static str,
    pub count: usize,
    pub labs: String,
    pub last: String,
    pub example: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "health.html")]
struct HealthPage {
    layout: Layout,
    notice: String,
    checks: Vec<CheckView>,
    failing: usize,
    ice: Option<IceView>,
    ice_interval_secs: u64,
    causes: Vec<CauseView>,
    failures: usize,
}

pub async fn page(
    State(state): State<AppState>,
    portal: PortalPage<UsersManage>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let now = db::now();
    let failed = transfers::failures_since(&state.db, now - FAILURE_WINDOW_SECS, MAX_FAILURES).await?;
    let checks = doctor::in_process(&state.config, Scope::AllButIce).await;
    let causes = health::causes(&failed)
        .into_iter()
        .map(|c| CauseView {
            words: c.words,
            count: c.count,
            labs: c.labs.into_iter().collect::<Vec<_>>().join(", "),
            last: view::when(Some(c.last_at)),
            example: c.example.chars().take(300).collect(),
            code: c.code,
        })
        .collect();
    let ice = state.ice_runs.last().map(|run| IceView {
        when: view::when(Some(run.finished_at)),
        by: run.by,
        checks: check_views(&run.checks),
    });
    Ok(HealthPage {
        layout: portal.layout("health"),
        notice: view::notice(q.notice.as_deref()),
        failing: checks.iter().filter(|c| c.status == Status::Fail).count(),
        checks: check_views(&checks),
        ice,
        ice_interval_secs: health::ICE_RUN_INTERVAL.as_secs(),
        failures: failed.len(),
        causes,
    }
    .into_response())
}

/// Runs `ice.udp`, `ice.tcp`, `ice.tls` now, unless a run started less than
/// `ICE_RUN_INTERVAL` ago.
pub async fn run_ice(
    State(state): State<AppState>,
    PortalForm { portal, .. }: PortalForm<UsersManage, NoFields>,
) -> Result<Response, PortalError> {
    if let Err(wait) = state.ice_runs.claim() {
        let secs = wait.as_secs().max(1);
        return Ok(done(
            "/admin/health",
            &format!("An ICE check ran moments ago; the next can start in {secs} s. Its result is below."),
        ));
    }
    let checks = doctor::in_process(&state.config, Scope::IceOnly).await;
    let failed = checks.iter().filter(|c| c.status != Status::Ok).count();
    state.ice_runs.finish(IceRun { finished_at: db::now(), by: portal.user.username.clone(), checks });
    let notice = if failed == 0 {
        "The ICE check connected through the relay over every transport."
    } else {
        "The ICE check found problems: see the lines marked below."
    };
    Ok(done("/admin/health", notice))
}
