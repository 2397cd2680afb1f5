//! User accounts.

use super::{DbError, Store, now, on_pool};

/// A user joined with its role name.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub role_id: i64,
    pub role: String,
    pub disabled: i64,
    pub must_change_password: i64,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
    /// `local`, `ldap` or `oidc` (see [`Source`]).
    pub source: String,
    /// The directory DN or the provider's subject; `None` for local accounts.
    pub external_id: Option<String>,
    /// When the directory's groups were last read for this account.
    pub groups_read_at: Option<i64>,
}

/// Where an account comes from: who checks its password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A password kept here (argon2id).
    Local,
    /// The campus directory (`[auth.ldap]`); made at first sign-in.
    Ldap,
    /// An OpenID provider.
    Oidc,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Local => "local",
            Source::Ldap => "ldap",
            Source::Oidc => "oidc",
        }
    }
}

impl User {
    /// Where the account comes from. The store refuses any other word (CHECK, migration
    /// 0011), so an unknown one cannot be read; it would count as a directory account, whose
    /// password is never checked here.
    pub fn source(&self) -> Source {
        match self.source.as_str() {
            "local" => Source::Local,
            "oidc" => Source::Oidc,
            _ => Source::Ldap,
        }
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled != 0
    }
    pub fn must_change_password(&self) -> bool {
        self.must_change_password != 0
    }
}

/// The user columns joined with the role name, followed by `$tail` (static SQL only).
macro_rules! select_users {
    ($tail:literal) => {
        concat!(
            "SELECT u.id, u.username, u.display_name, u.password_hash, u.role_id, r.name AS role, ",
            "u.disabled, u.must_change_password, u.created_at, u.last_login_at, u.source, u.external_id, ",
            "u.groups_read_at ",
            "FROM users u JOIN roles r ON r.id = u.role_id ",
            $tail
        )
    };
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
    pub role_id: i64,
    pub must_change_password: bool,
}

pub async fn create(store: &Store, new: &NewUser<'_>) -> Result<i64, DbError> {
    on_pool!(store, |pool| {
        let t = now();
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (username, display_name, password_hash, role_id, must_change_password, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(new.username)
        .bind(new.display_name)
        .bind(new.password_hash)
        .bind(new.role_id)
        .bind(i64::from(new.must_change_password))
        .bind(t)
        .bind(t)
        .fetch_one(pool)
        .await
        .map_err(|e| DbError::conflict_as(e, &format!("user {:?}", new.username)))?;
        Ok(id)
    })
}

/// A directory or provider account as first sign-in makes it: no local password (the
/// empty hash never verifies), never asked to change one.
pub struct NewExternal<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub role_id: i64,
    pub source: Source,
    pub external_id: &'a str,
}

pub async fn create_external(store: &Store, new: &NewExternal<'_>) -> Result<i64, DbError> {
    on_pool!(store, |pool| {
        let t = now();
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (username, display_name, password_hash, role_id, must_change_password, created_at, \
             updated_at, source, external_id, groups_read_at) VALUES ($1, $2, '', $3, 0, $4, $4, $5, $6, $4) RETURNING id",
        )
        .bind(new.username)
        .bind(new.display_name)
        .bind(new.role_id)
        .bind(t)
        .bind(new.source.as_str())
        .bind(new.external_id)
        .fetch_one(pool)
        .await
        .map_err(|e| DbError::conflict_as(e, &format!("user {:?}", new.username)))?;
        Ok(id)
    })
}

/// What the directory says of an account now: its name, role and DN; the groups were read
/// at `read_at`. Changes bump the access generation (the triggers of migration 0004), so
/// live sockets act on a new role at once.
pub async fn update_external(
    store: &Store,
    id: i64,
    display_name: &str,
    role_id: i64,
    external_id: &str,
    read_at: i64,
) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        let changed = sqlx::query(
            "UPDATE users SET display_name = $1, role_id = $2, external_id = $3, groups_read_at = $4, updated_at = $4 \
             WHERE id = $5 AND (display_name <> $1 OR role_id <> $2 OR external_id IS DISTINCT FROM $3)",
        )
        .bind(display_name)
        .bind(role_id)
        .bind(external_id)
        .bind(read_at)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
        if changed == 0 {
            // Only the time when nothing else changed: no access change to act on.
            sqlx::query("UPDATE users SET groups_read_at = $1 WHERE id = $2")
                .bind(read_at)
                .bind(id)
                .execute(pool)
                .await?;
        }
        Ok(())
    })
}

