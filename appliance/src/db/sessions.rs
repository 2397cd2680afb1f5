//! Login sessions. The id is the JWT's `jti`.

use super::{DbError, Store, dialect, now, on_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    pub id: String,
    pub user_id: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub last_seen_at: i64,
}

/// How stale `last_seen_at` may get before a request writes it again (seconds).
pub const TOUCH_EVERY: i64 = 60;

pub async fn create(
    store: &Store,
    id: &str,
    user_id: i64,
    expires_at: i64,
    client_addr: &str,
    user_agent: &str,
) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        let t = now();
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, client_addr, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(user_id)
        .bind(t)
        .bind(expires_at)
        .bind(t)
        .bind(client_addr)
        .bind(user_agent)
        .execute(pool)
        .await?;
        Ok(())
    })
}

pub async fn by_id(store: &Store, id: &str) -> Result<Option<Session>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, Session>(
            "SELECT id, user_id, expires_at, revoked_at, last_seen_at FROM sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?)
    })
}

/// Records activity, at most once every `TOUCH_EVERY` seconds per session to keep writes low.
pub async fn touch(store: &Store, id: &str, at: i64) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $3")
            .bind(at)
            .bind(id)
            .bind(at - TOUCH_EVERY)
            .execute(pool)
            .await?;
        Ok(())
    })
}

pub async fn revoke(store: &Store, id: &str) -> Result<bool, DbError> {
    on_pool!(store, |pool| {
        let done = sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now())
            .bind(id)
            .execute(pool)
            .await?;
        Ok(done.rows_affected() > 0)
    })
}

/// Revokes every live session of a user, except `keep` if given. Returns how many.
pub async fn revoke_all_for_user(store: &Store, user_id: i64, keep: Option<&str>) -> Result<u64, DbError> {
    on_pool!(store, |pool| {
        let done =
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND id != $3")
                .bind(now())
                .bind(user_id)
                .bind(keep.unwrap_or(""))
                .execute(pool)
                .await?;
        Ok(done.rows_affected())
    })
}

/// Every session that is not revoked and not expired at `now`: its id and when it ends.
pub async fn live(store: &Store, now: i64) -> Result<Vec<(String, i64)>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, (String, i64)>(
            "SELECT id, expires_at FROM sessions WHERE revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .fetch_all(pool)
        .await?)
    })
}

/// Which of `ids` can no longer be used: revoked, expired, or of a disabled user.
pub async fn dead_among(store: &Store, ids: &[String]) -> Result<Vec<String>, DbError> {
    let list = serde_json::to_string(ids).map_err(|e| DbError::Sqlx(sqlx::Error::Encode(Box::new(e))))?;
    let sql = format!(
        "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id IN ({}) \
         AND (s.revoked_at IS NOT NULL OR s.expires_at <= $2 OR u.disabled != 0)",
        dialect::json_strings_of_first_parameter(store.backend())
    );
    on_pool!(store, |pool| {
        Ok(sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql)).bind(list).bind(now()).fetch_all(pool).await?)
    })
}

/// A live session with its user, for the portal.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActiveSession {
    pub id: String,
    pub username: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub client_addr: String,
    pub user_agent: String,
}

pub async fn active(store: &Store, limit: i64) -> Result<Vec<ActiveSession>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, ActiveSession>(
            "SELECT s.id, u.username, s.created_at, s.last_seen_at, s.expires_at, s.client_addr, s.user_agent \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.revoked_at IS NULL AND s.expires_at > $1 ORDER BY s.last_seen_at DESC LIMIT $2",
        )
        .bind(now())
        .bind(limit)
        .fetch_all(pool)
        .await?)
    })
}

/// Deletes sessions that ended more than `keep_secs` ago.
pub async fn purge_ended(store: &Store, keep_secs: i64) -> Result<u64, DbError> {
    on_pool!(store, |pool| {
        let cutoff = now() - keep_secs;
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $2")
            .bind(cutoff)
            .bind(cutoff)
            .execute(pool)
            .await?;
        Ok(done.rows_affected())
    })
}

/// Where signing out of session `id` sends the browser (an OpenID provider's end-session
/// URL), set once at sign-in.
pub async fn set_end_session_url(store: &Store, id: &str, url: &str) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        sqlx::query("UPDATE sessions SET end_session_url = $1 WHERE id = $2").bind(url).bind(id).execute(pool).await?;
        Ok(())
    })
}

/// The end-session URL set for session `id`, if any.
pub async fn end_session_url(store: &Store, id: &str) -> Result<Option<String>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_scalar::<_, Option<String>>("SELECT end_session_url FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?
            .flatten())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::users;

    #[tokio::test]
    async fn revoke_all_keeps_the_current_one() {
        let pool = crate::db::test_store().await;
        let uid = users::create(
            &pool,
            &users::NewUser {
                username: "bob",
                display_name: "Bob",
                password_hash: "h",
                role_id: 3,
                must_change_password: false,
            },
        )
        .await
        .unwrap();
        let exp = now() + 3600;
        for id in ["a", "b", "c"] {
            create(&pool, id, uid, exp, "127.0.0.1", "test").await.unwrap();
        }
        assert_eq!(revoke_all_for_user(&pool, uid, Some("b")).await.unwrap(), 2);
        assert!(by_id(&pool, "a").await.unwrap().unwrap().revoked_at.is_some());
        assert!(by_id(&pool, "b").await.unwrap().unwrap().revoked_at.is_none());
        assert!(!revoke(&pool, "a").await.unwrap(), "already revoked");
        let ids = vec!["a".to_string(), "b".to_string(), "zzz".to_string()];
        assert_eq!(dead_among(&pool, &ids).await.unwrap(), vec!["a".to_string()]);
        users::set_disabled(&pool, uid, true).await.unwrap();
        assert_eq!(dead_among(&pool, &ids).await.unwrap().len(), 2);
        users::set_disabled(&pool, uid, false).await.unwrap();
        assert!(revoke(&pool, "b").await.unwrap());
    }

    #[tokio::test]
    async fn touch_writes_at_most_once_a_minute() {
        let pool = crate::db::test_store().await;
        let user = users::NewUser {
            username: "carol",
            display_name: "Carol",
            password_hash: "h",
            role_id: 3,
            must_change_password: false,
        };
        let uid = users::create(&pool, &user).await.unwrap();
        create(&pool, "s", uid, now() + 3600, "127.0.0.1", "test").await.unwrap();
        let seen = by_id(&pool, "s").await.unwrap().unwrap().last_seen_at;
        touch(&pool, "s", seen + TOUCH_EVERY - 1).await.unwrap();
        assert_eq!(by_id(&pool, "s").await.unwrap().unwrap().last_seen_at, seen);
        touch(&pool, "s", seen + TOUCH_EVERY + 1).await.unwrap();
        assert_eq!(by_id(&pool, "s").await.unwrap().unwrap().last_seen_at, seen + TOUCH_EVERY + 1);
    }
}
