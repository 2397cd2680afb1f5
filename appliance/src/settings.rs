//! Run-time settings: the known keys, their defaults, their allowed values. Values live in
//! the `settings` table (JSON); a key never set reads as its default. The portal and
//! `labbeam setting` change them; nothing else may write a key that is not listed here.

use serde_json::Value;

use crate::db::{self, DbError, Store};

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// An integer within bounds.
    Int { min: u64, max: u64 },
    /// One of a few words.
    Choice(&'static [&'static str]),
    /// Comma-separated names (roles): lowercase letters, digits, `_` and `-`; may be empty.
    Names,
}

#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub key: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub help: &'static str,
}

pub const SETTINGS: &[Spec] = &[
    Spec {
        key: "transfer.max_file_bytes",
        kind: Kind::Int { min: 1, max: 1 << 50 },
        default: "107374182400",
        help: "largest file a transfer may declare, in bytes",
    },
    Spec {
        key: "transfer.requests_per_minute",
        kind: Kind::Int { min: 1, max: 10_000 },
        default: "30",
        help: "transfer requests one user may make per minute",
    },
    Spec {
        key: "transfer.max_pending",
        kind: Kind::Int { min: 1, max: 1000 },
        default: "10",
        help: "requests of one user that may wait for an answer at once",
    },
    Spec {
        key: "transfer.request_expiry_secs",
        kind: Kind::Int { min: 5, max: 3600 },
        default: "60",
        help: "seconds a request waits for an answer before it expires",
    },
    Spec {
        key: "transfer.resume_grace_secs",
        kind: Kind::Int { min: 30, max: 7 * 86_400 },
        default: "900",
        help: "seconds an interrupted transfer waits for a device to come back (and keeps its partial data) before it fails",
    },
    Spec {
        key: "signaling.events_per_second",
        kind: Kind::Int { min: 1, max: 1_000_000 },
        default: "50",
        help: "Socket.IO events one device may send per second, on average (applied within 3 s)",
    },
    Spec {
        key: "signaling.event_burst",
        kind: Kind::Int { min: 1, max: 1_000_000 },
        default: "200",
        help: "Socket.IO events one device may send in a burst (applied within 3 s)",
    },
    Spec {
        key: "signaling.max_devices_per_user",
        kind: Kind::Int { min: 0, max: 100_000 },
        default: "4",
        help: "devices (browsers) one user may have connected at once, admins included; a device reconnecting is not counted twice (0: no limit)",
    },
    Spec {
        key: "retention.transfer_days",
        kind: Kind::Int { min: 0, max: 36_500 },
        default: "365",
        help: "days the transfer log keeps a row (0: forever)",
    },
    Spec {
        key: "retention.audit_days",
        kind: Kind::Int { min: 0, max: 36_500 },
        default: "730",
        help: "days the audit log keeps an entry (0: forever)",
    },
    Spec {
        key: "presence.scope",
        kind: Kind::Choice(&["lab", "all"]),
        default: "\"lab\"",
        help: "what students see in labs without a visibility of their own (lab policy --visibility) and in Other: their own lab's devices, or every lab's (admins and instructors see all)",
    },
    Spec {
        key: "presence.lab_self_select",
        kind: Kind::Choice(&["off", "on"]),
        default: "\"off\"",
        help: "whether a device outside every lab's address range may join a lab its user picks (it then sees that lab, but never gets its announcements or auto-accepted broadcasts); off: such devices are in \"Other\"",
    },
    Spec {
        key: "auth.local_sign_in",
        kind: Kind::Choice(&["everyone", "admins"]),
        default: "\"everyone\"",
        help: "who may sign in with a password kept by LabBeam: everyone, or only accounts whose role has users.manage (everyone else signs in with the campus directory; applies at the next sign-in)",
    },
    Spec {
        key: "broadcast.fanout",
        kind: Kind::Int { min: 1, max: 64 },
        default: "1",
        help: "receivers each broadcast receiver forwards to: 1 is a chain, the fastest on equal links (bench/broadcast)",
    },
    Spec {
        key: "broadcast.auto_accept_roles",
        kind: Kind::Names,
        default: "\"admin,instructor\"",
        help: "roles whose broadcasts are received without asking (comma-separated; empty: always ask)",
    },
];

