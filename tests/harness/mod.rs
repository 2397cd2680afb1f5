#![allow(dead_code)] // Each test file uses a different part of the harness.
//! Test harness: boots the real `labbeam` binary (built by cargo for the tests) on free loopback ports with a
//! temporary data directory, and gives tests clients that talk to it the way browsers and
//! admins do (HTTPS trusting its generated certificate, the command line).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// A password every test user gets unless a test says otherwise.
pub const PASSWORD: &str = "correct horse battery staple";

/// Path of the binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_labbeam"))
}

fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// How to start a server.
#[derive(Default, Clone)]
pub struct Options {
    /// Contents of a config file passed with `--config`.
    pub config: Option<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Listen on free ports chosen before the start and given as `LABBEAM_HTTP_LISTEN`,
    /// `LABBEAM_TURN_LISTEN` and `LABBEAM_TURN_TLS_PORT` (not the usual port-0 flags), so
    /// that `Server::doctor`, with the same configuration, finds the running server.
    pub fixed_ports: bool,
    /// The certificate the test clients trust instead of the generated one in the data
    /// directory (for a server given its own `[tls] cert` in `config`).
    pub trusted_cert: Option<PathBuf>,
}

pub struct Server {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    pub base: String,
    /// The first admin's one-time password, when this start printed one.
    pub first_admin_password: Option<String>,
    pub fingerprint: String,
    /// TURN over UDP and TCP (same port), from the banner's `TURN:` line.
    pub turn_port: u16,
    /// TURN over TLS, from the same line.
    pub turns_port: u16,
    /// The lines of the last start's banner, up to its blank line.
    pub banner: Vec<String>,
    options: Options,
    /// `LABBEAM_STORE_URL` of this server and its command lines: the one `Options::env`
    /// gives, if any; else a database of its own on the PostgreSQL server
    /// `TEST_POSTGRES_URL` names, when it is set (the suite's PostgreSQL run, tests/run.sh);
    /// else none, for the SQLite file in the data directory.
    store_url: Option<String>,
    /// The `LABBEAM_*` listen addresses of `Options::fixed_ports` (empty otherwise).
    listen_env: Vec<(String, String)>,
}

/// The PostgreSQL server the suite runs against as well as SQLite (tests/run.sh starts one
/// and sets `TEST_POSTGRES_URL`); `None` for the SQLite run.
pub fn test_postgres() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
}

