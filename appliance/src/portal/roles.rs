//! Roles: the permission matrix, custom roles. The built-in admin role always keeps
//! `portal.access` and `users.manage` (nobody could repair the portal otherwise).

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::view::{self, Layout};
use super::{NoFields, NoticeQuery, PortalError, PortalForm, PortalPage, done};
use crate::audit::{self, AuditEvent};
use crate::auth::UsersManage;
use crate::db::roles;
use crate::permission::Permission;
use crate::state::AppState;

/// Every permission, in the matrix's order (the portal's first, the everyday ones last).
const MATRIX: [Permission; 8] = [
    Permission::PortalAccess,
    Permission::UsersManage,
    Permission::AuditView,
    Permission::TransfersViewAll,
    Permission::BroadcastSend,
    Permission::Announce,
    Permission::TransferSend,
    Permission::TransferReceive,
];

const ADMIN_KEEPS: [Permission; 2] = [Permission::PortalAccess, Permission::UsersManage];

pub struct RoleView {
    pub id: i64,
    pub name: String,
    pub builtin: bool,
    pub members: i64,
    pub granted: Vec<bool>,
}

#[derive(Template, WebTemplate)]
#[template(path = "roles.html")]
struct RolesPage {
    layout: Layout,
    notice: String,
    permissions: Vec<(&'static str, &'static str)>,
    roles: Vec<RoleView>,
}

pub async fn page(
    State(state): State<AppState>,
    portal: PortalPage<UsersManage>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let counts: HashMap<i64, i64> = roles::member_counts(&state.db).await?.into_iter().collect();
    let mut views = Vec::new();
    for r in roles::list(&state.db).await? {
        let perms = roles::permissions(&state.db, r.id).await?;
        views.push(RoleView {
            granted: MATRIX.iter().map(|p| perms.iter().any(|x| x == p.name())).collect(),
            members: counts.get(&r.id).copied().unwrap_or(0),
            builtin: r.builtin != 0,
            id: r.id,
            name: r.name,
        });
    }
    Ok(RolesPage {
        layout: portal.layout("roles"),
        notice: view::notice(q.notice.as_deref()),
        permissions: MATRIX.iter().map(|p| (p.name(), p.describe())).collect(),
        roles: views,
    }
    .into_response())
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
}

pub async fn create(
    State(state): State<AppState>,
    PortalForm { portal, form: f, .. }: PortalForm<UsersManage, CreateForm>,
) -> Result<Response, PortalError> {
    let name = f.name.trim();
    let ok = (1..=32).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(PortalError::BadRequest("A role name has 1 to 32 letters, digits, '-' or '_'.".into()));
    }
    roles::create(&state.db, name, "").await?;
    audit::record(&state.db, &portal.actor, AuditEvent::RoleCreated { role: name }).await?;
    Ok(done("/admin/roles", &format!("Created role {name}; tick its permissions below.")))
}

/// The matrix row of one role: `perm_<name>=on` for each granted permission.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, form: f, .. }: PortalForm<UsersManage, HashMap<String, String>>,
) -> Result<Response, PortalError> {
    let role = roles::by_id(&state.db, id).await?.ok_or_else(|| PortalError::NotFound(format!("role {id}")))?;
    let after: Vec<String> =
        MATRIX.iter().filter(|p| f.contains_key(&format!("perm_{p}"))).map(|p| p.name().to_string()).collect();
    if role.name == "admin"
        && let Some(missing) = ADMIN_KEEPS.iter().find(|p| !after.iter().any(|a| a == p.name()))
    {
        return Err(PortalError::BadRequest(format!("The admin role always keeps {missing}; nothing was changed.")));
    }
    let before = roles::permissions(&state.db, id).await?;
    roles::set_permissions(&state.db, id, &after).await?;
    audit::record(
        &state.db,
        &portal.actor,
        AuditEvent::RoleUpdated { role: &role.name, before: &before, after: &after },
    )
    .await?;
    Ok(done(
        "/admin/roles",
        &format!("Saved the permissions of {}. They apply at once, to connected devices too.", role.name),
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, .. }: PortalForm<UsersManage, NoFields>,
) -> Result<Response, PortalError> {
    let role = roles::by_id(&state.db, id).await?.ok_or_else(|| PortalError::NotFound(format!("role {id}")))?;
    if role.builtin != 0 {
        return Err(PortalError::BadRequest("Built-in roles cannot be deleted.".into()));
    }
    let members =
        roles::member_counts(&state.db).await?.into_iter().find(|(r, _)| *r == id).map(|(_, n)| n).unwrap_or(0);
    if members > 0 {
        return Err(PortalError::BadRequest(format!("{} still has {members} member(s); move them first.", role.name)));
    }
    roles::delete(&state.db, id).await?;
    audit::record(&state.db, &portal.actor, AuditEvent::RoleDeleted { role: &role.name }).await?;
    Ok(done("/admin/roles", &format!("Deleted role {}.", role.name)))
}
