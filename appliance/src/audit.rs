//! Audit events as typed values. Every login attempt and every administrative change is
//! written through `record`, which turns an event into an append-only `audit_log` row
//! (action name, target, JSON details). Secrets (passwords, tokens) are never part of an
//! event, so they cannot reach the log.

use serde_json::json;

use crate::db::{self, DbError, audit::NewAuditRow};

/// Who did it, from where.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub username: String,
    pub client_addr: String,
}

impl Actor {
    /// Changes made with the command line on the server itself.
    pub fn cli() -> Self {
        let who = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_default();
        let username = if who.is_empty() { "cli".to_string() } else { format!("cli:{who}") };
        Actor { user_id: None, username, client_addr: "local".into() }
    }

    pub fn system() -> Self {
        Actor { user_id: None, username: "system".into(), client_addr: "local".into() }
    }

    /// The server applying a lab's exam window (`exam_schedule`): "schedule" in the audit log.
    pub fn schedule() -> Self {
        Actor { user_id: None, username: "schedule".into(), client_addr: "local".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    UnknownUser,
    WrongPassword,
    Disabled,
    Throttled,
    /// The campus directory did not answer (nothing was checked).
    DirectoryUnreachable,
    /// The password was right, but no `[[auth.role_map]]` rule matched and there is no
    /// `default_role`.
    NotInMappedGroup,
    /// The account's source is not configured any more (a directory account while
    /// `[auth.ldap]` is unset).
    SourceOff,
    /// A right local password, while `auth.local_sign_in = admins` and the role does not
    /// manage users.
    LocalSignInOff,
    /// OpenID: the callback's `state` was unknown, used, expired or from another browser.
    InvalidState,
    /// OpenID: the provider refused the code, or its ID token failed a check.
    TokenInvalid,
    /// OpenID: the provider sent the person back with an error (they cancelled, or it
    /// refused them).
    ProviderRefused,
    /// OpenID: the provider did not answer.
    ProviderUnreachable,
    /// The username belongs to an account that signs in another way.
    AccountConflict,
    /// The provider's username is not a valid LabBeam username.
    UsernameUnusable,
}

impl LoginFailure {
    fn as_str(self) -> &'static str {
        match self {
            LoginFailure::UnknownUser => "unknown_user",
            LoginFailure::WrongPassword => "wrong_password",
            LoginFailure::Disabled => "disabled",
            LoginFailure::Throttled => "throttled",
            LoginFailure::DirectoryUnreachable => "directory_unreachable",
            LoginFailure::NotInMappedGroup => "not_in_mapped_group",
            LoginFailure::SourceOff => "source_off",
            LoginFailure::LocalSignInOff => "local_sign_in_off",
            LoginFailure::InvalidState => "invalid_state",
            LoginFailure::TokenInvalid => "token_invalid",
            LoginFailure::ProviderRefused => "provider_refused",
            LoginFailure::ProviderUnreachable => "provider_unreachable",
            LoginFailure::AccountConflict => "account_conflict",
            LoginFailure::UsernameUnusable => "username_unusable",
        }
    }
}

#[derive(Debug, Clone)]
pub enum AuditEvent<'a> {
    /// `source`: who checked the password (`local`, `ldap`, `oidc`).
    LoginSucceeded {
        username: &'a str,
        source: &'a str,
    },
    LoginFailed {
        username: &'a str,
        reason: LoginFailure,
        source: &'a str,
    },
    LoggedOut {
        username: &'a str,
    },
    PasswordChanged {
        username: &'a str,
    },
    PasswordSet {
        username: &'a str,
    },
    FirstAdminCreated {
        username: &'a str,
    },
    UserCreated {
        username: &'a str,
        role: &'a str,
    },
    UserDisabled {
        username: &'a str,
        sessions_revoked: u64,
    },
    UserEnabled {
        username: &'a str,
    },
    UserUpdated {
        username: &'a str,
        before: &'a serde_json::Value,
        after: &'a serde_json::Value,
    },
    UserDeleted {
        username: &'a str,
        role: &'a str,
    },
    UsersImported {
        created: usize,
        skipped: usize,
    },
    RoleCreated {
        role: &'a str,
    },
    RoleUpdated {
        role: &'a str,
        before: &'a [String],
        after: &'a [String],
    },
    RoleDeleted {
        role: &'a str,
    },
    LabUpdated {
        lab: &'a str,
        before: &'a [String],
        after: &'a [String],
    },
    UserLabsSet {
        username: &'a str,
        labs: &'a [String],
    },
    SessionRevoked {
        username: &'a str,
        session: &'a str,
    },
    LabCreated {
        lab: &'a str,
        ranges: &'a [String],
    },
    LabRemoved {
        lab: &'a str,
    },
    LabAssigned {
        lab: &'a str,
        username: &'a str,
    },
    /// A lab's exam mode switched (`labbeam lab policy`, the portal's Labs page).
    LabPolicySet {
        lab: &'a str,
        exam: bool,
    },
    /// `visibility`: `own`, `all`, or `None` (the lab follows `presence.scope` again);
    /// `before` likewise.
    LabVisibilitySet {
        lab: &'a str,
        visibility: Option<&'a str>,
        before: Option<&'a str>,
    },
    /// A lab's exam window set (`window`: from, until in unix seconds) or cleared (`None`);
    /// `before` likewise.
    LabExamWindowSet {
        lab: &'a str,
        window: Option<(i64, i64)>,
        before: Option<(i64, i64)>,
    },
    SeatSet {
        lab: &'a str,
        address: &'a str,
        name: &'a str,
        before: Option<&'a str>,
    },
    SeatRemoved {
        lab: &'a str,
        address: &'a str,
        name: &'a str,
    },
    SeatsImported {
        lab: &'a str,
        added: usize,
        renamed: usize,
        removed: usize,
        replaced: bool,
    },
    SettingChanged {
        key: &'a str,
        value: &'a serde_json::Value,
    },
    /// An announcement to a lab (`None`: everyone).
    Announced {
        id: i64,
        lab: Option<&'a str>,
        text: &'a str,
        ttl_secs: i64,
    },
    HandinOpened {
        id: &'a str,
        lab: &'a str,
        title: &'a str,
        deadline: i64,
    },
    HandinClosed {
        id: &'a str,
        lab: &'a str,
    },
    AnnouncementWithdrawn {
        id: i64,
        lab: Option<&'a str>,
    },
    /// The directory's refresh ended a signed-in account's sessions: no longer listed, or
    /// no longer in a mapped group.
    DirectoryAccessEnded {
        username: &'a str,
        reason: &'a str,
        sessions_revoked: u64,
    },
}

