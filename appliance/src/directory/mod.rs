//! The campus directory (`[auth.ldap]`: OpenLDAP, Active Directory, any LDAP v3 server):
//! checking a person's password, reading who they are and which groups they are in. What
//! that gives in LabBeam (role, labs, the account) is `admit`'s; the rules are `role_map`'s.
//!
//! Two ways in, as the configuration says:
//! - search-then-bind: a service account (`bind_dn`, password from `bind_password_file`)
//!   searches `user_base` with `user_filter`; the person's password is then checked by a
//!   bind as the DN found, on a connection of its own;
//! - direct bind (`bind_template`, no service account): the person binds as the template
//!   names them, then reads their own entry with `user_filter`.
//!
//! Invariants:
//! - every value put into a filter is escaped per RFC 4515 (`ldap_escape`), into a DN per
//!   RFC 4514 (`dn_escape`); an empty password is refused before any bind (an LDAP
//!   "unauthenticated bind" answers success without checking anything);
//! - TLS always (`ldaps://`, or `ldap://` with StartTLS; the configuration refuses plain
//!   LDAP), with rustls, against `ca_file` or the system's trusted CAs, for the host in the
//!   URL;
//! - a server that does not answer within `connect_timeout_secs` (or an operation within
//!   `timeout_secs`) is an error of its own, [`DirectoryError::Unreachable`], never "wrong
//!   password": the caller tells people "campus directory unreachable, try again";
//! - no password is logged, kept or put in an error.

pub mod admit;
pub mod role_map;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, dn_escape, ldap_escape};
use thiserror::Error;

use crate::config::{LdapConfig, NestedGroups};

/// Result code of a bind with a wrong password (RFC 4511: invalidCredentials).
const INVALID_CREDENTIALS: u32 = 49;
/// How many levels of groups within groups `nested_groups = "search"` follows.
const MAX_NESTING: usize = 8;
/// Groups of one person at most (a directory bug or a loop must not grow without end).
const MAX_GROUPS: usize = 1_000;
/// Active Directory's LDAP_MATCHING_RULE_IN_CHAIN.
const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// A person as the directory describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub dn: String,
    /// From `username_attribute`: the LabBeam username.
    pub username: String,
    pub display_name: String,
    pub email: String,
    /// The DNs of their groups (direct, and nested as configured).
    pub groups: Vec<String>,
}

/// What the directory said of a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    SignedIn(Person),
    WrongPassword,
    /// No entry matches (which includes accounts the filter leaves out: disabled ones).
    UnknownUser,
    /// The server refused the bind for another reason (a locked account, a password that
    /// must be changed first); the text is the server's, for the log.
    Refused(String),
}

#[derive(Debug, Error)]
pub enum DirectoryError {
    /// No server answered, a connection or TLS failed, or an operation timed out.
    #[error("campus directory unreachable: {0}")]
    Unreachable(String),
    /// The server answered, but not as configured (service account refused, several
    /// entries for one person, a malformed answer).
    #[error("campus directory: {0}")]
    Misconfigured(String),
    /// Looking someone up needs the service account, which direct bind does not have.
    #[error("looking people up needs a service account (bind_dn); this directory is configured for direct bind")]
    NoServiceAccount,
}

struct ServiceAccount {
    dn: String,
    password: String,
}

pub struct Directory {
    config: LdapConfig,
    tls: Arc<rustls::ClientConfig>,
    service: Option<ServiceAccount>,
    /// Connections bound as the service account, for searches; each is shared by the
    /// operations in flight (LDAP answers many requests on one connection).
    pool: tokio::sync::Mutex<Vec<Ldap>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").field("servers", &self.config.servers()).finish_non_exhaustive()
    }
}

impl Directory {
    /// Reads the service account's password and the CA file now, so a mistake stops `serve`
    /// with a clear line instead of failing every sign-in later.
    pub fn from_config(config: &LdapConfig) -> anyhow::Result<Directory> {
        let service = match (&config.bind_dn, &config.bind_password_file) {
            (Some(dn), Some(file)) => Some(ServiceAccount {
                dn: dn.clone(),
                password: crate::config::read_secret_file(file, "auth.ldap bind_password_file")?,
            }),
            _ => None,
        };
        let tls = crate::tls::client_config(config.ca_file.as_deref(), "auth.ldap")?;
        Ok(Directory { config: config.clone(), tls: Arc::new(tls), service, pool: tokio::sync::Mutex::new(Vec::new()) })
    }

    pub fn has_service_account(&self) -> bool {
        self.service.is_some()
    }

