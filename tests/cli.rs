//! The command line: user management, clear one-line errors for bad flags and bad
//! configuration, and a restart that keeps accounts and the certificate.
// Test code: a failed expectation stops the test loudly (the workspace denies these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "harness/mod.rs"]
mod harness;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

use harness::{Options, PASSWORD, Server, binary};

fn run(args: &[&str]) -> Output {
    Command::new(binary()).args(args).output().expect("run labbeam")
}

fn one_line_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure, got success: {}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "error is not one line: {err:?}");
    assert!(err.starts_with("labbeam: "), "{err}");
    err
}

#[tokio::test]
async fn user_add_list_passwd_disable_enable() {
    let s = Server::start().await;
    s.add_user("lena", "instructor");
    let out = s.cli(&["user", "add", "lena", "--role", "student", "--password-stdin"], Some(PASSWORD));
    assert!(one_line_error(&out).contains("already exists"));
    let out = s.cli(&["user", "add", "mo", "--role", "janitor", "--password-stdin"], Some(PASSWORD));
    assert!(one_line_error(&out).contains("unknown role"));
    let out = s.cli(&["user", "add", "mo", "--role", "student", "--password-stdin"], Some("short"));
    assert!(one_line_error(&out).contains("at least"));
    let out = s.cli(&["user", "add", "bad name", "--role", "student", "--password-stdin"], Some(PASSWORD));
    assert!(one_line_error(&out).contains("username"));

    // Without --password-stdin a one-time password is printed and must be changed.
    let out = s.cli(&["user", "add", "nora", "--role", "student", "--display-name", "Nora N."], None);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let otp = stdout.lines().find_map(|l| l.split("login): ").nth(1)).expect("otp printed").trim().to_string();
    let token = s.login("nora", &otp).await;
    assert_eq!(s.get("/api/me", &token).await.1["must_change_password"], true);

    let list = String::from_utf8_lossy(&s.cli(&["user", "list"], None).stdout).to_string();
    assert!(list.contains("lena") && list.contains("instructor") && list.contains("Nora N."), "{list}");

    let token = s.login("lena", PASSWORD).await;
    let out = s.cli(&["user", "passwd", "lena", "--password-stdin"], Some("a brand new passphrase"));
    assert!(out.status.success());
    assert_eq!(s.get("/api/me", &token).await.0, 401, "passwd ends sessions");
    s.login("lena", "a brand new passphrase").await;

    assert!(s.cli(&["user", "disable", "lena"], None).status.success());
    assert_eq!(s.login_raw("lena", "a brand new passphrase").await.status(), 401, "disabled: like a wrong password");
    assert!(s.cli(&["user", "enable", "lena"], None).status.success());
    s.login("lena", "a brand new passphrase").await;
    let out = s.cli(&["user", "disable", "nobody"], None);
    assert!(one_line_error(&out).contains("no user"));
    // The only admin cannot be disabled.
    let out = s.cli(&["user", "disable", "admin"], None);
    assert!(one_line_error(&out).contains("last active admin"));
}

