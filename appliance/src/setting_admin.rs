//! Setting changes shared by the command line and the portal: each value is checked against
//! its key's rules (`settings`), written with who changed it, and audited, in one call.
//! Callers only parse input and show results. A change acts by itself on what reads the
//! setting (the signaling sweep, the access watcher; see ARCHITECTURE.md).

use serde_json::Value;

use crate::audit::{self, Actor, AuditEvent};
use crate::db::Store;
use crate::settings::{self, SettingError};

/// Sets `key` to `raw` (as typed: "25", "all"), whatever it was; returns the stored value.
pub async fn set(pool: &Store, actor: &Actor, key: &str, raw: &str) -> Result<Value, SettingError> {
    let value = settings::set(pool, key, raw, actor.user_id).await?;
    audit::record(pool, actor, AuditEvent::SettingChanged { key, value: &value }).await?;
    Ok(value)
}

/// Saves every known setting for which `proposed` has a value different from the current
/// one. All are checked before any is written, so a bad value changes nothing. Returns how
/// many changed.
pub async fn save_changed<'a>(
    pool: &Store,
    actor: &Actor,
    proposed: impl Fn(&str) -> Option<&'a str>,
) -> Result<usize, SettingError> {
    let mut changes = Vec::new();
    for (spec, value) in settings::all(pool).await? {
        let Some(raw) = proposed(spec.key) else { continue };
        if settings::parse(spec.key, raw).map_err(SettingError::Invalid)? != value {
            changes.push((spec.key, raw));
        }
    }
    for (key, raw) in &changes {
        set(pool, actor, key, raw).await?;
    }
    Ok(changes.len())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::db;

    #[tokio::test]
    async fn changes_are_checked_first_then_written_and_audited() {
        let pool = db::test_store().await;
        let actor = Actor::system();
        let form = HashMap::from([("presence.scope", "all"), ("transfer.max_pending", "2"), ("csrf", "x")]);
        let bad = HashMap::from([("presence.scope", "lab"), ("transfer.max_pending", "0")]);
        assert!(matches!(save_changed(&pool, &actor, |k| bad.get(k).copied()).await, Err(SettingError::Invalid(_))));
        assert_eq!(settings::get_str(&pool, "presence.scope").await.unwrap(), "lab", "nothing written");
        assert_eq!(save_changed(&pool, &actor, |k| form.get(k).copied()).await.unwrap(), 2);
        assert_eq!(save_changed(&pool, &actor, |k| form.get(k).copied()).await.unwrap(), 0, "unchanged");
        assert_eq!(settings::get_u64(&pool, "transfer.max_pending").await.unwrap(), 2);
        assert_eq!(set(&pool, &actor, "presence.scope", "lab").await.unwrap(), Value::from("lab"));
        assert!(set(&pool, &actor, "no.such.key", "1").await.is_err());
        let audit = db::audit::list(&pool, &Default::default(), 10).await.unwrap();
        assert_eq!(audit.iter().filter(|r| r.action == "setting.change").count(), 3);
    }
}
