//! Authentication: how people sign in here, as configured (`[auth]`, `[auth.ldap]`,
//! `[[auth.oidc]]`, `[[auth.role_map]]`; secrets never shown, only where they are read
//! from), with a "test a
//! user" form that looks a username up in the campus directory (no password) and shows the
//! groups found and the role and labs they map to.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::view::{self, Layout};
use super::{NoticeQuery, PortalError, PortalForm, PortalPage};
use crate::auth::UsersManage;
use crate::config::{Config, NestedGroups};
use crate::db::{labs, roles};
use crate::directory::role_map;
use crate::state::AppState;

/// One line of the effective configuration: what, and its value in words.
pub struct Fact {
    pub name: &'static str,
    pub value: String,
}

/// One `[[auth.oidc]]` provider in words.
pub struct ProviderView {
    pub name: String,
    pub facts: Vec<Fact>,
}

pub struct RuleView {
    pub group: String,
    pub role: String,
    pub labs: String,
    /// What is wrong with it (a role or lab that does not exist), empty when nothing.
    pub problem: String,
}

/// The outcome of "test a user".
pub struct Lookup {
    pub username: String,
    /// ok, missing, error.
    pub state: &'static str,
    pub summary: String,
    pub facts: Vec<Fact>,
    pub groups: Vec<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "authentication.html")]
struct AuthPage {
    layout: Layout,
    notice: String,
    local: String,
    directory: bool,
    facts: Vec<Fact>,
    providers: Vec<ProviderView>,
    rules: Vec<RuleView>,
    default_role: String,
    can_look_up: bool,
    lookup: Option<Lookup>,
}

#[derive(Deserialize)]
pub struct TestForm {
    username: String,
}

pub async fn page(
    State(state): State<AppState>,
    portal: PortalPage<UsersManage>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    render(&state, portal.layout("authentication"), view::notice(q.notice.as_deref()), None).await
}

/// Looks a username up in the directory (read-only: nothing is created or changed).
pub async fn test_user(
    State(state): State<AppState>,
    PortalForm { portal, form, .. }: PortalForm<UsersManage, TestForm>,
) -> Result<Response, PortalError> {
    let username = form.username.trim().to_string();
    if username.is_empty() || username.chars().count() > 64 || username.chars().any(char::is_control) {
        return Err(PortalError::BadRequest("Enter a username of 1 to 64 characters to look up.".into()));
    }
    let lookup = look_up(&state, &username).await?;
    render(&state, portal.layout("authentication"), String::new(), Some(lookup)).await
}

async fn look_up(state: &AppState, username: &str) -> Result<Lookup, PortalError> {
    let Some(directory) = &state.directory else {
        return Err(PortalError::BadRequest("No campus directory is configured ([auth.ldap]).".into()));
    };
    let mut lookup =
        Lookup { username: username.into(), state: "error", summary: String::new(), facts: vec![], groups: vec![] };
    match directory.lookup(username).await {
        Err(e) => lookup.summary = e.to_string(),
        Ok(None) => {
            lookup.state = "missing";
            lookup.summary = format!(
                "The directory lists no one as {username:?} (user_filter under user_base): such a person cannot sign in."
            );
        }
        Ok(Some(person)) => {
            lookup.state = "ok";
            let auth = &state.config.auth;
            lookup.summary = match role_map::map(&auth.role_map, auth.default_role.as_deref(), &person.groups) {
                None => "In no mapped group and there is no default_role: this person cannot sign in.".into(),
                Some(m) => {
                    let known = roles::by_name(&state.db, &m.role).await?.is_some();
                    let labs = if m.labs.is_empty() { "no labs".to_string() } else { m.labs.join(", ") };
                    let how = match &m.matched {
                        Some(group) => format!("by the rule for {group}"),
                        None => "by default_role (no rule matched)".into(),
                    };
                    let warning = if known {
                        String::new()
                    } else {
                        " — but that role does not exist, so the sign-in fails".into()
                    };
                    format!("Signs in as {} with {labs}, {how}{warning}.", m.role)
                }
            };
            lookup.facts = vec![
                Fact { name: "DN", value: person.dn },
                Fact { name: "Username", value: person.username },
                Fact { name: "Display name", value: person.display_name },
                Fact { name: "E-mail", value: person.email },
            ];
            lookup.groups = person.groups;
        }
    }
    Ok(lookup)
}

