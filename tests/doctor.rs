//! `labbeam doctor` against the real binary: next to a running server it finds (from the
//! same configuration), against a stopped one, and against broken setups, each time the
//! right line says what is wrong; `--json` keeps the contract of docs/DOCTOR.md.
// Test code: a failed expectation stops the test loudly (the workspace denies these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "harness/mod.rs"]
mod harness;

use std::process::Output;

use harness::{Browser, Options, Server};
use serde_json::Value;

/// A server on fixed ports, so doctor finds it from the configuration.
fn fixed(config: Option<&str>) -> Options {
    Options { config: config.map(str::to_string), fixed_ports: true, ..Default::default() }
}

/// doctor's lines by check name: (status, message), in order.
fn checks(out: &Output) -> Vec<(String, String, String)> {
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json is not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    json.as_array()
        .expect("one JSON array")
        .iter()
        .map(|c| {
            let field = |name: &str| c[name].as_str().unwrap_or_else(|| panic!("{name} of {c}")).to_string();
            (field("check"), field("status"), field("message"))
        })
        .collect()
}

/// The (status, message) of `name`; panics unless exactly one line has it.
fn line<'a>(all: &'a [(String, String, String)], name: &str) -> (&'a str, &'a str) {
    let found: Vec<_> = all.iter().filter(|(check, _, _)| check == name).collect();
    assert_eq!(found.len(), 1, "one {name} line: {all:#?}");
    (found[0].1.as_str(), found[0].2.as_str())
}

fn doctor_json(s: &Server, env: &[(&str, &str)]) -> (Output, Vec<(String, String, String)>) {
    let out = s.doctor(&["--json"], env);
    let all = checks(&out);
    (out, all)
}

