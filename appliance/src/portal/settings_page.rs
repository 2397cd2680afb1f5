//! Settings: every run-time setting with its current value, validated and audited on save
//! (by `setting_admin`; this page parses the form and shows the result).

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};

use super::view::{self, Layout};
use super::{NoticeQuery, PortalError, PortalForm, PortalPage, done};
use crate::auth::UsersManage;
use crate::setting_admin;
use crate::settings::{self, Kind, SettingError};
use crate::state::AppState;

impl From<SettingError> for PortalError {
    fn from(e: SettingError) -> Self {
        match e {
            SettingError::Invalid(m) => PortalError::BadRequest(m),
            SettingError::Db(d) => d.into(),
        }
    }
}

pub struct SettingView {
    pub key: &'static str,
    pub help: &'static str,
    pub value: String,
    pub choices: Vec<&'static str>,
}

#[derive(Template, WebTemplate)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    notice: String,
    settings: Vec<SettingView>,
    /// Settings of the configuration file that admins look for here (read-only).
    file_settings: Vec<(&'static str, String)>,
}

pub async fn page(
    State(state): State<AppState>,
    portal: PortalPage<UsersManage>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let views = settings::all(&state.db)
        .await?
        .into_iter()
        .map(|(spec, value)| SettingView {
            key: spec.key,
            help: spec.help,
            value: value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string()),
            choices: match spec.kind {
                Kind::Choice(words) => words.to_vec(),
                Kind::Int { .. } | Kind::Names => Vec::new(),
            },
        })
        .collect();
    let t = &state.config.turn;
    let file_settings = vec![
        ("turn.credential_ttl_secs", t.credential_ttl_secs.to_string()),
        ("turn.allow_public_peers", t.allow_public_peers.to_string()),
        ("turn.max_allocations_per_user", t.max_allocations_per_user.to_string()),
        ("turn.max_allocations", t.max_allocations.to_string()),
        ("auth.max_failures_per_user", state.config.auth.max_failures_per_user.to_string()),
        ("auth.session_ttl_secs", state.config.auth.session_ttl_secs.to_string()),
    ];
    Ok(SettingsPage {
        layout: portal.layout("settings"),
        notice: view::notice(q.notice.as_deref()),
        settings: views,
        file_settings,
    }
    .into_response())
}

/// Saves every setting in the form whose value changed; all are validated first, so a
/// bad value changes nothing.
pub async fn save(
    State(state): State<AppState>,
    PortalForm { portal, form: f, .. }: PortalForm<UsersManage, HashMap<String, String>>,
) -> Result<Response, PortalError> {
    let changed = setting_admin::save_changed(&state.db, &portal.actor, |key| f.get(key).map(String::as_str)).await?;
    Ok(done("/admin/settings", &format!("Saved {changed} change(s).")))
}
