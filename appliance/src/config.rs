//! Configuration: a TOML file, then `LABBEAM_*` environment variables, then command-line
//! flags, each overriding the one before. Everything is validated before anything starts,
//! and every mistake is reported as one line naming its source (file and line, variable,
//! or flag), so an admin reading `journalctl` knows exactly what to fix.
//!
//! Every key is documented, with its meaning and default, in the packaged
//! `packaging/labbeam.toml` and in the man page's CONFIGURATION section; the tests below
//! list the keys from `Config::default()` and fail, naming the key and the file, when one
//! of them lacks a key or shows a wrong default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// Top-level keys that are plain values (also reachable as `LABBEAM_<KEY>`).
const TOP_KEYS: &[&str] = &["data_dir", "http_listen", "turn_listen", "public_host", "trusted_proxies"];
/// Tables of the file; `LABBEAM_<TABLE>_<KEY>` reaches `[table] key`.
/// Tables, a dotted name for one within another (`LABBEAM_AUTH_LDAP_URL` reaches
/// `[auth.ldap] url`). Arrays of tables (`[[auth.role_map]]`) are set in the file only.
const TABLES: &[&str] = &["tls", "http", "auth", "auth.ldap", "log", "turn", "store"];

// Serialize (tests only): `tests::config_keys` walks `Config::default()` to list every key.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, certificate and secrets live.
    pub data_dir: PathBuf,
    /// HTTPS (web client, API, portal, Socket.IO).
    pub http_listen: SocketAddr,
    /// STUN/TURN over UDP and TCP.
    pub turn_listen: SocketAddr,
    /// The host name or address lab PCs use to reach the appliance. It is put in the
    /// certificate and in the ICE server URLs. Unset: `localhost` plus this machine's name.
    pub public_host: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (CIDRs). Empty: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `[tls]`: the certificate of HTTPS and TURN over TLS.
    pub tls: TlsConfig,
    /// `[http]`: timeouts and per-address caps of the HTTPS listener.
    pub http: HttpConfig,
    /// `[auth]`: sessions, sign-in limits, password length.
    pub auth: AuthConfig,
    /// `[log]`: the format and filter of the log on standard error.
    pub log: LogConfig,
    /// `[turn]`: the STUN/TURN relay.
    pub turn: TurnConfig,
    /// `[store]`: the database (SQLite in `data_dir`, or PostgreSQL).
    pub store: StoreConfig,
}

/// `[store]`: where the data lives. Unset, the embedded SQLite file `labbeam.db` in
/// `data_dir`; `url = "postgres://…"` puts it on a PostgreSQL server (README, "Using
/// PostgreSQL").
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite:///path/labbeam.db` or `postgres://user@host:port/database?sslmode=…`.
    pub url: Option<String>,
    /// A file whose first line is the PostgreSQL password (instead of putting it in `url`;
    /// PostgreSQL's own `PGPASSWORD` and `~/.pgpass` work too).
    pub password_file: Option<PathBuf>,
    /// PEM certificates of the CA that signed the PostgreSQL server's certificate: with it,
    /// the connection is TLS and the server's name is verified (`sslmode=verify-full`).
    pub ca_file: Option<PathBuf>,
    /// Connections the server keeps to the database at most.
    pub max_connections: u32,
    /// How long a request waits for a connection before it fails with 503
    /// `store_unavailable` (seconds).
    pub acquire_timeout_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { url: None, password_file: None, ca_file: None, max_connections: 8, acquire_timeout_secs: 5 }
    }
}

impl StoreConfig {
    fn validate(&self) -> Result<(), String> {
        if !(1..=1000).contains(&self.max_connections) {
            return Err("store.max_connections must be between 1 and 1000".into());
        }
        if !(1..=600).contains(&self.acquire_timeout_secs) {
            return Err("store.acquire_timeout_secs must be between 1 and 600".into());
        }
        if let Some(url) = &self.url {
            crate::db::Location::parse(url, &StoreConfig { password_file: None, ca_file: None, ..self.clone() })
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key`, used instead of the generated self-signed one.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`; give both or neither.
    pub key: Option<PathBuf>,
    /// More names or addresses for the generated certificate.
    pub extra_names: Vec<String>,
}

/// `[http]`: how long the HTTPS listener waits for clients, and how many connections one
/// client address may hold.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// The TLS handshake must finish, and each request head must arrive in full, within
    /// this many seconds. The wait for a head starts when the connection is ready for it
    /// (after the handshake or the previous response), so it also bounds idle keep-alive.
    pub header_timeout_secs: u64,
    /// A connection on which nothing moves for this many seconds while no request is being
    /// answered is closed: idle keep-alive, a stalled request head, a client that stopped
    /// reading its response. Upgraded connections (WebSocket signaling) are exempt.
    pub idle_timeout_secs: u64,
    /// Connections one client address may hold at once (an IPv6 /64 counts as one
    /// address); more are closed at once. A lab behind one NAT shares an address, and a
    /// browser opens up to 7 (6 for HTTP, 1 for signaling). `trusted_proxies` are exempt.
    pub max_connections_per_address: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { header_timeout_secs: 20, idle_timeout_secs: 15, max_connections_per_address: 512 }
    }
}

impl HttpConfig {
    fn validate(&self) -> Result<(), String> {
        if !(1..=300).contains(&self.header_timeout_secs) {
            return Err("http.header_timeout_secs must be between 1 and 300".into());
        }
        if !(1..=3600).contains(&self.idle_timeout_secs) {
            return Err("http.idle_timeout_secs must be between 1 and 3600".into());
        }
        if self.max_connections_per_address == 0 {
            return Err("http.max_connections_per_address must be at least 1".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Lifetime of a login session (cookie and token), in seconds.
    pub session_ttl_secs: u64,
    /// Failed logins allowed per username from one client address within
    /// `throttle_window_secs`; beyond this many from all addresses together, the addresses
    /// that failed against the account back off progressively (see `auth::throttle`).
    pub max_failures_per_user: u32,
    /// Failed logins allowed per client address within `throttle_window_secs`.
    pub max_failures_per_address: u32,
    /// The window, in seconds, over which the failures above are counted.
    pub throttle_window_secs: u64,
    /// Shortest password accepted, in characters (the rest of the policy is in
    /// `auth::password`).
    pub password_min_length: usize,
    /// The role of a directory user whom no `[[auth.role_map]]` rule matches. Unset: such a
    /// user is refused ("not in any mapped group").
    pub default_role: Option<String>,
    /// `[auth.ldap]`: sign-in with the campus directory (LDAP or Active Directory). Unset:
    /// local accounts only.
    pub ldap: Option<LdapConfig>,
    /// `[[auth.role_map]]`: directory groups to roles and labs, first match wins for the role.
    pub role_map: Vec<RoleRule>,
    /// `[[auth.oidc]]`: OpenID providers people may sign in with (`oidc` module), one table
    /// each, shown as one "Sign in with …" button each.
    pub oidc: Vec<OidcConfig>,
}

/// `[[auth.oidc]]`: one OpenID provider (Keycloak, Entra ID, Google Workspace, a SAML bridge
/// speaking OpenID Connect). README "Campus sign-in".
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// Shown on the sign-in button ("Sign in with Campus SSO"); its slug names the provider
    /// in URLs (`/api/auth/oidc/campus-sso/start`).
    pub name: String,
    /// The issuer, exactly as the provider's discovery document and ID tokens give it
    /// (`https://…`; `/.well-known/openid-configuration` is read below it).
    pub issuer: String,
    pub client_id: String,
    /// A file holding the client secret (never the TOML itself).
    pub client_secret_file: Option<PathBuf>,
    /// Scopes asked for; `openid` is always among them.
    pub scopes: Vec<String>,
    /// The claim holding the LabBeam username.
    pub username_claim: String,
    /// The claim holding the name shown to others.
    pub display_name_claim: String,
    /// The claim listing the person's groups, matched against `[[auth.role_map]] group`.
    /// Empty: no groups (everyone gets `default_role`).
    pub groups_claim: String,
    /// Signature algorithms accepted on ID tokens. `none` and the HMAC ones (HS256…) are
    /// never accepted.
    pub algorithms: Vec<String>,
    /// The CA certificate(s) (PEM) the provider's certificate must chain to. Unset: the
    /// system's trusted CAs.
    pub ca_file: Option<PathBuf>,
    /// The URL the provider sends people back to, as registered there. Unset:
    /// `https://<the host the browser used>/api/auth/oidc/<slug>/callback`.
    pub redirect_uri: Option<String>,
    /// Seconds one request to the provider may take.
    pub timeout_secs: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            issuer: String::new(),
            client_id: String::new(),
            client_secret_file: None,
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            username_claim: "preferred_username".into(),
            display_name_claim: "name".into(),
            groups_claim: "groups".into(),
            algorithms: OIDC_ALGORITHMS.iter().map(|a| a.to_string()).collect(),
            ca_file: None,
            redirect_uri: None,
            timeout_secs: 10,
        }
    }
}

