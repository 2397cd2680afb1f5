//! Health: doctor's checks run in the server process (the ICE run on demand, one per
//! `health::ICE_RUN_INTERVAL`), the last day's failed transfers by cause, and the lab PCs'
//! "Test my connection" results by lab.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};

use super::view::{self, Layout};
use super::{NoFields, NoticeQuery, PortalError, PortalForm, PortalPage, done};
use crate::auth::UsersManage;
use crate::db::connection_tests::{self, PathResult};
use crate::db::{self, transfers};
use crate::doctor::{self, Check, Scope, Status};
use crate::health::{self, IceRun, RelayPorts};
use crate::labs::LabName;
use crate::state::AppState;

/// The failures counted: a day of the transfer log, at most this many rows.
const FAILURE_WINDOW_SECS: i64 = 24 * 3600;
const MAX_FAILURES: i64 = 10_000;
/// Connection tests shown: each PC's newest of the last week.
const TEST_WINDOW_SECS: i64 = 7 * 24 * 3600;
const MAX_TESTS: i64 = 2_000;

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

pub struct PcView {
    pub address: String,
    pub who: String,
    pub when: String,
    pub direct: &'static str,
    pub udp: &'static str,
    pub tcp: &'static str,
    pub tls: &'static str,
    pub verdict_code: &'static str,
    pub verdict: String,
}

pub struct LabTests {
    pub lab: String,
    pub summary: String,
    pub pcs: Vec<PcView>,
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
    labs: Vec<LabTests>,
}

pub async fn page(
    State(state): State<AppState>,
    portal: PortalPage<UsersManage>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let now = db::now();
    let failed = transfers::failures_since(&state.db, now - FAILURE_WINDOW_SECS, MAX_FAILURES).await?;
    let tests = connection_tests::latest_per_address_since(&state.db, now - TEST_WINDOW_SECS, MAX_TESTS).await?;
    let checks = doctor::in_process(&state.config, &state.db, Scope::AllButIce).await;
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
        labs: lab_tests(tests, &RelayPorts::of(&state.config)),
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
    let checks = doctor::in_process(&state.config, &state.db, Scope::IceOnly).await;
    let failed = checks.iter().filter(|c| c.status != Status::Ok).count();
    state.ice_runs.finish(IceRun { finished_at: db::now(), by: portal.user.username.clone(), checks });
    let notice = if failed == 0 {
        "The ICE check connected through the relay over every transport."
    } else {
        "The ICE check found problems: see the lines marked below."
    };
    Ok(done("/admin/health", notice))
}

fn path_word(p: PathResult) -> &'static str {
    match p {
        PathResult::Ok => "ok",
        PathResult::Failed => "failed",
        PathResult::NotOffered => "not offered",
    }
}

/// The tests grouped by lab (labs by name, "Other" last), each PC's newest first, with a
/// summary line per lab.
fn lab_tests(tests: Vec<connection_tests::ConnectionTest>, relay: &RelayPorts) -> Vec<LabTests> {
    let other = LabName::other();
    let mut by_lab: BTreeMap<(bool, String), Vec<PcView>> = BTreeMap::new();
    for t in tests {
        let verdict = health::verdict(&t.paths, relay);
        let lab = if t.lab.is_empty() { other.as_str().to_string() } else { t.lab };
        by_lab.entry((lab == other.as_str(), lab)).or_default().push(PcView {
            address: t.client_addr,
            who: format!("{} ({})", t.username, t.device),
            when: view::when(Some(t.tested_at)),
            direct: path_word(t.paths.direct),
            udp: path_word(t.paths.relay_udp),
            tcp: path_word(t.paths.relay_tcp),
            tls: path_word(t.paths.relay_tls),
            verdict_code: verdict.code,
            verdict: verdict.words,
        });
    }
    by_lab.into_iter().map(|((_, lab), pcs)| LabTests { summary: summary(&pcs), lab, pcs }).collect()
}

/// "2 PCs tested: 1 relay over TCP/TLS only (no UDP), 1 all good".
fn summary(pcs: &[PcView]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for pc in pcs {
        *counts.entry(pc.verdict_code).or_default() += 1;
    }
    let phrase = |code: &str| match code {
        "all" => "all good",
        "relay_tcp_tls_only" => "relay over TCP/TLS only (no UDP)",
        "no_relay" => "cannot reach the relay at all",
        "relay_partial" => "relay works, one transport failed",
        "relay_only" => "relay only (no address for direct connections)",
        "relay_off" => "relay off",
        _ => "other",
    };
    let parts: Vec<String> = counts.iter().map(|(code, n)| format!("{n} {}", phrase(code))).collect();
    let pcs_word = if pcs.len() == 1 { "PC" } else { "PCs" };
    format!("{} {pcs_word} tested: {}", pcs.len(), parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::connection_tests::{ConnectionTest, Paths};

    fn test(lab: &str, addr: &str, udp: PathResult) -> ConnectionTest {
        ConnectionTest {
            id: 1,
            tested_at: 1_700_000_000,
            username: "ann".into(),
            device: "Chrome on Linux".into(),
            client_addr: addr.into(),
            lab: lab.into(),
            paths: Paths {
                direct: PathResult::Ok,
                stun: udp,
                relay_udp: udp,
                relay_tcp: PathResult::Ok,
                relay_tls: PathResult::Ok,
            },
        }
    }

    #[test]
    fn tests_are_grouped_by_lab_with_other_last_and_summed_up() {
        let relay = RelayPorts { host: "h".into(), turn_port: 3478, tls_port: 5349, relay_ports: (50000, 50100) };
        let labs = lab_tests(
            vec![
                test("", "10.9.9.9", PathResult::Ok),
                test("Lab 2.14", "10.1.0.5", PathResult::Failed),
                test("Lab 2.14", "10.1.0.6", PathResult::Ok),
                test("Lab 1.01", "10.2.0.5", PathResult::Ok),
            ],
            &relay,
        );
        let names: Vec<&str> = labs.iter().map(|l| l.lab.as_str()).collect();
        assert_eq!(names, ["Lab 1.01", "Lab 2.14", "Other"]);
        assert_eq!(labs[1].summary, "2 PCs tested: 1 all good, 1 relay over TCP/TLS only (no UDP)");
        assert_eq!(labs[1].pcs[0].verdict_code, "relay_tcp_tls_only");
        assert_eq!(labs[0].summary, "1 PC tested: 1 all good");
    }
}
