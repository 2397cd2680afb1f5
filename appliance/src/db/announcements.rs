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
