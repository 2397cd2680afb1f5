//! Settings changed at run time (portal), stored as JSON values. Callers pass their default;
//! a missing or unreadable value yields it, so a fresh store needs no seeding.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DbError, Store, now, on_pool};

pub async fn get<T: DeserializeOwned>(store: &Store, key: &str, default: T) -> Result<T, DbError> {
    on_pool!(store, |pool| {
        let raw = sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(pool)
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()).unwrap_or(default))
    })
}

pub async fn set<T: Serialize>(store: &Store, key: &str, value: &T, by: Option<i64>) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        let json = serde_json::to_string(value).map_err(|e| DbError::Sqlx(sqlx::Error::Encode(Box::new(e))))?;
        sqlx::query(
            "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by",
        )
        .bind(key)
        .bind(json)
        .bind(now())
        .bind(by)
        .execute(pool)
        .await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn default_until_set() {
        let pool = crate::db::test_store().await;
        assert_eq!(get(&pool, "x", 5u64).await.unwrap(), 5);
        set(&pool, "x", &7u64, None).await.unwrap();
        set(&pool, "x", &9u64, None).await.unwrap();
        assert_eq!(get(&pool, "x", 5u64).await.unwrap(), 9);
        // A value of the wrong type reads as the default.
        assert_eq!(get(&pool, "x", "s".to_string()).await.unwrap(), "s");
    }
}
