//! Campus sign-in with an OpenID provider (tests/oidc/provider.mjs: npm oidc-provider over
//! HTTPS on loopback with a test CA, a confidential client and people with groups) against
//! the real binary: the whole authorization-code flow as a browser walks it (redirects,
//! the provider's sign-in form, cookies), who gets in with which role and labs, and what
//! stays out: a used, forged or foreign `state`, a code from another sign-in, ID tokens with
//! the wrong audience, issuer, nonce, expiry or signature (`none`, HMAC with the public key,
//! another key), usernames held by other accounts, a provider that is down.
// Test code: a failed expectation stops the test loudly (the workspace denies these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "harness/mod.rs"]
mod harness;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use harness::{Options, Server, error_code};
use reqwest::Url;
use serde_json::Value;

/// A running test provider; killed when dropped.
struct Op {
    child: Child,
    _dir: tempfile::TempDir,
    issuer: String,
    ca: PathBuf,
    secret_file: PathBuf,
    password: String,
}

impl Op {
    fn start(tamper: &str) -> Op {
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/oidc/provider.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .arg("--dir")
            .arg(dir.path())
            .args(if tamper.is_empty() { vec![] } else { vec!["--tamper", tamper] })
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("provider.log")).unwrap())
            .spawn()
            .expect("node tests/oidc/provider.mjs (npm ci in tests/oidc first)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let info: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("provider said {line:?}: {e}"));
        let s = |k: &str| info[k].as_str().unwrap().to_string();
        Op {
            child,
            issuer: s("issuer"),
            ca: PathBuf::from(s("ca")),
            secret_file: PathBuf::from(s("secretFile")),
            password: std::fs::read_to_string(s("passwordFile")).unwrap(),
            _dir: dir,
        }
    }

    /// One `[[auth.oidc]]` table for this provider.
    fn table(&self, name: &str, extra: &str) -> String {
        format!(
            "[[auth.oidc]]\nname = \"{name}\"\nissuer = \"{}\"\nclient_id = \"labbeam\"\nclient_secret_file = \"{}\"\n\
             ca_file = \"{}\"\nscopes = [\"openid\", \"profile\", \"email\", \"groups\"]\n{extra}\n",
            self.issuer,
            self.secret_file.display(),
            self.ca.display()
        )
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        self.stop();
    }
}

const ROLE_MAP: &str = "[[auth.role_map]]\ngroup = \"labtech\"\nrole = \"admin\"\n\
     [[auth.role_map]]\ngroup = \"staff\"\nrole = \"instructor\"\nlabs = [\"Lab 2.14\"]\n\
     [[auth.role_map]]\ngroup = \"students\"\nrole = \"student\"\n";

async fn server(tables: &str) -> Server {
    Server::start_with(Options { config: Some(format!("{tables}\n{ROLE_MAP}")), ..Default::default() }).await
}

/// A browser as far as these tests need one: follows nothing by itself, keeps cookies per
/// host (paths and expiry aside), trusts LabBeam's certificate and the provider's CA.
struct Walker {
    client: reqwest::Client,
    jar: HashMap<String, HashMap<String, String>>,
    accept_html: bool,
}

impl Walker {
    fn new(s: &Server, op: &Op) -> Walker {
        let certs = [
            reqwest::Certificate::from_pem(&std::fs::read(s.data_dir().join("tls").join("cert.pem")).unwrap()).unwrap(),
            reqwest::Certificate::from_pem(&std::fs::read(&op.ca).unwrap()).unwrap(),
        ];
        let client = reqwest::Client::builder()
            .tls_certs_only(certs)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Walker { client, jar: HashMap::new(), accept_html: false }
    }

    fn host(url: &Url) -> String {
        format!("{}:{}", url.host_str().unwrap(), url.port_or_known_default().unwrap())
    }