impl AuditEvent<'_> {
    pub fn action(&self) -> &'static str {
        match self {
            AuditEvent::LoginSucceeded { .. } => "login.success",
            AuditEvent::LoginFailed { .. } => "login.failure",
            AuditEvent::LoggedOut { .. } => "logout",
            AuditEvent::PasswordChanged { .. } => "password.change",
            AuditEvent::PasswordSet { .. } => "password.set",
            AuditEvent::FirstAdminCreated { .. } => "user.first_admin",
            AuditEvent::UserCreated { .. } => "user.create",
            AuditEvent::UserDisabled { .. } => "user.disable",
            AuditEvent::UserEnabled { .. } => "user.enable",
            AuditEvent::UserUpdated { .. } => "user.update",
            AuditEvent::UserDeleted { .. } => "user.delete",
            AuditEvent::UsersImported { .. } => "user.import",
            AuditEvent::RoleCreated { .. } => "role.create",
            AuditEvent::RoleUpdated { .. } => "role.update",
            AuditEvent::RoleDeleted { .. } => "role.delete",
            AuditEvent::LabUpdated { .. } => "lab.update",
            AuditEvent::UserLabsSet { .. } => "user.labs",
            AuditEvent::SessionRevoked { .. } => "session.revoke",
            AuditEvent::LabCreated { .. } => "lab.create",
            AuditEvent::LabRemoved { .. } => "lab.remove",
            AuditEvent::LabAssigned { .. } => "lab.assign",
            AuditEvent::LabPolicySet { .. }
            | AuditEvent::LabVisibilitySet { .. }
            | AuditEvent::LabExamWindowSet { .. } => "lab.policy",
            AuditEvent::SeatSet { .. } => "lab.seat",
            AuditEvent::SeatRemoved { .. } => "lab.unseat",
            AuditEvent::SeatsImported { .. } => "lab.seats",
            AuditEvent::SettingChanged { .. } => "setting.change",
            AuditEvent::DirectoryAccessEnded { .. } => "directory.access_ended",
            AuditEvent::Announced { .. } => "announcement.create",
            AuditEvent::AnnouncementWithdrawn { .. } => "announcement.withdraw",
            AuditEvent::HandinOpened { .. } => "handin.open",
            AuditEvent::HandinClosed { .. } => "handin.close",
        }
    }

    fn target_and_details(&self) -> (String, serde_json::Value) {
        let user = |u: &str| format!("user:{u}");
        match self {
            AuditEvent::LoginSucceeded { username, source } => (user(username), json!({ "source": source })),
            AuditEvent::LoggedOut { username }
            | AuditEvent::PasswordChanged { username }
            | AuditEvent::PasswordSet { username }
            | AuditEvent::FirstAdminCreated { username }
            | AuditEvent::UserEnabled { username } => (user(username), json!({})),
            AuditEvent::LoginFailed { username, reason, source } => {
                (user(username), json!({ "reason": reason.as_str(), "source": source }))
            }
            AuditEvent::Announced { id, lab, text, ttl_secs } => {
                (format!("announcement:{id}"), json!({ "lab": lab, "text": text, "ttl_secs": ttl_secs }))
            }
            AuditEvent::AnnouncementWithdrawn { id, lab } => (format!("announcement:{id}"), json!({ "lab": lab })),
            AuditEvent::HandinOpened { id, lab, title, deadline } => {
                (format!("handin:{id}"), json!({ "lab": lab, "title": title, "deadline": deadline }))
            }
            AuditEvent::HandinClosed { id, lab } => (format!("handin:{id}"), json!({ "lab": lab })),
            AuditEvent::DirectoryAccessEnded { username, reason, sessions_revoked } => {
                (user(username), json!({ "reason": reason, "sessions_revoked": sessions_revoked }))
            }
            AuditEvent::UserCreated { username, role } => (user(username), json!({ "role": role })),
            AuditEvent::UserUpdated { username, before, after } => {
                (user(username), json!({ "before": before, "after": after }))
            }
            AuditEvent::UserDeleted { username, role } => (user(username), json!({ "role": role })),
            AuditEvent::UsersImported { created, skipped } => {
                ("users".into(), json!({ "created": created, "skipped": skipped }))
            }
            AuditEvent::RoleCreated { role } | AuditEvent::RoleDeleted { role } => (format!("role:{role}"), json!({})),
            AuditEvent::RoleUpdated { role, before, after } => {
                (format!("role:{role}"), json!({ "before": before, "after": after }))
            }
            AuditEvent::LabUpdated { lab, before, after } => {
                (format!("lab:{lab}"), json!({ "before": before, "after": after }))
            }
            AuditEvent::UserLabsSet { username, labs } => (user(username), json!({ "labs": labs })),
            AuditEvent::SessionRevoked { username, session } => {
                (user(username), json!({ "session": session.chars().take(8).collect::<String>() }))
            }
            AuditEvent::LabCreated { lab, ranges } => (format!("lab:{lab}"), json!({ "ranges": ranges })),
            AuditEvent::LabRemoved { lab } => (format!("lab:{lab}"), json!({})),
            AuditEvent::LabAssigned { lab, username } => (format!("lab:{lab}"), json!({ "instructor": username })),
            AuditEvent::LabPolicySet { lab, exam } => (format!("lab:{lab}"), json!({ "exam": exam })),
            AuditEvent::LabVisibilitySet { lab, visibility, before } => {
                (format!("lab:{lab}"), json!({ "visibility": visibility, "before": before }))
            }
            AuditEvent::LabExamWindowSet { lab, window, before } => {
                let window_json =
                    |w: &Option<(i64, i64)>| w.map(|(from, until)| json!({ "from": from, "until": until }));
                (format!("lab:{lab}"), json!({ "exam_window": window_json(window), "before": window_json(before) }))
            }
            // `before`: the seat's name until then (null for a new seat); `replaced`: the list
            // became the lab's whole seat map.
            AuditEvent::SeatSet { lab, address, name, before } => {
                (format!("lab:{lab}"), json!({ "address": address, "name": name, "before": before }))
            }
            AuditEvent::SeatRemoved { lab, address, name } => {
                (format!("lab:{lab}"), json!({ "address": address, "name": name }))
            }
            AuditEvent::SeatsImported { lab, added, renamed, removed, replaced } => (
                format!("lab:{lab}"),
                json!({ "added": added, "renamed": renamed, "removed": removed, "replaced": replaced }),
            ),
            AuditEvent::SettingChanged { key, value } => (format!("setting:{key}"), json!({ "value": value })),
            AuditEvent::UserDisabled { username, sessions_revoked } => {
                (user(username), json!({ "sessions_revoked": sessions_revoked }))
            }
        }
    }
}

pub async fn record(pool: &db::Store, actor: &Actor, event: AuditEvent<'_>) -> Result<(), DbError> {
    let (target, details) = event.target_and_details();
    let details = details.to_string();
    db::audit::append(
        pool,
        &NewAuditRow {
            actor_user_id: actor.user_id,
            actor_username: &actor.username,
            action: event.action(),
            target: &target,
            details: &details,
            client_addr: &actor.client_addr,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_become_rows_with_reason() {
        let pool = db::test_store().await;
        let actor = Actor { user_id: None, username: "mallory".into(), client_addr: "10.1.2.3".into() };
        record(
            &pool,
            &actor,
            AuditEvent::LoginFailed { username: "mallory", reason: LoginFailure::Throttled, source: "local" },
        )
        .await
        .unwrap();
        let rows = db::audit::list(&pool, &Default::default(), 5).await.unwrap();
        assert_eq!(rows[0].action, "login.failure");
        assert_eq!(rows[0].target, "user:mallory");
        assert_eq!(rows[0].details, r#"{"reason":"throttled","source":"local"}"#);
        assert_eq!(rows[0].client_addr, "10.1.2.3");
    }
}
