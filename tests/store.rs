//! The PostgreSQL store over TLS: `[store] ca_file` makes the connection verify the server's
//! certificate and name (`sslmode=verify-full`), with rustls.
//!
//! Each test runs a PostgreSQL cluster of its own (tests/postgres.sh), because it turns TLS
//! on: so it needs root and runs in the PostgreSQL pass of tests/run.sh (TEST_POSTGRES_URL
//! set); otherwise it says why it is skipped.
// Test code: a failed expectation stops the test loudly (the workspace denies these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::path::Path;
use std::process::Command;

use harness::{Options, Server};

/// A throwaway cluster in `dir`, stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
}

impl Cluster {
    fn start() -> Option<Cluster> {
        if harness::test_postgres().is_none() {
            println!("skipped: runs in the PostgreSQL pass of tests/run.sh (TEST_POSTGRES_URL is not set)");
            return None;
        }
        let dir = tempfile::Builder::new().prefix("labbeam-pgtls-").tempdir_in("/tmp").unwrap();
        let out = script("start", dir.path());
        assert!(out.status.success(), "tests/postgres.sh start: {}", String::from_utf8_lossy(&out.stderr));
        let url = String::from_utf8(out.stdout).unwrap().trim().to_string();
        Some(Cluster { dir, url })
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().and_then(|p| p.split('/').next()).and_then(|p| p.parse().ok()).unwrap()
    }

    /// Runs SQL as the cluster's superuser.
    fn psql(&self, sql: &str) {
        let out = Command::new("psql").args([self.url.as_str(), "-qAtc", sql]).output().unwrap();
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Serves TLS with a certificate for `localhost` (only: 127.0.0.1 is a name it does not
    /// hold) signed by a new test CA; returns the CA's PEM.
    fn enable_tls(&self) -> String {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name.push(rcgen::DnType::CommonName, "Test campus CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let (crt, pem_key) = (self.dir.path().join("server.crt"), self.dir.path().join("server.key"));
        std::fs::write(&crt, cert.pem()).unwrap();
        std::fs::write(&pem_key, key.serialize_pem()).unwrap();
        for file in [&crt, &pem_key] {
            let ok = Command::new("chown").arg("postgres:").arg(file).status().unwrap().success();
            assert!(ok, "chown {}", file.display());
            std::fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        }
        self.psql(&format!("ALTER SYSTEM SET ssl_cert_file = '{}'", crt.display()));
        self.psql(&format!("ALTER SYSTEM SET ssl_key_file = '{}'", pem_key.display()));
        self.psql("ALTER SYSTEM SET ssl = on");
        self.psql("SELECT pg_reload_conf()");
        ca.pem()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = script("stop", self.dir.path());
    }
}

fn script(action: &str, dir: &Path) -> std::process::Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/postgres.sh");
    Command::new("bash").arg(path).arg(action).arg(dir).output().unwrap()
}

#[tokio::test]
async fn the_store_connection_verifies_the_database_certificate_with_ca_file() {
    let Some(cluster) = Cluster::start() else { return };
    let ca_pem = cluster.enable_tls();
    cluster.psql("CREATE DATABASE labbeam");
    let ca = cluster.dir.path().join("campus-ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let url = format!("postgres://labbeam@localhost:{}/labbeam", cluster.port());
    let env = |url: &str, ca: &Path| {
        vec![
            ("LABBEAM_STORE_URL".to_string(), url.to_string()),
            ("LABBEAM_STORE_CA_FILE".into(), ca.display().to_string()),
        ]
    };

    let s = Server::start_with(Options { env: env(&url, &ca), ..Options::default() }).await;
    let token = s.admin().await;
    assert_eq!(s.get("/api/me", &token).await.0, 200);
    // Every connection LabBeam holds to the database is encrypted.
    let out = Command::new("psql")
        .args([
            cluster.url.as_str(),
            "-qAtc",
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.application_name = 'labbeam'",
        ])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (count, all_tls) = line.split_once('|').unwrap();
    assert!(count.parse::<u32>().unwrap() > 0 && all_tls == "t", "connections and TLS: {line}");
    drop(s);

    // A certificate from another CA, or a name the certificate does not hold, is refused.
    let mut other = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other = rcgen::CertifiedIssuer::self_signed(other, rcgen::KeyPair::generate().unwrap()).unwrap();
    let wrong_ca = cluster.dir.path().join("other-ca.pem");
    std::fs::write(&wrong_ca, other.pem()).unwrap();
    let wrong_name = format!("postgres://labbeam@127.0.0.1:{}/labbeam", cluster.port());
    for (url, ca, why) in [(&url, &wrong_ca, "another CA"), (&wrong_name, &ca, "a name not in the certificate")] {
        let data = tempfile::tempdir().unwrap();
        let out = Command::new(harness::binary())
            .args(["doctor", "--data-dir"])
            .arg(data.path())
            .envs(env(url, ca))
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{why}: doctor passed:\n{text}");
        let line = text.lines().find(|l| l.starts_with("FAIL") && l.contains("store.connect")).unwrap_or("");
        assert!(line.contains("PostgreSQL labbeam@") && line.contains("invalid peer certificate"), "{why}:\n{text}");
        assert!(!text.contains("answers"), "{why}: connected:\n{text}");
    }
}