#[test]
fn bad_flags_give_one_line_and_exit_2() {
    let out = run(&["serve", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line_error(&out).contains("--bogus"));
    let out = run(&["serve", "--http-listen", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2));
    one_line_error(&out);
    // A missing flag is named.
    let out = run(&["lab", "assign", "Lab A"]);
    assert_eq!(out.status.code(), Some(2));
    let e = one_line_error(&out);
    assert!(e.contains("not provided: <USERNAME>"), "{e}");
}

#[test]
fn bad_configuration_gives_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let config = dir.path().join("labbeam.toml");
    let cfg = config.to_str().unwrap();
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--config", cfg, "--data-dir", data, "--turn-listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        run(&args)
    };

    std::fs::write(&config, "http_listen = \"127.0.0.1:0\"\nfavourite_colour = \"blue\"\n").unwrap();
    let e = one_line_error(&serve(&[]));
    assert!(e.contains("favourite_colour") && e.contains("line 2"), "{e}");

    std::fs::write(&config, "http_listen = \"somewhere:port\"\n").unwrap();
    let e = one_line_error(&serve(&[]));
    assert!(e.contains("line 1"), "{e}");

    std::fs::write(&config, "[tls]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n").unwrap();
    let e = one_line_error(&serve(&["--http-listen", "127.0.0.1:0"]));
    assert!(e.contains("/nonexistent/cert.pem"), "{e}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    std::fs::write(&config, "").unwrap();
    let e = one_line_error(&serve(&["--http-listen", &addr]));
    assert!(e.contains("already in use") && e.contains(&addr), "{e}");

    let out = Command::new(binary())
        .args(["serve", "--config", cfg, "--data-dir", data])
        .env("LABBEAM_AUTH_SESSION_TTL_SECS", "forever")
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("LABBEAM_AUTH_SESSION_TTL_SECS"));

    let e = one_line_error(&run(&["serve", "--config", "/nonexistent/labbeam.toml"]));
    assert!(e.contains("/nonexistent/labbeam.toml"), "{e}");
}

#[tokio::test]
async fn restart_keeps_users_secrets_and_certificate() {
    let mut s = Server::start().await;
    let admin_otp = s.first_admin_password.clone().expect("first admin");
    s.add_user("olga", "student");
    let token = s.login("olga", PASSWORD).await;
    let fingerprint = s.fingerprint.clone();
    assert_eq!(fingerprint.len(), 95);
    assert_eq!(s.stop(), Some(0), "SIGTERM exits cleanly");
    s.restart().await;
    assert_eq!(s.fingerprint, fingerprint, "certificate reused");
    assert!(s.first_admin_password.is_none(), "no second admin is created");
    assert_eq!(s.get("/api/me", &token).await.0, 200, "sessions survive a restart");
    s.login("admin", &admin_otp).await;
    s.login("olga", PASSWORD).await;
}

#[tokio::test]
async fn doctor_reports_each_check() {
    let s = Server::start().await;
    let out = s.cli(&["doctor"], None);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("ok    configuration is valid"), "{text}");
    assert!(text.contains("database opens"), "{text}");
    assert!(text.contains("SHA-256"), "{text}");
    // What the TURN relay reaches, in words: nothing private until a lab says so.
    assert!(
        text.contains("turn.peer_policy: the TURN relay reaches") && text.contains("no private (campus) address"),
        "{text}"
    );
    assert!(s.cli(&["lab", "add", "Lab 1", "--cidr", "10.20.0.0/16"], None).status.success());
    let text = String::from_utf8_lossy(&s.cli(&["doctor"], None).stdout).to_string();
    assert!(text.contains("the labs' address ranges (10.20.0.0/16)"), "{text}");
}

/// Every file and folder under `root`: its bytes (none for a folder), mtime and mode.
fn snapshot(root: &std::path::Path) -> BTreeMap<PathBuf, (Option<Vec<u8>>, SystemTime, u32)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let bytes = if meta.is_dir() {
            todo.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            None
        } else {
            Some(std::fs::read(&path).unwrap())
        };
        out.insert(path, (bytes, meta.modified().unwrap(), meta.permissions().mode()));
    }
    out
}

/// The lines of `out`'s standard output that start with `status` and mention `text`.
fn lines_with(out: &Output, status: &str, text: &str) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(status) && l.contains(text))
        .map(str::to_string)
        .collect()
}

const NAMES_ABC: &str = "public_host = \"a.lab.test\"\n[tls]\nextra_names = [\"b.lab.test\", \"c.lab.test\"]\n";
/// The same names in another order and case.
const NAMES_CBA: &str = "public_host = \"a.lab.test\"\n[tls]\nextra_names = [\"C.Lab.Test\", \"b.lab.test\"]\n";