async fn render(
    state: &AppState,
    layout: Layout,
    notice: String,
    lookup: Option<Lookup>,
) -> Result<Response, PortalError> {
    let auth = &state.config.auth;
    let local = match crate::settings::get_str(&state.db, "auth.local_sign_in").await?.as_str() {
        "admins" => "only accounts whose role has users.manage (setting auth.local_sign_in = admins)".to_string(),
        _ => "every local account (setting auth.local_sign_in = everyone)".to_string(),
    };
    let mut rules = Vec::new();
    for rule in &auth.role_map {
        let mut problems = Vec::new();
        if roles::by_name(&state.db, &rule.role).await?.is_none() {
            problems.push(format!("no role {:?}", rule.role));
        }
        for lab in &rule.labs {
            if labs::by_name(&state.db, lab).await?.is_none() {
                problems.push(format!("no lab {lab:?}"));
            }
        }
        rules.push(RuleView {
            group: rule.group.clone(),
            role: rule.role.clone(),
            labs: rule.labs.join(", "),
            problem: problems.join("; "),
        });
    }
    Ok(AuthPage {
        layout,
        notice,
        local,
        directory: auth.ldap.is_some(),
        facts: facts(&state.config),
        providers: providers(state).await,
        rules,
        default_role: auth.default_role.clone().unwrap_or_default(),
        can_look_up: state.directory.as_ref().is_some_and(|d| d.has_service_account()),
        lookup,
    }
    .into_response())
}

/// `[[auth.oidc]]` in words, with whether the provider answers now (its discovery document,
/// read as a sign-in would); the client secret is named by its file only.
async fn providers(state: &AppState) -> Vec<ProviderView> {
    let mut list = Vec::new();
    for p in state.oidc.iter() {
        let c = &p.config;
        let reached = match p.metadata().await {
            Ok(m) => format!(
                "yes: signs in at {}{}",
                m.authorization_endpoint,
                if m.end_session_endpoint.is_some() { "; signing out ends its session too" } else { "" }
            ),
            Err(e) => format!("no: {e}"),
        };
        list.push(ProviderView {
            name: p.name().to_string(),
            facts: vec![
                Fact { name: "Issuer", value: c.issuer.clone() },
                Fact { name: "Reached", value: reached },
                Fact {
                    name: "Client",
                    value: format!(
                        "{} (secret read from {})",
                        c.client_id,
                        c.client_secret_file.as_ref().map(|f| f.display().to_string()).unwrap_or_default()
                    ),
                },
                Fact {
                    name: "Callback",
                    value: c
                        .redirect_uri
                        .clone()
                        .unwrap_or_else(|| format!("https://<this server>/api/auth/oidc/{}/callback", p.slug)),
                },
                Fact { name: "Scopes", value: c.scopes.join(" ") },
                Fact {
                    name: "Claims",
                    value: format!(
                        "username {}, name {}, groups {}",
                        c.username_claim,
                        c.display_name_claim,
                        if c.groups_claim.is_empty() { "none" } else { &c.groups_claim }
                    ),
                },
                Fact { name: "Signatures", value: c.algorithms.join(", ") },
                Fact {
                    name: "Trusted CAs",
                    value: c
                        .ca_file
                        .as_ref()
                        .map(|f| f.display().to_string())
                        .unwrap_or_else(|| "this machine's".into()),
                },
            ],
        });
    }
    list
}

/// `[auth.ldap]` in words; the service password is named by its file only.
fn facts(config: &Config) -> Vec<Fact> {
    let Some(l) = &config.auth.ldap else { return Vec::new() };
    let mode = match (&l.bind_dn, &l.bind_template) {
        (Some(dn), _) => format!(
            "search-then-bind as {dn} (password read from {})",
            l.bind_password_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
        ),
        (None, Some(template)) => {
            format!("direct bind as {template} (no service account: groups read at sign-in only)")
        }
        (None, None) => String::new(),
    };
    vec![
        Fact { name: "Servers, in order", value: l.servers().join(", ") },
        Fact {
            name: "TLS",
            value: format!(
                "{}; trusted CAs: {}",
                if l.starttls { "ldaps://, or StartTLS on ldap://" } else { "ldaps://" },
                l.ca_file.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "this machine's".into())
            ),
        },
        Fact { name: "Sign-in", value: mode },
        Fact { name: "People under", value: l.user_base.clone() },
        Fact { name: "Filter", value: l.user_filter.clone() },
        Fact {
            name: "Attributes",
            value: format!(
                "username {}, name {}, e-mail {}",
                l.username_attribute, l.display_name_attribute, l.email_attribute
            ),
        },
        Fact {
            name: "Groups",
            value: format!(
                "{}; search: {}; nested: {}",
                if l.group_attribute.is_empty() {
                    "no attribute".into()
                } else {
                    format!("attribute {}", l.group_attribute)
                },
                match &l.group_base {
                    Some(base) => format!("{} under {base}", l.group_filter),
                    None => "none".to_string(),
                },
                match l.nested_groups {
                    NestedGroups::Off => "off",
                    NestedGroups::Search => "searched, up to 8 levels",
                    NestedGroups::InChain => "Active Directory in-chain rule",
                }
            ),
        },
        Fact {
            name: "Timeouts",
            value: format!(
                "connect {} s, operation {} s, {} pooled connections",
                l.connect_timeout_secs, l.timeout_secs, l.pool_size
            ),
        },
        Fact { name: "Signed-in people read again", value: format!("every {} min", l.refresh_minutes) },
    ]
}
