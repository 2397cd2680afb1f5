//! Account lifecycle shared by the command line, the portal and CSV import: create, change,
//! disable, reset, delete — each with its rules (valid names, password policy, the last
//! active admin is kept) and its audit event. Callers only parse input and show results.

use thiserror::Error;

use crate::audit::{self, Actor, AuditEvent};
use crate::auth::{AuthError, password};
use crate::db::{DbError, Store, roles, sessions, users};

#[derive(Debug, Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} is the last active admin; make another admin first")]
    LastAdmin(String),
    #[error("no user with id {0}")]
    NoSuchUser(i64),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Db(#[from] DbError),
}

pub fn check_username(name: &str) -> Result<(), AccountError> {
    let ok = (1..=64).contains(&name.chars().count())
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AccountError::Invalid(format!("username {name:?} must have 1 to 64 letters, digits, '.', '_', '-' or '@'")))
    }
}

pub fn check_display_name(name: &str) -> Result<String, AccountError> {
    let clean = crate::text::clean_text(name, 128);
    if clean.is_empty() && !name.is_empty() {
        return Err(AccountError::Invalid("display name has no printable characters".into()));
    }
    Ok(clean)
}

/// Creates an account. Without a password a one-time password is made, returned, and must
/// be changed at first sign-in.
pub async fn create(
    pool: &Store,
    actor: &Actor,
    username: &str,
    display_name: &str,
    role: &str,
    password: Option<String>,
    min_len: usize,
) -> Result<(i64, Option<String>), AccountError> {
    check_username(username)?;
    let display = check_display_name(display_name)?;
    let display = if display.is_empty() { username.to_string() } else { display };
    let Some(role_row) = roles::by_name(pool, role).await? else {
        let known: Vec<String> = roles::list(pool).await?.into_iter().map(|r| r.name).collect();
        return Err(AccountError::Invalid(format!("unknown role {role:?} (known roles: {})", known.join(", "))));
    };
    let (pw, generated) = match password {
        Some(p) => (p, false),
        None => (password::one_time_password()?, true),
    };
    password::check_policy(&pw, username, min_len)?;
    let hash = password::hash_async(pw.clone()).await?;
    let id = users::create(
        pool,
        &users::NewUser {
            username,
            display_name: &display,
            password_hash: &hash,
            role_id: role_row.id,
            must_change_password: generated,
        },
    )
    .await?;
    audit::record(pool, actor, AuditEvent::UserCreated { username, role: &role_row.name }).await?;
    Ok((id, generated.then_some(pw)))
}

async fn guard_last_admin(pool: &Store, user: &users::User) -> Result<(), AccountError> {
    if user.role == "admin" && !user.is_disabled() && users::count_active_in_role(pool, "admin").await? <= 1 {
        return Err(AccountError::LastAdmin(user.username.clone()));
    }
    Ok(())
}

async fn get(pool: &Store, id: i64) -> Result<users::User, AccountError> {
    users::by_id(pool, id).await?.ok_or(AccountError::NoSuchUser(id))
}

/// Changes display name and role; refuses to demote the last active admin.
pub async fn update(pool: &Store, actor: &Actor, id: i64, display_name: &str, role: &str) -> Result<(), AccountError> {
    let user = get(pool, id).await?;
    let display = check_display_name(display_name)?;
    let role_row =
        roles::by_name(pool, role).await?.ok_or_else(|| AccountError::Invalid(format!("unknown role {role:?}")))?;
    if role_row.name != user.role {
        guard_last_admin(pool, &user).await?;
    }
    let display = if display.is_empty() { user.display_name.clone() } else { display };
    users::update(pool, id, &display, role_row.id).await?;
    let before = serde_json::json!({ "display_name": user.display_name, "role": user.role });
    let after = serde_json::json!({ "display_name": display, "role": role_row.name });
    audit::record(pool, actor, AuditEvent::UserUpdated { username: &user.username, before: &before, after: &after })
        .await?;
    Ok(())
}

