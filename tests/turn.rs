//! The STUN/TURN relay against the real binary: ICE server credentials, relaying over UDP,
//! TCP and TLS with the webrtc-rs `turn` client, and every refusal (credentials, peer
//! filter, quota) with its counter.
// Test code: a failed expectation stops the test loudly (the workspace denies these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "harness/mod.rs"]
mod harness;
#[path = "harness/turn_client.rs"]
mod turn_client;

use std::net::SocketAddr;
use std::time::Duration;

use harness::{Browser, Options, Server, closed_within, error_code as api_error_code, now};
use stun::agent::TransactionId;
use stun::attributes::{ATTR_NONCE, ATTR_REALM};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use turn_client::*;
use util::Conn;

/// The log without terminal colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn with_config(text: &str) -> Options {
    Options { config: Some(text.to_string()), ..Default::default() }
}

#[tokio::test]
async fn ice_servers_follow_the_contract() {
    let s = Server::start().await;
    assert!(s.turn_port != 0 && s.turns_port != 0, "TURN ports in the banner");
    let (status, body) = s.get("/api/ice-servers", "").await;
    assert_eq!(status, 401);
    assert_eq!(api_error_code(&body), "unauthenticated");

    let token = s.as_role("kim", "student").await;
    let me = s.get("/api/me", &token).await.1;
    let r = s.client().get(s.url("/api/ice-servers")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.unwrap();
    let (p, t) = (s.turn_port, s.turns_port);
    assert_eq!(body["iceServers"][0]["urls"], serde_json::json!([format!("stun:localhost:{p}")]));
    assert_eq!(
        body["iceServers"][1]["urls"],
        serde_json::json!([
            format!("turn:localhost:{p}?transport=udp"),
            format!("turn:localhost:{p}?transport=tcp"),
            format!("turns:localhost:{t}?transport=tcp"),
        ])
    );
    assert_eq!(body["ttl"], 3600);
    let cred = credential_of(&body);
    // <expiry>:<user id>:<tag of the session that fetched it>
    let parts: Vec<&str> = cred.username.split(':').collect();
    let [expiry, user, tag] = parts[..] else { panic!("username {:?}", cred.username) };
    assert_eq!(user, me["id"].to_string());
    assert!(tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()), "{tag}");
    let expiry: i64 = expiry.parse().unwrap();
    assert!((expiry - now() - 3600).abs() <= 5, "{expiry}");
    assert_eq!(cred.password, rest_password(&s.turn_secret_text(), &cred.username));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(s.data_dir().join("turn.key")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn relays_between_two_allocations_over_udp() {
    let s = Server::start().await;
    let token = s.as_role("kim", "student").await;
    let cred = credential(&s, &token).await;
    let a = client(&s, Via::Udp, &cred).await;
    let b = client(&s, Via::Udp, &cred).await;
    let ra = a.allocate().await.expect("allocate a");
    let rb = b.allocate().await.expect("allocate b");
    assert_eq!(ra.local_addr().unwrap().ip().to_string(), "127.0.0.1");
    let got = relay_roundtrip(&ra, &rb, b"through the relay").await;
    assert_eq!(got, b"through the relay");
    // Also the other way, and a datagram of a typical WebRTC size.
    let big = vec![0x5au8; 1200];
    assert_eq!(relay_roundtrip(&rb, &ra, &big).await, big);
    assert_eq!(s.metric("labbeam_turn_allocations_active").await, 2.0);
    assert!(s.metric("labbeam_turn_relayed_bytes_total{direction=\"to_peer\"}").await >= 1200.0 + 17.0);
    assert!(s.metric("labbeam_turn_relayed_packets_total{direction=\"to_client\"}").await >= 2.0);
    assert_eq!(s.metric("labbeam_turn_allocations_total{transport=\"udp\"}").await, 2.0);
    drop(ra);
    a.close().await.unwrap();
}

#[tokio::test]
async fn relays_over_tcp_and_tls_and_stream_allocations_end_with_their_connection() {
    let s = Server::start().await;
    let token = s.as_role("kim", "student").await;
    let cred = credential(&s, &token).await;
    let a = client(&s, Via::Tcp, &cred).await;
    let b = client(&s, Via::Tls, &cred).await;
    let ra = a.allocate().await.expect("allocate over TCP");
    let rb = b.allocate().await.expect("allocate over TLS");
    assert_eq!(relay_roundtrip(&ra, &rb, b"tcp to tls").await, b"tcp to tls");
    assert_eq!(relay_roundtrip(&rb, &ra, b"tls to tcp").await, b"tls to tcp");
    assert_eq!(s.metric("labbeam_turn_allocations_total{transport=\"tcp\"}").await, 1.0);
    assert_eq!(s.metric("labbeam_turn_allocations_total{transport=\"tls\"}").await, 1.0);
    assert_eq!(s.metric("labbeam_turn_allocations_active").await, 2.0);
    // Closing the connections (without deallocating) ends the allocations.
    a.close().await.unwrap();
    b.close().await.unwrap();
    drop((a, b, ra, rb));
    let active = s.metric_within("labbeam_turn_allocations_active", 0.0, Duration::from_millis(5000)).await;
    assert_eq!(active, 0.0, "allocations of closed TCP/TLS connections");
}

#[tokio::test]
async fn missing_wrong_expired_and_unknown_credentials_are_refused_with_401() {
    let s = Server::start().await;
    let token = s.as_role("kim", "student").await;
    let good = credential(&s, &token).await;
    let server = SocketAddr::from(([127, 0, 0, 1], s.turn_port));
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // No credentials: a challenge with realm and nonce.
    let challenge = stun_exchange(&socket, server, &allocate_request(TransactionId::new(), None)).await;
    assert_eq!(error_code(&challenge), Some(401));
    let realm = text_attr(&challenge, ATTR_REALM).expect("REALM");
    let nonce = text_attr(&challenge, ATTR_NONCE).expect("NONCE");
    assert_eq!(realm, "labbeam");

    let secret = s.turn_secret_text();
    let user_id = good.username.split_once(':').unwrap().1.to_string();
    let expired = format!("{}:{user_id}", now() - 10);
    let unknown = format!("{}:99999", now() + 600);
    let system = format!("{}:0", now() + 600);
    let cases = [
        ("wrong HMAC", good.username.clone(), "bm90IHRoZSBwYXNzd29yZA==".to_string()),
        ("expired", expired.clone(), rest_password(&secret, &expired)),
        ("unknown user", unknown.clone(), rest_password(&secret, &unknown)),
        ("reserved user 0", system.clone(), rest_password(&secret, &system)),
        ("malformed", "kim".to_string(), rest_password(&secret, "kim")),
    ];
    for (what, user, pass) in &cases {
        let raw = allocate_request(TransactionId::new(), Some((user, pass, &realm, &nonce)));
        let answer = stun_exchange(&socket, server, &raw).await;
        assert_eq!(error_code(&answer), Some(401), "{what}");
        assert!(text_attr(&answer, ATTR_NONCE).is_some(), "{what}: 401 carries a nonce");
    }
    // A nonce the server never gave: 438 with a good one.
    let raw = allocate_request(TransactionId::new(), Some((&good.username, &good.password, &realm, "made-up")));
    assert_eq!(error_code(&stun_exchange(&socket, server, &raw).await), Some(438));

    // The Rust client with a wrong password fails, with the right one succeeds.
    let bad = Credential { username: good.username.clone(), password: "wrong".into() };
    let err = client(&s, Via::Udp, &bad).await.allocate().await.err().expect("refused").to_string();
    assert!(err.contains("401"), "{err}");
    client(&s, Via::Udp, &good).await.allocate().await.expect("good credential works");

    assert!(s.metric("labbeam_turn_auth_failures_total{reason=\"bad_integrity\"}").await >= 2.0);
    assert_eq!(s.metric("labbeam_turn_auth_failures_total{reason=\"expired\"}").await, 1.0);
    assert_eq!(s.metric("labbeam_turn_auth_failures_total{reason=\"unknown_user\"}").await, 2.0);
    assert_eq!(s.metric("labbeam_turn_auth_failures_total{reason=\"malformed\"}").await, 1.0);
}

#[tokio::test]
async fn a_retransmitted_allocate_gets_the_original_answer() {
    let s = Server::start().await;
    let token = s.as_role("kim", "student").await;
    let cred = credential(&s, &token).await;
    let server = SocketAddr::from(([127, 0, 0, 1], s.turn_port));
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let challenge = stun_exchange(&socket, server, &allocate_request(TransactionId::new(), None)).await;
    let (realm, nonce) = (text_attr(&challenge, ATTR_REALM).unwrap(), text_attr(&challenge, ATTR_NONCE).unwrap());
    let raw = allocate_request(TransactionId::new(), Some((&cred.username, &cred.password, &realm, &nonce)));
    let first = stun_exchange(&socket, server, &raw).await;
    assert_eq!(error_code(&first), None);
    let again = stun_exchange(&socket, server, &raw).await;
    assert_eq!(again.raw, first.raw, "same transaction, same answer");
    // A new transaction for the same 5-tuple is a real mismatch.
    let other = allocate_request(TransactionId::new(), Some((&cred.username, &cred.password, &realm, &nonce)));
    assert_eq!(error_code(&stun_exchange(&socket, server, &other).await), Some(437));
    assert_eq!(s.metric("labbeam_turn_allocations_active").await, 1.0);
}

#[tokio::test]
async fn relay_to_loopback_and_to_the_appliances_own_https_port_is_refused() {
    let s = Server::start().await;
    let token = s.as_role("kim", "student").await;
    let cred = credential(&s, &token).await;
    let a = client(&s, Via::Udp, &cred).await;
    let relay = a.allocate().await.expect("allocate");
    let peers: [SocketAddr; 4] = [
        "127.0.0.1:9".parse().unwrap(),
        SocketAddr::from(([127, 0, 0, 1], s.port)),
        format!("[::ffff:127.0.0.1]:{}", s.port).parse().unwrap(),
        "169.254.169.254:80".parse().unwrap(),
    ];
    for peer in peers {
        let err = relay.send_to(b"knock knock", peer).await.err().unwrap_or_else(|| panic!("{peer} accepted"));
        assert!(err.to_string().contains("403"), "{peer}: {err}");
    }
    assert!(s.metric("labbeam_turn_peer_refusals_total{reason=\"loopback\"}").await >= 3.0);
    assert_eq!(s.metric("labbeam_turn_peer_refusals_total{reason=\"link_local\"}").await, 1.0);
    let log = strip_ansi(&std::fs::read_to_string(s.log_path()).unwrap());
    let user_id = cred.username.split(':').nth(1).unwrap();
    assert!(log.contains("peer refused") && log.contains(&format!("user_id={user_id}")), "{log}");
}

#[tokio::test]
async fn allocations_over_the_user_quota_get_486_and_a_slot_frees_on_close() {
    let s = Server::start_with(with_config("[turn]\nmax_allocations_per_user = 2\n")).await;
    let token = s.as_role("kim", "student").await;
    let cred = credential(&s, &token).await;
    let a = client(&s, Via::Udp, &cred).await;
    let b = client(&s, Via::Udp, &cred).await;
    let c = client(&s, Via::Udp, &cred).await;
    let ra = a.allocate().await.expect("first");
    let _rb = b.allocate().await.expect("second");
    let err = c.allocate().await.err().expect("third refused").to_string();
    assert!(err.contains("486"), "{err}");
    assert_eq!(s.metric("labbeam_turn_quota_refusals_total{reason=\"user\"}").await, 1.0);
    // Another user still has their own quota.
    let other = credential(&s, &s.as_role("lee", "student").await).await;
    client(&s, Via::Udp, &other).await.allocate().await.expect("another user's allocation");
    // Deallocating gives the slot back.
    ra.close().await.unwrap();
    let d = client(&s, Via::Udp, &cred).await;
    let mut ok = false;
    for _ in 0..20 {
        if d.allocate().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "a freed slot is usable again");
}

#[tokio::test]
async fn a_disabled_user_is_refused_and_loses_open_allocations() {
    let s = Server::start().await;
    let token = s.as_role("kim", "student").await;
    let cred = credential(&s, &token).await;
    let a = client(&s, Via::Udp, &cred).await;
    let _ra = a.allocate().await.expect("allocate");
    assert_eq!(s.metric("labbeam_turn_allocations_active").await, 1.0);
    let out = s.cli(&["user", "disable", "kim"], None);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let active = s.metric_within("labbeam_turn_allocations_active", 0.0, Duration::from_millis(10000)).await;
    assert_eq!(active, 0.0, "the disabled user's allocation was closed");
    let err = client(&s, Via::Udp, &cred).await.allocate().await.err().expect("refused").to_string();
    assert!(err.contains("401"), "{err}");
    assert!(s.metric("labbeam_turn_auth_failures_total{reason=\"disabled\"}").await >= 1.0);
}

#[tokio::test]
async fn a_role_that_may_no_longer_send_or_receive_loses_its_allocations_at_once() {
    let s = Server::start().await;
    s.admin().await;
    let admin = Browser::login(&s, "admin").await;
    let token = s.as_role("kim", "student").await;
    let cred = credential(&s, &token).await;
    let a = client(&s, Via::Udp, &cred).await;
    let _ra = a.allocate().await.expect("allocate");
    assert_eq!(s.metric("labbeam_turn_allocations_active").await, 1.0);
    // The student role (built-in, id 3) keeps none of the permissions that need the relay.
    let csrf = admin.csrf().await;
    let (status, _, body) = admin.post("/admin/roles/3", &[("csrf", csrf.as_str())]).await;
    assert_eq!(status, 303, "{body}");
    let active = s.metric_within("labbeam_turn_allocations_active", 0.0, Duration::from_millis(3000)).await;
    assert_eq!(active, 0.0, "the allocation was closed within 3 s, not at the next 5 s refresh");
    let err = client(&s, Via::Udp, &cred).await.allocate().await.err().expect("refused").to_string();
    assert!(err.contains("401"), "{err}");
    // And no new credential is handed out.
    let (status, body) = s.get("/api/ice-servers", &token).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(api_error_code(&body), "forbidden");
}

#[tokio::test]
async fn a_credential_ends_with_the_session_that_fetched_it() {
    let s = Server::start().await;
    s.add_user("kim", "student");
    let (first, second) = (s.login("kim", harness::PASSWORD).await, s.login("kim", harness::PASSWORD).await);
    let (cred1, cred2) = (credential(&s, &first).await, credential(&s, &second).await);
    assert_eq!(cred1.username.split(':').count(), 3, "bound to its session: {}", cred1.username);
    let (a, b) = (client(&s, Via::Udp, &cred1).await, client(&s, Via::Udp, &cred2).await);
    let (_ra, _rb) = (a.allocate().await.expect("first"), b.allocate().await.expect("second"));
    assert_eq!(s.metric("labbeam_turn_allocations_active").await, 2.0);
    let r = s.client().post(s.url("/api/auth/logout")).bearer_auth(&first).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let active = s.metric_within("labbeam_turn_allocations_active", 1.0, Duration::from_millis(3000)).await;
    assert_eq!(active, 1.0, "the logged-out session's allocation closed within 3 s; the other session's stays");
    let err = client(&s, Via::Udp, &cred1).await.allocate().await.err().expect("refused").to_string();
    assert!(err.contains("401"), "{err}");
    assert!(s.metric("labbeam_turn_auth_failures_total{reason=\"session_ended\"}").await >= 1.0);
    client(&s, Via::Tcp, &cred2).await.allocate().await.expect("the other session's credential still works");
}

#[tokio::test]
async fn without_labs_no_private_peer_is_reachable() {
    // Refused at CreatePermission: nothing is ever sent to these addresses. (That a lab or an
    // allowed range opens exactly itself is proven inside network namespaces, tests/netns.)
    let s = Server::start().await;
    let token = s.as_role("kim", "student").await;
    let cred = credential(&s, &token).await;
    let relay = client(&s, Via::Udp, &cred).await.allocate().await.expect("allocate");
    for peer in ["10.1.2.3:53", "172.16.5.5:161", "192.168.1.1:514", "100.64.0.1:53"] {
        let peer: SocketAddr = peer.parse().unwrap();
        let err =
            relay.send_to(b"knock", peer).await.err().unwrap_or_else(|| panic!("{peer} accepted on a fresh install"));
        assert!(err.to_string().contains("403"), "{peer}: {err}");
    }
    assert!(s.metric("labbeam_turn_peer_refusals_total{reason=\"not_in_lab\"}").await >= 4.0);
}

#[tokio::test]
async fn turn_can_be_switched_off() {
    let s = Server::start_with(with_config("[turn]\nenabled = false\n")).await;
    assert_eq!(s.turn_port, 0);
    let token = s.as_role("kim", "student").await;
    let (status, body) = s.get("/api/ice-servers", &token).await;
    assert_eq!(status, 503);
    assert_eq!(api_error_code(&body), "turn_unavailable");
}

/// A TCP connection from `source` (any loopback address) to `port` on 127.0.0.1.
async fn tcp_from(source: [u8; 4], port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap()
}

/// Sends a STUN Binding request over a stream; whether a Binding success came back.
async fn binding_answered<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> bool {
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&TransactionId::new().0);
    if stream.write_all(&request).await.is_err() || stream.flush().await.is_err() {
        return false;
    }
    let mut header = [0u8; 20];
    match tokio::time::timeout(Duration::from_secs(3), stream.read_exact(&mut header)).await {
        Ok(Ok(_)) => {}
        _ => return false,
    }
    let mut rest = vec![0u8; u16::from_be_bytes([header[2], header[3]]) as usize];
    if stream.read_exact(&mut rest).await.is_err() {
        return false;
    }
    header[..2] == [0x01, 0x01] && header[8..20] == request[8..20]
}

#[tokio::test]
async fn stream_connections_without_an_allocation_are_closed_after_the_setup_timeout() {
    let s = Server::start_with(with_config("[turn]\ntcp_setup_timeout_secs = 2\n")).await;
    let limit = Duration::from_secs(8);
    let early = Duration::from_millis(1500);
    // Silent TCP.
    let mut tcp = tcp_from([127, 0, 0, 1], s.turn_port).await;
    let t = closed_within(&mut tcp, limit).await.expect("a silent TCP connection still open after 8 s");
    assert!(t >= early, "closed after {t:?}");
    // TCP on the TLS port that never starts TLS.
    let mut tcp = tcp_from([127, 0, 0, 1], s.turns_port).await;
    let t = closed_within(&mut tcp, limit).await.expect("a connection without TLS still open after 8 s");
    assert!(t >= early, "closed after {t:?}");
    // TLS, then nothing.
    let mut tls = tls_connect(&s, SocketAddr::from(([127, 0, 0, 1], s.turns_port))).await.unwrap();
    let t = closed_within(&mut tls, limit).await.expect("a silent TLS connection still open after 8 s");
    assert!(t >= early, "closed after {t:?}");
    // Valid STUN, answered, but never an allocation: closed all the same.
    let mut tcp = tcp_from([127, 0, 0, 1], s.turn_port).await;
    assert!(binding_answered(&mut tcp).await, "a Binding request over TCP is answered");
    let t = closed_within(&mut tcp, limit).await.expect("an unauthenticated connection still open after 8 s");
    assert!(t >= early - Duration::from_millis(200), "closed after {t:?}");
    // A first frame that is not STUN (ChannelData before any allocation) is closed at once.
    let mut tcp = tcp_from([127, 0, 0, 1], s.turn_port).await;
    tcp.write_all(&[0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4]).await.unwrap();
    let t = closed_within(&mut tcp, limit).await.expect("ChannelData first: still open after 8 s");
    assert!(t < Duration::from_secs(1), "closed after {t:?}");
    assert!(s.metric("labbeam_turn_stream_setup_timeouts_total").await >= 4.0);

    // A client that allocates keeps its connection past the deadline, over TCP and TLS.
    let token = s.as_role("kim", "student").await;
    let cred = credential(&s, &token).await;
    let a = client(&s, Via::Tcp, &cred).await;
    let b = client(&s, Via::Tls, &cred).await;
    let ra = a.allocate().await.expect("allocate over TCP");
    let rb = b.allocate().await.expect("allocate over TLS");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(relay_roundtrip(&ra, &rb, b"still here").await, b"still here");
    assert_eq!(s.metric("labbeam_turn_allocations_active").await, 2.0);
}

#[tokio::test]
async fn one_address_holds_at_most_max_tcp_connections_per_address() {
    let s =
        Server::start_with(with_config("[turn]\nmax_tcp_connections_per_address = 2\ntcp_setup_timeout_secs = 60\n"))
            .await;
    let refused = "labbeam_turn_stream_connections_refused_total{reason=\"per_address\"}";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tcp = tcp_from([127, 0, 0, 3], s.turn_port).await;
        assert!(binding_answered(&mut tcp).await);
        held.push(tcp);
    }
    // A third, over TCP or over TLS, is closed at once.
    for port in [s.turn_port, s.turns_port] {
        let mut extra = tcp_from([127, 0, 0, 3], port).await;
        assert!(closed_within(&mut extra, Duration::from_secs(2)).await.is_some(), "port {port}: a third connection");
    }
    assert_eq!(s.metric(refused).await, 2.0);
    // Another address is not affected.
    let mut other = tcp_from([127, 0, 0, 4], s.turn_port).await;
    assert!(binding_answered(&mut other).await);
    // Once one closes, the address may connect again.
    drop(held.pop());
    let mut ok = false;
    for _ in 0..20 {
        let mut tcp = tcp_from([127, 0, 0, 3], s.turn_port).await;
        if binding_answered(&mut tcp).await {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "a connection after one closed");
}
