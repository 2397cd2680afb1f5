//! Users: search, sort, page; create, edit (display name, role, labs), disable/enable,
//! reset password (one-time password shown once), delete with confirmation; CSV import with
//! a preview and per-row errors before anything is written; CSV export.

use std::collections::{HashMap, HashSet};

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::view::{self, Layout};
use super::{NoFields, NoticeQuery, PortalError, PortalForm, PortalPage, PortalUpload, done};
use crate::accounts::{self, AccountError};
use crate::audit::{self, AuditEvent};
use crate::auth::UsersManage;
use crate::db::users::{self, UserSort};
use crate::db::{labs, roles};
use crate::state::AppState;

const PAGE_SIZE: i64 = 50;
const MAX_IMPORT_ROWS: usize = 5000;
const MAX_IMPORT_BYTES: usize = 1 << 20;

impl From<AccountError> for PortalError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Db(d) => d.into(),
            AccountError::Auth(a) => a.into(),
            AccountError::NoSuchUser(id) => PortalError::NotFound(format!("user {id}")),
            other => PortalError::BadRequest(other.to_string()),
        }
    }
}

pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub status: &'static str,
    pub created: String,
    pub last_login: String,
    /// Who checks the password, in words.
    pub source: &'static str,
    /// Local accounts only: the portal may set their password.
    pub local: bool,
    /// The directory DN, and when its groups were last read (directory accounts).
    pub external_id: String,
    pub groups_read: String,
}

fn row(u: users::User) -> UserRow {
    UserRow {
        status: if u.is_disabled() {
            "disabled"
        } else if u.must_change_password() {
            "must change password"
        } else {
            "active"
        },
        created: view::when(Some(u.created_at)),
        last_login: view::when(u.last_login_at),
        source: match u.source() {
            users::Source::Local => "local",
            users::Source::Ldap => "campus directory",
            users::Source::Oidc => "single sign-on",
        },
        local: u.source() == users::Source::Local,
        external_id: u.external_id.clone().unwrap_or_default(),
        groups_read: view::when(u.groups_read_at),
        id: u.id,
        username: u.username,
        display_name: u.display_name,
        role: u.role,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    notice: String,
    q: String,
    sort: String,
    rows: Vec<UserRow>,
    total: i64,
    page: i64,
    pages: i64,
    roles: Vec<String>,
    prev_link: String,
    next_link: String,
}

#[derive(Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    sort: Option<String>,
    page: Option<i64>,
    notice: Option<String>,
}

fn sort_of(s: &str) -> UserSort {
    match s {
        "role" => UserSort::Role,
        "last_login" => UserSort::LastLogin,
        "created" => UserSort::Created,
        _ => UserSort::Username,
    }
}

