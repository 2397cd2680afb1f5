//! What the relay knows of the database, kept in memory because the relay library's
//! `AuthHandler` is synchronous and runs inside its read loops: which user ids exist and
//! which may relay (enabled, and allowed to send or receive files), and the labs' address
//! ranges (for the peer filter).
//!
//! Choice: a view loaded from the store at start and again whenever the store's access
//! generation moves (any process's change of a user, role, lab or session: see
//! `access_watch`), plus an immediate mark when `GET /api/ice-servers` hands credentials
//! to a user (so a brand-new account or session never waits for a reload). A reload closes
//! the open allocations of a user who may no longer relay, and of a session that ended
//! (credentials are bound to the session that fetched them). Sessions also end by time
//! without any write: the view keeps each one's end and expires it itself every
//! [`REFRESH`]. Nothing is read from the store while nothing changes, however many users
//! an appliance has (reading them all every few seconds cost an idle server CPU:
//! bench/turn/README.md, 2026-12-02). The credential's own expiry needs no view at all.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use ipnet::IpNet;

use crate::db;

/// How often sessions that ended by time are expired, nonces rotated and unanswered
/// requests forgotten.
pub const REFRESH: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Disabled,
    Unknown,
}

#[derive(Default)]
pub struct UserDirectory {
    /// user id → disabled
    users: RwLock<HashMap<i64, bool>>,
    /// Tags (`credentials::session_tag`) of the sessions that are live, with when each ends
    /// (Unix seconds): a credential bound to any other session is refused.
    sessions: RwLock<HashMap<String, i64>>,
}

impl UserDirectory {
    pub fn status(&self, user: i64) -> UserStatus {
        let users = self.users.read().unwrap_or_else(|p| p.into_inner());
        match users.get(&user) {
            Some(false) => UserStatus::Active,
            Some(true) => UserStatus::Disabled,
            None => UserStatus::Unknown,
        }
    }

    /// The caller just proved (through a live session) that `user` exists and is enabled.
    pub fn mark_active(&self, user: i64) {
        self.users.write().unwrap_or_else(|p| p.into_inner()).insert(user, false);
    }

    pub fn session_live(&self, tag: &str, now: i64) -> bool {
        self.sessions.read().unwrap_or_else(|p| p.into_inner()).get(tag).is_some_and(|&ends| ends > now)
    }

    /// The caller just proved that the session tagged `tag` is live until `ends_at`.
    pub fn mark_session(&self, tag: &str, ends_at: i64) {
        self.sessions.write().unwrap_or_else(|p| p.into_inner()).insert(tag.to_string(), ends_at);
    }

    /// Replaces the live sessions; returns the tags that were live before and are not any more.
    pub fn replace_sessions(&self, fresh: HashMap<String, i64>) -> Vec<String> {
        let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        let ended = sessions.keys().filter(|tag| !fresh.contains_key(*tag)).cloned().collect();
        *sessions = fresh;
        ended
    }

    /// Forgets the sessions that ended by time; returns their tags.
    pub fn expire_sessions(&self, now: i64) -> Vec<String> {
        let mut sessions = self.sessions.write().unwrap_or_else(|p| p.into_inner());
        let ended: Vec<String> =
            sessions.iter().filter(|(_, ends)| **ends <= now).map(|(tag, _)| tag.clone()).collect();
        for tag in &ended {
            sessions.remove(tag);
        }
        ended
    }

    /// Replaces the view; returns the users that were usable before and are not any more.
    pub fn replace(&self, fresh: HashMap<i64, bool>) -> Vec<i64> {
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        let lost = users
            .iter()
            .filter(|(id, disabled)| !**disabled && fresh.get(id).is_none_or(|d| *d))
            .map(|(id, _)| *id)
            .collect();
        *users = fresh;
        lost
    }
}

