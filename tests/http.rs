//! The HTTP surface: error bodies for every kind of bad request, security headers, health,
//! metrics and the embedded web client.
// Test code: a failed expectation stops the test loudly (the workspace denies these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "harness/mod.rs"]
mod harness;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{Options, Server, closed_within, error_code};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

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

fn http_config(table: &str) -> Options {
    Options { config: Some(format!("[http]\n{table}\n")), ..Default::default() }
}

/// A TCP connection to the server from `source` (any loopback address: 127.0.0.0/8).
async fn tcp_from(s: &Server, source: [u8; 4]) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    socket.connect(SocketAddr::from(([127, 0, 0, 1], s.port))).await
}

/// A TLS connection from `source` that trusts the server's certificate.
async fn tls_from(s: &Server, source: [u8; 4]) -> std::io::Result<TlsStream<TcpStream>> {
    use rustls::pki_types::pem::PemObject;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(s.data_dir().join("tls").join("cert.pem"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.map_err(std::io::Error::other)?).map_err(std::io::Error::other)?;
    }
    let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let tcp = tcp_from(s, source).await?;
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await
}

/// One `GET` on an open connection; the status line and body of its answer.
async fn get_on<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, path: &str) -> (String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before the answer: {}", String::from_utf8_lossy(&data));
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse().ok())
                .expect("content-length");
            if body.len() >= length {
                return (head.lines().next().unwrap_or_default().to_string(), body.to_string());
            }
        }
    }
}

#[tokio::test]
async fn a_request_head_that_never_completes_is_closed_after_the_header_timeout() {
    let s = Server::start_with(http_config("header_timeout_secs = 2\nidle_timeout_secs = 60")).await;
    let mut tls = tls_from(&s, [127, 0, 0, 3]).await.unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.unwrap();
    // A byte every half second: never silent long enough to look idle, never a whole head.
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = loop {
        assert!(start.elapsed() < Duration::from_secs(8), "a dripping request head was still open after 8 s");
        if tls.write_all(b"x").await.is_err() || tls.flush().await.is_err() {
            break start.elapsed();
        }
        match tokio::time::timeout(Duration::from_millis(500), tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break start.elapsed(),
            _ => {}
        }
    };
    assert!(closed >= Duration::from_millis(1500), "closed after {closed:?}, before the timeout");

    // Half a head, then silence: closed as well.
    let mut tls = tls_from(&s, [127, 0, 0, 3]).await.unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: loc").await.unwrap();
    let t = closed_within(&mut tls, Duration::from_secs(8)).await.expect("half a request head still open after 8 s");
    assert!(t >= Duration::from_millis(1500), "closed after {t:?}");
}

#[tokio::test]
async fn a_connection_that_never_starts_tls_or_never_sends_a_request_is_closed() {
    let s = Server::start_with(http_config("header_timeout_secs = 2\nidle_timeout_secs = 60")).await;
    let mut tcp = tcp_from(&s, [127, 0, 0, 3]).await.unwrap();
    let t =
        closed_within(&mut tcp, Duration::from_secs(8)).await.expect("a silent TCP connection still open after 8 s");
    assert!(t >= Duration::from_millis(1500), "closed after {t:?}");
    // Half a TLS ClientHello (a record header announcing more than is sent).
    let mut tcp = tcp_from(&s, [127, 0, 0, 3]).await.unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
    assert!(closed_within(&mut tcp, Duration::from_secs(8)).await.is_some(), "a half handshake still open after 8 s");
    // A finished handshake and then nothing.
    let mut tls = tls_from(&s, [127, 0, 0, 3]).await.unwrap();
    let t =
        closed_within(&mut tls, Duration::from_secs(8)).await.expect("a silent TLS connection still open after 8 s");
    assert!(t >= Duration::from_millis(1500), "closed after {t:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let s = Server::start_with(http_config("header_timeout_secs = 60\nidle_timeout_secs = 2")).await;
    let mut tls = tls_from(&s, [127, 0, 0, 3]).await.unwrap();
    let (status, body) = get_on(&mut tls, "/healthz").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    // Kept alive for a second request...
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(get_on(&mut tls, "/healthz").await.0, "HTTP/1.1 200 OK");
    // ...and closed once idle.
    let t = closed_within(&mut tls, Duration::from_secs(8)).await.expect("an idle connection still open after 8 s");
    assert!(t >= Duration::from_millis(1500), "closed after {t:?}");
}

/// Reads one unmasked WebSocket frame from the server: (opcode, payload).
async fn ws_read<S: AsyncRead + Unpin>(stream: &mut S) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.unwrap();
    let length = match head[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            stream.read_exact(&mut l).await.unwrap();
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            stream.read_exact(&mut l).await.unwrap();
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; length];
    stream.read_exact(&mut payload).await.unwrap();
    (head[0] & 0x0f, payload)
}

