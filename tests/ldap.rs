//! Campus sign-in with a real OpenLDAP directory (tests/slapd.sh: Debian's slapd on
//! loopback with a test CA, people, groups, a nested group and a disabled account) against
//! the real binary: who gets in, with which role and labs, what stays out (wrong, empty and
//! injected input, disabled people), and what happens when the directory changes, goes away
//! or shows a certificate for another name.
// Test code: a failed expectation stops the test loudly (the workspace denies these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "harness/mod.rs"]
mod harness;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::{Options, Server, error_code};
use serde_json::Value;

const SUFFIX: &str = "dc=campus,dc=example";

/// A running test directory; stopped when dropped.
struct Slapd {
    dir: tempfile::TempDir,
    ldap: String,
    ldaps: String,
}

impl Slapd {
    fn start() -> Slapd {
        Self::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/slapd.sh"))
            .arg("start")
            .arg(dir.path())
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .output()
            .expect("run tests/slapd.sh");
        assert!(out.status.success(), "tests/slapd.sh start: {}", String::from_utf8_lossy(&out.stderr));
        let urls = String::from_utf8(out.stdout).unwrap();
        let mut urls = urls.split_whitespace();
        let (ldap, ldaps) = (urls.next().unwrap().to_string(), urls.next().unwrap().to_string());
        Slapd { dir, ldap, ldaps }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn password(&self) -> String {
        std::fs::read_to_string(self.path("password")).unwrap()
    }

    fn stop(&self) {
        let out = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/slapd.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// Applies an LDIF change as the directory's admin.
    fn modify(&self, ldif: &str) {
        use std::io::Write;
        let mut child = Command::new("ldapmodify")
            .args(["-x", "-H", &self.ldap, "-D", &format!("cn=admin,{SUFFIX}"), "-w", &self.password()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ldapmodify (ldap-utils)");
        child.stdin.take().unwrap().write_all(ldif.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "ldapmodify: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Moves `uid` into or out of group `cn`.
    fn membership(&self, uid: &str, cn: &str, add: bool) {
        let op = if add { "add" } else { "delete" };
        self.modify(&format!(
            "dn: cn={cn},ou=groups,{SUFFIX}\nchangetype: modify\n{op}: member\nmember: uid={uid},ou=people,{SUFFIX}\n"
        ));
    }

    /// The `[auth]` configuration for this directory: search-then-bind over LDAPS with the
    /// test CA, the disabled account filtered out, and the test's role map.
    fn config(&self, extra_ldap: &str, extra_auth: &str) -> String {
        let secret = self.path("password");
        let ca = self.path("ca.pem");
        format!(
            "[auth]\n{extra_auth}\n[auth.ldap]\nurl = \"{}\"\nca_file = \"{}\"\nbind_dn = \"cn=labbeam,ou=services,{SUFFIX}\"\n\
             bind_password_file = \"{}\"\nuser_base = \"ou=people,{SUFFIX}\"\n\
             user_filter = \"(&(objectClass=inetOrgPerson)(uid={{username}})(!(employeeType=disabled)))\"\n{extra_ldap}\n\
             [[auth.role_map]]\ngroup = \"cn=labtech,ou=groups,{SUFFIX}\"\nrole = \"admin\"\n\
             [[auth.role_map]]\ngroup = \"CN=Staff, OU=Groups, {SUFFIX}\"\nrole = \"instructor\"\nlabs = [\"Lab 2.14\"]\n\
             [[auth.role_map]]\ngroup = \"cn=students,ou=groups,{SUFFIX}\"\nrole = \"student\"\n",
            self.ldaps,
            ca.display(),
            secret.display()
        )
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/slapd.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

async fn server(config: String) -> Server {
    Server::start_with(Options { config: Some(config), ..Default::default() }).await
}

/// Signs in; (status, body).
async fn sign_in(s: &Server, username: &str, password: &str) -> (u16, Value) {
    let r = s.login_raw(username, password).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The newest audit rows of `action` (as the first admin sees them).
async fn audit(s: &Server, action: &str) -> Vec<Value> {
    // The first call sets the first admin's password; later ones sign in with it.
    let admin = match s.login_raw("admin", harness::PASSWORD).await {
        r if r.status() == 200 => r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string(),
        _ => s.admin().await,
    };
    let (status, body) = s.get(&format!("/api/audit?action={action}&limit=50"), &admin).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

fn add_lab(s: &Server, name: &str, cidr: &str) {
    let out = s.cli(&["lab", "add", name, "--cidr", cidr], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn directory_people_sign_in_with_the_role_and_labs_of_their_groups() {
    let d = Slapd::start();
    let s = server(d.config("", "")).await;
    add_lab(&s, "Lab 2.14", "10.2.14.0/24");
    let pw = d.password();

    let (status, body) = sign_in(&s, "ann", &pw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["role"], "student");
    assert_eq!(body["user"]["display_name"], "Ann Student");

    let (status, body) = sign_in(&s, "tom", &pw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["role"], "instructor", "cn=staff (the rule's DN spelt otherwise)");
    let (_, me) = s.get("/api/me", body["token"].as_str().unwrap()).await;
    assert_eq!(me["source"], "ldap", "{me}");
    let store = s.store().await;
    let labs = store
        .int(
            "SELECT count(*) FROM user_labs ul JOIN users u ON u.id = ul.user_id JOIN labs l ON l.id = ul.lab_id \
              WHERE u.username = 'tom' AND l.name = 'Lab 2.14'",
        )
        .await;
    store.close().await;
    assert_eq!(labs, 1, "tom is responsible for Lab 2.14");

    let (status, body) = sign_in(&s, "ted", &pw).await;
    assert_eq!((status, body["user"]["role"].as_str()), (200, Some("admin")), "{body}");

    // In no mapped group, and no default role: refused, although the password was right.
    let (status, body) = sign_in(&s, "solo", &pw).await;
    assert_eq!((status, error_code(&body).as_str()), (403, "not_permitted"), "{body}");

    // The portal shows where each account signs in.
    let admin = harness::Browser::login_with(&s, "ted", &pw).await;
    let (status, html) = admin.get("/admin/users?q=ann").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"data-source="campus directory""#), "{html}");
    let id = s.store().await.int("SELECT id FROM users WHERE username = 'ann'").await;
    let (_, html) = admin.get(&format!("/admin/users/{id}")).await;
    assert!(html.contains(&format!("uid=ann,ou=people,{SUFFIX}")) && !html.contains("Reset password"), "{html}");

    // The accounts were made at first sign-in and say where they come from.
    let out = s.cli(&["user", "list"], None);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(list.contains("ann") && list.contains("tom") && !list.contains("solo"), "{list}");

    let rows = audit(&s, "login.success").await;
    assert!(
        rows.iter()
            .any(|r| r["target"] == "user:ann" && r["details"].as_str().unwrap_or("").contains("\"source\":\"ldap\"")),
        "{rows:?}"
    );
    let rows = audit(&s, "login.failure").await;
    assert!(rows.iter().any(|r| format!("{r}").contains("not_in_mapped_group")), "{rows:?}");
}

#[tokio::test]
async fn wrong_empty_unknown_disabled_and_injected_sign_ins_are_refused() {
    let d = Slapd::start();
    let s = server(d.config("", "default_role = \"student\"")).await;
    let pw = d.password();
    for (username, password, why) in [
        ("ann", "not the password", "wrong password"),
        ("nobody", pw.as_str(), "unknown user"),
        ("dora", pw.as_str(), "disabled (the filter leaves her out)"),
        ("*", pw.as_str(), "a wildcard"),
        ("*)(uid=*", pw.as_str(), "filter injection"),
        ("ann)(|(uid=*", pw.as_str(), "filter injection with an OR"),
        ("admin)(|(a=*", pw.as_str(), "filter injection from the issue"),
        ("ann\0", pw.as_str(), "a NUL"),
    ] {
        let (status, body) = sign_in(&s, username, password).await;
        assert!(status == 401 || status == 400, "{why}: {status} {body}");
        if status == 401 {
            assert_eq!(error_code(&body), "invalid_credentials", "{why}: {body}");
        }
    }
    // An empty password is refused before anything is asked (an LDAP bind with an empty
    // password is an anonymous bind, which succeeds).
    let (status, body) = sign_in(&s, "ann", "").await;
    assert_eq!(status, 400, "{body}");
    // None of the above made an account.
    let out = s.cli(&["user", "list"], None);
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    for name in ["ann", "dora", "nobody"] {
        assert!(!list.lines().any(|l| l.split_whitespace().next() == Some(name)), "{name} in {list}");
    }
    let rows = audit(&s, "login.failure").await;
    let text = format!("{rows:?}");
    assert!(text.contains("wrong_password") && text.contains("unknown_user"), "{text}");
}

#[tokio::test]
async fn a_local_account_with_the_same_name_wins() {
    let d = Slapd::start();
    let s = server(d.config("", "")).await;
    s.add_user("tom", "student");
    let (status, _) = sign_in(&s, "tom", &d.password()).await;
    assert_eq!(status, 401, "the directory's password does not open the local account");
    let (status, body) = sign_in(&s, "tom", harness::PASSWORD).await;
    assert_eq!((status, body["user"]["role"].as_str()), (200, Some("student")), "{body}");
}

#[tokio::test]
async fn nested_groups_and_starttls_and_direct_bind() {
    let d = Slapd::start();
    let pw = d.password();
    // nina is in cn=physics, a member of cn=staff: found by searching groups of groups.
    let nested = format!(
        "group_base = \"ou=groups,{SUFFIX}\"\ngroup_filter = \"(&(objectClass=groupOfNames)(member={{dn}}))\"\n\
         nested_groups = \"search\"\n"
    );
    let s = server(d.config(&nested, "")).await;
    let (status, body) = sign_in(&s, "nina", &pw).await;
    assert_eq!((status, body["user"]["role"].as_str()), (200, Some("instructor")), "{body}");
    drop(s);
    // Without nested groups she is in no mapped group.
    let s = server(d.config("", "")).await;
    assert_eq!(sign_in(&s, "nina", &pw).await.0, 403);
    drop(s);

    // ldap:// upgraded with StartTLS.
    let starttls = d.config("starttls = true\n", "").replace(&d.ldaps, &d.ldap);
    let s = server(starttls).await;
    let (status, body) = sign_in(&s, "ann", &pw).await;
    assert_eq!(status, 200, "{body}");
    drop(s);

    // Direct bind, no service account: the person binds as the template names them.
    let direct = d
        .config(&format!("bind_template = \"uid={{username}},ou=people,{SUFFIX}\"\n"), "")
        .lines()
        .filter(|l| !l.starts_with("bind_dn") && !l.starts_with("bind_password_file"))
        .collect::<Vec<_>>()
        .join("\n");
    let s = server(direct).await;
    let (status, body) = sign_in(&s, "tom", &pw).await;
    assert_eq!((status, body["user"]["role"].as_str()), (200, Some("instructor")), "{body}");
    assert_eq!(sign_in(&s, "tom", "wrong").await.0, 401);
    assert_eq!(sign_in(&s, "dora", &pw).await.0, 401, "bound, but the filter leaves her out");
    assert_eq!(sign_in(&s, "ann,ou=people", &pw).await.0, 401, "a DN injection finds no one");
}

#[tokio::test]
async fn a_role_change_in_the_directory_applies_at_the_next_sign_in() {
    let d = Slapd::start();
    let s = server(d.config("", "")).await;
    let pw = d.password();
    assert_eq!(sign_in(&s, "ann", &pw).await.1["user"]["role"], "student");
    d.membership("ann", "staff", true);
    assert_eq!(sign_in(&s, "ann", &pw).await.1["user"]["role"], "instructor");
    let rows = audit(&s, "user.update").await;
    assert!(format!("{rows:?}").contains("instructor"), "the change is audited: {rows:?}");
    d.membership("ann", "staff", false);
    d.membership("ann", "students", false);
    assert_eq!(sign_in(&s, "ann", &pw).await.0, 403, "in no mapped group any more");
}

/// `refresh_minutes = 1`: a signed-in person removed from every mapped group loses their
/// session within a refresh, without signing in again; one whose role changed gets it.
#[tokio::test]
async fn signed_in_people_are_read_again_and_lose_access_when_the_directory_says_so() {
    let d = Slapd::start();
    let s = server(d.config("refresh_minutes = 1\n", "")).await;
    let pw = d.password();
    let ann = sign_in(&s, "ann", &pw).await.1["token"].as_str().unwrap().to_string();
    let tom = sign_in(&s, "tom", &pw).await.1["token"].as_str().unwrap().to_string();
    assert_eq!(s.get("/api/me", &ann).await.0, 200);
    d.membership("ann", "students", false);
    d.membership("tom", "labtech", true);
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    loop {
        let (ann_status, _) = s.get("/api/me", &ann).await;
        let (_, tom_me) = s.get("/api/me", &tom).await;
        if ann_status == 401 && tom_me["role"] == "admin" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no refresh within 150 s: ann {ann_status}, tom {tom_me}");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let rows = audit(&s, "directory.access_ended").await;
    assert!(format!("{rows:?}").contains("no longer in a mapped group"), "{rows:?}");
}

#[tokio::test]
async fn with_the_directory_down_local_admins_still_sign_in() {
    let d = Slapd::start();
    let s = server(d.config("connect_timeout_secs = 2\n", "")).await;
    assert_eq!(sign_in(&s, "ann", &d.password()).await.0, 200);
    d.stop();
    let started = std::time::Instant::now();
    let (status, body) = sign_in(&s, "ann", &d.password()).await;
    assert_eq!((status, error_code(&body).as_str()), (503, "directory_unavailable"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("campus directory"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(10), "answered within the timeouts: {:?}", started.elapsed());
    // The local admin is not held up by the directory.
    s.add_user("localadmin", "admin");
    let (status, _) = sign_in(&s, "localadmin", harness::PASSWORD).await;
    assert_eq!(status, 200);
    // Not counted as a guess: the throttle does not lock ann out after the outage.
    for _ in 0..6 {
        assert_eq!(sign_in(&s, "ann", &d.password()).await.0, 503);
    }
    let rows = audit(&s, "login.failure").await;
    assert!(format!("{rows:?}").contains("directory_unreachable"), "{rows:?}");
}

#[tokio::test]
async fn a_directory_certificate_for_another_name_is_refused() {
    let d = Slapd::start_with(&[("SLAPD_CERT_NAMES", "DNS:other.example")]);
    let s = server(d.config("", "")).await;
    let (status, body) = sign_in(&s, "ann", &d.password()).await;
    assert_eq!((status, error_code(&body).as_str()), (503, "directory_unavailable"), "{body}");
    let log = std::fs::read_to_string(s.log_path()).unwrap_or_default();
    assert!(log.to_lowercase().contains("certificate"), "the log says why: {log}");
}

#[tokio::test]
async fn a_directory_accounts_password_is_not_set_here() {
    let d = Slapd::start();
    let s = server(d.config("", "")).await;
    let (_, body) = sign_in(&s, "ann", &d.password()).await;
    let token = body["token"].as_str().unwrap();
    let r = s
        .client()
        .post(s.url("/api/me/password"))
        .bearer_auth(token)
        .json(&serde_json::json!({"current_password": d.password(), "new_password": "a brand new passphrase 42"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(error_code(&body), "password_managed_elsewhere");
    let out = s.cli(&["user", "passwd", "ann", "--password-stdin"], Some("a brand new passphrase 42"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("campus directory"), "{out:?}");
}

/// The server refuses to start with a service password file it cannot read.
#[tokio::test]
async fn an_unreadable_bind_password_file_stops_the_start_with_a_clear_line() {
    let d = Slapd::start();
    let config = d.config("", "").replace(&d.path("password").display().to_string(), "/nonexistent/ldap-password");
    let (_, stderr) = Server::start_failing(Options { config: Some(config), ..Default::default() }).await;
    assert!(stderr.contains("bind_password_file") && stderr.contains("/nonexistent/ldap-password"), "{stderr}");
}

/// The portal's Authentication page: the configuration in words (no secret), the rules with
/// what is wrong in them, and "test a user" looking people up without a password.
#[tokio::test]
async fn the_authentication_page_shows_the_setup_and_looks_people_up() {
    let d = Slapd::start();
    let s = server(d.config("", "")).await;
    s.admin().await;
    let admin = harness::Browser::login(&s, "admin").await;
    let (status, html) = admin.get("/admin/authentication").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(&d.ldaps) && html.contains("search-then-bind as cn=labbeam"), "{html}");
    assert!(html.contains(&d.path("password").display().to_string()), "names the password file: {html}");
    assert!(!html.contains(&d.password()), "never the password itself");
    assert!(html.contains("no lab &#34;Lab 2.14&#34;") || html.contains("no lab &quot;Lab 2.14&quot;"), "{html}");
    let csrf = admin.csrf().await;
    let (status, _, html) = admin.post("/admin/authentication/test", &[("csrf", &csrf), ("username", "nina")]).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(r#"data-state="ok""#) && html.contains(&format!("cn=physics,ou=groups,{SUFFIX}")), "{html}");
    assert!(html.contains("cannot sign in"), "nina's direct group is not mapped: {html}");
    let (_, _, html) = admin.post("/admin/authentication/test", &[("csrf", &csrf), ("username", "tom")]).await;
    assert!(html.contains("Signs in as instructor with Lab 2.14"), "{html}");
    let (_, _, html) = admin.post("/admin/authentication/test", &[("csrf", &csrf), ("username", "dora")]).await;
    assert!(html.contains(r#"data-state="missing""#), "the filter leaves dora out: {html}");
    let (status, _, _) = admin.post("/admin/authentication/test", &[("csrf", "forged"), ("username", "tom")]).await;
    assert_eq!(status, 403);
    // Looking up created no account.
    assert_eq!(s.store().await.int("SELECT count(*) FROM users WHERE username IN ('tom', 'nina', 'dora')").await, 0);
}

/// `auth.local_sign_in = admins`: local passwords open admin accounts only; the others sign
/// in with the directory.
#[tokio::test]
async fn local_sign_in_can_be_kept_for_admins() {
    let d = Slapd::start();
    let s = server(d.config("", "")).await;
    s.add_user("localstudent", "student");
    s.add_user("localadmin", "admin");
    assert!(s.cli(&["setting", "set", "auth.local_sign_in", "admins"], None).status.success());
    let (status, body) = sign_in(&s, "localstudent", harness::PASSWORD).await;
    assert_eq!((status, error_code(&body).as_str()), (403, "local_sign_in_off"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("campus account"), "{body}");
    assert_eq!(sign_in(&s, "localadmin", harness::PASSWORD).await.0, 200);
    assert_eq!(sign_in(&s, "ann", &d.password()).await.0, 200);
    // Not counted as guesses: the right password, refused by policy.
    for _ in 0..6 {
        assert_eq!(sign_in(&s, "localstudent", harness::PASSWORD).await.0, 403);
    }
}
