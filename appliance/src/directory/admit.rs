//! What a directory person becomes in LabBeam: the account made at their first sign-in
//! (just in time, `source = ldap`), its role and labs from `[[auth.role_map]]`, read again at
//! every sign-in and, for people signed in, every `refresh_minutes` (`refresh`): someone the
//! directory no longer lists, or who left every mapped group, loses their sessions then
//! (their sockets drop and their relay allocations close through the access watch), without
//! waiting for the session's lifetime.
//!
//! Every change is audited, with the directory as the actor.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use super::role_map::{self, Mapping};
use super::{Directory, Person};
use crate::audit::{self, Actor, AuditEvent};
use crate::config::AuthConfig;
use crate::db::users::{self, NewExternal, Source, User};
use crate::db::{self, DbError, Store, labs, roles, sessions};
use crate::state::AppState;

#[derive(Debug, Error)]
pub enum AdmitError {
    /// `[[auth.role_map]]` or `default_role` names a role the store does not have.
    #[error("auth.role_map or auth.default_role names the role {0:?}, which does not exist (labbeam role list)")]
    UnknownRole(String),
    /// The directory's username is not one LabBeam accepts.
    #[error("the directory's username {0:?} is not a valid LabBeam username")]
    InvalidUsername(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The outcome for a person whose password the directory accepted.
#[derive(Debug)]
pub enum Admission {
    Admitted(Box<User>),
    /// No rule matched and there is no default role.
    NoRole,
}

fn directory_actor(client_addr: &str) -> Actor {
    Actor { user_id: None, username: "directory".into(), client_addr: client_addr.into() }
}

/// Who a campus sign-in says someone is: the directory's entry, or an OpenID provider's
/// claims. Both go through the same role map.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub source: Source,
    /// The directory DN, or `issuer#subject` for an OpenID provider.
    pub external_id: &'a str,
    pub username: &'a str,
    pub display_name: &'a str,
    pub groups: &'a [String],
}

impl<'a> From<&'a Person> for Identity<'a> {
    fn from(person: &'a Person) -> Self {
        Identity {
            source: Source::Ldap,
            external_id: &person.dn,
            username: &person.username,
            display_name: &person.display_name,
            groups: &person.groups,
        }
    }
}

/// Makes or updates the account of `person` (`existing`: the account with their username,
/// which the caller found to be one of `person.source`, or none).
pub async fn admit(
    store: &Store,
    auth: &AuthConfig,
    person: Identity<'_>,
    existing: Option<User>,
    client_addr: &str,
) -> Result<Admission, AdmitError> {
    let Some(mapping) = role_map::map(&auth.role_map, auth.default_role.as_deref(), person.groups) else {
        return Ok(Admission::NoRole);
    };
    let Some(role) = roles::by_name(store, &mapping.role).await? else {
        return Err(AdmitError::UnknownRole(mapping.role));
    };
    let display = crate::text::clean_text(person.display_name, 64);
    let display = if display.is_empty() { person.username.to_string() } else { display };
    let actor = match person.source {
        Source::Oidc => Actor { user_id: None, username: "oidc".into(), client_addr: client_addr.into() },
        _ => directory_actor(client_addr),
    };
    let now = db::now();
    let id = match existing {
        None => {
            crate::accounts::check_username(person.username)
                .map_err(|_| AdmitError::InvalidUsername(person.username.to_string()))?;
            let id = users::create_external(
                store,
                &NewExternal {
                    username: person.username,
                    display_name: &display,
                    role_id: role.id,
                    source: person.source,
                    external_id: person.external_id,
                },
            )
            .await?;
            audit::record(store, &actor, AuditEvent::UserCreated { username: person.username, role: &role.name })
                .await?;
            id
        }
        Some(user) => {
            if user.role_id != role.id || user.display_name != display {
                let before = serde_json::json!({ "display_name": user.display_name, "role": user.role });
                let after = serde_json::json!({ "display_name": display, "role": role.name });
                audit::record(
                    store,
                    &actor,
                    AuditEvent::UserUpdated { username: &user.username, before: &before, after: &after },
                )
                .await?;
            }
            users::update_external(store, user.id, &display, role.id, person.external_id, now).await?;
            user.id
        }
    };
    set_labs(store, &actor, id, person.username, &mapping).await?;
    match users::by_id(store, id).await? {
        Some(user) => Ok(Admission::Admitted(Box::new(user))),
        None => Err(AdmitError::Db(DbError::NotFound(format!("user {}", person.username)))),
    }
}

/// The labs the mapping gives, as the account's labs; labs the store does not have are
/// left out (and logged).
async fn set_labs(store: &Store, actor: &Actor, id: i64, username: &str, mapping: &Mapping) -> Result<(), DbError> {
    let mut ids = Vec::new();
    let mut names = Vec::new();
    for name in &mapping.labs {
        match labs::by_name(store, name).await? {
            Some(lab) => {
                ids.push(lab.id);
                names.push(lab.name);
            }
            None => tracing::warn!(lab = %name, "auth.role_map names a lab that does not exist; left out"),
        }
    }
    let mut held = labs::owned_by(store, id).await?;
    let mut wanted = names.clone();
    held.sort_by_key(|l| l.to_lowercase());
    wanted.sort_by_key(|l| l.to_lowercase());
    if held != wanted {
        labs::set_owned(store, id, &ids).await?;
        audit::record(store, actor, AuditEvent::UserLabsSet { username, labs: &names }).await?;
    }
    Ok(())
}

/// Ends every session of `user` because of what the directory says now.
async fn end_access(store: &Store, user: &User, reason: &str) -> Result<(), DbError> {
    let ended = sessions::revoke_all_for_user(store, user.id, None).await?;
    let actor = directory_actor("");
    audit::record(
        store,
        &actor,
        AuditEvent::DirectoryAccessEnded { username: &user.username, reason, sessions_revoked: ended },
    )
    .await
}

/// Reads every signed-in directory account again every `refresh_minutes`, for as long as
/// the server runs. A directory that does not answer changes nothing (the next round tries
/// again): an outage must not sign a lab out.
pub async fn refresh(state: AppState, directory: Arc<Directory>, every: Duration) {
    if !directory.has_service_account() {
        tracing::info!(
            "directory accounts are read again at each sign-in only: direct bind has no service account to look \
             people up with"
        );
        return;
    }
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = refresh_once(&state, &directory).await {
            tracing::warn!(error = %e, "directory refresh did not finish; trying again next round");
        }
    }
}

/// One round of [`refresh`]; also what tests call.
pub async fn refresh_once(state: &AppState, directory: &Directory) -> Result<(), anyhow::Error> {
    let signed_in = users::signed_in_of_source(&state.db, Source::Ldap, db::now()).await?;
    for user in signed_in {
        let person = match directory.lookup(&user.username).await {
            Ok(person) => person,
            Err(e) => return Err(e.into()),
        };
        match person {
            None => end_access(&state.db, &user, "no longer listed by the directory").await?,
            Some(person) => {
                match admit(&state.db, &state.config.auth, (&person).into(), Some(user.clone()), "").await {
                    Ok(Admission::Admitted(_)) => {}
                    Ok(Admission::NoRole) => end_access(&state.db, &user, "no longer in a mapped group").await?,
                    Err(e) => tracing::warn!(user = %user.username, error = %e, "cannot apply the directory's groups"),
                }
            }
        }
    }
    Ok(())
}
