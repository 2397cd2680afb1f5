//! What every user may do, read in bulk: for re-evaluating live sockets and the TURN
//! relay's view of its users when `access_generation` (bumped by triggers, see migration
//! 0004) moves.

use std::collections::HashMap;

use super::{DbError, Store, on_pool};
use crate::permission::{Permission, PermissionSet};

/// The counter every access-relevant change bumps.
pub async fn generation(store: &Store) -> Result<i64, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_scalar::<_, i64>("SELECT value FROM access_generation WHERE id = 1").fetch_one(pool).await?)
    })
}

/// One user's standing: what decides the permissions, scope and presence of their devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccess {
    pub display_name: String,
    pub role: String,
    pub disabled: bool,
    pub permissions: PermissionSet,
    /// Labs this user is responsible for, sorted.
    pub owned_labs: Vec<String>,
}

/// The permissions that need the TURN relay: a user with none of them gets no credential
/// and loses open allocations.
pub const RELAY_PERMISSIONS: [Permission; 3] =
    [Permission::TransferSend, Permission::TransferReceive, Permission::BroadcastSend];

impl UserAccess {
    pub fn has(&self, permission: Permission) -> bool {
        self.permissions.has(permission)
    }

    pub fn may_relay(&self) -> bool {
        RELAY_PERMISSIONS.iter().any(|p| self.has(*p))
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    display_name: String,
    role_id: i64,
    role: String,
    disabled: i64,
}

/// Every user's standing, by user id (three queries whatever the number of users).
pub async fn all(store: &Store) -> Result<HashMap<i64, UserAccess>, DbError> {
    on_pool!(store, |pool| {
        let users = sqlx::query_as::<_, Row>(
            "SELECT u.id, u.display_name, u.role_id, r.name AS role, u.disabled FROM users u JOIN roles r ON r.id = u.role_id",
        )
        .fetch_all(pool)
        .await?;
        let mut permissions: HashMap<i64, Vec<String>> = HashMap::new();
        let rows = sqlx::query_as::<_, (i64, String)>(
            "SELECT role_id, permission FROM role_permissions ORDER BY role_id, permission",
        )
        .fetch_all(pool)
        .await?;
        for (role, permission) in rows {
            permissions.entry(role).or_default().push(permission);
        }
        let mut owned: HashMap<i64, Vec<String>> = HashMap::new();
        let rows = sqlx::query_as::<_, (i64, String)>(
            "SELECT ul.user_id, l.name FROM user_labs ul JOIN labs l ON l.id = ul.lab_id ORDER BY ul.user_id, lower(l.name)",
        )
        .fetch_all(pool)
        .await?;
        for (user, lab) in rows {
            owned.entry(user).or_default().push(lab);
        }
        Ok(users
            .into_iter()
            .map(|u| {
                let access = UserAccess {
                    display_name: u.display_name,
                    role: u.role,
                    disabled: u.disabled != 0,
                    permissions: PermissionSet::from_names(
                        permissions.get(&u.role_id).into_iter().flatten().map(String::as_str),
                    ),
                    owned_labs: owned.remove(&u.id).unwrap_or_default(),
                };
                (u.id, access)
            })
            .collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Which changes move the access generation (and which do not) is checked on both
    // databases, with PostgreSQL's notifications, by tests/store_schema.rs
    // (`every_access_change_moves_the_generation`).

    #[tokio::test]
    async fn all_reads_role_permissions_and_owned_labs() {
        let pool = crate::db::test_store().await;
        pool.exec(
            "INSERT INTO users (id, username, display_name, password_hash, role_id, created_at, updated_at, disabled) \
             VALUES (7, 'ina', 'Ina', 'x', 2, 0, 0, 0), (8, 'sam', 'Sam', 'x', 3, 0, 0, 1)",
        )
        .await
        .unwrap();
        pool.exec("INSERT INTO labs (id, name, created_at) VALUES (1, 'B', 0), (2, 'A', 0)").await.unwrap();
        pool.exec("INSERT INTO user_labs (user_id, lab_id) VALUES (7, 1), (7, 2)").await.unwrap();
        let all = all(&pool).await.unwrap();
        let ina = &all[&7];
        assert_eq!(ina.role, "instructor");
        assert!(ina.has(Permission::BroadcastSend) && !ina.has(Permission::UsersManage));
        assert_eq!(ina.owned_labs, vec!["A", "B"]);
        assert!(!ina.disabled);
        let sam = &all[&8];
        assert!(sam.disabled && sam.owned_labs.is_empty());
        assert_eq!(sam.permissions, PermissionSet::from_names(["transfer.receive", "transfer.send"]));
    }
}
