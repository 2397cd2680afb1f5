//! Accounts and sessions against the real binary: login outcomes, throttling (races, lock-out
//! per address, clients behind a trusted proxy), the memory bound of password checking,
//! logout and revocation, forged tokens, cookie flags, CSRF on cookie writes, password rules.
// Test code: a failed expectation stops the test loudly (the workspace denies these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "harness/mod.rs"]
mod harness;

use harness::{PASSWORD, Server, error_code, forge_jwt, jwt_claims, now};
use serde_json::{Value, json};

#[tokio::test]
async fn login_succeeds_and_reports_the_user() {
    let s = Server::start().await;
    s.add_user("alice", "student");
    let r = s.login_raw("alice", PASSWORD).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let user = &body["user"];
    assert_eq!(user["username"], "alice");
    assert_eq!(user["role"], "student");
    assert_eq!(user["permissions"], json!(["transfer.receive", "transfer.send"]));
    assert!(user["id"].as_i64().is_some());
    assert!(user["display_name"].is_string());
    let (status, me) = s.get("/api/me", body["token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(me["username"], "alice");
}

#[tokio::test]
async fn wrong_password_unknown_user_and_disabled_user_are_refused() {
    let s = Server::start().await;
    s.add_user("bob", "student");
    for (user, pw) in [("bob", "wrong password!"), ("nobody", PASSWORD)] {
        let r = s.login_raw(user, pw).await;
        assert_eq!(r.status(), 401);
        assert_eq!(error_code(&r.json().await.unwrap()), "invalid_credentials");
    }
    let out = s.cli(&["user", "disable", "bob"], None);
    assert!(out.status.success());
    let r = s.login_raw("bob", PASSWORD).await;
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(&r.json().await.unwrap()), "invalid_credentials");
    // Every attempt is in the audit log.
    let admin = s.admin().await;
    let (_, rows) = s.get("/api/audit?action=login.failure", &admin).await;
    let reasons: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| serde_json::from_str::<Value>(r["details"].as_str().unwrap()).unwrap()["reason"].to_string())
        .collect();
    for reason in ["wrong_password", "unknown_user", "disabled"] {
        assert!(reasons.iter().any(|r| r.contains(reason)), "{reason} missing in {reasons:?}");
    }
}

/// A control character in a user name is refused as bad input (PostgreSQL cannot even
/// store a NUL in the audit row of the failed attempt: this was a 500 there).
#[tokio::test]
async fn user_names_with_control_characters_are_refused() {
    let s = Server::start().await;
    s.add_user("bob", "student");
    for name in ["bob\0", "bo\u{1b}b", "b\nob"] {
        let r = s.login_raw(name, PASSWORD).await;
        assert_eq!(r.status(), 400, "{name:?}");
        assert_eq!(error_code(&r.json().await.unwrap()), "invalid_request");
    }
}