/// Sends one short masked text frame, as a client must.
async fn ws_send_text<S: AsyncWrite + Unpin>(stream: &mut S, text: &str) {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | text.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).await.unwrap();
    stream.flush().await.unwrap();
}

#[tokio::test]
async fn an_upgraded_websocket_outlives_the_idle_and_header_timeouts() {
    let s = Server::start_with(http_config("header_timeout_secs = 2\nidle_timeout_secs = 2")).await;
    let mut tls = tls_from(&s, [127, 0, 0, 3]).await.unwrap();
    let upgrade = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\n\
                   Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\n\r\n";
    tls.write_all(upgrade.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (opcode, open) = ws_read(&mut tls).await;
    assert_eq!(opcode, 1);
    assert!(open.starts_with(b"0{"), "engine.io open packet: {}", String::from_utf8_lossy(&open));
    // engineioxide pings once at once, then every 25 s.
    let (_, ping) = tokio::time::timeout(Duration::from_secs(2), ws_read(&mut tls)).await.expect("the first ping");
    assert_eq!(ping, b"2");
    ws_send_text(&mut tls, "3").await;
    // Silent for longer than both timeouts (and shorter than the next ping).
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Still there: a Socket.IO connect without credentials gets its answer (a refusal).
    ws_send_text(&mut tls, "40").await;
    let (opcode, answer) = tokio::time::timeout(Duration::from_secs(5), ws_read(&mut tls)).await.expect("an answer");
    assert_eq!(opcode, 1);
    assert!(answer.starts_with(b"4"), "{}", String::from_utf8_lossy(&answer));
}

#[tokio::test]
async fn one_address_holds_at_most_max_connections_per_address() {
    // The harness's own address (127.0.0.1) is a trusted proxy, so it is not capped.
    let config = "trusted_proxies = [\"127.0.0.1/32\"]\n[http]\nmax_connections_per_address = 3\n";
    let s = Server::start_with(Options { config: Some(config.into()), ..Default::default() }).await;
    let refused = "labbeam_http_connections_refused_total{reason=\"per_address\"}";
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut tls = tls_from(&s, [127, 0, 0, 3]).await.unwrap();
        assert_eq!(get_on(&mut tls, "/healthz").await.0, "HTTP/1.1 200 OK");
        held.push(tls);
    }
    // The fourth from the same address is closed at once, before TLS.
    match tls_from(&s, [127, 0, 0, 3]).await {
        Err(_) => {}
        Ok(mut tls) => {
            assert!(closed_within(&mut tls, Duration::from_secs(2)).await.is_some(), "a fourth connection was served")
        }
    }
    assert_eq!(s.metric(refused).await, 1.0);
    // Another address is not affected.
    let mut other = tls_from(&s, [127, 0, 0, 4]).await.unwrap();
    assert_eq!(get_on(&mut other, "/healthz").await.0, "HTTP/1.1 200 OK");
    // Once one closes, the address may connect again.
    drop(held.pop());
    let mut again = None;
    for _ in 0..20 {
        if let Ok(mut tls) = tls_from(&s, [127, 0, 0, 3]).await
            && tokio::time::timeout(Duration::from_secs(2), tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
                .await
                .is_ok_and(|r| r.is_ok())
        {
            let mut first = [0u8; 12];
            if tokio::time::timeout(Duration::from_secs(2), tls.read_exact(&mut first)).await.is_ok_and(|r| r.is_ok()) {
                again = Some(first);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(&again.expect("a connection after one closed")[..], b"HTTP/1.1 200");
    assert!(s.metric(refused).await >= 1.0);
}