/// A secret kept in a file of its own (a service password, a client secret): its text without
/// the line end; missing, unreadable or empty stops `serve` with a line naming `what`.
pub fn read_secret_file(file: &std::path::Path, what: &str) -> anyhow::Result<String> {
    use anyhow::Context;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {what} {}", file.display()))?;
    let secret = text.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        anyhow::bail!("{what} {} is empty", file.display());
    }
    Ok(secret)
}

/// The signature algorithms an ID token may use: every public-key one ring verifies.
pub const OIDC_ALGORITHMS: &[&str] = &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

impl OidcConfig {
    /// The provider's name in URLs: its name in lowercase, runs of other characters as `-`.
    pub fn slug(&self) -> String {
        let mut slug = String::new();
        for c in self.name.trim().chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.ends_with('-') && !slug.is_empty() {
                slug.push('-');
            }
        }
        slug.trim_end_matches('-').to_string()
    }

    fn validate(&self, i: usize) -> Result<(), String> {
        let at = format!("auth.oidc provider {}", i + 1);
        if self.name.trim().is_empty() || self.slug().is_empty() {
            return Err(format!("{at} needs name, with at least one letter or digit (shown on its button)"));
        }
        if self.slug().chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "{at}: name {:?} must not be only digits (digits name providers by position)",
                self.name
            ));
        }
        let issuer = self.issuer.trim();
        if !issuer.starts_with("https://") || issuer.len() <= "https://".len() {
            return Err(format!(
                "{at} ({}): issuer must be an https:// URL, exactly as the provider gives it",
                self.name
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(format!("{at} ({}) needs client_id", self.name));
        }
        if self.client_secret_file.is_none() {
            return Err(format!(
                "{at} ({}) needs client_secret_file: a file holding the client secret (never the TOML itself)",
                self.name
            ));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err(format!("{at} ({}): scopes must include \"openid\"", self.name));
        }
        if self.username_claim.trim().is_empty() {
            return Err(format!("{at} ({}): username_claim must not be empty", self.name));
        }
        if self.algorithms.is_empty() {
            return Err(format!("{at} ({}): algorithms must list at least one", self.name));
        }
        for alg in &self.algorithms {
            if !OIDC_ALGORITHMS.contains(&alg.as_str()) {
                return Err(format!(
                    "{at} ({}): algorithm {alg:?} is not accepted; choose among {}",
                    self.name,
                    OIDC_ALGORITHMS.join(", ")
                ));
            }
        }
        if let Some(uri) = &self.redirect_uri
            && !uri.starts_with("https://")
        {
            return Err(format!("{at} ({}): redirect_uri must be an https:// URL", self.name));
        }
        if !(1..=120).contains(&self.timeout_secs) {
            return Err(format!("{at} ({}): timeout_secs must be between 1 and 120", self.name));
        }
        Ok(())
    }
}

/// `[auth.ldap]`: the campus directory (`directory` module; README "Campus sign-in").
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct LdapConfig {
    /// The directory server, `ldaps://host:636` or `ldap://host:389` with `starttls`.
    pub url: Option<String>,
    /// Several servers, tried in order (with or instead of `url`).
    pub urls: Vec<String>,
    /// Upgrade `ldap://` connections with StartTLS. Plain `ldap://` without it is refused:
    /// passwords would cross the network in clear.
    pub starttls: bool,
    /// The CA certificate(s) (PEM) the directory's certificate must chain to. Unset: the
    /// system's trusted CAs.
    pub ca_file: Option<PathBuf>,
    /// The service account that searches for people (search-then-bind). Unset: direct bind
    /// with `bind_template`.
    pub bind_dn: Option<String>,
    /// A file holding the service account's password (never the TOML itself).
    pub bind_password_file: Option<PathBuf>,
    /// Direct bind without a service account: the name a person binds as, with `{username}`
    /// (`{username}@campus.example` for Active Directory, or a DN such as
    /// `uid={username},ou=people,dc=campus,dc=example`). Used only when `bind_dn` is unset.
    pub bind_template: Option<String>,
    /// Where people are searched.
    pub user_base: String,
    /// The filter that finds one person, with `{username}` (escaped per RFC 4515). Leave out
    /// disabled accounts here (Active Directory:
    /// `(&(sAMAccountName={username})(!(userAccountControl:1.2.840.113556.1.4.803:=2)))`).
    pub user_filter: String,
    /// The attribute holding the LabBeam username (`sAMAccountName` on Active Directory).
    pub username_attribute: String,
    pub display_name_attribute: String,
    pub email_attribute: String,
    /// The attribute of a person listing their groups' DNs. Empty: groups are searched
    /// (`group_base`, `group_filter`) only.
    pub group_attribute: String,
    /// Where groups are searched, as well as `group_attribute`. Unset: no group search.
    pub group_base: Option<String>,
    /// The filter that finds a person's groups, with `{dn}` (the person's DN, escaped).
    pub group_filter: String,
    /// Groups within groups: `off`, `search` (groups whose members include a found group,
    /// searched again up to 8 levels; needs `group_base`) or `in_chain` (Active Directory's
    /// LDAP_MATCHING_RULE_IN_CHAIN in one search; needs `group_base`).
    pub nested_groups: NestedGroups,
    /// Seconds to connect (and finish TLS) to one server before trying the next.
    pub connect_timeout_secs: u64,
    /// Seconds one directory operation may take.
    pub timeout_secs: u64,
    /// Service-account connections kept open for searches.
    pub pool_size: usize,
    /// How often, in minutes, signed-in directory users are read again (role, labs, still
    /// there): at most 15.
    pub refresh_minutes: u64,
}