    fn op_timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs)
    }

    /// A new connection to the first server that answers (TLS set up, not bound).
    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let timeout = Duration::from_secs(self.config.connect_timeout_secs);
        let mut failures = Vec::new();
        for url in self.config.servers() {
            let starttls = self.config.starttls && url.to_ascii_lowercase().starts_with("ldap://");
            // Connected here, with TCP_NODELAY: LDAP is small requests and answers, and
            // Nagle's algorithm would hold each back for the peer's delayed ACK.
            let Some(target) = host_port(&url) else {
                failures.push(format!("{url}: not a host:port URL"));
                continue;
            };
            let tcp = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&target)).await {
                Ok(Ok(tcp)) => tcp,
                Ok(Err(e)) => {
                    failures.push(format!("{url}: {e}"));
                    continue;
                }
                Err(_) => {
                    failures.push(format!("{url}: no answer within {} s", timeout.as_secs()));
                    continue;
                }
            };
            let stream = match tcp.set_nodelay(true).and_then(|()| tcp.into_std()) {
                Ok(stream) => stream,
                Err(e) => {
                    failures.push(format!("{url}: {e}"));
                    continue;
                }
            };
            let settings = LdapConnSettings::new()
                .set_conn_timeout(timeout)
                .set_starttls(starttls)
                .set_config(self.tls.clone())
                .set_std_stream(ldap3::StdStream::Tcp(stream));
            // StartTLS and the TLS handshake come after the TCP connect.
            match tokio::time::timeout(timeout, LdapConnAsync::with_settings(settings, &url)).await {
                Ok(Ok((conn, ldap))) => {
                    tokio::spawn(async move {
                        if let Err(e) = conn.drive().await {
                            tracing::debug!(error = %e, "directory connection ended");
                        }
                    });
                    return Ok(ldap);
                }
                Ok(Err(e)) => failures.push(format!("{url}: {e}")),
                Err(_) => failures.push(format!("{url}: no TLS within {} s", timeout.as_secs())),
            }
        }
        Err(DirectoryError::Unreachable(failures.join("; ")))
    }

    /// A simple bind; `Ok(rc)` is the server's result code (0: the password is right).
    async fn bind(&self, ldap: &mut Ldap, dn: &str, password: &str) -> Result<(u32, String), DirectoryError> {
        if password.is_empty() {
            // Never send it: an empty password is an "unauthenticated bind", which succeeds.
            return Ok((INVALID_CREDENTIALS, "empty password".into()));
        }
        let result = ldap
            .with_timeout(self.op_timeout())
            .simple_bind(dn, password)
            .await
            .map_err(|e| DirectoryError::Unreachable(format!("bind: {e}")))?;
        Ok((result.rc, result.text))
    }

    /// A service-bound connection from the pool, or a new one.
    async fn service_connection(&self) -> Result<Ldap, DirectoryError> {
        let Some(service) = &self.service else { return Err(DirectoryError::NoServiceAccount) };
        if let Some(mut ldap) = self.pool.lock().await.pop()
            && !ldap.is_closed()
        {
            return Ok(ldap);
        }
        let mut ldap = self.connect().await?;
        match self.bind(&mut ldap, &service.dn, &service.password).await? {
            (0, _) => Ok(ldap),
            (rc, text) => Err(DirectoryError::Misconfigured(format!(
                "the service account {} was refused (result {rc}{}): check bind_dn and bind_password_file",
                service.dn,
                if text.is_empty() { String::new() } else { format!(", {text}") }
            ))),
        }
    }

    async fn give_back(&self, mut ldap: Ldap) {
        let mut pool = self.pool.lock().await;
        if pool.len() < self.config.pool_size && !ldap.is_closed() {
            pool.push(ldap);
        }
    }

    /// Runs `search` on the service connection; the connection goes back to the pool when it
    /// worked.
    async fn with_service<T, F>(&self, search: F) -> Result<T, DirectoryError>
    where
        F: AsyncFnOnce(&Self, &mut Ldap) -> Result<T, DirectoryError>,
    {
        let mut ldap = self.service_connection().await?;
        let out = search(self, &mut ldap).await;
        if out.is_ok() {
            self.give_back(ldap).await;
        }
        out
    }

    /// Entries for `filter` under `base` (subtree), with `attrs`.
    async fn search(
        &self,
        ldap: &mut Ldap,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirectoryError> {
        let result = ldap
            .with_timeout(self.op_timeout())
            .search(base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(|e| DirectoryError::Unreachable(format!("search: {e}")))?;
        // 32 noSuchObject: the base does not exist, which finds no one.
        let (entries, result) = (result.0, result.1);
        if result.rc != 0 && result.rc != 32 {
            return Err(DirectoryError::Misconfigured(format!(
                "search of {base} with {filter} answered result {} {}",
                result.rc, result.text
            )));
        }
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.is_ref() || entry.is_intermediate() {
                continue;
            }
            // The library panics on an entry it cannot parse; a directory's bad answer must
            // fail this search, not the request.
            let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(entry)))
                .map_err(|_| DirectoryError::Misconfigured("the server sent an entry that is not valid LDAP".into()))?;
            out.push(parsed);
        }
        Ok(out)
    }

    fn user_filter(&self, username: &str) -> String {
        self.config.user_filter.replace("{username}", &ldap_escape(username))
    }

    fn person_attrs(&self) -> Vec<&str> {
        let c = &self.config;
        let mut attrs =
            vec![c.username_attribute.as_str(), c.display_name_attribute.as_str(), c.email_attribute.as_str()];
        if !c.group_attribute.is_empty() {
            attrs.push(c.group_attribute.as_str());
        }
        attrs
    }

    /// The one entry for `username`, read with `ldap`'s rights.
    async fn find(&self, ldap: &mut Ldap, username: &str) -> Result<Option<SearchEntry>, DirectoryError> {
        let filter = self.user_filter(username);
        let attrs = self.person_attrs();
        let mut found = self.search(ldap, &self.config.user_base, &filter, &attrs).await?;
        match found.len() {
            0 => Ok(None),
            1 => Ok(found.pop()),
            n => Err(DirectoryError::Misconfigured(format!(
                "user_filter {filter} finds {n} entries under {}; it must find one person",
                self.config.user_base
            ))),
        }
    }

    /// The person an entry describes, with their groups read with `ldap`'s rights.
    async fn person(&self, ldap: &mut Ldap, entry: SearchEntry) -> Result<Person, DirectoryError> {
        let c = &self.config;
        let first = |attr: &str| -> String { attribute(&entry, attr).first().cloned().unwrap_or_default() };
        let username = first(&c.username_attribute);
        if username.is_empty() {
            return Err(DirectoryError::Misconfigured(format!(
                "{} has no {} (username_attribute)",
                entry.dn, c.username_attribute
            )));
        }
        let display_name = first(&c.display_name_attribute);
        let email = first(&c.email_attribute);
        let mut groups: BTreeSet<String> = BTreeSet::new();
        if !c.group_attribute.is_empty() {
            groups.extend(attribute(&entry, &c.group_attribute).iter().cloned());
        }
        if let Some(base) = &c.group_base {
            let filter = match c.nested_groups {
                NestedGroups::InChain => format!("(member:{IN_CHAIN}:={})", ldap_escape(&entry.dn)),
                _ => c.group_filter.replace("{dn}", &ldap_escape(&entry.dn)),
            };
            for g in self.search(ldap, base, &filter, &["1.1"]).await? {
                groups.insert(g.dn);
            }
            if c.nested_groups == NestedGroups::Search {
                let mut frontier: Vec<String> = groups.iter().cloned().collect();
                for _ in 0..MAX_NESTING {
                    if frontier.is_empty() || groups.len() >= MAX_GROUPS {
                        break;
                    }
                    let any: String =
                        frontier.iter().map(|g| c.group_filter.replace("{dn}", &ldap_escape(g))).collect();
                    let mut next = Vec::new();
                    for g in self.search(ldap, base, &format!("(|{any})"), &["1.1"]).await? {
                        if groups.insert(g.dn.clone()) {
                            next.push(g.dn);
                        }
                    }
                    frontier = next;
                }
            }
        }
        let groups: Vec<String> = groups.into_iter().take(MAX_GROUPS).collect();
        Ok(Person { dn: entry.dn, username, display_name, email, groups })
    }

    /// Checks `username`'s password with the directory and reads who they are.
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<Verdict, DirectoryError> {
        if password.is_empty() {
            return Ok(Verdict::WrongPassword);
        }
        match (&self.service, &self.config.bind_template) {
            (None, Some(template)) => self.direct_bind(template, username, password).await,
            _ => self.search_then_bind(username, password).await,
        }
    }

    async fn search_then_bind(&self, username: &str, password: &str) -> Result<Verdict, DirectoryError> {
        let Some(entry) = self.with_service(async |d: &Self, ldap: &mut Ldap| d.find(ldap, username).await).await?
        else {
            return Ok(Verdict::UnknownUser);
        };
        // The person's own bind, on a connection of its own: the pooled ones stay the
        // service account's.
        let mut own = self.connect().await?;
        let outcome = self.bind(&mut own, &entry.dn, password).await;
        let _ = own.unbind().await;
        match outcome? {
            (0, _) => {}
            (INVALID_CREDENTIALS, _) => return Ok(Verdict::WrongPassword),
            (rc, text) => return Ok(Verdict::Refused(format!("result {rc} {text}"))),
        }
        let person = self.with_service(async |d: &Self, ldap: &mut Ldap| d.person(ldap, entry).await).await?;
        Ok(Verdict::SignedIn(person))
    }

    async fn direct_bind(&self, template: &str, username: &str, password: &str) -> Result<Verdict, DirectoryError> {
        // A DN template gets the username escaped as a DN value; a UPN template
        // (`{username}@campus`) takes it as is, so characters that would change whose
        // name it is are refused.
        let name = if template.contains('=') {
            template.replace("{username}", &dn_escape(username))
        } else if username.chars().any(|c| matches!(c, '@' | '\\' | ',' | '=' | '"' | '/' | ' ') || c.is_control()) {
            return Ok(Verdict::UnknownUser);
        } else {
            template.replace("{username}", username)
        };
        let mut own = self.connect().await?;
        let result = async {
            match self.bind(&mut own, &name, password).await? {
                (0, _) => {}
                (INVALID_CREDENTIALS, _) => return Ok(Verdict::WrongPassword),
                (rc, text) => return Ok(Verdict::Refused(format!("result {rc} {text}"))),
            }
            match self.find(&mut own, username).await? {
                // Bound, but the filter leaves the entry out (a disabled account) or the
                // person may not read it.
                None => Ok(Verdict::UnknownUser),
                Some(entry) => Ok(Verdict::SignedIn(self.person(&mut own, entry).await?)),
            }
        }
        .await;
        let _ = own.unbind().await;
        result
    }

    /// Who `username` is now, without their password (the refresh of signed-in users, the
    /// portal's "test a user"); `None` when the directory no longer lists them.
    pub async fn lookup(&self, username: &str) -> Result<Option<Person>, DirectoryError> {
        self.with_service(async |d: &Self, ldap: &mut Ldap| match d.find(ldap, username).await? {
            None => Ok(None),
            Some(entry) => Ok(Some(d.person(ldap, entry).await?)),
        })
        .await
    }
}