    fn cookie_header(&self, url: &Url) -> String {
        let cookies = self.jar.get(&Self::host(url)).cloned().unwrap_or_default();
        cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&mut self, url: &Url, r: &reqwest::Response) {
        for v in r.headers().get_all(reqwest::header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let jar = self.jar.entry(Self::host(url)).or_default();
            if value.is_empty() || v.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let url = Url::parse(url).unwrap();
        let mut request = self.client.get(url.clone()).header(reqwest::header::COOKIE, self.cookie_header(&url));
        if self.accept_html {
            request = request.header(reqwest::header::ACCEPT, "text/html,application/xhtml+xml");
        }
        let r = request.send().await.unwrap();
        self.keep(&url, &r);
        r
    }

    async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let url = Url::parse(url).unwrap();
        let r = self
            .client
            .post(url.clone())
            .header(reqwest::header::COOKIE, self.cookie_header(&url))
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&url, &r);
        r
    }

    /// Where a redirect goes, resolved against `from`.
    fn location(from: &str, r: &reqwest::Response) -> String {
        assert!(r.status().is_redirection(), "expected a redirect from {from}, got {}", r.status());
        let loc = r.headers()[reqwest::header::LOCATION].to_str().unwrap();
        Url::parse(from).unwrap().join(loc).unwrap().to_string()
    }

    /// Starts a sign-in at LabBeam and signs in at the provider as `username`; returns the
    /// callback URL the provider sends the browser to (not opened yet).
    async fn through_provider(&mut self, s: &Server, op: &Op, provider: &str, username: &str) -> String {
        let start = s.url(&format!("/api/auth/oidc/{provider}/start?return_to=/admin"));
        let r = self.get(&start).await;
        assert_eq!(r.status(), 303, "start");
        let authorize = Self::location(&start, &r);
        assert!(authorize.starts_with(&op.issuer), "{authorize}");
        let query: HashMap<String, String> = Url::parse(&authorize).unwrap().query_pairs().into_owned().collect();
        assert_eq!(query["code_challenge_method"], "S256");
        assert!(query["state"].len() >= 43 && query["nonce"].len() >= 43, "{query:?}");
        let r = self.get(&authorize).await;
        let interaction = Self::location(&authorize, &r);
        if interaction.starts_with(&s.url("/")) {
            // Signed in at the provider already (single sign-on): straight back.
            return interaction;
        }
        let r = self.get(&interaction).await;
        assert_eq!(r.status(), 200);
        let r = self
            .post_form(&format!("{interaction}/login"), &[("username", username), ("password", &op.password)])
            .await;
        let resume = Self::location(&interaction, &r);
        let r = self.get(&resume).await;
        let callback = Self::location(&resume, &r);
        assert!(callback.starts_with(&s.url("/api/auth/oidc/")), "{callback}");
        callback
    }

    async fn json(&mut self, url: &str) -> (u16, Value) {
        let r = self.get(url).await;
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// The whole sign-in; (status, body) of the callback.
    async fn sign_in(&mut self, s: &Server, op: &Op, provider: &str, username: &str) -> (u16, Value) {
        let callback = self.through_provider(s, op, provider, username).await;
        self.json(&callback).await
    }
}

