//! coturn's own test client, `turnutils_uclient` (Debian package `coturn`, installed by
//! tests/run.sh), relays through LabBeam with TURN REST credentials (`-W`, the secret text
//! of `turn.key`) over UDP and TCP: an independent implementation of the protocol.
// Test code: a failed expectation stops the test loudly (the workspace denies these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "harness/mod.rs"]
mod harness;

use std::process::Command;

use harness::Server;

/// Runs uclient in client-to-client mode (`-y`: each allocation sends to another's relay
/// address, the only kind of peer the filter allows on loopback); returns (sent, received,
/// lost) from its summary.
fn uclient(s: &Server, user_id: &str, tcp: bool) -> (u64, u64, u64) {
    let mut cmd = Command::new("turnutils_uclient");
    if tcp {
        cmd.arg("-t");
    }
    cmd.args(["-y", "-c", "-m", "2", "-n", "30", "-l", "400", "-z", "5"]);
    cmd.args(["-u", user_id, "-W", &s.turn_secret_text(), "-p", &s.turn_port.to_string(), "127.0.0.1"]);
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run turnutils_uclient ({e}): install the Debian package coturn (tests/run.sh does)")
    });
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let number_after = |key: &str| -> Option<u64> {
        text.lines().rev().find_map(|l| {
            let rest = &l[l.find(key)? + key.len()..];
            rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
    };
    let sent = number_after("tot_send_msgs=").unwrap_or_else(|| panic!("no summary from uclient: {text}"));
    let received = number_after("tot_recv_msgs=").unwrap_or(0);
    let lost = number_after("Total lost packets ").unwrap_or(u64::MAX);
    (sent, received, lost)
}

#[tokio::test]
async fn coturn_client_relays_over_udp_and_tcp_with_rest_credentials() {
    let s = Server::start().await;
    let token = s.as_role("kim", "student").await;
    // As the web client does: fetch ICE servers first (the relay learns of the user then).
    let (status, ice) = s.get("/api/ice-servers", &token).await;
    assert_eq!(status, 200, "{ice}");
    let user_id = s.get("/api/me", &token).await.1["id"].to_string();
    for tcp in [false, true] {
        let (sent, received, lost) = uclient(&s, &user_id, tcp);
        let via = if tcp { "TCP" } else { "UDP" };
        assert_eq!(sent, 60, "{via}");
        assert_eq!(received, sent, "{via}: every message came back through the relay");
        assert_eq!(lost, 0, "{via}");
    }
    assert!(s.metric("labbeam_turn_allocations_total{transport=\"udp\"}").await >= 2.0);
    assert!(s.metric("labbeam_turn_allocations_total{transport=\"tcp\"}").await >= 2.0);
    assert!(s.metric("labbeam_turn_relayed_packets_total{direction=\"to_peer\"}").await >= 120.0);
    // uclient binds channels: after the binding, its ChannelData takes the fast path both ways
    // (the first datagrams may cross while the ChannelBind is answered).
    for direction in ["to_peer", "to_client"] {
        let fast = s.metric(&format!("labbeam_turn_fast_path_packets_total{{direction=\"{direction}\"}}")).await;
        assert!(fast >= 100.0, "{direction}: {fast} of 120 datagrams on the fast path");
    }
}

#[tokio::test]
async fn coturn_client_with_a_wrong_secret_is_refused() {
    let s = Server::start().await;
    let token = s.as_role("kim", "student").await;
    let _ = s.get("/api/ice-servers", &token).await;
    let user_id = s.get("/api/me", &token).await.1["id"].to_string();
    let out = Command::new("turnutils_uclient")
        .args(["-y", "-c", "-m", "2", "-n", "5", "-u", &user_id, "-W", "not-the-secret"])
        .args(["-p", &s.turn_port.to_string(), "127.0.0.1"])
        .output()
        .expect("turnutils_uclient (Debian package coturn)");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Cannot complete Allocation") || text.contains("401"), "{text}");
    assert!(s.metric("labbeam_turn_auth_failures_total{reason=\"bad_integrity\"}").await >= 1.0);
}