pub async fn list(
    State(state): State<AppState>,
    portal: PortalPage<UsersManage>,
    Query(q): Query<ListQuery>,
) -> Result<Response, PortalError> {
    let search: String = q.q.unwrap_or_default().chars().take(64).collect();
    let sort = q.sort.unwrap_or_else(|| "username".into());
    let page = q.page.unwrap_or(1).max(1);
    let (rows, total) =
        users::search(&state.db, search.trim(), sort_of(&sort), PAGE_SIZE, (page - 1) * PAGE_SIZE).await?;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let link =
        |p: i64| format!("/admin/users?q={}&sort={}&page={p}", view::url_encode(&search), view::url_encode(&sort));
    Ok(UsersPage {
        layout: portal.layout("users"),
        notice: view::notice(q.notice.as_deref()),
        prev_link: if page > 1 { link(page - 1) } else { String::new() },
        next_link: if page < pages { link(page + 1) } else { String::new() },
        q: search,
        sort,
        rows: rows.into_iter().map(row).collect(),
        total,
        page,
        pages,
        roles: roles::list(&state.db).await?.into_iter().map(|r| r.name).collect(),
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "password_shown.html")]
struct PasswordShown {
    layout: Layout,
    notice: String,
    username: String,
    password: String,
    what: &'static str,
}

#[derive(Deserialize)]
pub struct CreateForm {
    username: String,
    display_name: String,
    role: String,
}

pub async fn create(
    State(state): State<AppState>,
    PortalForm { portal, form: f, .. }: PortalForm<UsersManage, CreateForm>,
) -> Result<Response, PortalError> {
    let username = f.username.trim();
    let min = state.config.auth.password_min_length;
    let (_, otp) = accounts::create(&state.db, &portal.actor, username, &f.display_name, &f.role, None, min).await?;
    Ok(PasswordShown {
        layout: portal.layout("users"),
        notice: format!("Created {username}."),
        username: username.to_string(),
        password: otp.unwrap_or_default(),
        what: "created",
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "user_edit.html")]
struct EditPage {
    layout: Layout,
    notice: String,
    user: UserRow,
    roles: Vec<String>,
    labs: Vec<(i64, String, bool)>,
    disabled: bool,
}

pub async fn edit(
    State(state): State<AppState>,
    portal: PortalPage<UsersManage>,
    Path(id): Path<i64>,
    Query(q): Query<NoticeQuery>,
) -> Result<Response, PortalError> {
    let user = users::by_id(&state.db, id).await?.ok_or_else(|| PortalError::NotFound(format!("user {id}")))?;
    let owned = labs::owned_by(&state.db, id).await?;
    let all_labs = labs::list(&state.db).await?;
    Ok(EditPage {
        layout: portal.layout("users"),
        notice: view::notice(q.notice.as_deref()),
        disabled: user.is_disabled(),
        labs: all_labs.into_iter().map(|l| (l.id, l.name.clone(), owned.contains(&l.name))).collect(),
        roles: roles::list(&state.db).await?.into_iter().map(|r| r.name).collect(),
        user: row(user),
    }
    .into_response())
}

/// The edit form: `csrf`, `display_name`, `role`, and `lab_<id>=on` for each ticked lab.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, form: f, .. }: PortalForm<UsersManage, HashMap<String, String>>,
) -> Result<Response, PortalError> {
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    accounts::update(&state.db, &portal.actor, id, &field("display_name"), &field("role")).await?;
    let all_labs = labs::list(&state.db).await?;
    let ticked: Vec<&labs::Lab> = all_labs.iter().filter(|l| f.contains_key(&format!("lab_{}", l.id))).collect();
    let before = labs::owned_by(&state.db, id).await?;
    let after: Vec<String> = ticked.iter().map(|l| l.name.clone()).collect();
    if before != after {
        labs::set_owned(&state.db, id, &ticked.iter().map(|l| l.id).collect::<Vec<_>>()).await?;
        let username = users::by_id(&state.db, id).await?.map(|u| u.username).unwrap_or_default();
        audit::record(&state.db, &portal.actor, AuditEvent::UserLabsSet { username: &username, labs: &after }).await?;
    }
    Ok(done(&format!("/admin/users/{id}"), "Saved."))
}

pub async fn disable(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, .. }: PortalForm<UsersManage, NoFields>,
) -> Result<Response, PortalError> {
    let (user, ended) = accounts::disable(&state.db, &portal.actor, id).await?;
    state.signaling.disconnect_user(user.id).await;
    Ok(done(&format!("/admin/users/{id}"), &format!("Disabled {}; {ended} session(s) ended.", user.username)))
}

pub async fn enable(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, .. }: PortalForm<UsersManage, NoFields>,
) -> Result<Response, PortalError> {
    let user = accounts::enable(&state.db, &portal.actor, id).await?;
    Ok(done(&format!("/admin/users/{id}"), &format!("Enabled {}.", user.username)))
}

pub async fn reset_password(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, .. }: PortalForm<UsersManage, NoFields>,
) -> Result<Response, PortalError> {
    let min = state.config.auth.password_min_length;
    let (user, otp, _) = accounts::set_password(&state.db, &portal.actor, id, None, min).await?;
    state.signaling.disconnect_user(user.id).await;
    Ok(PasswordShown {
        layout: portal.layout("users"),
        notice: format!("The password of {} was reset; they were signed out everywhere.", user.username),
        username: user.username,
        password: otp.unwrap_or_default(),
        what: "reset",
    }
    .into_response())
}

#[derive(Deserialize)]
pub struct DeleteForm {
    confirm: String,
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    PortalForm { portal, form: f, .. }: PortalForm<UsersManage, DeleteForm>,
) -> Result<Response, PortalError> {
    let user = users::by_id(&state.db, id).await?.ok_or_else(|| PortalError::NotFound(format!("user {id}")))?;
    if f.confirm.trim() != user.username {
        return Err(PortalError::BadRequest(format!(
            "To delete, type the username {:?} exactly; nothing was deleted.",
            user.username
        )));
    }
    if user.id == portal.user.id {
        return Err(PortalError::BadRequest("You cannot delete your own account.".into()));
    }
    state.signaling.disconnect_user(user.id).await;
    let user = accounts::delete(&state.db, &portal.actor, id).await?;
    Ok(done("/admin/users", &format!("Deleted {}.", user.username)))
}

pub async fn export(State(state): State<AppState>, _portal: PortalPage<UsersManage>) -> Result<Response, PortalError> {
    let mut out =
        super::CsvExport::new(["username", "display_name", "role", "status", "created_utc", "last_login_utc"])?;
    for u in users::list(&state.db).await? {
        let r = row(u);
        out.row([r.username.as_str(), &r.display_name, &r.role, r.status, &r.created, &r.last_login])?;
    }
    out.download("labbeam-users.csv")
}

// --- CSV import -------------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "users_import.html")]
struct ImportPage {
    layout: Layout,
    notice: String,
    preview: Vec<ImportRow>,
    valid: usize,
    invalid: usize,
    csv_text: String,
    created: Vec<(String, String)>,
}

pub struct ImportRow {
    pub line: usize,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub error: String,
    password: Option<String>,
}

