//! Roles and their permissions.

use super::{DbError, Pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Role {
    pub id: i64,
    pub name: String,
}

pub async fn by_name(pool: &Pool, name: &str) -> Result<Option<Role>, DbError> {
    Ok(sqlx::query_as::<_, Role>("SELECT id, name FROM roles WHERE name = ?").bind(name).fetch_optional(pool).await?)
}

pub async fn list(pool: &Pool) -> Result<Vec<Role>, DbError> {
    Ok(sqlx::query_as::<_, Role>("SELECT id, name FROM roles ORDER BY id").fetch_all(pool).await?)
}

pub async fn permissions(pool: &Pool, role_id: i64) -> Result<Vec<String>, DbError> {
    Ok(sqlx::query_scalar::<_, String>("SELECT permission FROM role_permissions WHERE role_id = ? ORDER BY permission")
        .bind(role_id)
        .fetch_all(pool)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn builtin_roles_are_seeded_with_design_permissions() {
        let pool = crate::db::open_memory().await;
        let admin = by_name(&pool, "admin").await.unwrap().unwrap();
        let perms = permissions(&pool, admin.id).await.unwrap();
        assert_eq!(perms.len(), 7);
        let student = by_name(&pool, "student").await.unwrap().unwrap();
        assert_eq!(permissions(&pool, student.id).await.unwrap(), vec!["transfer.receive", "transfer.send"]);
        let instructor = by_name(&pool, "instructor").await.unwrap().unwrap();
        let perms = permissions(&pool, instructor.id).await.unwrap();
        assert!(perms.contains(&"broadcast.send".to_string()));
        assert!(!perms.contains(&"portal.access".to_string()));
        assert_eq!(list(&pool).await.unwrap().len(), 3);
    }
}