#[tokio::test]
async fn doctor_changes_nothing_in_the_data_dir() {
    let mut s = Server::start_with(Options { config: Some(NAMES_ABC.into()), ..Default::default() }).await;
    let fingerprint = s.fingerprint.clone();
    let data = s.data_dir();
    let other = tempfile::tempdir().unwrap();
    let cba = other.path().join("cba.toml");
    std::fs::write(&cba, NAMES_CBA).unwrap();
    let elsewhere = other.path().join("elsewhere.toml");
    std::fs::write(&elsewhere, "public_host = \"elsewhere.lab.test\"\n").unwrap();

    // While the server runs: its certificate and key are not touched, whatever names
    // doctor's configuration has.
    let tls = snapshot(&data.join("tls"));
    for config in [&cba, &elsewhere] {
        s.cli(&["doctor", "--config", config.to_str().unwrap()], None);
        assert_eq!(snapshot(&data.join("tls")), tls, "doctor with {} rewrote the certificate", config.display());
    }
    assert_eq!(s.stop(), Some(0));

    // Stopped: not one byte, mtime or mode changes, and nothing is created.
    let before = snapshot(&data);
    for args in [vec!["doctor"], vec!["doctor", "--config", cba.to_str().unwrap()]] {
        let out = s.cli(&args, None);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.contains(&fingerprint), "{args:?}: the certificate in use is reported: {text}");
        assert_eq!(snapshot(&data), before, "{args:?} changed the data dir: {text}");
    }
    let out = s.cli(&["doctor", "--config", elsewhere.to_str().unwrap()], None);
    assert_eq!(lines_with(&out, "note", "elsewhere.lab.test").len(), 1, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(snapshot(&data), before);
}

#[test]
fn doctor_creates_nothing_when_the_data_dir_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(&["doctor", "--data-dir", data.to_str().unwrap(), "--config", "/dev/null"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!data.exists(), "doctor created {}: {text}", data.display());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{text}");
    assert_eq!(lines_with(&out, "note", "does not exist").len(), 1, "{text}");
}

#[tokio::test]
async fn an_open_data_dir_fails_doctor_and_is_tightened_at_start() {
    let mut s = Server::start().await;
    assert_eq!(s.stop(), Some(0));
    let data = s.data_dir();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = s.cli(&["doctor"], None);
    let fails = lines_with(&out, "FAIL", "0755");
    assert_eq!(fails.len(), 1, "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!out.status.success());
    assert_eq!(mode(&data), 0o755, "doctor only reports");

    s.restart().await;
    assert_eq!(mode(&data), 0o700);
    let log = std::fs::read_to_string(s.log_path()).unwrap();
    assert!(log.lines().any(|l| l.contains("0755") && l.contains("0700")), "the log says so: {log}");
    let out = s.cli(&["doctor"], None);
    assert!(lines_with(&out, "FAIL", "data directory").is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// Runs `serve` on `data` with `config` until its banner shows the certificate's fingerprint.
fn serve_fingerprint(data: &std::path::Path, config: &std::path::Path) -> String {
    let mut child = Command::new(binary())
        .args(["serve", "--http-listen", "127.0.0.1:0", "--turn-listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let fingerprint = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.trim().strip_prefix("SHA-256:").map(|f| f.trim().to_string()));
    let _ = child.kill();
    let _ = child.wait();
    fingerprint.expect("banner with SHA-256")
}

#[test]
fn host_names_in_another_order_keep_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (abc, cba, other) = (dir.path().join("abc.toml"), dir.path().join("cba.toml"), dir.path().join("d.toml"));
    std::fs::write(&abc, NAMES_ABC).unwrap();
    std::fs::write(&cba, NAMES_CBA).unwrap();
    std::fs::write(&other, "public_host = \"d.lab.test\"\n").unwrap();
    let first = serve_fingerprint(&data, &abc);
    assert_eq!(serve_fingerprint(&data, &cba), first, "same names, another order and case");
    assert_ne!(serve_fingerprint(&data, &other), first, "other names make a new certificate");
}