impl Default for LdapConfig {
    fn default() -> Self {
        Self {
            url: None,
            urls: Vec::new(),
            starttls: false,
            ca_file: None,
            bind_dn: None,
            bind_password_file: None,
            bind_template: None,
            user_base: String::new(),
            user_filter: "(uid={username})".into(),
            username_attribute: "uid".into(),
            display_name_attribute: "cn".into(),
            email_attribute: "mail".into(),
            group_attribute: "memberOf".into(),
            group_base: None,
            group_filter: "(member={dn})".into(),
            nested_groups: NestedGroups::Off,
            connect_timeout_secs: 5,
            timeout_secs: 5,
            pool_size: 4,
            refresh_minutes: 15,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "snake_case")]
pub enum NestedGroups {
    #[default]
    Off,
    Search,
    InChain,
}

impl LdapConfig {
    /// The servers in the order they are tried.
    pub fn servers(&self) -> Vec<String> {
        self.url.iter().chain(self.urls.iter()).cloned().collect()
    }

    fn validate(&self) -> Result<(), String> {
        let servers = self.servers();
        if servers.is_empty() {
            return Err(
                "auth.ldap needs url (or urls): the directory server, ldaps://… or ldap://… with starttls".into()
            );
        }
        for url in &servers {
            match url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase()) {
                Some(s) if s == "ldaps" => {}
                Some(s) if s == "ldap" && self.starttls => {}
                Some(s) if s == "ldap" => {
                    return Err(format!(
                        "auth.ldap: {url} without starttls would send passwords in clear: set starttls = true or use ldaps://"
                    ));
                }
                _ => return Err(format!("auth.ldap: {url:?} is not an ldaps:// or ldap:// URL")),
            }
        }
        match (&self.bind_dn, &self.bind_template) {
            (None, None) => {
                return Err("auth.ldap needs bind_dn and bind_password_file (a service account), or bind_template (direct bind)".into());
            }
            (Some(_), None) if self.bind_password_file.is_none() => {
                return Err(
                    "auth.ldap: bind_dn needs bind_password_file (the password is never in the TOML itself)".into()
                );
            }
            (None, Some(t)) if !t.contains("{username}") => {
                return Err("auth.ldap: bind_template must contain {username}".into());
            }
            _ => {}
        }
        if self.user_base.trim().is_empty() {
            return Err("auth.ldap needs user_base: where people are searched".into());
        }
        if !self.user_filter.contains("{username}") {
            return Err("auth.ldap: user_filter must contain {username}".into());
        }
        if self.group_base.is_some() && !self.group_filter.contains("{dn}") {
            return Err("auth.ldap: group_filter must contain {dn}".into());
        }
        if self.nested_groups != NestedGroups::Off && self.group_base.is_none() {
            return Err("auth.ldap: nested_groups needs group_base".into());
        }
        if self.username_attribute.trim().is_empty() {
            return Err("auth.ldap: username_attribute must not be empty".into());
        }
        if !(1..=120).contains(&self.connect_timeout_secs) || !(1..=120).contains(&self.timeout_secs) {
            return Err("auth.ldap: connect_timeout_secs and timeout_secs must be between 1 and 120".into());
        }
        if !(1..=64).contains(&self.pool_size) {
            return Err("auth.ldap: pool_size must be between 1 and 64".into());
        }
        if !(1..=15).contains(&self.refresh_minutes) {
            return Err("auth.ldap: refresh_minutes must be between 1 and 15".into());
        }
        Ok(())
    }
}