/// Accounts of `source` that have a live session (the directory refresh reads these again).
pub async fn signed_in_of_source(store: &Store, source: Source, now: i64) -> Result<Vec<User>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, User>(select_users!(
            "WHERE u.source = $1 AND EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id \
             AND s.revoked_at IS NULL AND s.expires_at > $2) ORDER BY u.id"
        ))
        .bind(source.as_str())
        .bind(now)
        .fetch_all(pool)
        .await?)
    })
}

pub async fn by_username(store: &Store, username: &str) -> Result<Option<User>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, User>(select_users!("WHERE lower(u.username) = lower($1)"))
            .bind(username)
            .fetch_optional(pool)
            .await?)
    })
}

pub async fn by_id(store: &Store, id: i64) -> Result<Option<User>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, User>(select_users!("WHERE u.id = $1")).bind(id).fetch_optional(pool).await?)
    })
}

pub async fn list(store: &Store) -> Result<Vec<User>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, User>(select_users!("ORDER BY lower(u.username)")).fetch_all(pool).await?)
    })
}

/// How a user list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSort {
    Username,
    Role,
    LastLogin,
    Created,
}

/// One page of users whose username or display name contains `q` (case-insensitive),
/// and how many match in all.
pub async fn search(
    store: &Store,
    q: &str,
    sort: UserSort,
    limit: i64,
    offset: i64,
) -> Result<(Vec<User>, i64), DbError> {
    on_pool!(store, |pool| {
        let pattern = format!("%{}%", q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let sql = match sort {
            UserSort::Username => select_users!(
                "WHERE lower(u.username) LIKE lower($1) ESCAPE '\\' OR lower(u.display_name) LIKE lower($1) ESCAPE '\\' ORDER BY lower(u.username) LIMIT $2 OFFSET $3"
            ),
            UserSort::Role => select_users!(
                "WHERE lower(u.username) LIKE lower($1) ESCAPE '\\' OR lower(u.display_name) LIKE lower($1) ESCAPE '\\' ORDER BY r.name, lower(u.username) LIMIT $2 OFFSET $3"
            ),
            UserSort::LastLogin => select_users!(
                "WHERE lower(u.username) LIKE lower($1) ESCAPE '\\' OR lower(u.display_name) LIKE lower($1) ESCAPE '\\' ORDER BY u.last_login_at DESC NULLS LAST, lower(u.username) LIMIT $2 OFFSET $3"
            ),
            UserSort::Created => select_users!(
                "WHERE lower(u.username) LIKE lower($1) ESCAPE '\\' OR lower(u.display_name) LIKE lower($1) ESCAPE '\\' ORDER BY u.created_at DESC, u.id DESC LIMIT $2 OFFSET $3"
            ),
        };
        let rows = sqlx::query_as::<_, User>(sql).bind(&pattern).bind(limit).bind(offset).fetch_all(pool).await?;
        let total = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM users u WHERE lower(u.username) LIKE lower($1) ESCAPE '\\' OR lower(u.display_name) LIKE lower($1) ESCAPE '\\'",
        )
        .bind(&pattern)
        .fetch_one(pool)
        .await?;
        Ok((rows, total))
    })
}

pub async fn update(store: &Store, id: i64, display_name: &str, role_id: i64) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        let done = sqlx::query("UPDATE users SET display_name = $1, role_id = $2, updated_at = $3 WHERE id = $4")
            .bind(display_name)
            .bind(role_id)
            .bind(now())
            .bind(id)
            .execute(pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("user {id}")));
        }
        Ok(())
    })
}

/// Deletes a user; their transfer-log rows keep the username, their sessions go.
pub async fn delete(store: &Store, id: i64) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(pool).await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("user {id}")));
        }
        Ok(())
    })
}

