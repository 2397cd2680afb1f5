//! The audit log: append-only rows of who did what, from where.

use super::{DbError, Store, now, on_pool};

#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor_user_id: Option<i64>,
    pub actor_username: String,
    pub action: String,
    pub target: String,
    pub details: String,
    pub client_addr: String,
}

pub struct NewAuditRow<'a> {
    pub actor_user_id: Option<i64>,
    pub actor_username: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub details: &'a str,
    pub client_addr: &'a str,
}

pub async fn append(store: &Store, row: &NewAuditRow<'_>) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        sqlx::query(
            "INSERT INTO audit_log (at, actor_user_id, actor_username, action, target, details, client_addr) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(now())
        .bind(row.actor_user_id)
        .bind(row.actor_username)
        .bind(row.action)
        .bind(row.target)
        .bind(row.details)
        .bind(row.client_addr)
        .execute(pool)
        .await?;
        Ok(())
    })
}

/// Deletes entries older than `before` (unix seconds): retention, the only deletion.
pub async fn purge_before(store: &Store, before: i64) -> Result<u64, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query("DELETE FROM audit_log WHERE at < $1").bind(before).execute(pool).await?.rows_affected())
    })
}

/// Which rows `list` returns.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter<'a> {
    /// Exact action name.
    pub action: Option<&'a str>,
    /// Only rows acted by this user.
    pub actor_user_id: Option<i64>,
    /// Only rows older than this id (pages backwards).
    pub before: Option<i64>,
    /// Only rows whose actor name is this (exact).
    pub actor: Option<&'a str>,
    /// `at` bounds, unix seconds, inclusive.
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// Newest first.
pub async fn list(store: &Store, filter: &AuditFilter<'_>, limit: i64) -> Result<Vec<AuditRow>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, AuditRow>(
            "SELECT id, at, actor_user_id, actor_username, action, target, details, client_addr FROM audit_log \
             WHERE ($1 IS NULL OR action = $1) AND ($2 IS NULL OR actor_user_id = $2) AND ($3 IS NULL OR id < $3) \
             AND ($4 IS NULL OR actor_username = $4) AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at <= $6) \
             ORDER BY id DESC LIMIT $7",
        )
        .bind(filter.action)
        .bind(filter.actor_user_id)
        .bind(filter.before)
        .bind(filter.actor)
        .bind(filter.from)
        .bind(filter.to)
        .bind(limit)
        .fetch_all(pool)
        .await?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rows_cannot_be_rewritten() {
        let pool = crate::db::test_store().await;
        let row = NewAuditRow {
            actor_user_id: None,
            actor_username: "x",
            action: "login.failure",
            target: "user:x",
            details: "{}",
            client_addr: "10.0.0.1",
        };
        append(&pool, &row).await.unwrap();
        append(&pool, &NewAuditRow { action: "login.success", ..row }).await.unwrap();
        assert!(pool.exec("UPDATE audit_log SET action = 'x'").await.is_err());
        let rows = list(&pool, &AuditFilter { action: Some("login.failure"), ..Default::default() }, 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        let all = list(&pool, &AuditFilter::default(), 10).await.unwrap();
        assert_eq!(all[0].action, "login.success");
        assert_eq!(
            list(&pool, &AuditFilter { before: Some(all[0].id), ..Default::default() }, 10).await.unwrap().len(),
            1
        );
        assert_eq!(purge_before(&pool, crate::db::now() - 60).await.unwrap(), 0, "recent rows stay");
        assert_eq!(purge_before(&pool, crate::db::now() + 60).await.unwrap(), 2);
    }
}