pub async fn import_form(portal: PortalPage<UsersManage>) -> Result<Response, PortalError> {
    Ok(ImportPage {
        layout: portal.layout("users"),
        notice: String::new(),
        preview: Vec::new(),
        valid: 0,
        invalid: 0,
        csv_text: String::new(),
        created: Vec::new(),
    }
    .into_response())
}

/// Parses and checks every row against the store and the rest of the file.
async fn check_rows(state: &AppState, text: &str) -> Result<Vec<ImportRow>, PortalError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| PortalError::BadRequest(format!("The file is not CSV: {e}")))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let Some(ucol) = col("username") else {
        return Err(PortalError::BadRequest(
            "The first line must name the columns: username,display_name,role[,password].".into(),
        ));
    };
    let (dcol, rcol, pcol) = (col("display_name"), col("role"), col("password"));
    let known_roles: HashSet<String> = roles::list(&state.db).await?.into_iter().map(|r| r.name).collect();
    let min = state.config.auth.password_min_length;
    let mut seen = HashSet::new();
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        if rows.len() >= MAX_IMPORT_ROWS {
            return Err(PortalError::BadRequest(format!("At most {MAX_IMPORT_ROWS} rows per import.")));
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                rows.push(ImportRow {
                    line,
                    username: String::new(),
                    display_name: String::new(),
                    role: String::new(),
                    error: format!("not readable: {e}"),
                    password: None,
                });
                continue;
            }
        };
        let get = |c: Option<usize>| c.and_then(|c| record.get(c)).unwrap_or("").to_string();
        let username = get(Some(ucol));
        let role = {
            let r = get(rcol);
            if r.is_empty() { "student".to_string() } else { r }
        };
        let password = Some(get(pcol)).filter(|p| !p.is_empty());
        let mut errors = Vec::new();
        if let Err(e) = accounts::check_username(&username) {
            errors.push(e.to_string());
        } else if !seen.insert(username.to_lowercase()) {
            errors.push("appears twice in the file".to_string());
        } else if users::by_username(&state.db, &username).await?.is_some() {
            errors.push("already exists".to_string());
        }
        if !known_roles.contains(&role) {
            errors.push(format!("unknown role {role:?}"));
        }
        if let Some(p) = &password
            && let Err(e) = crate::auth::password::check_policy(p, &username, min)
        {
            errors.push(e.to_string());
        }
        rows.push(ImportRow { line, username, display_name: get(dcol), role, error: errors.join("; "), password });
    }
    if rows.is_empty() {
        return Err(PortalError::BadRequest("The file has no rows below its header line.".into()));
    }
    Ok(rows)
}

/// Step 1: upload → preview with per-row errors; nothing is written.
pub async fn import_preview(
    State(state): State<AppState>,
    PortalUpload { portal, parts, .. }: PortalUpload<UsersManage>,
) -> Result<Response, PortalError> {
    let file = parts.get("file").cloned().unwrap_or_default();
    if file.len() > MAX_IMPORT_BYTES {
        return Err(PortalError::BadRequest("The file is larger than 1 MiB.".into()));
    }
    let text =
        String::from_utf8(file.to_vec()).map_err(|_| PortalError::BadRequest("The file is not UTF-8 text.".into()))?;
    let rows = check_rows(&state, &text).await?;
    let invalid = rows.iter().filter(|r| !r.error.is_empty()).count();
    Ok(ImportPage {
        layout: portal.layout("users"),
        notice: String::new(),
        valid: rows.len() - invalid,
        invalid,
        preview: rows,
        csv_text: text,
        created: Vec::new(),
    }
    .into_response())
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    csv: String,
}

/// Step 2: the admin confirmed; the rows are checked again and the valid ones created.
pub async fn import_confirm(
    State(state): State<AppState>,
    PortalForm { portal, form: f, .. }: PortalForm<UsersManage, ConfirmForm>,
) -> Result<Response, PortalError> {
    let rows = check_rows(&state, &f.csv).await?;
    let min = state.config.auth.password_min_length;
    let mut created = Vec::new();
    let mut skipped = 0;
    for r in rows {
        if !r.error.is_empty() {
            skipped += 1;
            continue;
        }
        let had_password = r.password.is_some();
        let (_, otp) =
            accounts::create(&state.db, &portal.actor, &r.username, &r.display_name, &r.role, r.password, min).await?;
        let shown = match otp {
            Some(p) => p,
            None if had_password => "(the password from the file)".to_string(),
            None => String::new(),
        };
        created.push((r.username, shown));
    }
    audit::record(&state.db, &portal.actor, AuditEvent::UsersImported { created: created.len(), skipped }).await?;
    Ok(ImportPage {
        layout: portal.layout("users"),
        notice: format!("Imported {} user(s); {skipped} row(s) with errors were skipped.", created.len()),
        preview: Vec::new(),
        valid: 0,
        invalid: 0,
        csv_text: String::new(),
        created,
    }
    .into_response())
}
