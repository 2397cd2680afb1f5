//! Makes every access change act on live connections at once: watches the store's
//! `access_generation` (bumped by triggers whenever a role, a role's permissions, a user's
//! status or labs, a lab's ranges or a setting changes, or a session ends, by whichever
//! process) and, when it moves, drops the sockets of ended sessions, re-evaluates every
//! connected socket (`signaling::access::reevaluate`) and tells the TURN relay to reload its
//! users, sessions and lab ranges (through `AppState::access_changes`).
//!
//! Watching needs no signal from the command line, which is another process: the watch
//! looks at the database files' write stamp (`db::write_stamp`, two `stat` calls) four
//! times a second and reads the counter only when the files changed, and at least every
//! few seconds whatever the stamp says. Reading the row on every tick was most of what an
//! idle server spent (bench/turn/README.md, 2026-12-02).

use std::time::Duration;

use crate::db;
use crate::state::AppState;

/// How often the counter is read: the longest a change waits before it acts.
pub const POLL: Duration = Duration::from_millis(250);
/// The counter is read at least this often, even when the write stamp did not move.
const READ_AT_LEAST_EVERY: Duration = Duration::from_secs(5);

pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: Option<i64> = None;
    let mut failing = false;
    let mut stamp = None;
    let mut last_read = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        let now_stamp = db::write_stamp(&state.config.data_dir);
        if !failing && stamp.as_ref() == Some(&now_stamp) && last_read.elapsed() < READ_AT_LEAST_EVERY {
            continue;
        }
        // Taken before the read, so a write during the read moves it again.
        stamp = Some(now_stamp);
        last_read = tokio::time::Instant::now();
        let generation = match db::access::generation(&state.db).await {
            Ok(g) => g,
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot read the access generation; live sockets keep their rights until it can be read");
                }
                failing = true;
                continue;
            }
        };
        if seen == Some(generation) {
            failing = false;
            continue;
        }
        if seen.is_some() {
            if let Err(e) = crate::signaling::drop_ended_sessions(&state).await {
                tracing::warn!(error = %e, "cannot check live sessions");
            }
            match crate::signaling::access::reevaluate(&state, None).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(sockets = n, "access changed: sockets disconnected to re-join with their new rights")
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot re-evaluate live sockets; trying again");
                    }
                    failing = true;
                    continue;
                }
            }
        }
        failing = false;
        seen = Some(generation);
        state.access_changes.send_replace(generation);
    }
}