/// Disables an account and ends its sessions; returns how many sessions ended.
pub async fn disable(pool: &Store, actor: &Actor, id: i64) -> Result<(users::User, u64), AccountError> {
    let user = get(pool, id).await?;
    guard_last_admin(pool, &user).await?;
    users::set_disabled(pool, id, true).await?;
    let ended = sessions::revoke_all_for_user(pool, id, None).await?;
    audit::record(pool, actor, AuditEvent::UserDisabled { username: &user.username, sessions_revoked: ended }).await?;
    Ok((user, ended))
}

pub async fn enable(pool: &Store, actor: &Actor, id: i64) -> Result<users::User, AccountError> {
    let user = get(pool, id).await?;
    users::set_disabled(pool, id, false).await?;
    audit::record(pool, actor, AuditEvent::UserEnabled { username: &user.username }).await?;
    Ok(user)
}

/// Sets a password (or a one-time one, returned) and signs the user out everywhere.
pub async fn set_password(
    pool: &Store,
    actor: &Actor,
    id: i64,
    password: Option<String>,
    min_len: usize,
) -> Result<(users::User, Option<String>, u64), AccountError> {
    let user = get(pool, id).await?;
    if user.source() != users::Source::Local {
        return Err(AccountError::Invalid(format!(
            "{} signs in with the campus directory ({}): their password is changed there, not here",
            user.username, user.source
        )));
    }
    let (pw, generated) = match password {
        Some(p) => (p, false),
        None => (password::one_time_password()?, true),
    };
    password::check_policy(&pw, &user.username, min_len)?;
    let hash = password::hash_async(pw.clone()).await?;
    users::set_password(pool, id, &hash, generated).await?;
    let ended = sessions::revoke_all_for_user(pool, id, None).await?;
    audit::record(pool, actor, AuditEvent::PasswordSet { username: &user.username }).await?;
    Ok((user, generated.then_some(pw), ended))
}

pub async fn delete(pool: &Store, actor: &Actor, id: i64) -> Result<users::User, AccountError> {
    let user = get(pool, id).await?;
    guard_last_admin(pool, &user).await?;
    users::delete(pool, id).await?;
    audit::record(pool, actor, AuditEvent::UserDeleted { username: &user.username, role: &user.role }).await?;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    #[tokio::test]
    async fn the_last_admin_is_kept() {
        let pool = db::test_store().await;
        let actor = Actor::system();
        let (admin, otp) = create(&pool, &actor, "root", "", "admin", None, 10).await.unwrap();
        assert!(otp.is_some());
        assert!(matches!(disable(&pool, &actor, admin).await, Err(AccountError::LastAdmin(_))));
        assert!(matches!(delete(&pool, &actor, admin).await, Err(AccountError::LastAdmin(_))));
        assert!(matches!(update(&pool, &actor, admin, "Root", "student").await, Err(AccountError::LastAdmin(_))));
        let (second, _) =
            create(&pool, &actor, "root2", "Second", "admin", Some("a long passphrase".into()), 10).await.unwrap();
        update(&pool, &actor, admin, "Root", "student").await.unwrap();
        assert!(matches!(delete(&pool, &actor, second).await, Err(AccountError::LastAdmin(_))));
    }

    #[tokio::test]
    async fn bad_names_roles_and_passwords_are_refused() {
        let pool = db::test_store().await;
        let actor = Actor::system();
        assert!(create(&pool, &actor, "a b", "", "student", None, 10).await.is_err());
        assert!(create(&pool, &actor, "ok", "", "janitor", None, 10).await.is_err());
        assert!(create(&pool, &actor, "ok", "", "student", Some("short".into()), 10).await.is_err());
        let (id, otp) = create(&pool, &actor, "ok", "  O\u{7}K  ", "student", None, 10).await.unwrap();
        assert_eq!(users::by_id(&pool, id).await.unwrap().unwrap().display_name, "O K");
        assert_eq!(otp.map(|p| p.len()), Some(20));
    }
}