#[tokio::test]
async fn json_is_one_array_with_the_contract_fields() {
    let s = Server::start_with(fixed(None)).await;
    let out = s.doctor(&["--json"], &[]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let array = json.as_array().unwrap();
    assert!(array.len() >= 8, "{json}");
    for c in array {
        let object = c.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["check", "message", "status"], "{c}");
        assert!(["ok", "warn", "fail"].contains(&c["status"].as_str().unwrap()), "{c}");
        assert!(!c["message"].as_str().unwrap().is_empty(), "{c}");
    }
    let names: Vec<&str> = array.iter().map(|c| c["check"].as_str().unwrap()).collect();
    for name in ["config", "data_dir", "store.connect", "tls.certificate", "service", "https.port", "turn.peer_policy"]
    {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    // The same checks for people, one line each.
    let human = s.doctor(&[], &[]);
    let text = String::from_utf8_lossy(&human.stdout).to_string();
    assert_eq!(text.lines().count(), array.len(), "{text}");
    assert_eq!(human.status.code(), out.status.code());
}

#[tokio::test]
async fn next_to_the_running_server_its_port_is_not_a_failure() {
    let mut s = Server::start_with(fixed(None)).await;
    let (out, all) = doctor_json(&s, &[]);
    let (status, message) = line(&all, "service");
    assert_eq!(status, "ok", "{message}");
    assert!(message.contains("labbeam is running"), "{message}");
    let (status, message) = line(&all, "https.port");
    assert_eq!(status, "ok", "{message}");
    assert!(message.contains(&s.fingerprint), "the configured certificate: {message}");
    assert_ne!(line(&all, "clock").0, "fail");
    let failed: Vec<_> = all.iter().filter(|(_, status, _)| status == "fail").collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // Doctor with another data directory, whose certificate is not the one the server
    // presents: that server is not this configuration's.
    let other = tempfile::tempdir().unwrap();
    let tls = other.path().join("data").join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
    std::fs::write(tls.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(tls.join("key.pem"), key.serialize_pem()).unwrap();
    let out = std::process::Command::new(harness::binary())
        .args(["doctor", "--json", "--data-dir"])
        .arg(other.path().join("data"))
        .env("LABBEAM_HTTP_LISTEN", format!("127.0.0.1:{}", s.port))
        .output()
        .unwrap();
    let all = checks(&out);
    let (status, message) = line(&all, "service");
    assert_eq!(status, "fail", "{message}");
    assert!(message.contains("not as this labbeam") && message.contains(&s.fingerprint), "{message}");
    assert_eq!(line(&all, "https.port").0, "fail");
    assert_eq!(line(&all, "ice.udp").0, "warn", "not run against another server");

    // Stopped: the port must be free, and it is; that the service is down is a warning.
    assert_eq!(s.stop(), Some(0));
    let (out, all) = doctor_json(&s, &[]);
    let (status, message) = line(&all, "service");
    assert_eq!(status, "warn", "{message}");
    assert!(message.contains("not running"), "{message}");
    assert_eq!(line(&all, "https.port").0, "ok");
    assert_eq!(out.status.code(), Some(0));

    // Another program on the port: it does not answer as labbeam, so the port is taken.
    let http: std::net::SocketAddr = format!("127.0.0.1:{}", s.port).parse().unwrap();
    let squatter = std::net::TcpListener::bind(http).unwrap();
    std::thread::spawn(move || {
        for stream in squatter.incoming().take(4) {
            drop(stream);
        }
    });
    let (out, all) = doctor_json(&s, &[]);
    let (status, message) = line(&all, "https.port");
    assert_eq!(status, "fail", "{message}");
    assert!(message.contains(&http.to_string()), "{message}");
    assert_eq!(line(&all, "service").0, "fail");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("labbeam: ") && err.contains("check(s) failed"), "{err}");
}

#[test]
fn usage_errors_exit_2_and_a_bad_configuration_is_one_failed_check() {
    let out = std::process::Command::new(harness::binary()).args(["doctor", "--jsn"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("labbeam.toml");
    std::fs::write(&config, "[turn]\nrelay_port_min = 0\n").unwrap();
    let out = std::process::Command::new(harness::binary())
        .args(["doctor", "--json", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let all = checks(&out);
    assert_eq!(all.len(), 1, "{all:?}");
    let (status, message) = line(&all, "config");
    assert_eq!(status, "fail");
    assert!(message.contains("relay_port_min"), "{message}");
}

/// A loopback port that nothing listens on, for UDP and TCP (free when looked at). A port
/// free for UDP may be taken for TCP by another test: try again with another.
fn closed_port() -> u16 {
    for _ in 0..100 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP in 100 tries");
}

#[tokio::test]
async fn ice_connects_through_the_relay_on_every_transport() {
    let s = Server::start_with(fixed(None)).await;
    let (out, all) = doctor_json(&s, &[]);
    for name in ["ice.udp", "ice.tcp", "ice.tls"] {
        let (status, message) = line(&all, name);
        assert_eq!(status, "ok", "{name}: {message}");
        // Relay to relay, through this server, and timed.
        assert!(message.contains("relay 127.0.0.1:") && message.contains("connected to relay 127.0.0.1:"), "{message}");
        assert!(message.contains("round trip through the relay") && message.contains(" ms median of 5"), "{message}");
        assert!(message.contains("user admin"), "{message}");
    }
    let (_, udp) = line(&all, "ice.udp");
    assert!(udp.contains("STUN answers") && udp.contains("srflx 1"), "{udp}");
    assert!(line(&all, "ice.tls").1.contains("the relay presents the configured certificate"));
    assert!(all.iter().all(|(_, status, _)| status == "ok" || status == "warn"), "{all:#?}");
    assert_eq!(out.status.code(), Some(0));
    // The relay saw two allocations over each transport, and relayed between them; doctor
    // closed them when it was done.
    for transport in ["udp", "tcp", "tls"] {
        let series = format!("labbeam_turn_allocations_total{{transport=\"{transport}\"}}");
        assert_eq!(s.metric(&series).await, 2.0, "{series}");
    }
    assert!(s.metric("labbeam_turn_relayed_packets_total{direction=\"to_peer\"}").await >= 2.0 * 3.0 * 5.0);
    let active = s.metric_within("labbeam_turn_allocations_active", 0.0, std::time::Duration::from_secs(10)).await;
    assert_eq!(active, 0.0, "doctor's allocations are closed");
}

#[tokio::test]
async fn ice_lines_fail_and_say_why_when_the_relay_does_not_answer() {
    let s = Server::start_with(fixed(None)).await;
    // The configuration doctor reads names TURN ports where nothing answers (a relay
    // moved, or a firewall that rejects them).
    let (turn, tls) = (closed_port(), closed_port());
    let listen = format!("127.0.0.1:{turn}");
    let tls_port = tls.to_string();
    let (out, all) = doctor_json(&s, &[("LABBEAM_TURN_LISTEN", &listen), ("LABBEAM_TURN_TLS_PORT", &tls_port)]);
    assert_eq!(out.status.code(), Some(1));
    let (status, message) = line(&all, "ice.udp");
    assert_eq!(status, "fail");
    assert!(message.contains("no STUN answer") && message.contains(&listen), "{message}");
    let (status, message) = line(&all, "ice.tcp");
    assert_eq!(status, "fail");
    assert!(message.contains("cannot connect to TURN over TCP") && message.contains(&listen), "{message}");
    let (status, message) = line(&all, "ice.tls");
    assert_eq!(status, "fail");
    assert!(message.contains("TURN over TLS") && message.contains(&format!("127.0.0.1:{tls}")), "{message}");
    assert_eq!(line(&all, "service").0, "ok", "the server itself runs");

    // A server whose relay is off: nothing to connect through.
    let off = Server::start_with(fixed(Some("[turn]\nenabled = false\n"))).await;
    let (out, all) = doctor_json(&off, &[]);
    assert_eq!(out.status.code(), Some(1));
    for name in ["ice.udp", "ice.tcp", "ice.tls"] {
        let (status, message) = line(&all, name);
        assert_eq!(status, "fail", "{name}");
        assert!(message.contains("turn.enabled = false"), "{message}");
    }
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_tls_names() {
    // The admin's own certificate, for another name than public_host (and 127.0.0.1, which
    // the test's clients use).
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["other.lab.test".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let config = format!(
        "public_host = \"localhost\"\n[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    );
    let s = Server::start_with(Options { trusted_cert: Some(cert_path.clone()), ..fixed(Some(&config)) }).await;
    let (out, all) = doctor_json(&s, &[]);
    assert_eq!(out.status.code(), Some(1));
    let (status, message) = line(&all, "tls.names");
    assert_eq!(status, "fail", "{message}");
    assert!(message.contains("other.lab.test") && message.contains("not public_host localhost"), "{message}");
    assert!(line(&all, "tls.certificate").1.contains(&cert_path.display().to_string()));
    assert_eq!(line(&all, "tls.trust").0, "warn", "self-signed");
    assert_eq!(line(&all, "tls.expiry").0, "ok");
    // The running server presents that certificate, on HTTPS and on TURN over TLS.
    assert_eq!(line(&all, "https.port").0, "ok");
    let (status, message) = line(&all, "ice.tls");
    assert_eq!(status, "ok", "{message}");
}

#[tokio::test]
async fn a_relay_range_smaller_than_max_allocations_is_reported_with_the_numbers() {
    let port = closed_port();
    let config = format!("[turn]\nrelay_port_min = {port}\nrelay_port_max = {port}\nmax_allocations = 50\n");
    let s = Server::start_with(fixed(Some(&config))).await;
    let (out, all) = doctor_json(&s, &[]);
    assert_eq!(out.status.code(), Some(1));
    let (status, message) = line(&all, "turn.relay_ports");
    assert_eq!(status, "fail", "{message}");
    assert!(message.contains(&format!("relay ports {port}-{port}: 1 port(s)")), "{message}");
    assert!(message.contains("turn.max_allocations = 50"), "{message}");
    // Each ICE run needs two relay ports: the second allocation is refused for want of one.
    let (status, message) = line(&all, "ice.udp");
    assert_eq!(status, "fail", "{message}");
    assert!(message.contains("508") && message.contains("no relay port is free"), "{message}");
}

/// `bash tests/postgres.sh ACTION DIR`.
fn postgres_script(action: &str, dir: &std::path::Path) -> Output {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/postgres.sh");
    std::process::Command::new("bash").arg(path).arg(action).arg(dir).output().unwrap()
}

#[tokio::test]
async fn a_store_that_does_not_answer_fails_store_connect() {
    if harness::test_postgres().is_some() {
        // A cluster of its own, stopped under the running server.
        let dir = tempfile::Builder::new().prefix("labbeam-doctor-pg-").tempdir_in("/tmp").unwrap();
        let started = postgres_script("start", dir.path());
        assert!(started.status.success(), "tests/postgres.sh start: {}", String::from_utf8_lossy(&started.stderr));
        let admin = String::from_utf8(started.stdout).unwrap().trim().to_string();
        let url = harness::fresh_postgres_database(&admin).await;
        let s = Server::start_with(Options { env: vec![("LABBEAM_STORE_URL".into(), url)], ..fixed(None) }).await;
        assert_eq!(line(&doctor_json(&s, &[]).1, "store.connect").0, "ok");
        let stopped = postgres_script("stop", dir.path());
        assert!(stopped.status.success(), "tests/postgres.sh stop: {}", String::from_utf8_lossy(&stopped.stderr));
        let (out, all) = doctor_json(&s, &[]);
        assert_eq!(out.status.code(), Some(1));
        let (status, message) = line(&all, "store.connect");
        assert_eq!(status, "fail", "{message}");
        assert!(message.contains("PostgreSQL") && message.contains("is PostgreSQL running"), "{message}");
        // The running server says the same through /healthz.
        let (status, message) = line(&all, "service");
        assert_eq!(status, "fail", "{message}");
        assert!(message.contains("503"), "{message}");
    } else {
        // The SQLite file is not a database any more (a bad restore, a damaged disk).
        let mut s = Server::start_with(fixed(None)).await;
        assert_eq!(s.stop(), Some(0));
        let db = s.data_dir().join("labbeam.db");
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        std::fs::write(&db, vec![0x5a; 8192]).unwrap();
        let (out, all) = doctor_json(&s, &[]);
        assert_eq!(out.status.code(), Some(1));
        let (status, message) = line(&all, "store.connect");
        assert_eq!(status, "fail", "{message}");
        assert!(message.contains("SQLite") && message.contains("restore the last backup"), "{message}");
        assert!(all.iter().all(|(check, _, _)| check != "store.schema"), "no schema line without a store");
    }
}

/// The portal's Health page: doctor's checks run by the server itself (on the ports it
/// took: port 0 in this configuration), the ICE run only when its button is pressed, and
/// not twice within its interval.
#[tokio::test]
async fn the_health_page_runs_the_checks_in_the_server_and_ice_on_demand() {
    let s = Server::start().await;
    s.admin().await;
    let admin = Browser::login(&s, "admin").await;
    let (status, html) = admin.get("/admin/health").await;
    assert_eq!(status, 200, "{html}");
    for check in ["service", "https.port", "store.connect", "tls.certificate"] {
        assert!(html.contains(&format!(r#"data-check="{check}" data-status="ok""#)), "{check}: {html}");
    }
    assert!(html.contains(r#"data-check="turn.peer_policy""#), "{html}");
    assert!(!html.contains(r#"data-check="ice.udp""#), "the ICE run waits for its button: {html}");
    assert!(html.contains("Not run since the server started"), "{html}");

    let csrf = admin.csrf().await;
    assert_eq!(admin.post("/admin/health/ice", &[("csrf", "forged")]).await.0, 403);
    let (status, location, _) = admin.post("/admin/health/ice", &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    assert!(location.contains("connected%20through%20the%20relay"), "{location}");
    let (_, html) = admin.get("/admin/health").await;
    for check in ["ice.udp", "ice.tcp", "ice.tls"] {
        assert!(html.contains(&format!(r#"data-check="{check}" data-status="ok""#)), "{check}: {html}");
    }
    assert!(html.contains("started by admin"), "{html}");
    let (status, location, _) = admin.post("/admin/health/ice", &[("csrf", &csrf)]).await;
    assert_eq!(status, 303);
    assert!(location.contains("next%20can%20start%20in"), "a second run at once is refused: {location}");

    s.add_user("stud", "student");
    let student = Browser::login(&s, "stud").await;
    assert_eq!(student.get("/admin/health").await.0, 403);
}

/// With the relay on a closed port the Health page's ICE lines fail and say why, as
/// doctor's do.
#[tokio::test]
async fn the_health_page_shows_a_failing_ice_run() {
    let s =
        Server::start_with(Options { config: Some("[turn]\nenabled = false\n".into()), ..Default::default() }).await;
    s.admin().await;
    let admin = Browser::login(&s, "admin").await;
    let csrf = admin.csrf().await;
    let (_, location, _) = admin.post("/admin/health/ice", &[("csrf", &csrf)]).await;
    assert!(location.contains("found%20problems"), "{location}");
    let (_, html) = admin.get("/admin/health").await;
    assert!(html.contains(r#"data-check="ice.udp" data-status="fail""#), "{html}");
    assert!(html.contains("turn.enabled = false"), "{html}");
}

/// The last day's failed transfers, by the cause each side recorded.
#[tokio::test]
async fn the_health_page_counts_the_last_days_failures_by_cause() {
    let s = Server::start().await;
    s.admin().await;
    let store = s.store().await;
    let now = harness::now();
    let rows = [
        ("t1", now - 60, "Lab 2.14", "sender: relay_unreachable: Could not connect; receiver: relay_unreachable: x"),
        ("t2", now - 120, "Lab 2.14", "receiver: relay_unreachable: Could not connect"),
        ("t3", now - 180, "Lab 1", "hash_mismatch: receiver and sender hashes differ"),
        ("t4", now - 200, "Lab 1", "resume_expired: the receiver within 10 min"),
        ("t5", now - 2 * 86_400, "Lab 1", "sender: relay_unreachable: too old to count"),
    ];
    for (id, at, lab, reason) in rows {
        store
            .exec(&format!(
                "INSERT INTO transfers (id, sender_username, receiver_username, sender_lab, receiver_lab, status, \
                 requested_at, failure_reason) VALUES ('{id}', 'ann', 'bob', '{lab}', 'Other', 'failed', {at}, {})",
                harness::sql_text(reason)
            ))
            .await;
    }
    store
        .exec(&format!(
            "INSERT INTO transfers (id, sender_username, receiver_username, status, requested_at, failure_reason) \
             VALUES ('c1', 'ann', 'bob', 'cancelled', {now}, 'sender: peer_left: gone')"
        ))
        .await;
    store.close().await;
    let admin = Browser::login(&s, "admin").await;
    let (_, html) = admin.get("/admin/health").await;
    assert!(html.contains(r#"data-cause="relay_unreachable" data-count="2""#), "{html}");
    assert!(html.contains(r#"data-cause="hash_mismatch" data-count="1""#), "{html}");
    assert!(html.contains(r#"data-cause="resume_expired" data-count="1""#), "{html}");
    assert!(!html.contains(r#"data-cause="peer_left""#), "cancelled transfers are not failures: {html}");
    assert!(html.contains("4 failed transfer(s)"), "{html}");
    assert!(html.contains("Lab 2.14, Other"), "the labs involved: {html}");
}

/// `POST /api/connection-tests`: stored with the lab of the PC's address, answered with the
/// verdict, listed on the Health page; bad input and floods refused with the error shape.
#[tokio::test]
async fn connection_tests_are_recorded_by_lab_and_listed_on_the_health_page() {
    let s = Server::start().await;
    s.admin().await;
    assert_eq!(
        s.cli(&["lab", "add", "Lab 2.14", "--cidr", "127.0.0.0/8"], None).status.code(),
        Some(0),
        "the test's loopback address is in Lab 2.14"
    );
    s.add_user("stud", "student");
    let token = s.login("stud", harness::PASSWORD).await;
    let post = |body: Value| {
        let client = s.client();
        let url = s.url("/api/connection-tests");
        let token = token.clone();
        async move {
            let r = client.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let udp_blocked = serde_json::json!({
        "device": "PC 14",
        "paths": {"direct": "ok", "stun": "failed", "relay_udp": "failed", "relay_tcp": "ok", "relay_tls": "ok"}
    });
    let (status, body) = post(udp_blocked.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["test"]["lab"], "Lab 2.14");
    assert_eq!(body["test"]["verdict"]["code"], "relay_tcp_tls_only");
    assert!(body["test"]["verdict"]["words"].as_str().unwrap().starts_with("relay over TCP/TLS only"), "{body}");

    for (bad, why) in [
        (serde_json::json!({"device": "PC", "paths": {"direct": "ok"}}), "missing paths"),
        (
            serde_json::json!({"device": "PC", "paths": {"direct": "maybe", "stun": "ok", "relay_udp": "ok", "relay_tcp": "ok", "relay_tls": "ok"}}),
            "unknown result",
        ),
        (serde_json::json!({"device": " \u{7} ", "paths": udp_blocked["paths"].clone()}), "no device name"),
        (serde_json::json!({"device": "PC", "paths": udp_blocked["paths"].clone(), "extra": 1}), "unknown field"),
    ] {
        let (status, body) = post(bad).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{why}: {body}");
    }
    let r = s.client().post(s.url("/api/connection-tests")).json(&udp_blocked).send().await.unwrap();
    assert_eq!(r.status(), 401, "signed-in users only");

    let admin = Browser::login(&s, "admin").await;
    let (_, html) = admin.get("/admin/health").await;
    assert!(html.contains(r#"data-testid="health-lab" data-lab="Lab 2.14""#), "{html}");
    assert!(html.contains("1 PC tested: 1 relay over TCP/TLS only (no UDP)"), "{html}");
    assert!(html.contains(r#"data-address="127.0.0.1" data-verdict="relay_tcp_tls_only""#), "{html}");
    assert!(html.contains("stud (PC 14)"), "{html}");
    // A seated address is listed under its seat's name, as presence shows the device.
    assert_eq!(s.cli(&["lab", "seat", "Lab 2.14", "127.0.0.1", "Front desk"], None).status.code(), Some(0));
    assert_eq!(post(udp_blocked.clone()).await.0, 201);
    let (_, html) = admin.get("/admin/health").await;
    assert!(html.contains("stud (Front desk)"), "{html}");

    // A person tests now and then; a script does not fill the log.
    let mut refused = None;
    for i in 0..25 {
        let (status, body) = post(udp_blocked.clone()).await;
        if status != 201 {
            refused = Some((i, status, body));
            break;
        }
    }
    let (i, status, body) = refused.expect("the flood is refused");
    assert_eq!((i, status), (18, 429), "20 an hour, two sent before: {body}");
    assert_eq!(body["error"]["code"], "rate_limited");
}