/// Creates an empty database on the test PostgreSQL server and returns its URL.
pub async fn fresh_postgres_database(admin_url: &str) -> String {
    use sqlx::Connection;
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let name = format!("labbeam_it_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let mut conn = sqlx::PgConnection::connect(admin_url).await.expect("connect to TEST_POSTGRES_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create database");
    let _ = conn.close().await;
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
    format!("{root}/{name}{query}")
}

/// Raw access to a test server's store, for rows no API can make (old transfers, odd names).
pub enum Store {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Store {
    /// The store at a store URL (`sqlite:///path` or `postgres://…`).
    pub async fn open(url: &str) -> Store {
        match url.strip_prefix("sqlite://") {
            Some(path) => Store::open_sqlite(std::path::Path::new(path)).await,
            None => Store::Postgres(sqlx::PgPool::connect(url).await.expect("connect to the test database")),
        }
    }

    async fn open_sqlite(path: &std::path::Path) -> Store {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).busy_timeout(Duration::from_secs(10));
        Store::Sqlite(sqlx::SqlitePool::connect_with(options).await.expect("open the SQLite store"))
    }

    /// Runs one statement without parameters (quote literals with `sql_text`).
    pub async fn exec(&self, sql: &str) {
        self.try_exec(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs one statement without parameters; the database's error, if it refuses it.
    pub async fn try_exec(&self, sql: &str) -> Result<(), String> {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Store::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Store::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .map_err(|e| e.to_string())
    }

    /// The one integer a query returns (`SELECT count(*) …`).
    pub async fn int(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        match self {
            Store::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await,
            Store::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("{e}"))
    }

    pub async fn close(&self) {
        match self {
            Store::Sqlite(p) => p.close().await,
            Store::Postgres(p) => p.close().await,
        }
    }
}

/// `text` as an SQL string literal (both databases double the quote).
pub fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Server {
        let mut server = Self::prepare(options).await;
        server.boot().await;
        server
    }

    /// A server whose first start must fail (a port in use, a bad configuration): returns
    /// it, not running, and that start's standard error. `set_config` and `restart` start
    /// it again on the same data directory and store.
    pub async fn start_failing(options: Options) -> (Server, String) {
        let server = Self::prepare(options).await;
        let mut child = server
            .serve_command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn labbeam serve");
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("wait for labbeam").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("labbeam serve was expected to fail but is still running after 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("labbeam output");
        assert!(!out.status.success(), "labbeam serve was expected to fail");
        (server, String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Replaces the configuration file of the next start.
    pub fn set_config(&mut self, config: Option<String>) {
        self.options.config = config;
    }

    /// The data directory and store of a server, not started.
    async fn prepare(options: Options) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut server = Server {
            child: None,
            dir,
            port: 0,
            base: String::new(),
            first_admin_password: None,
            fingerprint: String::new(),
            turn_port: 0,
            turns_port: 0,
            banner: Vec::new(),
            store_url: None,
            listen_env: Vec::new(),
            options,
        };
        if server.options.fixed_ports {
            let [http, turn, tls] = free_ports();
            server.listen_env = vec![
                ("LABBEAM_HTTP_LISTEN".into(), format!("127.0.0.1:{http}")),
                ("LABBEAM_TURN_LISTEN".into(), format!("127.0.0.1:{turn}")),
                ("LABBEAM_TURN_TLS_PORT".into(), tls.to_string()),
            ];
        }
        let chosen = server.options.env.iter().find(|(k, _)| k == "LABBEAM_STORE_URL").map(|(_, v)| v.clone());
        server.store_url = match (chosen, test_postgres()) {
            (Some(url), _) => Some(url),
            (None, Some(admin)) => Some(fresh_postgres_database(&admin).await),
            (None, None) => None,
        };
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The store URL this server and its command lines use, when it is not the default
    /// SQLite file.
    pub fn store_url(&self) -> Option<&str> {
        self.store_url.as_deref()
    }

    /// Opens this server's store directly.
    pub async fn store(&self) -> Store {
        match &self.store_url {
            Some(url) => Store::open(url).await,
            None => Store::open_sqlite(&self.data_dir().join("labbeam.db")).await,
        }
    }

    fn serve_command(&self) -> Command {
        let mut cmd = Command::new(binary());
        cmd.arg("serve").arg("--data-dir").arg(self.data_dir());
        if let Some(url) = &self.store_url {
            cmd.env("LABBEAM_STORE_URL", url);
        }
        if self.listen_env.is_empty() {
            cmd.args(["--http-listen", "127.0.0.1:0", "--turn-listen", "127.0.0.1:0"]);
        }
        cmd.envs(self.listen_env.iter().map(|(k, v)| (k, v)));
        if let Some(text) = &self.options.config {
            let path = self.dir.path().join("labbeam.toml");
            std::fs::write(&path, text).expect("write config");
            cmd.arg("--config").arg(path);
        }
        for (k, v) in &self.options.env {
            cmd.env(k, v);
        }
        cmd
    }

    async fn boot(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log file");
        let mut child = self
            .serve_command()
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn labbeam serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut port = None;
        let mut banner = Vec::new();
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Some(rest) = line.trim().strip_prefix("Open:") {
                        port = rest.trim().trim_end_matches('/').rsplit(':').next().and_then(|p| p.parse().ok());
                    }
                    if let Some(fp) = line.trim().strip_prefix("SHA-256:") {
                        self.fingerprint = fp.trim().to_string();
                    }
                    if let Some(rest) = line.trim().strip_prefix("TURN:") {
                        // "udp/tcp 127.0.0.1:PORT, tls 127.0.0.1:PORT"
                        let port_after = |word: &str| {
                            rest.split(',')
                                .find_map(|part| part.trim().strip_prefix(word))
                                .and_then(|addr| addr.trim().rsplit(':').next()?.parse().ok())
                        };
                        self.turn_port = port_after("udp/tcp").unwrap_or(0);
                        self.turns_port = port_after("tls").unwrap_or(0);
                    }
                    if let Some(pw) = line.trim().strip_prefix("password:") {
                        self.first_admin_password = Some(pw.trim().to_string());
                    }
                    let blank = line.trim().is_empty();
                    banner.push(line);
                    // The banner ends with its first blank line.
                    if blank && port.is_some() {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                        panic!(
                            "labbeam exited with {status}: {}",
                            std::fs::read_to_string(self.log_path()).unwrap_or_default()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let port = port.unwrap_or_else(|| {
            panic!(
                "no URL in the banner {banner:?}; server log: {}",
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            )
        });
        self.port = port;
        self.banner = banner;
        self.base = format!("https://127.0.0.1:{port}");
        let client = self.client();
        for _ in 0..100 {
            if client.get(self.url("/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("server never became healthy: {}", std::fs::read_to_string(self.log_path()).unwrap_or_default());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// An HTTPS client that trusts this server's certificate and keeps no cookies.
    pub fn client(&self) -> reqwest::Client {
        install_crypto();
        let path = self.options.trusted_cert.clone().unwrap_or_else(|| self.data_dir().join("tls").join("cert.pem"));
        let pem = std::fs::read(path).expect("certificate");
        let cert = reqwest::Certificate::from_pem(&pem).expect("parse certificate");
        reqwest::Client::builder()
            .tls_certs_only([cert])
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Stops and starts again on the same data directory (new port).
    pub async fn restart(&mut self) {
        self.stop();
        self.first_admin_password = None;
        self.boot().await;
    }

    /// Runs `labbeam <args> --data-dir <this server's>` with optional standard input.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(binary());
        cmd.args(args).arg("--data-dir").arg(self.data_dir());
        if let Some(url) = &self.store_url {
            cmd.env("LABBEAM_STORE_URL", url);
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn labbeam");
        if let (Some(mut pipe), Some(text)) = (child.stdin.take(), stdin) {
            let _ = pipe.write_all(text.as_bytes());
        }
        child.wait_with_output().expect("labbeam output")
    }

    /// Runs `labbeam doctor <args>` with this server's configuration: its data directory,
    /// config file, environment and store, plus `env`.
    pub fn doctor(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(binary());
        cmd.arg("doctor").args(args).arg("--data-dir").arg(self.data_dir());
        if self.options.config.is_some() {
            cmd.arg("--config").arg(self.dir.path().join("labbeam.toml"));
        }
        if let Some(url) = &self.store_url {
            cmd.env("LABBEAM_STORE_URL", url);
        }
        cmd.envs(self.listen_env.iter().map(|(k, v)| (k, v)));
        cmd.envs(self.options.env.iter().map(|(k, v)| (k, v)));
        cmd.envs(env.iter().copied());
        cmd.stdin(Stdio::null()).output().expect("run labbeam doctor")
    }

    /// Creates a user through the command line with `PASSWORD`.
    pub fn add_user(&self, username: &str, role: &str) {
        let out = self.cli(&["user", "add", username, "--role", role, "--password-stdin"], Some(PASSWORD));
        assert!(out.status.success(), "user add failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub async fn login_raw(&self, username: &str, password: &str) -> reqwest::Response {
        self.client()
            .post(self.url("/api/auth/login"))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("login request")
    }

    /// Logs in and returns the bearer token; panics unless it succeeds.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let r = self.login_raw(username, password).await;
        let status = r.status();
        let body: Value = r.json().await.expect("login body");
        assert_eq!(status, 200, "login {username}: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// A student account (created on first use) and its token.
    pub async fn as_role(&self, username: &str, role: &str) -> String {
        self.add_user(username, role);
        self.login(username, PASSWORD).await
    }

    /// The first admin, with the one-time password changed to `PASSWORD`; returns a token.
    pub async fn admin(&self) -> String {
        let otp = self.first_admin_password.clone().expect("this start printed a first admin password");
        let token = self.login("admin", &otp).await;
        let r = self
            .client()
            .post(self.url("/api/me/password"))
            .bearer_auth(&token)
            .json(&json!({ "current_password": otp, "new_password": PASSWORD }))
            .send()
            .await
            .expect("password change");
        assert_eq!(r.status(), 200, "admin password change");
        token
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let r = self.client().get(self.url(path)).bearer_auth(token).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The TURN secret's text (what `turn.key` holds): the HMAC key of TURN credentials.
    pub fn turn_secret_text(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("turn.key")).expect("turn.key").trim().to_string()
    }

    /// Prometheus text from `/metrics` (loopback needs no login).
    pub async fn metrics(&self) -> String {
        self.client().get(self.url("/metrics")).send().await.expect("metrics").text().await.expect("metrics text")
    }

    /// The value of one sample line of `/metrics` (`name{labels}`), 0 when absent.
    /// Polls `series` every 100 ms until it reads `want` or `limit` has passed; returns the
    /// last value read (for the caller's assertion).
    pub async fn metric_within(&self, series: &str, want: f64, limit: Duration) -> f64 {
        let deadline = Instant::now() + limit;
        loop {
            let value = self.metric(series).await;
            if value == want || Instant::now() >= deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0)
    }

    /// The JWT secret from the data directory, for forging tokens in tests.
    pub fn jwt_secret(&self) -> Vec<u8> {
        let text = std::fs::read_to_string(self.data_dir().join("jwt.key")).expect("jwt.key");
        STANDARD.decode(text.trim()).expect("base64 secret")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Three distinct free loopback ports: one for TCP (HTTPS), one free for both UDP and TCP
/// (STUN/TURN), one for TCP (TURN over TLS). They are held until all are found.
fn free_ports() -> [u16; 3] {
    let http = std::net::TcpListener::bind("127.0.0.1:0").expect("free TCP port");
    let tls = std::net::TcpListener::bind("127.0.0.1:0").expect("free TCP port");
    let turn = (0..100)
        .find_map(|_| {
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
            let port = udp.local_addr().ok()?.port();
            let tcp = std::net::TcpListener::bind(("127.0.0.1", port)).ok()?;
            Some((udp, tcp, port))
        })
        .expect("a port free for both UDP and TCP");
    let port = |l: &std::net::TcpListener| l.local_addr().expect("local address").port();
    [port(&http), turn.2, port(&tls)]
}

/// Builds an HS256 JWT by hand (header and claims as given) signed with `secret`.
pub fn forge_jwt(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let sig = ring::hmac::sign(&key, format!("{h}.{c}").as_bytes());
    format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

/// Claims of a token (no verification), to reuse its `jti` and `sub`.
pub fn jwt_claims(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("claims part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64")).expect("json")
}

/// Asserts the error body shape and returns its code.
pub fn error_code(body: &Value) -> String {
    let code = body["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error body: {body}"));
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {body}");
    code.to_string()
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A signed-in browser-like client: the session cookie, no redirects followed.
pub struct Browser<'a> {
    pub s: &'a Server,
    pub cookie: String,
}

impl<'a> Browser<'a> {
    pub async fn login(s: &'a Server, username: &str) -> Browser<'a> {
        Self::login_with(s, username, PASSWORD).await
    }

    pub async fn login_with(s: &'a Server, username: &str, password: &str) -> Browser<'a> {
        let r = s.login_raw(username, password).await;
        assert_eq!(r.status(), 200);
        let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
        Browser { s, cookie }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.s.client().get(self.s.url(path)).header("cookie", &self.cookie).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String, String) {
        let r = self.s.client().post(self.s.url(path)).header("cookie", &self.cookie).form(form).send().await.unwrap();
        let status = r.status().as_u16();
        let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        (status, location, r.text().await.unwrap())
    }

    /// The CSRF token embedded in a portal page.
    pub async fn csrf(&self) -> String {
        let (_, html) = self.get("/admin").await;
        let start = html.find("name=\"csrf\" value=\"").expect("csrf field") + 19;
        html[start..start + 40].to_string()
    }
}

/// How long `stream` took to be closed by the other end (EOF or an error), reading and
/// discarding whatever arrives; `None` if it is still open after `limit`.
pub async fn closed_within<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}