/// `[[auth.role_map]]`: one rule. A directory user in `group` gets `role` (the first rule
/// that matches decides) and is responsible for `labs` (every matching rule adds its labs).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct RoleRule {
    /// The group's DN (compared without regard to case or spaces after commas).
    pub group: String,
    /// A role name (`admin`, `instructor`, `student` or one made in the portal).
    pub role: String,
    /// Labs its members are responsible for (instructors broadcast and announce to them).
    pub labs: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session_ttl_secs: 12 * 3600,
            max_failures_per_user: 5,
            max_failures_per_address: 30,
            throttle_window_secs: 15 * 60,
            password_min_length: 10,
            default_role: None,
            ldap: None,
            role_map: Vec::new(),
            oidc: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Lines for people (`human`) or one JSON object per line (`json`).
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `labbeam=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Human, level: "info".into() }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./labbeam-data"),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            turn_listen: SocketAddr::from(([0, 0, 0, 0], 3478)),
            public_host: None,
            trusted_proxies: Vec::new(),
            tls: TlsConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            turn: TurnConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

/// Values given on the command line; they win over the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub http_listen: Option<SocketAddr>,
    pub turn_listen: Option<SocketAddr>,
    pub public_host: Option<String>,
}

#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("config file {path}{location}: {message}")]
    File { path: String, location: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Loads the configuration from `overrides.config_file` (if any), the given environment
    /// (normally `std::env::vars()`), and the flags in `overrides`.
    pub fn load(overrides: &Overrides, env: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut table = match &overrides.config_file {
            Some(path) => read_file(path)?,
            None => toml::Table::new(),
        };
        let mut env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("LABBEAM_")).collect();
        env.sort();
        for (var, raw) in env {
            apply_env(&mut table, &var, &raw)?;
        }
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(one_line(e.message())))?;
        if let Some(v) = &overrides.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = overrides.http_listen {
            config.http_listen = v;
        }
        if let Some(v) = overrides.turn_listen {
            config.turn_listen = v;
        }
        if let Some(v) = &overrides.public_host {
            config.public_host = Some(v.clone());
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.data_dir.as_os_str().is_empty() {
            return bad("data_dir must not be empty".into());
        }
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => return bad("tls.cert is set but tls.key is not: give both or neither".into()),
            (None, Some(_)) => return bad("tls.key is set but tls.cert is not: give both or neither".into()),
            _ => {}
        }
        if let Some(host) = &self.public_host
            && !valid_host(host)
        {
            return bad(format!("public_host {host:?} is not a valid host name or IP address"));
        }
        for name in &self.tls.extra_names {
            if !valid_host(name) {
                return bad(format!("tls.extra_names: {name:?} is not a valid host name or IP address"));
            }
        }
        // Port 0 (any free port) is allowed for both: tests and `doctor` use it.
        if self.http_listen.port() != 0 && self.http_listen == self.turn_listen {
            return bad(format!("http_listen and turn_listen are both {}", self.http_listen));
        }
        self.http.validate().map_err(ConfigError::Invalid)?;
        let a = &self.auth;
        if !(60..=30 * 24 * 3600).contains(&a.session_ttl_secs) {
            return bad("auth.session_ttl_secs must be between 60 and 2592000 (30 days)".into());
        }
        if a.max_failures_per_user == 0 || a.max_failures_per_address == 0 {
            return bad("auth.max_failures_per_user and auth.max_failures_per_address must be at least 1".into());
        }
        if a.throttle_window_secs == 0 {
            return bad("auth.throttle_window_secs must be at least 1".into());
        }
        if !(8..=128).contains(&a.password_min_length) {
            return bad("auth.password_min_length must be between 8 and 128".into());
        }
        if let Some(ldap) = &a.ldap {
            ldap.validate().map_err(ConfigError::Invalid)?;
        }
        for (i, rule) in a.role_map.iter().enumerate() {
            if rule.group.trim().is_empty() || rule.role.trim().is_empty() {
                return bad(format!("auth.role_map rule {} needs group and role", i + 1));
            }
        }
        let mut slugs: Vec<String> = Vec::new();
        for (i, provider) in a.oidc.iter().enumerate() {
            provider.validate(i).map_err(ConfigError::Invalid)?;
            let slug = provider.slug();
            if slugs.contains(&slug) {
                return bad(format!("auth.oidc: two providers are named {slug:?}; give each its own name"));
            }
            slugs.push(slug);
        }
        if a.default_role.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return bad("auth.default_role must name a role, or be left out".into());
        }
        self.turn.validate().map_err(ConfigError::Invalid)?;
        self.store.validate().map_err(ConfigError::Invalid)?;
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return bad(format!("log.level {:?} is not a valid filter (try \"info\" or \"debug\")", self.log.level));
        }
        Ok(())
    }

    /// Names the generated certificate must cover, and that clients may use.
    pub fn host_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(h) = &self.public_host {
            names.push(h.clone());
        }
        names.extend(self.tls.extra_names.iter().cloned());
        for default in ["localhost", "127.0.0.1", "::1"] {
            names.push(default.into());
        }
        if let Some(host) = system_host_name() {
            names.push(host);
        }
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.to_ascii_lowercase()));
        names
    }

    /// The host shown in the printed URL and used in ICE server URLs.
    pub fn advertised_host(&self) -> String {
        self.public_host.clone().unwrap_or_else(|| "localhost".into())
    }
}

/// `[turn]`: the STUN/TURN relay (it listens on `turn_listen`, UDP and TCP).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
#[serde(deny_unknown_fields, default)]
pub struct TurnConfig {
    /// Run STUN/TURN at all.
    pub enabled: bool,
    /// TURN over TLS (`turns:`) port, on `turn_listen`'s address, with the HTTPS certificate.
    /// Unset: 5349, or any free port when `turn_listen`'s port is 0. 0: any free port.
    pub tls_port: Option<u16>,
    /// The relay address given to clients. Unset: `public_host` when it is an IP address,
    /// else `turn_listen`'s address when it is not 0.0.0.0, else the address of the
    /// interface of the default route (printed at start).
    pub relay_address: Option<std::net::IpAddr>,
    /// Relay ports are taken from the inclusive range `relay_port_min`..=`relay_port_max`.
    pub relay_port_min: u16,
    /// The top of the relay port range.
    pub relay_port_max: u16,
    /// Lifetime of the credentials `GET /api/ice-servers` hands out, in seconds.
    pub credential_ttl_secs: u64,
    /// The STUN realm.
    pub realm: String,
    /// Allocations one user may hold at once (over it: 486).
    pub max_allocations_per_user: u32,
    /// Allocations the appliance holds at once (over it: 486).
    pub max_allocations: u32,
    /// Cap on relayed bytes per second per allocation, each way; unset: no cap.
    pub allocation_max_bytes_per_sec: Option<u64>,
    /// Relay to public (globally routable) peers too, not only to the labs' ranges.
    pub allow_public_peers: bool,
    /// More peer ranges (CIDRs) the relay may reach besides the labs' ranges. Empty (the
    /// default): only the labs' ranges, so a fresh install reaches no private address.
    pub allowed_peer_ranges: Vec<ipnet::IpNet>,
    /// UDP sockets sharing the port (SO_REUSEPORT), each with its own read loop and kernel
    /// receive buffer (the loops share the relay's one thread). Unset: one per CPU core, at
    /// most 8.
    pub udp_workers: Option<usize>,
    /// Open TURN-over-TCP/TLS connections at once; more are refused.
    pub max_tcp_connections: usize,
    /// Open TURN-over-TCP/TLS connections one client address may hold (an IPv6 /64 counts
    /// as one); more are refused. A browser holds one or two per peer connection, and a
    /// lab behind one NAT shares an address.
    pub max_tcp_connections_per_address: usize,
    /// A TURN-over-TCP/TLS connection must finish its TLS handshake, send a STUN message
    /// first, and be granted an allocation within this many seconds, or it is closed: a
    /// connection that never authenticates cannot hold a place.
    pub tcp_setup_timeout_secs: u64,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tls_port: None,
            relay_address: None,
            relay_port_min: 49152,
            relay_port_max: 65535,
            credential_ttl_secs: 3600,
            realm: "labbeam".into(),
            max_allocations_per_user: 10,
            max_allocations: 2000,
            allocation_max_bytes_per_sec: None,
            allow_public_peers: false,
            allowed_peer_ranges: Vec::new(),
            udp_workers: None,
            max_tcp_connections: 4096,
            max_tcp_connections_per_address: 512,
            tcp_setup_timeout_secs: 10,
        }
    }
}

impl TurnConfig {
    fn validate(&self) -> Result<(), String> {
        if self.relay_port_min == 0 || self.relay_port_min > self.relay_port_max {
            return Err(format!(
                "turn.relay_port_min ({}) must be at least 1 and not above turn.relay_port_max ({})",
                self.relay_port_min, self.relay_port_max
            ));
        }
        if !(60..=7 * 24 * 3600).contains(&self.credential_ttl_secs) {
            return Err("turn.credential_ttl_secs must be between 60 and 604800 (7 days)".into());
        }
        if self.realm.is_empty() || self.realm.len() > 127 || !self.realm.chars().all(|c| c.is_ascii_graphic()) {
            return Err("turn.realm must be 1 to 127 printable ASCII characters without spaces".into());
        }
        if self.max_allocations_per_user == 0 || self.max_allocations == 0 {
            return Err("turn.max_allocations_per_user and turn.max_allocations must be at least 1".into());
        }
        if self.allocation_max_bytes_per_sec == Some(0) {
            return Err("turn.allocation_max_bytes_per_sec must be at least 1 (leave it unset for no cap)".into());
        }
        if let Some(ip) = self.relay_address
            && (ip.is_unspecified() || ip.is_multicast())
        {
            return Err(format!("turn.relay_address {ip} cannot be used as a relay address"));
        }
        if self.udp_workers.is_some_and(|n| !(1..=64).contains(&n)) {
            return Err("turn.udp_workers must be between 1 and 64".into());
        }
        if self.max_tcp_connections == 0 || self.max_tcp_connections_per_address == 0 {
            return Err("turn.max_tcp_connections and turn.max_tcp_connections_per_address must be at least 1".into());
        }
        if !(1..=300).contains(&self.tcp_setup_timeout_secs) {
            return Err("turn.tcp_setup_timeout_secs must be between 1 and 300".into());
        }
        if let Some(net) = self.allowed_peer_ranges.iter().find(|n| n.prefix_len() == 0) {
            return Err(format!(
                "turn.allowed_peer_ranges: {net} would open every address; list the campus ranges the relay may reach"
            ));
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::Unreadable { path: shown.clone(), reason: e.to_string() })?;
    let file_error = |e: toml::de::Error| {
        let location = e
            .span()
            .map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!(" line {line}")
            })
            .unwrap_or_default();
        ConfigError::File { path: shown.clone(), location, message: one_line(e.message()) }
    };
    // Typed parse first: it reports unknown keys and bad values with their line.
    toml::from_str::<Config>(&text).map_err(file_error)?;
    toml::from_str::<toml::Table>(&text).map_err(file_error)
}

/// Puts one `LABBEAM_*` variable into the table, checking that it names a real key and that
/// its value has the right type.
fn apply_env(table: &mut toml::Table, var: &str, raw: &str) -> Result<(), ConfigError> {
    let err = |message: String| ConfigError::Env { var: var.to_string(), message };
    let name = var.trim_start_matches("LABBEAM_").to_ascii_lowercase();
    let (section, key) = if TOP_KEYS.contains(&name.as_str()) {
        (None, name.clone())
    } else {
        // The longest table name first: `auth_ldap_url` is `[auth.ldap] url`, not `[auth] ldap_url`.
        let mut tables = TABLES.to_vec();
        tables.sort_by_key(|t| std::cmp::Reverse(t.len()));
        tables
            .iter()
            .find_map(|t| name.strip_prefix(&format!("{}_", t.replace('.', "_"))).map(|k| (Some(*t), k.to_string())))
            .ok_or_else(|| err("does not match any configuration key".into()))?
    };
    let candidates = parse_env_value(raw).into_iter().chain(std::iter::once(toml::Value::String(raw.to_string())));
    let mut last_error = String::new();
    for value in candidates {
        let mut trial = table.clone();
        let mut target = &mut trial;
        for part in section.map(|s| s.split('.').collect::<Vec<_>>()).unwrap_or_default() {
            target = match target.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new())) {
                toml::Value::Table(t) => t,
                _ => return Err(err(format!("[{}] in the config file is not a table", section.unwrap_or(part)))),
            };
        }
        target.insert(key.clone(), value);
        match toml::Value::Table(trial.clone()).try_into::<Config>() {
            Ok(_) => {
                *table = trial;
                return Ok(());
            }
            Err(e) => last_error = one_line(e.message()),
        }
    }
    Err(err(last_error))
}

/// A value as TOML would read it (`5`, `true`, `["a","b"]`), or nothing when it is not
/// valid TOML on its own (then it is taken as a string).
fn parse_env_value(raw: &str) -> Option<toml::Value> {
    toml::from_str::<toml::Table>(&format!("v = {raw}")).ok().and_then(|mut t| t.remove("v"))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn valid_host(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn system_host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    valid_host(name).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_file(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labbeam.toml");
        std::fs::write(&path, text).unwrap();
        let o = Overrides { config_file: Some(path), ..Default::default() };
        Config::load(&o, env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }
    #[test]
    fn defaults_are_valid() {
        let c = Config::load(&Overrides::default(), Vec::new()).unwrap();
        assert_eq!(c.http_listen.port(), 8443);
        assert_eq!(c.turn_listen.port(), 3478);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = load_file("http_listen = \"127.0.0.1:1\"\nbogus = 1\n", &[]).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("line 2") && s.contains("bogus"), "{s}");
        assert!(!s.contains('\n'));
    }

    #[test]
    fn bad_address_is_reported() {
        let e = load_file("http_listen = \"nowhere\"\n", &[]).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let c = load_file(
            "http_listen = \"127.0.0.1:1000\"\n[auth]\nmax_failures_per_user = 3\n",
            &[("LABBEAM_HTTP_LISTEN", "127.0.0.1:2000"), ("LABBEAM_AUTH_MAX_FAILURES_PER_USER", "7")],
        )
        .unwrap();
        assert_eq!(c.http_listen.port(), 2000);
        assert_eq!(c.auth.max_failures_per_user, 7);
        let o = Overrides { http_listen: Some("127.0.0.1:3000".parse().unwrap()), ..Default::default() };
        let c = Config::load(&o, vec![("LABBEAM_HTTP_LISTEN".into(), "127.0.0.1:2000".into())]).unwrap();
        assert_eq!(c.http_listen.port(), 3000);
    }

    #[test]
    fn env_string_that_looks_like_a_number_stays_a_string() {
        let c = Config::load(&Overrides::default(), vec![("LABBEAM_PUBLIC_HOST".into(), "10".into())]);
        // "10" is a valid host label, and must be accepted as a string.
        assert_eq!(c.unwrap().public_host.as_deref(), Some("10"));
    }

    #[test]
    fn unknown_env_var_is_an_error() {
        let e = Config::load(&Overrides::default(), vec![("LABBEAM_NOPE".into(), "1".into())]).unwrap_err();
        assert!(e.to_string().contains("LABBEAM_NOPE"));
    }

    #[test]
    fn env_with_wrong_type_is_an_error() {
        let e = Config::load(&Overrides::default(), vec![("LABBEAM_AUTH_SESSION_TTL_SECS".into(), "soon".into())])
            .unwrap_err();
        assert!(e.to_string().contains("LABBEAM_AUTH_SESSION_TTL_SECS"), "{e}");
    }

    #[test]
    fn half_tls_config_is_refused() {
        let e = load_file("[tls]\ncert = \"/x.pem\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("tls.key"));
    }

    #[test]
    fn turn_table_is_read_and_checked() {
        let c =
            load_file("[turn]\nrelay_port_min = 50000\nrelay_port_max = 50100\n", &[("LABBEAM_TURN_TLS_PORT", "5350")])
                .unwrap();
        assert_eq!((c.turn.relay_port_min, c.turn.relay_port_max, c.turn.tls_port), (50000, 50100, Some(5350)));
        let e = load_file("[turn]\nrelay_port_min = 60000\nrelay_port_max = 50000\n", &[]).unwrap_err().to_string();
        assert!(e.contains("turn.relay_port_min"), "{e}");
        let e = load_file("[turn]\ncredential_ttl_secs = 5\n", &[]).unwrap_err().to_string();
        assert!(e.contains("credential_ttl_secs"), "{e}");
    }

    #[test]
    fn http_table_is_read_and_checked() {
        let c = load_file("[http]\nheader_timeout_secs = 5\n", &[("LABBEAM_HTTP_MAX_CONNECTIONS_PER_ADDRESS", "40")])
            .unwrap();
        assert_eq!((c.http.header_timeout_secs, c.http.idle_timeout_secs), (5, 15));
        assert_eq!(c.http.max_connections_per_address, 40);
        // LABBEAM_HTTP_LISTEN is still the top-level key, not [http] listen.
        let c =
            Config::load(&Overrides::default(), vec![("LABBEAM_HTTP_LISTEN".into(), "127.0.0.1:9".into())]).unwrap();
        assert_eq!(c.http_listen.port(), 9);
        for bad in ["header_timeout_secs = 0", "idle_timeout_secs = 0", "max_connections_per_address = 0"] {
            let e = load_file(&format!("[http]\n{bad}\n"), &[]).unwrap_err().to_string();
            assert!(e.contains(bad.split(' ').next().unwrap()), "{e}");
        }
        let e = load_file("[turn]\ntcp_setup_timeout_secs = 0\n", &[]).unwrap_err().to_string();
        assert!(e.contains("tcp_setup_timeout_secs"), "{e}");
        let e = load_file("[turn]\nmax_tcp_connections_per_address = 0\n", &[]).unwrap_err().to_string();
        assert!(e.contains("max_tcp_connections_per_address"), "{e}");
    }

    // --- The documentation of every key -------------------------------------------------
    //
    // The keys come from the code: `Config::default()` serialized to JSON (where an unset
    // `Option` stays as `null`, unlike TOML, which would drop it). A field whose value is an
    // object is a table; every other field is a key.

    use serde_json::Value;

    const SAMPLE: &str = include_str!("../../packaging/labbeam.toml");
    const SAMPLE_PATH: &str = "packaging/labbeam.toml";
    const MAN: &str = include_str!("../../packaging/labbeam.1");
    const MAN_PATH: &str = "packaging/labbeam.1";
    const README: &str = include_str!("../../README.md");

    /// A configuration key: its table (`None` at the top level), its name, its default.
    struct Key {
        table: Option<String>,
        name: String,
        default: Value,
    }

    impl Key {
        /// As the documents name it: `public_host`, `[auth] session_ttl_secs`.
        fn shown(&self) -> String {
            match &self.table {
                Some(t) => format!("[{t}] {}", self.name),
                None => self.name.clone(),
            }
        }

        /// Unset (`None`), an empty list or an empty text (a key that must be given when its
        /// table is): the documents then say what that means.
        fn default_is_unset(&self) -> bool {
            self.default.is_null()
                || self.default.as_array().is_some_and(Vec::is_empty)
                || self.default.as_str().is_some_and(str::is_empty)
        }

        /// The default as the man page writes it after "Default:".
        fn default_text(&self) -> String {
            match &self.default {
                Value::Null => "unset".into(),
                Value::String(s) if s.is_empty() => "unset".into(),
                Value::Array(a) if a.is_empty() => "empty".into(),
                Value::Array(a) if a.iter().all(Value::is_string) => {
                    a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
                }
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }
        }
    }

    /// Tables within tables, unset by default, with the defaults of their keys: an optional
    /// table (`[auth.ldap]`) and arrays of tables (`[[auth.role_map]]`, each element's keys).
    fn sub_tables() -> Vec<(&'static str, Value)> {
        vec![
            ("auth.ldap", serde_json::to_value(LdapConfig::default()).unwrap()),
            ("auth.role_map", serde_json::to_value(RoleRule::default()).unwrap()),
            ("auth.oidc", serde_json::to_value(OidcConfig::default()).unwrap()),
        ]
    }

    /// Arrays of tables: set in the file only, never by a variable.
    const ARRAY_TABLES: &[&str] = &["auth.role_map", "auth.oidc"];

    fn config_keys() -> Vec<Key> {
        let Value::Object(top) = serde_json::to_value(Config::default()).unwrap() else {
            panic!("Config::default() does not serialize to an object");
        };
        let subs = sub_tables();
        let mut keys = Vec::new();
        for (name, value) in top {
            match value {
                Value::Object(table) => {
                    for (key, default) in table {
                        let dotted = format!("{name}.{key}");
                        if let Some((sub, defaults)) = subs.iter().find(|(t, _)| *t == dotted) {
                            let Value::Object(inner) = defaults else { panic!("{sub} is not a table") };
                            for (k, d) in inner {
                                assert!(
                                    !d.is_object(),
                                    "[{sub}] {k}: tables within tables within tables are not walked"
                                );
                                keys.push(Key { table: Some(sub.to_string()), name: k.clone(), default: d.clone() });
                            }
                            continue;
                        }
                        assert!(!default.is_object(), "[{name}] {key}: list it in sub_tables()");
                        keys.push(Key { table: Some(name.clone()), name: key, default });
                    }
                }
                default => keys.push(Key { table: None, name, default }),
            }
        }
        keys
    }

    /// `word` appears in `text` as a whole word (letters, digits and `_` around it do not).
    fn mentions(text: &str, word: &str) -> bool {
        let part = |c: char| c.is_ascii_alphanumeric() || c == '_';
        text.match_indices(word).any(|(at, _)| {
            !text[..at].chars().next_back().is_some_and(part)
                && !text[at + word.len()..].chars().next().is_some_and(part)
        })
    }

    /// A line of the sample file that sets a key, `key = value` or commented out `#key = value`
    /// (no space after `#`: `# text` is prose). Gives (commented out, key, value).
    fn sample_key_line(line: &str) -> Option<(bool, &str, &str)> {
        let (commented, rest) = match line.strip_prefix('#') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let end = rest.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))?;
        let (key, after) = rest.split_at(end);
        let value = after.trim_start().strip_prefix('=')?;
        (!key.is_empty() && key.starts_with(|c: char| c.is_ascii_lowercase())).then_some((commented, key, value.trim()))
    }

    /// A key line of the sample file with where it is and the comment that describes it.
    struct SampleKey<'a> {
        table: Option<String>,
        key: &'a str,
        value: &'a str,
        commented: bool,
        line: usize,
        /// The comment block above it (through the key lines grouped with it), and whether
        /// other key lines stand between that block and this line.
        description: String,
        grouped: bool,
    }

    fn sample_keys(text: &str) -> Vec<SampleKey<'_>> {
        let lines: Vec<&str> = text.lines().collect();
        let mut table = None;
        let mut found = Vec::new();
        for (i, raw) in lines.iter().enumerate() {
            let line = raw.trim();
            // A table header, also commented out (`#[auth.ldap]`: a table left unset).
            let header = line.strip_prefix('#').unwrap_or(line);
            if header.starts_with('[') && header.ends_with(']') {
                table = Some(header.trim_matches(|c| c == '[' || c == ']').trim().to_string());
                continue;
            }
            let Some((commented, key, value)) = sample_key_line(line) else { continue };
            let (mut block, mut grouped) = (Vec::new(), false);
            for above in lines[..i].iter().rev().map(|l| l.trim()) {
                if sample_key_line(above).is_some() {
                    if !block.is_empty() {
                        break;
                    }
                    grouped = true;
                } else if let Some(prose) = above.strip_prefix('#') {
                    block.push(prose.trim());
                } else {
                    break;
                }
            }
            block.reverse();
            let description = block.join(" ").trim().to_string();
            found.push(SampleKey { table: table.clone(), key, value, commented, line: i + 1, description, grouped });
        }
        found
    }

    /// Problems of the sample configuration file, each naming the key and the file.
    fn sample_problems(text: &str) -> Vec<String> {
        let keys = config_keys();
        let lines = sample_keys(text);
        let mut problems = Vec::new();
        for k in &keys {
            let Some(l) = lines.iter().find(|l| l.table == k.table && l.key == k.name) else {
                let table = k.table.as_deref().map(|t| format!(" under [{t}]")).unwrap_or_default();
                problems.push(format!(
                    "{SAMPLE_PATH}: `{}` is missing: add `#{} = <default>`{table}, with a comment above it saying what it does",
                    k.shown(),
                    k.name
                ));
                continue;
            };
            let at = format!("{SAMPLE_PATH} line {}: `{}`", l.line, k.shown());
            if l.description.is_empty() {
                problems.push(format!("{at} has no comment above it saying what it does"));
            } else if l.grouped && !mentions(&l.description, &k.name) {
                problems.push(format!(
                    "{at} shares the comment of the keys above it, which does not name it: name it there or give it its own"
                ));
            }
            if k.default_is_unset() {
                let d = l.description.to_lowercase();
                if !(d.contains("unset") || d.contains("empty")) {
                    problems.push(format!("{at}: its default is unset or empty; the comment must say what that means"));
                }
            } else if l.commented {
                // A commented-out line shows the default.
                let shown = toml::from_str::<toml::Table>(&format!("v = {}", l.value))
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .and_then(|v| serde_json::to_value(v).ok());
                if shown.as_ref() != Some(&k.default) {
                    problems.push(format!("{at} shows {} but the default is {}", l.value, k.default));
                }
            }
        }
        for l in &lines {
            if !keys.iter().any(|k| k.table == l.table && k.name == l.key) {
                let table = l.table.as_deref().map(|t| format!("[{t}] ")).unwrap_or_default();
                problems.push(format!("{SAMPLE_PATH} line {}: `{table}{}` is not a configuration key", l.line, l.key));
            }
        }
        // Every example value is valid: the file with every key line uncommented loads.
        let uncommented: String = text
            .lines()
            .map(|line| match sample_key_line(line.trim()) {
                Some((true, ..)) => &line.trim()[1..],
                _ if line.trim().starts_with("#[") => &line.trim()[1..],
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        match toml::from_str::<Config>(&uncommented) {
            Ok(c) => {
                if let Err(e) = c.validate() {
                    problems.push(format!("{SAMPLE_PATH} with every key uncommented is not valid: {e}"));
                }
            }
            Err(e) => problems
                .push(format!("{SAMPLE_PATH} with every key uncommented does not load: {}", one_line(&e.to_string()))),
        }
        problems
    }

    /// Text of a roff line as a reader sees it: macro names dropped, common escapes undone.
    fn roff_text(line: &str) -> String {
        let text = match line.strip_prefix('.') {
            Some(m) => match m.split_once(' ') {
                Some((name, args)) if ["B", "BR", "RB", "I", "IR", "RI", "BI", "IB"].contains(&name) => {
                    args.to_string()
                }
                _ => String::new(),
            },
            None => line.to_string(),
        };
        text.replace("\\-", "-").replace("\\(aq", "'").replace("\\e", "\\").replace("\\&", "").replace('"', "")
    }

    /// An entry of the man page's CONFIGURATION section: `.TP`, `.B key`, then its text.
    struct ManEntry {
        table: Option<String>,
        key: String,
        body: String,
    }

    fn man_entries(text: &str) -> Option<Vec<ManEntry>> {
        let mut lines = text.lines().skip_while(|l| l.trim() != ".SH CONFIGURATION");
        lines.next()?;
        let mut entries: Vec<ManEntry> = Vec::new();
        let mut table = None;
        let mut in_body = false;
        while let Some(line) = lines.next() {
            let line = line.trim();
            if line.starts_with(".SH") {
                break;
            }
            if let Some(heading) = line.strip_prefix(".SS") {
                // `.SS "[auth]: …"`, and `.SS "[[auth.role_map]]: …"` for an array of tables.
                table = heading
                    .split_once('[')
                    .and_then(|(_, r)| r.trim_start_matches('[').split_once(']'))
                    .map(|(t, _)| t.trim().to_string());
                in_body = false;
            } else if line == ".TP" {
                let tag = lines.next().unwrap_or_default().trim();
                in_body = match tag.strip_prefix(".B ") {
                    Some(key) => {
                        let key = key.trim().trim_matches('"').to_string();
                        entries.push(ManEntry { table: table.clone(), key, body: String::new() });
                        true
                    }
                    None => false,
                };
            } else if [".PP", ".P", ".LP"].contains(&line) {
                in_body = false;
            } else if in_body && let Some(entry) = entries.last_mut() {
                entry.body.push(' ');
                entry.body.push_str(&roff_text(line));
            }
        }
        Some(entries)
    }

    /// Problems of the man page's CONFIGURATION section, each naming the key and the file.
    fn man_problems(text: &str) -> Vec<String> {
        let Some(entries) = man_entries(text) else {
            return vec![format!("{MAN_PATH} has no `.SH CONFIGURATION` section")];
        };
        let keys = config_keys();
        let mut problems = Vec::new();
        for k in &keys {
            let mut matching = entries.iter().filter(|e| e.table == k.table && e.key == k.name);
            let Some(entry) = matching.next() else {
                let table = k.table.as_deref().map(|t| format!(" under `.SS [{t}]`")).unwrap_or_default();
                problems.push(format!(
                    "{MAN_PATH}: `{}` is missing from CONFIGURATION: add `.TP`, `.B {}`{table}, its meaning and `Default: {}`",
                    k.shown(),
                    k.name,
                    k.default_text()
                ));
                continue;
            };
            if matching.next().is_some() {
                problems.push(format!("{MAN_PATH}: `{}` is listed twice in CONFIGURATION", k.shown()));
            }
            let body = entry.body.split_whitespace().collect::<Vec<_>>().join(" ");
            let Some((meaning, after)) = body.split_once("Default:") else {
                problems.push(format!("{MAN_PATH}: `{}` does not say `Default: {}`", k.shown(), k.default_text()));
                continue;
            };
            if meaning.split_whitespace().count() < 3 {
                problems.push(format!("{MAN_PATH}: `{}` does not say what it does", k.shown()));
            }
            let word = after.split_whitespace().next().unwrap_or("").trim_end_matches(['.', ',', ';', ':']);
            // "Default: 900 (15 minutes)." and "Default: (uid={username})." both read.
            let shown = if word.eq_ignore_ascii_case(&k.default_text()) { word } else { word.trim_end_matches(')') };
            if !shown.eq_ignore_ascii_case(&k.default_text()) {
                problems.push(format!(
                    "{MAN_PATH}: `{}` says `Default: {shown}` but the default is {}",
                    k.shown(),
                    k.default_text()
                ));
            }
        }
        for e in &entries {
            if !keys.iter().any(|k| k.table == e.table && k.name == e.key) {
                let table = e.table.as_deref().map(|t| format!("[{t}] ")).unwrap_or_default();
                problems.push(format!(
                    "{MAN_PATH}: CONFIGURATION lists `{table}{}`, which is not a configuration key",
                    e.key
                ));
            }
        }
        problems
    }

    #[test]
    fn every_key_is_documented_in_the_packaged_config_file() {
        let problems = sample_problems(SAMPLE);
        assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    }

    #[test]
    fn every_key_is_documented_in_the_man_page() {
        let problems = man_problems(MAN);
        assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    }

    #[test]
    fn the_documentation_checks_catch_a_missing_or_wrong_key() {
        // A key's line taken out, and a default shown wrong, are both reported by name.
        let without: String =
            SAMPLE.lines().filter(|l| !l.starts_with("#idle_timeout_secs")).map(|l| format!("{l}\n")).collect();
        let problems = sample_problems(&without);
        assert!(
            problems.iter().any(|p| p.contains(SAMPLE_PATH) && p.contains("[http] idle_timeout_secs")),
            "{problems:?}"
        );
        let wrong = SAMPLE.replace("#idle_timeout_secs = 15", "#idle_timeout_secs = 16");
        assert!(sample_problems(&wrong).iter().any(|p| p.contains("shows 16")));
        let without = MAN.replace(".B idle_timeout_secs\n", ".B idle_timeout\n");
        let problems = man_problems(&without);
        assert!(
            problems.iter().any(|p| p.contains(MAN_PATH) && p.contains("[http] idle_timeout_secs")),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p.contains("`[http] idle_timeout`, which is not")), "{problems:?}");
    }

    #[test]
    fn environment_variables_reach_every_table_and_top_level_key() {
        let keys = config_keys();
        let mut top: Vec<&str> = keys.iter().filter(|k| k.table.is_none()).map(|k| k.name.as_str()).collect();
        let mut tables: Vec<&str> =
            keys.iter().filter_map(|k| k.table.as_deref()).filter(|t| !ARRAY_TABLES.contains(t)).collect();
        let (mut listed_top, mut listed_tables) = (TOP_KEYS.to_vec(), TABLES.to_vec());
        for list in [&mut top, &mut tables, &mut listed_top, &mut listed_tables] {
            list.sort_unstable();
        }
        tables.dedup();
        assert_eq!(listed_top, top, "TOP_KEYS must list every top-level key, or LABBEAM_<KEY> cannot reach it");
        assert_eq!(listed_tables, tables, "TABLES must list every table, or LABBEAM_<TABLE>_<KEY> cannot reach it");
    }

    const LDAP: &str = "[auth.ldap]\nurl = \"ldaps://dir.campus.example\"\nbind_dn = \"cn=labbeam,dc=campus\"\n\
                        bind_password_file = \"/etc/labbeam/ldap-password\"\nuser_base = \"ou=people,dc=campus\"\n";

    #[test]
    fn the_directory_is_configured_in_its_own_tables_and_checked() {
        let c =
            load_file(LDAP, &[("LABBEAM_AUTH_LDAP_URL", "ldap://other:389"), ("LABBEAM_AUTH_LDAP_STARTTLS", "true")])
                .unwrap();
        let ldap = c.auth.ldap.unwrap();
        assert_eq!(ldap.servers(), ["ldap://other:389"]);
        assert_eq!((ldap.user_filter.as_str(), ldap.refresh_minutes), ("(uid={username})", 15));
        let with_rules = format!(
            "[auth]\ndefault_role = \"student\"\n{LDAP}\n[[auth.role_map]]\ngroup = \"cn=staff\"\nrole = \"instructor\"\n\
             labs = [\"Lab 2.14\"]\n[[auth.role_map]]\ngroup = \"cn=tech\"\nrole = \"admin\"\n"
        );
        let c = load_file(&with_rules, &[]).unwrap();
        assert_eq!(c.auth.role_map.len(), 2);
        assert_eq!(c.auth.role_map[0].labs, ["Lab 2.14"]);
        for (bad, says) in [
            (LDAP.replace("ldaps://", "ldap://"), "in clear"),
            (LDAP.replace("bind_password_file = \"/etc/labbeam/ldap-password\"\n", ""), "bind_password_file"),
            (LDAP.replace("user_base = \"ou=people,dc=campus\"\n", ""), "user_base"),
            (format!("{LDAP}user_filter = \"(uid=x)\"\n"), "{username}"),
            (format!("{LDAP}refresh_minutes = 60\n"), "refresh_minutes"),
            (format!("{LDAP}nested_groups = \"search\"\n"), "group_base"),
            (format!("{LDAP}bind_password = \"secret\"\n"), "bind_password"),
            ("[[auth.role_map]]\nrole = \"admin\"\n".to_string(), "needs group and role"),
        ] {
            let e = load_file(&bad, &[]).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn openid_providers_are_configured_one_table_each_and_checked() {
        const OIDC: &str = "[[auth.oidc]]\nname = \"Campus SSO\"\nissuer = \"https://sso.campus.example/realms/c\"\n\
                            client_id = \"labbeam\"\nclient_secret_file = \"/etc/labbeam/oidc-secret\"\n";
        let c = load_file(&format!("{OIDC}{}", OIDC.replace("Campus SSO", "Google Workspace")), &[]).unwrap();
        let slugs: Vec<String> = c.auth.oidc.iter().map(OidcConfig::slug).collect();
        assert_eq!(slugs, ["campus-sso", "google-workspace"]);
        assert_eq!(c.auth.oidc[0].username_claim, "preferred_username");
        assert_eq!(c.auth.oidc[0].scopes, ["openid", "profile", "email"]);
        let named = |name: &str| OidcConfig { name: name.into(), ..OidcConfig::default() }.slug();
        assert_eq!(named("  Uni Köln -- SSO!  "), "uni-k-ln-sso");
        for (bad, says) in [
            (OIDC.replace("https://sso", "http://sso"), "https://"),
            (OIDC.replace("client_secret_file = \"/etc/labbeam/oidc-secret\"\n", ""), "client_secret_file"),
            (OIDC.replace("Campus SSO", "2024"), "only digits"),
            (OIDC.replace("Campus SSO", "!!"), "needs name"),
            (format!("{OIDC}scopes = [\"profile\"]\n"), "openid"),
            (format!("{OIDC}algorithms = [\"none\"]\n"), "is not accepted"),
            (format!("{OIDC}algorithms = [\"HS256\"]\n"), "is not accepted"),
            (format!("{OIDC}client_secret = \"x\"\n"), "client_secret"),
            (format!("{OIDC}{}", OIDC.replace("Campus SSO", "campus sso")), "two providers"),
        ] {
            let e = load_file(&bad, &[]).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn the_readme_configuration_example_loads() {
        let mut blocks = README.split("```toml\n").skip(1).map(|b| b.split("```").next().unwrap_or_default());
        let example = blocks.next().expect("README.md has a ```toml example");
        let config: Config = toml::from_str(example).unwrap_or_else(|e| panic!("README.md's example: {e}"));
        config.validate().unwrap_or_else(|e| panic!("README.md's example: {e}"));
    }

    #[test]
    fn host_names_include_loopback_and_public_host() {
        let c = load_file("public_host = \"lab.example.edu\"\n", &[]).unwrap();
        let names = c.host_names();
        assert_eq!(names[0], "lab.example.edu");
        assert!(names.contains(&"127.0.0.1".to_string()));
    }
}