#[tokio::test]
async fn repeated_failures_are_throttled_with_retry_after() {
    let s = Server::start_with(harness::Options {
        config: Some("[auth]\nmax_failures_per_user = 3\nthrottle_window_secs = 120\n".into()),
        ..Default::default()
    })
    .await;
    s.add_user("carol", "student");
    for _ in 0..3 {
        assert_eq!(s.login_raw("carol", "not the password").await.status(), 401);
    }
    // Locked now, even with the right password.
    let r = s.login_raw("carol", PASSWORD).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry), "{retry}");
    assert_eq!(error_code(&r.json().await.unwrap()), "too_many_attempts");
    // Other accounts are not affected.
    s.add_user("dave", "student");
    assert_eq!(s.login_raw("dave", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn logout_revokes_the_token_at_once() {
    let s = Server::start().await;
    let token = s.as_role("erin", "student").await;
    let r = s.client().post(s.url("/api/auth/logout")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cleared = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (status, body) = s.get("/api/me", &token).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), "session_revoked");
}

#[tokio::test]
async fn forged_expired_and_alg_none_tokens_are_refused() {
    let s = Server::start().await;
    let token = s.as_role("frank", "student").await;
    let claims = jwt_claims(&token);
    let secret = s.jwt_secret();
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});

    // Same session, signed with the right key but expired.
    let mut expired = claims.clone();
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let (status, body) = s.get("/api/me", &forge_jwt(&hs256, &expired, &secret)).await;
    assert_eq!((status, error_code(&body).as_str()), (401, "session_expired"));

    // Right claims, wrong key.
    let (status, body) = s.get("/api/me", &forge_jwt(&hs256, &claims, b"some other key of 32 bytes......")).await;
    assert_eq!((status, error_code(&body).as_str()), (401, "invalid_token"));

    // Tampered claims (another user id) with the original signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut other = claims.clone();
    other["sub"] = json!("1");
    let forged_body = forge_jwt(&hs256, &other, b"x").split('.').nth(1).unwrap().to_string();
    let tampered = format!("{}.{}.{}", parts[0], forged_body, parts[2]);
    let (status, body) = s.get("/api/me", &tampered).await;
    assert_eq!((status, error_code(&body).as_str()), (401, "invalid_token"));

    // alg: none with no signature.
    let none = forge_jwt(&json!({"alg": "none", "typ": "JWT"}), &claims, b"");
    let unsigned = format!("{}.", none.rsplit_once('.').unwrap().0);
    let (status, body) = s.get("/api/me", &unsigned).await;
    assert_eq!((status, error_code(&body).as_str()), (401, "invalid_token"));

    // A valid signature on a session id that does not exist.
    let mut unknown = claims.clone();
    unknown["jti"] = json!("00000000000000000000000000000000");
    let (status, _) = s.get("/api/me", &forge_jwt(&hs256, &unknown, &secret)).await;
    assert_eq!(status, 401);

    // The genuine token still works.
    assert_eq!(s.get("/api/me", &token).await.0, 200);
}

#[tokio::test]
async fn session_cookie_is_http_only_secure_strict_and_authenticates() {
    let s = Server::start().await;
    s.add_user("gina", "student");
    let r = s.login_raw("gina", PASSWORD).await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_string();
    assert!(pair.starts_with("labbeam_session="));
    let r = s.client().get(s.url("/api/me")).header("cookie", pair).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn disabling_a_user_ends_their_live_sessions() {
    let s = Server::start().await;
    let token = s.as_role("hank", "student").await;
    assert_eq!(s.get("/api/me", &token).await.0, 200);
    assert!(s.cli(&["user", "disable", "hank"], None).status.success());
    let (status, body) = s.get("/api/me", &token).await;
    assert_eq!((status, error_code(&body).as_str()), (403, "account_disabled"));
}

#[tokio::test]
async fn first_admin_must_change_the_one_time_password() {
    let s = Server::start().await;
    let otp = s.first_admin_password.clone().expect("first start prints the admin password");
    let token = s.login("admin", &otp).await;
    let (status, me) = s.get("/api/me", &token).await;
    assert_eq!(status, 200);
    assert_eq!(me["must_change_password"], true);
    // Anything else is refused until the password is changed.
    let (status, body) = s.get("/api/users", &token).await;
    assert_eq!((status, error_code(&body).as_str()), (403, "password_change_required"));
    let change = |current: &str, new: &str| {
        s.client()
            .post(s.url("/api/me/password"))
            .bearer_auth(&token)
            .json(&json!({ "current_password": current, "new_password": new }))
            .send()
    };
    let r = change("wrong current password", PASSWORD).await.unwrap();
    assert_eq!(r.status(), 401);
    let r = change(&otp, "short").await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r.json().await.unwrap()), "weak_password");
    assert_eq!(change(&otp, PASSWORD).await.unwrap().status(), 200);
    let (status, users) = s.get("/api/users", &token).await;
    assert_eq!(status, 200);
    assert_eq!(users[0]["username"], "admin");
    assert_eq!(users[0]["must_change_password"], false);
    // The old password no longer works; the new one does.
    assert_eq!(s.login_raw("admin", &otp).await.status(), 401);
    s.login("admin", PASSWORD).await;
}

