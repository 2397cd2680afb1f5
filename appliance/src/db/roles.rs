//! Roles and their permissions.

use super::{DbError, Store, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub builtin: i64,
}

pub async fn by_name(store: &Store, name: &str) -> Result<Option<Role>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Role>("SELECT id, name, builtin FROM roles WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?)
    })
}

pub async fn list(store: &Store) -> Result<Vec<Role>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Role>("SELECT id, name, builtin FROM roles ORDER BY id").fetch_all(pool).await?)
    })
}

pub async fn permissions(store: &Store, role_id: i64) -> Result<Vec<String>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT permission FROM role_permissions WHERE role_id = $1 ORDER BY permission",
        )
        .bind(role_id)
        .fetch_all(pool)
        .await?)
    })
}

pub async fn create(store: &Store, name: &str, description: &str) -> Result<i64, DbError> {
    on_pool!(store, |pool| {
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO roles (name, description, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(description)
        .bind(super::now())
        .fetch_one(pool)
        .await
        .map_err(|e| DbError::conflict_as(e, &format!("role {name:?}")))
    })
}

/// Replaces a role's permissions in one transaction.
pub async fn set_permissions(store: &Store, role_id: i64, permissions: &[String]) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM role_permissions WHERE role_id = $1").bind(role_id).execute(&mut *tx).await?;
        for p in permissions {
            sqlx::query("INSERT INTO role_permissions (role_id, permission) VALUES ($1, $2)")
                .bind(role_id)
                .bind(p)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    })
}

pub async fn delete(store: &Store, role_id: i64) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        sqlx::query("DELETE FROM roles WHERE id = $1 AND builtin = 0").bind(role_id).execute(pool).await?;
        Ok(())
    })
}

pub async fn by_id(store: &Store, id: i64) -> Result<Option<Role>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Role>("SELECT id, name, builtin FROM roles WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?)
    })
}

/// Users holding each role: (role id, count).
pub async fn member_counts(store: &Store) -> Result<Vec<(i64, i64)>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, (i64, i64)>("SELECT role_id, COUNT(*) FROM users GROUP BY role_id")
            .fetch_all(pool)
            .await?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builtin_roles_are_seeded_with_design_permissions() {
        let pool = crate::db::test_store().await;
        let admin = by_name(&pool, "admin").await.unwrap().unwrap();
        let perms = permissions(&pool, admin.id).await.unwrap();
        assert_eq!(perms.len(), 9);
        assert!(perms.contains(&"transfers.view_all".to_string()));
        assert!(perms.contains(&"collect".to_string()), "migration 0016: admins collect hand-ins");
        let student = by_name(&pool, "student").await.unwrap().unwrap();
        assert_eq!(permissions(&pool, student.id).await.unwrap(), vec!["transfer.receive", "transfer.send"]);
        let instructor = by_name(&pool, "instructor").await.unwrap().unwrap();
        let perms = permissions(&pool, instructor.id).await.unwrap();
        assert!(perms.contains(&"broadcast.send".to_string()));
        assert!(perms.contains(&"collect".to_string()), "instructors collect hand-ins");
        assert!(!perms.contains(&"portal.access".to_string()));
        assert_eq!(list(&pool).await.unwrap().len(), 3);
    }
}