fn spec(key: &str) -> Option<&'static Spec> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// Parses and checks a value typed by an admin ("25", "all").
pub fn parse(key: &str, raw: &str) -> Result<Value, String> {
    let spec = spec(key).ok_or_else(|| {
        let known: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        format!("unknown setting {key:?} (known: {})", known.join(", "))
    })?;
    match spec.kind {
        Kind::Int { min, max } => match raw.trim().parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(Value::from(v)),
            _ => Err(format!("{key} must be a whole number from {min} to {max}")),
        },
        Kind::Choice(words) => {
            let w = raw.trim();
            if words.contains(&w) {
                Ok(Value::from(w))
            } else {
                Err(format!("{key} must be one of: {}", words.join(", ")))
            }
        }
        Kind::Names => {
            let names: Vec<&str> = raw.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
            let valid = |n: &str| {
                n.len() <= 64
                    && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            };
            match names.iter().find(|n| !valid(n)) {
                Some(bad) => Err(format!("{key}: {bad:?} is not a role name (lowercase letters, digits, _ and -)")),
                None => Ok(Value::from(names.join(","))),
            }
        }
    }
}

pub async fn set(pool: &Store, key: &str, raw: &str, by: Option<i64>) -> Result<Value, SettingError> {
    let value = parse(key, raw).map_err(SettingError::Invalid)?;
    db::settings::set(pool, key, &value, by).await?;
    Ok(value)
}

async fn get_value(pool: &Store, key: &'static str) -> Result<Value, DbError> {
    let default: Value = spec(key).and_then(|s| serde_json::from_str(s.default).ok()).unwrap_or(Value::Null);
    db::settings::get(pool, key, default).await
}

pub async fn get_u64(pool: &Store, key: &'static str) -> Result<u64, DbError> {
    let fallback = spec(key).and_then(|s| s.default.parse().ok()).unwrap_or(0);
    Ok(get_value(pool, key).await?.as_u64().unwrap_or(fallback))
}

pub async fn get_str(pool: &Store, key: &'static str) -> Result<String, DbError> {
    Ok(get_value(pool, key).await?.as_str().map(str::to_string).unwrap_or_default())
}

/// Every setting with its current value.
pub async fn all(pool: &Store) -> Result<Vec<(&'static Spec, Value)>, DbError> {
    let mut out = Vec::new();
    for s in SETTINGS {
        out.push((s, get_value(pool, s.key).await?));
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_as_their_kind() {
        for s in SETTINGS {
            let v: Value = serde_json::from_str(s.default).unwrap();
            let raw = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            assert_eq!(parse(s.key, &raw).unwrap(), v, "{}", s.key);
        }
    }

    #[tokio::test]
    async fn set_validates_and_get_reads_back() {
        let pool = db::test_store().await;
        assert_eq!(get_u64(&pool, "transfer.request_expiry_secs").await.unwrap(), 60);
        assert!(set(&pool, "transfer.request_expiry_secs", "2", None).await.is_err());
        assert!(set(&pool, "nope", "1", None).await.is_err());
        set(&pool, "transfer.request_expiry_secs", "15", None).await.unwrap();
        assert_eq!(get_u64(&pool, "transfer.request_expiry_secs").await.unwrap(), 15);
        assert_eq!(get_str(&pool, "presence.scope").await.unwrap(), "lab");
        assert_eq!(get_u64(&pool, "signaling.max_devices_per_user").await.unwrap(), 4);
        set(&pool, "signaling.max_devices_per_user", "0", None).await.unwrap();
        assert_eq!(get_u64(&pool, "signaling.max_devices_per_user").await.unwrap(), 0);
        assert!(set(&pool, "presence.scope", "everyone", None).await.is_err());
        set(&pool, "presence.scope", "all", None).await.unwrap();
        assert_eq!(get_str(&pool, "presence.scope").await.unwrap(), "all");
        assert_eq!(all(&pool).await.unwrap().len(), SETTINGS.len());
        assert_eq!(get_str(&pool, "broadcast.auto_accept_roles").await.unwrap(), "admin,instructor");
        assert!(set(&pool, "broadcast.auto_accept_roles", "admin, Bad Role", None).await.is_err());
        set(&pool, "broadcast.auto_accept_roles", " admin , ", None).await.unwrap();
        assert_eq!(get_str(&pool, "broadcast.auto_accept_roles").await.unwrap(), "admin");
        set(&pool, "broadcast.auto_accept_roles", "", None).await.unwrap();
        assert_eq!(get_str(&pool, "broadcast.auto_accept_roles").await.unwrap(), "");
    }
}
