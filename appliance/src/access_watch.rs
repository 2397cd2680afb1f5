//! Makes every access change act on live connections at once: watches the store's
//! `access_generation` (bumped by triggers whenever a role, a role's permissions, a user's
//! status or labs, a lab's ranges or a setting changes, or a session ends, by whichever
//! process) and, when it moves, drops the sockets of ended sessions, re-evaluates every
//! connected socket (`signaling::access::reevaluate`) and tells the TURN relay to reload its
//! users, sessions and lab ranges (through `AppState::access_changes`).
//!
//! Watching needs no signal from the command line, which is another process. On SQLite
//! the watch looks at the database files' write stamp (`db::write_stamp`, two `stat`
//! calls) four times a second and reads the counter only when the files changed, and at
//! least every few seconds whatever the stamp says: reading the row on every tick was most
//! of what an idle server spent (bench/turn/README.md, 2026-12-02). On PostgreSQL
//! the same triggers also `NOTIFY labbeam_access`, and the watch `LISTEN`s on its own
//! connection: it reads the counter when notified, when that connection was lost (a
//! notification may have been missed), and at least every few seconds.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::db;
use crate::state::AppState;

/// How often the SQLite write stamp is looked at: the longest a change waits before it
/// acts. Also the pause between two reads while the store fails.
pub const POLL: Duration = Duration::from_millis(250);
/// The counter is read at least this often, whatever wakes the watch or does not.
const READ_AT_LEAST_EVERY: Duration = Duration::from_secs(5);
/// The channel the access triggers notify on PostgreSQL (migration 0004).
pub const CHANNEL: &str = "labbeam_access";

/// What tells the watch that the counter may have moved.
enum Wakeup {
    Stamp { file: PathBuf, tick: tokio::time::Interval, stamp: Option<db::WriteStamp>, last_read: tokio::time::Instant },
    Listen { pool: sqlx::PgPool, listener: Option<PgListener> },
}

impl Wakeup {
    fn of(store: &db::Store) -> Wakeup {
        match store {
            db::Store::Sqlite(pool) => {
                let mut tick = tokio::time::interval(POLL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                Wakeup::Stamp {
                    file: pool.connect_options().get_filename().to_path_buf(),
                    tick,
                    stamp: None,
                    last_read: tokio::time::Instant::now(),
                }
            }
            db::Store::Postgres(pool) => Wakeup::Listen { pool: pool.clone(), listener: None },
        }
    }

    /// Returns when the counter should be read.
    async fn wait(&mut self, failing: bool) {
        match self {
            Wakeup::Stamp { file, tick, stamp, last_read } => loop {
                tick.tick().await;
                let now_stamp = db::write_stamp(file);
                if !failing && stamp.as_ref() == Some(&now_stamp) && last_read.elapsed() < READ_AT_LEAST_EVERY {
                    continue;
                }
                // Taken before the read, so a write during the read moves it again.
                *stamp = Some(now_stamp);
                *last_read = tokio::time::Instant::now();
                return;
            },
            Wakeup::Listen { pool, listener } => {
                if failing {
                    tokio::time::sleep(POLL).await;
                }
                let Some(l) = listener else {
                    // (Re)connect, then read: whatever happened meanwhile was not heard.
                    match listen(pool).await {
                        Ok(l) => *listener = Some(l),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot listen for access changes; reading the counter every {} s", READ_AT_LEAST_EVERY.as_secs());
                            tokio::time::sleep(READ_AT_LEAST_EVERY).await;
                        }
                    }
                    return;
                };
                match tokio::time::timeout(READ_AT_LEAST_EVERY, l.try_recv()).await {
                    // Notified: one read covers every notification already here.
                    Ok(Ok(Some(_))) => while l.next_buffered().is_some() {},
                    // The connection was lost (and notifications with it), or failed.
                    Ok(Ok(None)) | Ok(Err(_)) => *listener = None,
                    Err(_timeout) => {}
                }
            }
        }
    }
}

async fn listen(pool: &sqlx::PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

pub async fn run(state: AppState) {
    let mut wakeup = Wakeup::of(&state.db);
    let mut seen: Option<i64> = None;
    let mut failing = false;
    loop {
        wakeup.wait(failing).await;
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