#[tokio::test]
async fn permissions_decide_access() {
    let s = Server::start().await;
    let admin = s.admin().await;
    let student = s.as_role("ivy", "student").await;
    let instructor = s.as_role("jack", "instructor").await;
    let (status, body) = s.get("/api/users", &student).await;
    assert_eq!((status, error_code(&body).as_str()), (403, "forbidden"));
    assert_eq!(s.get("/api/users", &instructor).await.0, 403);
    assert_eq!(s.get("/api/users", &admin).await.0, 200);
    // Instructors see audit rows of their own actions only; students none.
    assert_eq!(s.get("/api/audit", &student).await.0, 403);
    let (status, rows) = s.get("/api/audit", &instructor).await;
    assert_eq!(status, 200);
    let rows = rows.as_array().unwrap();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["actor_username"] == "jack"), "{rows:?}");
    let (_, all) = s.get("/api/audit", &admin).await;
    assert!(all.as_array().unwrap().iter().any(|r| r["actor_username"] == "ivy"));
}

// ---------------------------------------------------------------------------------------
// Security round (issue 14): throttling races, memory, client addresses, password rules,
// lock-out, disabled accounts, CSRF on cookie-authenticated writes.

/// A config file that believes `X-Forwarded-For` from the harness's own loopback client.
const BEHIND_PROXY: &str = "trusted_proxies = [\"127.0.0.1/32\"]\n";

/// A login as if a trusted proxy forwarded it from `from`.
async fn login_from(s: &Server, from: &str, username: &str, password: &str) -> reqwest::Response {
    s.client()
        .post(s.url("/api/auth/login"))
        .header("x-forwarded-for", from)
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .expect("login request")
}

