//! The HTTP surface: error bodies for every kind of bad request, security headers, health,
//! metrics and the embedded web client.

#[path = "harness/mod.rs"]
mod harness;

use harness::{Server, error_code};
use serde_json::Value;

#[tokio::test]
async fn every_error_is_a_json_error_body() {
    let s = Server::start().await;
    let c = s.client();
    let token = s.as_role("kim", "student").await;
    let login = s.url("/api/auth/login");
    let check = |status: u16, code: &'static str| {
        move |(got, body): (u16, Value)| {
            assert_eq!(got, status, "{body}");
            assert_eq!(error_code(&body), code);
        }
    };
    async fn answer(r: reqwest::RequestBuilder) -> (u16, Value) {
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        (status, r.json().await.unwrap())
    }
    check(400, "invalid_json")(
        answer(c.post(&login).header("content-type", "application/json").body("{not json")).await,
    );
    check(400, "invalid_json")(answer(c.post(&login).json(&serde_json::json!({"username": 5}))).await);
    check(400, "invalid_json")(
        answer(c.post(&login).json(&serde_json::json!({"username": "a", "password": "b", "extra": 1}))).await,
    );
    check(400, "invalid_request")(
        answer(c.post(&login).json(&serde_json::json!({"username": "", "password": "b"}))).await,
    );
    check(415, "unsupported_media_type")(answer(c.post(&login).body("username=a")).await);
    let huge = format!("{{\"username\":\"{}\",\"password\":\"x\"}}", "a".repeat(100_000));
    check(413, "payload_too_large")(answer(c.post(&login).header("content-type", "application/json").body(huge)).await);
    check(404, "not_found")(answer(c.get(s.url("/api/does-not-exist")).bearer_auth(&token)).await);
    check(405, "method_not_allowed")(answer(c.delete(s.url("/api/me")).bearer_auth(&token)).await);
    check(401, "unauthenticated")(answer(c.get(s.url("/api/me"))).await);
    check(401, "invalid_token")(answer(c.get(s.url("/api/me")).bearer_auth("not.a.jwt")).await);
    check(403, "forbidden")(answer(c.get(s.url("/api/users")).bearer_auth(&token)).await);
    check(400, "invalid_request")(answer(c.get(s.url("/api/audit?limit=0")).bearer_auth(&s.admin().await)).await);
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let s = Server::start().await;
    let c = s.client();
    for path in ["/", "/api/me", "/healthz", "/nothing-here"] {
        let r = c.get(s.url(path)).send().await.unwrap();
        let h = r.headers();
        assert!(h["strict-transport-security"].to_str().unwrap().contains("max-age="), "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        for part in ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
    }
}

#[tokio::test]
async fn health_metrics_and_web_client_are_served() {
    let s = Server::start().await;
    let c = s.client();
    let r = c.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");

    let _ = s.login_raw("nobody", "wrong password").await;
    // The test client connects over loopback, which may scrape without a login.
    let text = c.get(s.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("labbeam_logins_total{result=\"failure\"} 1"), "{text}");
    assert!(text.contains("labbeam_http_requests_total"));

    let r = c.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let html = r.text().await.unwrap();
    assert!(html.contains("/app.js"), "{html}");
    let again = c.get(s.url("/")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    let js = c.get(s.url("/app.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
}

#[tokio::test]
async fn metrics_through_a_local_proxy_need_a_login_whatever_forwarding_header_it_sends() {
    let s = Server::start().await;
    let c = s.client();
    // A reverse proxy on this host connects over loopback; any of these headers says the
    // request came from elsewhere, so it is not a local scraper.
    let headers = [
        ("x-forwarded-for", "192.0.2.7"),
        ("forwarded", "for=192.0.2.7;proto=https"),
        ("x-real-ip", "192.0.2.7"),
        ("x-forwarded-host", "labbeam.example.edu"),
        ("x-forwarded-proto", "https"),
    ];
    for (name, value) in headers {
        let r = c.get(s.url("/metrics")).header(name, value).send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}");
        assert_eq!(error_code(&r.json().await.unwrap()), "unauthenticated", "{name}");
    }
    // With a session that has portal access it is served.
    let admin = s.admin().await;
    for (name, value) in headers {
        let r = c.get(s.url("/metrics")).header(name, value).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(r.status(), 200, "{name}");
    }
    // Without any of them, loopback still scrapes without a login.
    assert_eq!(c.get(s.url("/metrics")).send().await.unwrap().status(), 200);
}