/// `host:port` of an `ldap://` or `ldaps://` URL (389 and 636 when it names no port).
fn host_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default = if scheme.eq_ignore_ascii_case("ldaps") { 636 } else { 389 };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.is_empty() {
        return None;
    }
    let has_port = match authority.rfind(']') {
        // [v6]:port
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    Some(if has_port { authority.to_string() } else { format!("{authority}:{default}") })
}

/// The values of `attr` (attribute names are compared without regard to case).
fn attribute<'a>(entry: &'a SearchEntry, attr: &str) -> &'a [String] {
    entry.attrs.iter().find(|(name, _)| name.eq_ignore_ascii_case(attr)).map(|(_, v)| v.as_slice()).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory on a port nothing listens on, with a service account.
    fn unreachable() -> Directory {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("pw");
        std::fs::write(&secret, "service-password\n").unwrap();
        let config = LdapConfig {
            url: Some("ldaps://127.0.0.1:9".into()),
            bind_dn: Some("cn=svc".into()),
            bind_password_file: Some(secret),
            user_base: "ou=people".into(),
            connect_timeout_secs: 1,
            ..LdapConfig::default()
        };
        Directory::from_config(&config).unwrap()
    }

    #[tokio::test]
    async fn an_empty_password_is_refused_before_any_connection() {
        let d = unreachable();
        // Were a connection tried, the answer would be Unreachable.
        assert_eq!(d.authenticate("ann", "").await.unwrap(), Verdict::WrongPassword);
        assert!(matches!(d.authenticate("ann", "x").await, Err(DirectoryError::Unreachable(_))));
    }

    #[test]
    fn the_service_password_file_is_read_without_its_line_end_and_an_empty_one_is_refused() {
        let d = unreachable();
        assert_eq!(d.service.as_ref().unwrap().password, "service-password");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let config = LdapConfig {
            url: Some("ldaps://x".into()),
            bind_dn: Some("cn=svc".into()),
            bind_password_file: Some(empty),
            user_base: "ou=people".into(),
            ..LdapConfig::default()
        };
        assert!(Directory::from_config(&config).unwrap_err().to_string().contains("is empty"));
    }

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(host_port("ldaps://dir.campus.example").as_deref(), Some("dir.campus.example:636"));
        assert_eq!(host_port("ldap://dir:3890/").as_deref(), Some("dir:3890"));
        assert_eq!(host_port("ldap://[fd00::2]").as_deref(), Some("[fd00::2]:389"));
        assert_eq!(host_port("ldaps://[fd00::2]:1636").as_deref(), Some("[fd00::2]:1636"));
        assert_eq!(host_port("ldaps://"), None);
    }

    #[test]
    fn filters_escape_what_people_type() {
        let d = unreachable();
        assert_eq!(d.user_filter("*)(uid=*"), "(uid=\\2a\\29\\28uid=\\2a)");
        assert_eq!(d.user_filter("ann"), "(uid=ann)");
    }
}