/// Loads `user id → may not relay` (disabled, or a role that may neither send nor receive
/// files) from the store.
pub async fn load_users(pool: &db::Store) -> Result<HashMap<i64, bool>, db::DbError> {
    Ok(db::access::all(pool).await?.into_iter().map(|(id, u)| (id, u.disabled || !u.may_relay())).collect())
}

/// Loads the tags of the live sessions (not revoked, not expired) and when each ends.
pub async fn load_sessions(pool: &db::Store) -> Result<HashMap<String, i64>, db::DbError> {
    Ok(db::sessions::live(pool, db::now())
        .await?
        .iter()
        .map(|(id, ends)| (super::credentials::session_tag(id), *ends))
        .collect())
}

/// Loads every lab's ranges. Rows that are not valid CIDRs are skipped with a warning
/// (the portal validates them; a hand-edited database should not stop the relay).
pub async fn load_lab_ranges(pool: &db::Store) -> Result<Vec<IpNet>, db::DbError> {
    Ok(db::labs::ranges(pool)
        .await?
        .into_iter()
        .map(|range| range.cidr)
        .filter_map(|text| match text.trim().parse::<IpNet>() {
            Ok(net) => Some(net.trunc()),
            Err(_) => match text.trim().parse::<std::net::IpAddr>() {
                Ok(ip) => Some(IpNet::from(ip)),
                Err(_) => {
                    tracing::warn!(cidr = %text, "lab range is not a CIDR; ignored by the TURN peer filter");
                    None
                }
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_reports_users_that_became_unusable() {
        let d = UserDirectory::default();
        d.replace(HashMap::from([(1, false), (2, false), (3, true)]));
        assert_eq!(d.status(1), UserStatus::Active);
        assert_eq!(d.status(3), UserStatus::Disabled);
        assert_eq!(d.status(9), UserStatus::Unknown);
        let mut lost = d.replace(HashMap::from([(1, true), (3, false)]));
        lost.sort();
        assert_eq!(lost, vec![1, 2]);
        d.mark_active(7);
        assert_eq!(d.status(7), UserStatus::Active);
    }

    #[test]
    fn replacing_sessions_reports_the_ended_ones() {
        let d = UserDirectory::default();
        d.mark_session("aaaa", 100);
        d.mark_session("bbbb", 100);
        assert!(d.session_live("aaaa", 50));
        let ended = d.replace_sessions(HashMap::from([("bbbb".to_string(), 100), ("cccc".to_string(), 100)]));
        assert_eq!(ended, vec!["aaaa".to_string()]);
        assert!(!d.session_live("aaaa", 50) && d.session_live("cccc", 50));
    }

    #[test]
    fn sessions_end_by_time_without_a_reload() {
        let d = UserDirectory::default();
        d.mark_session("soon", 100);
        d.mark_session("later", 200);
        assert!(d.session_live("soon", 99));
        assert!(!d.session_live("soon", 100), "refused from its end on, before any sweep");
        assert_eq!(d.expire_sessions(150), vec!["soon".to_string()]);
        assert!(d.expire_sessions(150).is_empty());
        assert!(d.session_live("later", 150));
    }

    #[tokio::test]
    async fn lab_ranges_load_and_bad_rows_are_skipped() {
        let pool = db::test_store().await;
        pool.exec("INSERT INTO labs (id, name, created_at) VALUES (1, 'A', 0)").await.unwrap();
        for cidr in ["10.20.0.0/16", "192.168.7.9/24", "not a net", "10.9.9.9"] {
            pool.exec(format!("INSERT INTO lab_ranges (lab_id, cidr) VALUES (1, '{cidr}')")).await.unwrap();
        }
        let mut nets: Vec<String> = load_lab_ranges(&pool).await.unwrap().iter().map(|n| n.to_string()).collect();
        nets.sort();
        assert_eq!(nets, vec!["10.20.0.0/16", "10.9.9.9/32", "192.168.7.0/24"]);
    }
}