/// Active (not disabled) members of the role named `role`.
pub async fn count_active_in_role(store: &Store, role: &str) -> Result<i64, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM users u JOIN roles r ON r.id = u.role_id WHERE r.name = $1 AND u.disabled = 0",
        )
        .bind(role)
        .fetch_one(pool)
        .await?)
    })
}

/// The enabled accounts of `role`, oldest first.
pub async fn active_in_role(store: &Store, role: &str) -> Result<Vec<User>, DbError> {
    on_pool!(store, |pool| {
        Ok(sqlx::query_as::<_, User>(select_users!("WHERE r.name = $1 AND u.disabled = 0 ORDER BY u.id"))
            .bind(role)
            .fetch_all(pool)
            .await?)
    })
}

pub async fn set_password(store: &Store, id: i64, hash: &str, must_change: bool) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        let done = sqlx::query(
            "UPDATE users SET password_hash = $1, must_change_password = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(hash)
        .bind(i64::from(must_change))
        .bind(now())
        .bind(id)
        .execute(pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("user {id}")));
        }
        Ok(())
    })
}

pub async fn set_disabled(store: &Store, id: i64, disabled: bool) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        let done = sqlx::query("UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(disabled))
            .bind(now())
            .bind(id)
            .execute(pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("user {id}")));
        }
        Ok(())
    })
}

pub async fn touch_login(store: &Store, id: i64) -> Result<(), DbError> {
    on_pool!(store, |pool| {
        sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2").bind(now()).bind(id).execute(pool).await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> NewUser<'static> {
        NewUser {
            username: "alice",
            display_name: "Alice",
            password_hash: "h",
            role_id: 3,
            must_change_password: false,
        }
    }

    #[tokio::test]
    async fn usernames_are_unique_ignoring_case() {
        let pool = crate::db::test_store().await;
        create(&pool, &alice()).await.unwrap();
        let dup = NewUser { username: "ALICE", ..alice() };
        assert!(matches!(create(&pool, &dup).await, Err(DbError::Conflict(_))));
        let u = by_username(&pool, "Alice").await.unwrap().unwrap();
        assert_eq!(u.role, "student");
    }

    #[tokio::test]
    async fn disable_and_password_change_are_stored() {
        let pool = crate::db::test_store().await;
        let id = create(&pool, &alice()).await.unwrap();
        set_disabled(&pool, id, true).await.unwrap();
        set_password(&pool, id, "h2", true).await.unwrap();
        let u = by_id(&pool, id).await.unwrap().unwrap();
        assert!(u.is_disabled() && u.must_change_password());
        assert_eq!(u.password_hash, "h2");
        assert_eq!(count_active_in_role(&pool, "student").await.unwrap(), 0);
        assert!(matches!(set_disabled(&pool, 999, true).await, Err(DbError::NotFound(_))));
    }

    #[tokio::test]
    async fn search_pages_and_escapes_wildcards() {
        let pool = crate::db::test_store().await;
        for name in ["anna", "annabel", "bob", "x_y"] {
            create(&pool, &NewUser { username: name, display_name: name, ..alice() }).await.unwrap();
        }
        let (rows, total) = search(&pool, "ann", UserSort::Username, 1, 0).await.unwrap();
        assert_eq!((rows[0].username.as_str(), total), ("anna", 2));
        let (rows, _) = search(&pool, "ann", UserSort::Username, 1, 1).await.unwrap();
        assert_eq!(rows[0].username, "annabel");
        assert_eq!(search(&pool, "_", UserSort::Role, 10, 0).await.unwrap().1, 1, "_ is literal");
        assert_eq!(search(&pool, "", UserSort::Created, 10, 0).await.unwrap().1, 4);
        let id = by_username(&pool, "bob").await.unwrap().unwrap().id;
        update(&pool, id, "Robert", 2).await.unwrap();
        assert_eq!(by_id(&pool, id).await.unwrap().unwrap().role, "instructor");
        delete(&pool, id).await.unwrap();
        assert!(by_id(&pool, id).await.unwrap().is_none());
    }
}
