//! Announcements: short texts to a lab or everyone, shown to late joiners until they expire.

use serde::Serialize;

use super::{DbError, Store, now, on_pool};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Announcement {
    pub id: i64,
    pub from_name: String,
    pub lab: Option<String>,
    pub text: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub async fn create(
    store: &Store,
    from_user_id: i64,
    from_name: &str,
    lab: Option<&str>,
    text: &str,
    ttl_secs: i64,
) -> Result<Announcement, DbError> {
    on_pool!(store, |pool| {
        let t = now();
        Ok(sqlx::query_as::<_, Announcement>(
            "INSERT INTO announcements (from_user_id, from_name, lab, text, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, from_name, lab, text, created_at, expires_at",
        )
        .bind(from_user_id)
        .bind(from_name)
        .bind(lab)
        .bind(text)
        .bind(t)
        .bind(t + ttl_secs)
        .fetch_one(pool)
        .await?)
    })
}

/// Live announcements for a device in `lab` (its lab's and everyone's), oldest first.
pub async fn live_for(store: &Store, lab: &str) -> Result<Vec<Announcement>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Announcement>(
            "SELECT id, from_name, lab, text, created_at, expires_at FROM announcements \
             WHERE expires_at > $1 AND (lab IS NULL OR lab = $2) ORDER BY id LIMIT 20",
        )
        .bind(now())
        .bind(lab)
        .fetch_all(pool)
        .await?)
    })
}

/// An announcement that has not expired, with its author.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Live {
    pub id: i64,
    pub from_user_id: Option<i64>,
    pub from_name: String,
    pub lab: Option<String>,
    pub text: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub async fn live_by_id(store: &Store, id: i64) -> Result<Option<Live>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Live>(
            "SELECT id, from_user_id, from_name, lab, text, created_at, expires_at FROM announcements \
             WHERE id = $1 AND expires_at > $2",
        )
        .bind(id)
        .bind(now())
        .fetch_optional(pool)
        .await?)
    })
}

/// Ends a live announcement now; false when it had ended already.
pub async fn withdraw(store: &Store, id: i64) -> Result<bool, DbError> {
    on_pool!(store, |pool| {
        let t = now();
        let done = sqlx::query("UPDATE announcements SET expires_at = $1 WHERE id = $2 AND expires_at > $1")
            .bind(t)
            .bind(id)
            .execute(pool)
            .await?;
        Ok(done.rows_affected() == 1)
    })
}

/// The newest announcements, live or not, for the portal.
pub async fn newest(store: &Store, limit: i64) -> Result<Vec<Live>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Live>(
            "SELECT id, from_user_id, from_name, lab, text, created_at, expires_at FROM announcements \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(pool)
        .await?)
    })
}