/// `(reason, client_addr)` of every `login.failure` audit row, newest first.
async fn login_failures(s: &Server, admin: &str) -> Vec<(String, String)> {
    let (status, rows) = s.get("/api/audit?action=login.failure&limit=1000", admin).await;
    assert_eq!(status, 200, "{rows}");
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let details: Value = serde_json::from_str(r["details"].as_str().unwrap()).unwrap();
            (details["reason"].as_str().unwrap().to_string(), r["client_addr"].as_str().unwrap().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_passwords_are_counted_before_they_are_checked() {
    let s = Server::start().await;
    s.add_user("olga", "student");
    let c = s.client();
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let (c, url) = (c.clone(), s.url("/api/auth/login"));
            tokio::spawn(async move {
                let body = json!({ "username": "olga", "password": format!("wrong password {i}") });
                let r = c.post(url).json(&body).send().await.unwrap();
                let status = r.status().as_u16();
                (status, error_code(&r.json().await.unwrap()))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let checked = answers.iter().filter(|a| **a == (401, "invalid_credentials".to_string())).count();
    let throttled = answers.iter().filter(|a| **a == (429, "too_many_attempts".to_string())).count();
    assert!(checked <= 5, "{checked} wrong passwords were checked (limit 5): {answers:?}");
    assert_eq!(checked + throttled, 60, "{answers:?}");
    // The audit says the same: at most 5 argon2 verifications ran.
    let admin = s.admin().await;
    let reasons = login_failures(&s, &admin).await;
    let verified = reasons.iter().filter(|(r, _)| r == "wrong_password").count();
    assert!(verified <= 5, "{verified} verifications: {reasons:?}");
    assert_eq!(reasons.iter().filter(|(r, _)| r == "throttled").count(), throttled);
}

/// The `labbeam serve` process of this test's server (found by its data directory).
fn server_pid(s: &Server) -> u32 {
    let dir = s.data_dir().to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.iter().any(|a| a == "serve") && args.contains(&dir) {
            return pid;
        }
    }
    panic!("no labbeam serve process for {dir}");
}

/// A `/proc/<pid>/status` figure in KiB (`VmRSS`, `VmHWM`).
fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Concurrent argon2 verifications are capped at min(available cores, 4), so 200 anonymous
/// logins at once cannot raise the server's memory by more than that many argon2 buffers
/// (19 MiB each, OWASP parameters) plus a fixed slack for the connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_cannot_exhaust_memory() {
    // The per-address limit is lifted so that every request reaches the password check.
    let s = Server::start_with(harness::Options {
        config: Some("[auth]\nmax_failures_per_address = 100000\n".into()),
        ..Default::default()
    })
    .await;
    let pid = server_pid(&s);
    // One unknown-user login first: the decoy hash is made once, at the first use.
    assert_eq!(s.login_raw("warm-up", PASSWORD).await.status(), 401);
    let idle_kib = proc_kib(pid, "VmHWM");
    let slots = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(4) as u64;
    const ARGON2_KIB: u64 = 19 * 1024;
    const SLACK_KIB: u64 = 48 * 1024;
    let bound_kib = idle_kib + slots * ARGON2_KIB + SLACK_KIB;

    let c = s.client();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (c, url) = (c.clone(), s.url("/api/auth/login"));
            tokio::spawn(async move {
                let body = json!({ "username": format!("nobody-{i}"), "password": PASSWORD });
                let r = c.post(url).json(&body).send().await.unwrap();
                let status = r.status().as_u16();
                let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                (status, retry, error_code(&r.json().await.unwrap()))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let peak_kib = proc_kib(pid, "VmHWM");
    eprintln!(
        "argon2 slots {slots}; idle {idle_kib} KiB; peak under 200 concurrent logins {peak_kib} KiB; bound {bound_kib} KiB; \
         401: {}, 503: {}",
        answers.iter().filter(|a| a.0 == 401).count(),
        answers.iter().filter(|a| a.0 == 503).count()
    );
    for (status, retry, code) in &answers {
        match status {
            401 => assert_eq!(code, "invalid_credentials"),
            503 => {
                assert_eq!(code, "busy");
                assert!(retry.is_some(), "503 without Retry-After");
            }
            other => panic!("unexpected {other} {code}"),
        }
    }
    assert!(peak_kib <= bound_kib, "peak RSS {peak_kib} KiB above the bound {bound_kib} KiB");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_address_is_throttled_and_audited() {
    let s = Server::start_with(harness::Options { config: Some(BEHIND_PROXY.into()), ..Default::default() }).await;
    s.add_user("ana", "student");
    // 30 failures (the per-address limit) from one client, each against another name.
    for i in 0..30 {
        assert_eq!(login_from(&s, "10.9.9.9", &format!("ghost{i}"), "not the password").await.status(), 401);
    }
    assert_eq!(login_from(&s, "10.9.9.9", "ana", PASSWORD).await.status(), 429, "that client is locked");
    // Another client behind the same proxy is not.
    let r = login_from(&s, "10.9.9.8", "ana", PASSWORD).await;
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let admin = s.admin().await;
    let failures = login_failures(&s, &admin).await;
    assert!(failures.iter().any(|(r, a)| r == "unknown_user" && a == "10.9.9.9"), "{failures:?}");
    assert!(failures.iter().all(|(_, a)| a != "127.0.0.1"), "{failures:?}");
    let (_, rows) = s.get("/api/audit?action=login.success", &admin).await;
    assert!(rows.as_array().unwrap().iter().any(|r| r["actor_username"] == "ana" && r["client_addr"] == "10.9.9.8"));
    // Logout (bearer) is audited with the client address too.
    let r = s.client().post(s.url("/api/auth/logout")).bearer_auth(&token).header("x-forwarded-for", "10.9.9.7");
    assert_eq!(r.send().await.unwrap().status(), 200);
    let (_, rows) = s.get("/api/audit?action=logout", &admin).await;
    assert!(rows.as_array().unwrap().iter().any(|r| r["client_addr"] == "10.9.9.7"), "{rows}");

    // Without a trusted proxy the header is ignored: the connection's address counts.
    let plain = Server::start().await;
    plain.add_user("ana", "student");
    assert_eq!(login_from(&plain, "10.9.9.9", "ana", "not the password").await.status(), 401);
    let admin = plain.admin().await;
    let failures = login_failures(&plain, &admin).await;
    assert_eq!(failures, vec![("wrong_password".to_string(), "127.0.0.1".to_string())]);
}

#[tokio::test]
async fn the_portal_login_form_records_the_forwarded_client_address() {
    let s = Server::start_with(harness::Options { config: Some(BEHIND_PROXY.into()), ..Default::default() }).await;
    let admin = s.admin().await;
    let c = s.client();
    let r = c.get(s.url("/admin/login")).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let html = r.text().await.unwrap();
    let start = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = html[start..start + 40].to_string();
    let form = [("csrf", csrf.as_str()), ("next", "/admin"), ("username", "admin"), ("password", "nope nope nope")];
    let r = c.post(s.url("/admin/login")).header("cookie", &cookie).header("x-forwarded-for", "10.9.9.6").form(&form);
    assert_eq!(r.send().await.unwrap().status(), 200);
    assert_eq!(login_failures(&s, &admin).await, vec![("wrong_password".to_string(), "10.9.9.6".to_string())]);
}

#[tokio::test]
async fn a_lock_from_one_address_does_not_lock_the_account_for_another() {
    let s = Server::start_with(harness::Options { config: Some(BEHIND_PROXY.into()), ..Default::default() }).await;
    s.add_user("uma", "student");
    for _ in 0..8 {
        let r = login_from(&s, "10.9.9.9", "uma", "not the password").await;
        assert!([401, 429].contains(&r.status().as_u16()));
    }
    // The guessing address stays locked, even with the right password ...
    let r = login_from(&s, "10.9.9.9", "uma", PASSWORD).await;
    assert_eq!(r.status(), 429);
    assert_eq!(error_code(&r.json().await.unwrap()), "too_many_attempts");
    // ... but the owner, from an address that has not failed, signs in.
    let r = login_from(&s, "10.9.9.8", "uma", PASSWORD).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn a_disabled_account_answers_like_a_wrong_password() {
    let s = Server::start().await;
    s.add_user("vera", "student");
    assert!(s.cli(&["user", "disable", "vera"], None).status.success());
    for pw in [PASSWORD, "not the password"] {
        let r = s.login_raw("vera", pw).await;
        assert_eq!(r.status(), 401);
        assert_eq!(error_code(&r.json().await.unwrap()), "invalid_credentials");
    }
    let admin = s.admin().await;
    let reasons: Vec<String> = login_failures(&s, &admin).await.into_iter().map(|(r, _)| r).collect();
    assert_eq!(reasons, vec!["wrong_password", "disabled"]);
}

#[tokio::test]
async fn reused_and_common_passwords_are_refused() {
    let s = Server::start().await;
    let otp = s.first_admin_password.clone().unwrap();
    let token = s.login("admin", &otp).await;
    for new in [otp.as_str(), "1234567890", "password12"] {
        let r = s
            .client()
            .post(s.url("/api/me/password"))
            .bearer_auth(&token)
            .json(&json!({ "current_password": otp, "new_password": new }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{new}");
        assert_eq!(error_code(&r.json().await.unwrap()), "weak_password", "{new}");
    }
    // The command line applies the same rules.
    s.add_user("walt", "student");
    for new in ["1234567890", "password12"] {
        let out = s.cli(&["user", "passwd", "walt", "--password-stdin"], Some(new));
        assert!(!out.status.success(), "{new} accepted by the command line");
    }
    s.login("walt", PASSWORD).await;
}

#[tokio::test]
async fn cookie_authenticated_writes_need_the_csrf_header() {
    let s = Server::start().await;
    s.add_user("xena", "student");
    let r = s.login_raw("xena", PASSWORD).await;
    let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let c = s.client();
    // A cross-site form can send the cookie, but not a custom header.
    let r = c.post(s.url("/api/auth/logout")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(&r.json().await.unwrap()), "csrf_required");
    let r = c
        .post(s.url("/api/me/password"))
        .header("cookie", &cookie)
        .json(&json!({ "current_password": PASSWORD, "new_password": "another long passphrase" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Reads need no header, and the session is still live.
    assert_eq!(c.get(s.url("/api/me")).header("cookie", &cookie).send().await.unwrap().status(), 200);
    let r = c.post(s.url("/api/auth/logout")).header("cookie", &cookie).header("x-labbeam-csrf", "1").send();
    assert_eq!(r.await.unwrap().status(), 200);
    assert_eq!(c.get(s.url("/api/me")).header("cookie", &cookie).send().await.unwrap().status(), 401);
}
