//! Lab lifecycle shared by the command line and the portal: create, change ranges, remove,
//! make a user responsible — each with its rules (`labs`: names, ranges that do not overlap
//! another lab's) and its audit event, in one call. Callers only parse input and show
//! results. A change acts on live sockets by itself (the store's access generation, see
//! ARCHITECTURE.md, "The path of an access change").

use thiserror::Error;

use crate::audit::{self, Actor, AuditEvent};
use crate::db::labs::Lab;
use crate::db::{DbError, Store, labs, users};

#[derive(Debug, Error)]
pub enum LabError {
    #[error("{0}")]
    Invalid(String),
    #[error("no lab named {0:?}")]
    NoSuchLab(String),
    #[error("no lab with id {0}")]
    NoLabWithId(i64),
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Creates lab `name` (trimmed) with its address ranges; returns its name and the ranges in
/// canonical form.
pub async fn create(pool: &Store, actor: &Actor, name: &str, cidrs: &[String]) -> Result<Created, LabError> {
    let name = name.trim();
    crate::labs::check_name(name).map_err(LabError::Invalid)?;
    let existing = labs::ranges(pool).await?;
    let ranges = crate::labs::validate_ranges(name, cidrs, &existing).map_err(LabError::Invalid)?;
    labs::create(pool, name, &ranges).await?;
    audit::record(pool, actor, AuditEvent::LabCreated { lab: name, ranges: &ranges }).await?;
    Ok(Created { name: name.to_string(), ranges })
}

/// What `create` made.
#[derive(Debug)]
pub struct Created {
    pub name: String,
    pub ranges: Vec<String>,
}

/// Replaces the address ranges of lab `id`; returns the lab.
pub async fn set_ranges(pool: &Store, actor: &Actor, id: i64, cidrs: &[String]) -> Result<Lab, LabError> {
    let lab = labs::by_id(pool, id).await?.ok_or(LabError::NoLabWithId(id))?;
    let existing = labs::ranges(pool).await?;
    let before: Vec<String> = existing.iter().filter(|r| r.lab == lab.name).map(|r| r.cidr.clone()).collect();
    let after = crate::labs::validate_ranges(&lab.name, cidrs, &existing).map_err(LabError::Invalid)?;
    labs::set_ranges(pool, id, &after).await?;
    audit::record(pool, actor, AuditEvent::LabUpdated { lab: &lab.name, before: &before, after: &after }).await?;
    Ok(lab)
}

/// Deletes lab `name` (its devices fall into "Other").
pub async fn remove(pool: &Store, actor: &Actor, name: &str) -> Result<(), LabError> {
    labs::remove(pool, name).await?;
    audit::record(pool, actor, AuditEvent::LabRemoved { lab: name }).await?;
    Ok(())
}

/// Makes `username` responsible for lab `name` (they may broadcast and announce to it);
/// returns the lab and the user.
pub async fn assign(pool: &Store, actor: &Actor, name: &str, username: &str) -> Result<(Lab, users::User), LabError> {
    let lab = labs::by_name(pool, name).await?.ok_or_else(|| LabError::NoSuchLab(name.to_string()))?;
    let user = users::by_username(pool, username).await?.ok_or_else(|| LabError::NoSuchUser(username.to_string()))?;
    labs::assign(pool, user.id, lab.id).await?;
    audit::record(pool, actor, AuditEvent::LabAssigned { lab: &lab.name, username: &user.username }).await?;
    Ok((lab, user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db;

    async fn audit_actions(pool: &Store) -> Vec<String> {
        let rows = db::audit::list(pool, &Default::default(), 100).await.unwrap();
        rows.into_iter().map(|r| r.action).collect()
    }

    #[tokio::test]
    async fn every_change_is_checked_written_and_audited() {
        let pool = db::test_store().await;
        let actor = Actor::system();
        let lab = create(&pool, &actor, "  Lab 1 ", &["10.1.0.7/24".into()]).await.unwrap();
        assert_eq!((lab.name.as_str(), lab.ranges.as_slice()), ("Lab 1", &["10.1.0.0/24".to_string()][..]));
        for (name, ranges) in [("", vec![]), ("Other", vec![]), ("Lab 2", vec!["10.1.0.0/16".to_string()])] {
            assert!(matches!(create(&pool, &actor, name, &ranges).await, Err(LabError::Invalid(_))), "{name:?}");
        }
        assert!(matches!(create(&pool, &actor, "lab 1", &[]).await, Err(LabError::Db(DbError::Conflict(_)))));
        assert_eq!(labs::list(&pool).await.unwrap().len(), 1, "nothing written for a refused change");

        create(&pool, &actor, "Lab 2", &["10.2.0.0/24".into()]).await.unwrap();
        let two = labs::by_name(&pool, "Lab 2").await.unwrap().unwrap();
        assert!(matches!(set_ranges(&pool, &actor, two.id, &["10.1.0.0/25".into()]).await, Err(LabError::Invalid(_))));
        set_ranges(&pool, &actor, two.id, &["10.2.1.0/24".into()]).await.unwrap();
        assert!(matches!(set_ranges(&pool, &actor, 99, &[]).await, Err(LabError::NoLabWithId(99))));

        let teacher = db::users::NewUser {
            username: "t",
            display_name: "T",
            password_hash: "h",
            role_id: 2,
            must_change_password: false,
        };
        db::users::create(&pool, &teacher).await.unwrap();
        let (lab, user) = assign(&pool, &actor, "Lab 2", "t").await.unwrap();
        assert_eq!(db::labs::owned_by(&pool, user.id).await.unwrap(), vec![lab.name]);
        assert!(matches!(assign(&pool, &actor, "Lab 9", "t").await, Err(LabError::NoSuchLab(_))));
        assert!(matches!(assign(&pool, &actor, "Lab 2", "nobody").await, Err(LabError::NoSuchUser(_))));

        remove(&pool, &actor, "Lab 1").await.unwrap();
        assert!(matches!(remove(&pool, &actor, "Lab 1").await, Err(LabError::Db(DbError::NotFound(_)))));
        assert_eq!(audit_actions(&pool).await, ["lab.remove", "lab.assign", "lab.update", "lab.create", "lab.create"]);
    }
}