fn add_lab(s: &Server, name: &str, cidr: &str) {
    let out = s.cli(&["lab", "add", name, "--cidr", cidr], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The newest audit rows of `action`, as the first admin sees them.
async fn audit(s: &Server, admin: &str, action: &str) -> Vec<Value> {
    let query = if action.is_empty() { "limit=200".to_string() } else { format!("action={action}&limit=50") };
    let (status, body) = s.get(&format!("/api/audit?{query}"), admin).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn provider_people_sign_in_with_the_role_and_labs_of_their_groups() {
    let op = Op::start("");
    let s = server(&op.table("Campus SSO", "")).await;
    add_lab(&s, "Lab 2.14", "10.2.14.0/24");

    let (status, body) = s.get("/api/auth/providers", "").await;
    assert_eq!(status, 200);
    assert_eq!(body["providers"][0]["id"], "campus-sso", "{body}");
    assert_eq!(body["providers"][0]["name"], "Campus SSO");
    assert_eq!(body["providers"][0]["startUrl"], "/api/auth/oidc/campus-sso/start");

    let mut w = Walker::new(&s, &op);
    let (status, body) = w.sign_in(&s, &op, "campus-sso", "ann").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["role"], "student");
    assert_eq!(body["user"]["display_name"], "Ann Example", "the name, from the userinfo endpoint");
    let token = body["token"].as_str().unwrap().to_string();
    let (_, me) = s.get("/api/me", &token).await;
    assert_eq!(me["source"], "oidc", "{me}");

    // The provider by its position works as well as by its slug.
    let (status, body) = Walker::new(&s, &op).sign_in(&s, &op, "0", "tom").await;
    assert_eq!((status, body["user"]["role"].as_str()), (200, Some("instructor")), "{body}");
    let store = s.store().await;
    let labs = store
        .int(
            "SELECT count(*) FROM user_labs ul JOIN users u ON u.id = ul.user_id JOIN labs l ON l.id = ul.lab_id \
              WHERE u.username = 'tom' AND l.name = 'Lab 2.14'",
        )
        .await;
    let external = store.int("SELECT count(*) FROM users WHERE username = 'ann' AND source = 'oidc'").await;
    store.close().await;
    assert_eq!((labs, external), (1, 1), "tom is responsible for Lab 2.14; ann's account says where it comes from");

    let (status, body) = Walker::new(&s, &op).sign_in(&s, &op, "campus-sso", "ted").await;
    assert_eq!((status, body["user"]["role"].as_str()), (200, Some("admin")), "{body}");
    let ted = body["token"].as_str().unwrap().to_string();

    // In no mapped group and no default role: refused at LabBeam although the provider
    // signed them in.
    let (status, body) = Walker::new(&s, &op).sign_in(&s, &op, "campus-sso", "solo").await;
    assert_eq!((status, error_code(&body).as_str()), (403, "not_permitted"), "{body}");

    // Signing in again is the same account.
    let (status, body) = Walker::new(&s, &op).sign_in(&s, &op, "campus-sso", "ann").await;
    assert_eq!((status, body["user"]["id"].clone()), (200, me["id"].clone()), "{body}");

    let rows = audit(&s, &ted, "login.success").await;
    assert!(
        rows.iter()
            .any(|r| r["target"] == "user:ann" && r["details"].as_str().unwrap_or("").contains("\"source\":\"oidc\"")),
        "{rows:?}"
    );
    let rows = audit(&s, &ted, "login.failure").await;
    let details = rows.iter().map(|r| r["details"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>().join("\n");
    assert!(details.contains("not_in_mapped_group") && details.contains("\"source\":\"oidc\""), "{details}");
    // No secret, code or token ever reaches the audit log.
    let all = audit(&s, &ted, "").await;
    let text = serde_json::to_string(&all).unwrap();
    let secret = std::fs::read_to_string(&op.secret_file).unwrap();
    assert!(!text.contains(secret.trim()) && !text.contains("eyJ"), "{text}");
}

#[tokio::test]
async fn a_callback_works_once_and_only_in_the_browser_that_started_it() {
    let op = Op::start("");
    let s = server(&op.table("Campus SSO", "")).await;

    // A state nobody issued.
    let mut w = Walker::new(&s, &op);
    let (status, body) = w.json(&s.url("/api/auth/oidc/campus-sso/callback?code=abc&state=forged")).await;
    assert_eq!((status, error_code(&body).as_str()), (400, "invalid_state"), "{body}");
    let (status, body) = w.json(&s.url("/api/auth/oidc/campus-sso/callback")).await;
    assert_eq!((status, error_code(&body).as_str()), (400, "invalid_state"), "{body}");

    // A callback link opened in another browser (login CSRF): refused, and the sign-in is
    // used up, so the browser that started it must start again.
    let callback = w.through_provider(&s, &op, "campus-sso", "ann").await;
    let (status, body) = Walker::new(&s, &op).json(&callback).await;
    assert_eq!((status, error_code(&body).as_str()), (400, "invalid_state"), "{body}");
    let (status, body) = w.json(&callback).await;
    assert_eq!((status, error_code(&body).as_str()), (400, "invalid_state"), "{body}");

    // Used once, then never again.
    let callback = w.through_provider(&s, &op, "campus-sso", "ann").await;
    let (status, body) = w.json(&callback).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = w.json(&callback).await;
    assert_eq!((status, error_code(&body).as_str()), (400, "invalid_state"), "replayed: {body}");

    // A code from one sign-in with another sign-in's state: the provider refuses it (it
    // was used, and the PKCE verifier is the other sign-in's).
    let old_code: String = Url::parse(&callback).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into();
    let fresh = w.through_provider(&s, &op, "campus-sso", "ann").await;
    let mut forged = Url::parse(&fresh).unwrap();
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| (k.to_string(), if k == "code" { old_code.clone() } else { v.to_string() }))
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let (status, body) = w.json(forged.as_str()).await;
    assert_eq!((status, error_code(&body).as_str()), (401, "token_invalid"), "{body}");

    // A state is for its provider only, and the issuer the provider names must be its own.
    let callback = w.through_provider(&s, &op, "campus-sso", "ann").await;
    let mut other = Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = other
        .query_pairs()
        .map(|(k, v)| (k.to_string(), if k == "iss" { "https://evil.example".into() } else { v.to_string() }))
        .collect();
    other.query_pairs_mut().clear().extend_pairs(pairs);
    let (status, body) = w.json(other.as_str()).await;
    assert_eq!((status, error_code(&body).as_str()), (401, "token_invalid"), "mix-up: {body}");
}

#[tokio::test]
async fn id_tokens_that_fail_a_check_are_refused() {
    let kinds = ["aud", "expired", "nonce", "iss", "none", "hs256", "other-key"];
    let ops: Vec<Op> = kinds.iter().map(|k| Op::start(k)).collect();
    let tables: String = ops.iter().zip(kinds).map(|(op, k)| op.table(&format!("Tampered {k}"), "")).collect();
    let s = server(&tables).await;
    for (op, kind) in ops.iter().zip(kinds) {
        let mut w = Walker::new(&s, op);
        let (status, body) = w.sign_in(&s, op, &format!("tampered-{kind}"), "ann").await;
        assert_eq!((status, error_code(&body).as_str()), (401, "token_invalid"), "{kind}: {body}");
    }
    let log = std::fs::read_to_string(s.log_path()).unwrap();
    for why in ["another client (aud)", "has expired", "nonce is not this sign-in", "another issuer", "does not verify"]
    {
        assert!(log.contains(why), "the log says why ({why}): {log}");
    }
    let count = s.store().await.int("SELECT count(*) FROM users WHERE source = 'oidc'").await;
    assert_eq!(count, 0, "no account was made");
}

#[tokio::test]
async fn a_provider_whose_issuer_is_not_the_configured_one_is_refused() {
    let op = Op::start("");
    // The provider calls itself https://127.0.0.1:PORT; configured as localhost, the same
    // server (its certificate names both) is another issuer.
    let table = op.table("Campus SSO", "").replace("https://127.0.0.1:", "https://localhost:");
    let s = server(&table).await;
    let mut w = Walker::new(&s, &op);
    let (status, body) = w.json(&s.url("/api/auth/oidc/campus-sso/start")).await;
    assert_eq!((status, error_code(&body).as_str()), (503, "provider_unavailable"), "{body}");
    let log = std::fs::read_to_string(s.log_path()).unwrap();
    assert!(log.contains("names the issuer"), "{log}");
}

#[tokio::test]
async fn usernames_held_by_other_accounts_are_refused() {
    let op = Op::start("");
    let s = server(&op.table("Campus SSO", "")).await;
    s.add_user("tom", "student");
    let admin = s.admin().await;
    for (person, status, code) in
        [("admin", 409, "account_conflict"), ("tom", 409, "account_conflict"), ("bad", 403, "username_unusable")]
    {
        let (got, body) = Walker::new(&s, &op).sign_in(&s, &op, "campus-sso", person).await;
        assert_eq!((got, error_code(&body).as_str()), (status, code), "{person}: {body}");
    }
    let (_, me) = s.get("/api/me", &admin).await;
    assert_eq!(me["source"], "local", "the local admin is untouched");

    // An account of one provider cannot be taken by a person of another with the same
    // username.
    let other = Op::start("");
    drop(s);
    let s = server(&format!("{}{}", op.table("Campus SSO", ""), other.table("Other SSO", ""))).await;
    let (status, _) = Walker::new(&s, &op).sign_in(&s, &op, "campus-sso", "ann").await;
    assert_eq!(status, 200);
    let (status, body) = Walker::new(&s, &other).sign_in(&s, &other, "other-sso", "ann").await;
    assert_eq!((status, error_code(&body).as_str()), (409, "account_conflict"), "{body}");
}

#[tokio::test]
async fn with_the_provider_down_local_admins_still_sign_in() {
    let mut op = Op::start("");
    let s = server(&op.table("Campus SSO", "")).await;
    op.stop();
    let mut w = Walker::new(&s, &op);
    let (status, body) = w.json(&s.url("/api/auth/oidc/campus-sso/start")).await;
    assert_eq!((status, error_code(&body).as_str()), (503, "provider_unavailable"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("Campus SSO"), "{body}");
    // A browser is shown a page with the way back, not JSON.
    w.accept_html = true;
    let r = w.get(&s.url("/api/auth/oidc/campus-sso/start?return_to=/admin")).await;
    assert_eq!(r.status(), 503);
    let html = r.text().await.unwrap();
    assert!(html.contains("Campus SSO cannot be reached") && html.contains(r#"href="/admin/login""#), "{html}");
    s.admin().await;
}

#[tokio::test]
async fn a_browser_lands_where_it_was_going_and_signing_out_ends_the_provider_session() {
    let op = Op::start("");
    let s = server(&op.table("Campus SSO", "")).await;
    let mut w = Walker::new(&s, &op);
    w.accept_html = true;
    let callback = w.through_provider(&s, &op, "campus-sso", "ted").await;
    let r = w.get(&callback).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    // The session cookie is SameSite=Strict: the page moves on by itself, from this site.
    assert!(html.contains(r#"<meta http-equiv="refresh" content="0; url=/admin">"#), "{html}");
    let host = Url::parse(&s.url("/")).unwrap();
    let jar = w.jar[&Walker::host(&host)].clone();
    assert!(jar.contains_key("labbeam_session"), "{jar:?}");
    let r = w.get(&s.url("/admin")).await;
    assert_eq!(r.status(), 200, "the portal opens with the new session");
    // The Authentication page shows the provider as configured and reached, secret unsaid.
    let html = w.get(&s.url("/admin/authentication")).await.text().await.unwrap();
    let secret = std::fs::read_to_string(&op.secret_file).unwrap();
    assert!(html.contains("<h3>Campus SSO</h3>") && html.contains("yes: signs in at"), "{html}");
    assert!(html.contains(&op.secret_file.display().to_string()) && !html.contains(secret.trim()), "{html}");

    // Not an open redirect: another site becomes this server's start page.
    let start = s.url("/api/auth/oidc/campus-sso/start?return_to=https://evil.example/");
    let r = w.get(&start).await;
    let authorize = Walker::location(&start, &r);
    let r = w.get(&authorize).await;
    let callback = Walker::location(&authorize, &r);
    assert!(callback.starts_with(&s.url("/api/auth/oidc/campus-sso/callback?")), "single sign-on: {callback}");
    let html = w.get(&callback).await.text().await.unwrap();
    assert!(html.contains(r#"url=/">"#) && !html.contains("evil"), "{html}");

    // Signing out: the session ends, and the client is given the provider's end-session URL.
    let token = w.jar[&Walker::host(&host)]["labbeam_session"].clone();
    let r = s.client().post(s.url("/api/auth/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let end = body["endSessionUrl"].as_str().unwrap();
    assert!(end.starts_with(&format!("{}/session/end?", op.issuer)), "{end}");
    let q: HashMap<String, String> = Url::parse(end).unwrap().query_pairs().into_owned().collect();
    assert_eq!(q["post_logout_redirect_uri"], s.url("/"));
    assert!(q["id_token_hint"].starts_with("eyJ"), "{q:?}");
    let r = w.get(end).await;
    assert_eq!(r.status(), 200, "the provider takes the end-session request");
    let (status, _) = s.get("/api/me", &token).await;
    assert_eq!(status, 401);

    // The portal's sign-in page offers the provider, coming back to the portal.
    let r = s.client().get(s.url("/admin/login?next=/admin/users")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Sign in with Campus SSO"), "{html}");
    assert!(html.contains("/api/auth/oidc/campus-sso/start?return_to=%2Fadmin%2Fusers"), "{html}");
}

#[tokio::test]
async fn unknown_providers_and_bad_provider_setups_are_refused() {
    let op = Op::start("");
    let s = server(&op.table("Campus SSO", "")).await;
    let (status, body) = Walker::new(&s, &op).json(&s.url("/api/auth/oidc/nope/start")).await;
    assert_eq!((status, error_code(&body).as_str()), (404, "unknown_provider"), "{body}");
    let (status, body) = Walker::new(&s, &op).json(&s.url("/api/auth/oidc/7/callback?state=x&code=y")).await;
    assert_eq!((status, error_code(&body).as_str()), (404, "unknown_provider"), "{body}");

    for (table, says) in [
        (op.table("Campus SSO", "").replace("https://127", "http://127"), "issuer must be an https:// URL"),
        (op.table("Campus SSO", "algorithms = [\"HS256\"]"), "algorithm \"HS256\" is not accepted"),
        (
            op.table("Campus SSO", "").replace(op.secret_file.to_str().unwrap(), "/nonexistent/secret"),
            "cannot read auth.oidc provider \"Campus SSO\" client_secret_file /nonexistent/secret",
        ),
        (format!("{}{}", op.table("Campus SSO", ""), op.table("campus sso!", "")), "two providers are named"),
    ] {
        let (_, stderr) =
            Server::start_failing(Options { config: Some(format!("{table}\n{ROLE_MAP}")), ..Default::default() }).await;
        assert!(stderr.contains(says), "expected {says:?} in: {stderr}");
    }
}
