//! TLS for the HTTPS listener (and later TURN over TLS): the admin's certificate when one
//! is configured, otherwise a self-signed one generated on first start into
//! `<data_dir>/tls/` and reused. It is regenerated only when the set of configured host
//! names changes (order and case do not count: a browser compares names without either).
//! Its SHA-256 fingerprint is printed so users can check what their browser shows.
//! `inspect` is the read-only look that `labbeam doctor` reports: it never generates.
//! `client_config` is the other direction: LabBeam connecting to the campus directory or an
//! OpenID provider.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

use crate::config::Config;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read TLS certificate {0}: {1}")]
    Cert(String, String),
    #[error("cannot read TLS private key {0}: {1}")]
    Key(String, String),
    #[error("TLS certificate {0} and key {1} do not form a usable pair: {2}")]
    Pair(String, String, String),
    #[error("cannot generate the self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write {0}: {1}")]
    Write(String, std::io::Error),
}

pub struct TlsMaterial {
    pub server_config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate, as colon-separated hex.
    pub fingerprint: String,
    pub cert_path: PathBuf,
    /// True when a new self-signed certificate was made on this start.
    pub generated: bool,
}

pub fn load_or_generate(config: &Config) -> Result<TlsMaterial, TlsError> {
    let (cert_path, key_path, generated) = match (&config.tls.cert, &config.tls.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), false),
        _ => {
            let dir = config.data_dir.join("tls");
            let generated = ensure_self_signed(&dir, &config.host_names())?;
            (dir.join("cert.pem"), dir.join("key.pem"), generated)
        }
    };
    let (server_config, fingerprint) = load(&cert_path, &key_path)?;
    Ok(TlsMaterial { server_config: Arc::new(server_config), fingerprint, cert_path, generated })
}

/// The certificate as `labbeam doctor` reports it.
pub struct Inspection {
    pub cert_path: PathBuf,
    pub fingerprint: String,
    /// For a generated certificate made for other host names: the names the next start
    /// of `serve` makes a new one for.
    pub renew_for: Option<Vec<String>>,
}

/// Reads and checks the certificate `load_or_generate` would use, writing nothing; `None`
/// when none is configured and none was generated yet.
pub fn inspect(config: &Config) -> Result<Option<Inspection>, TlsError> {
    if let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) {
        let (_, fingerprint) = load(cert, key)?;
        return Ok(Some(Inspection { cert_path: cert.clone(), fingerprint, renew_for: None }));
    }
    let dir = config.data_dir.join("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !(cert.exists() && key.exists()) {
        return Ok(None);
    }
    let (_, fingerprint) = load(&cert, &key)?;
    let names = config.host_names();
    let renew_for = (!made_for(&dir, &names)).then_some(names);
    Ok(Some(Inspection { cert_path: cert, fingerprint, renew_for }))
}

/// The server configuration for a certificate and key, and the certificate's fingerprint.
fn load(cert_path: &Path, key_path: &Path) -> Result<(rustls::ServerConfig, String), TlsError> {
    let certs = read_certs(cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| TlsError::Key(key_path.display().to_string(), e.to_string()))?;
    let fingerprint = fingerprint(&certs[0]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pair_error = |e: rustls::Error| {
        TlsError::Pair(cert_path.display().to_string(), key_path.display().to_string(), e.to_string())
    };
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(pair_error)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(pair_error)?;
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((server_config, fingerprint))
}

/// Whether the certificate generated in `dir` was made for `names`, in any order and case.
fn made_for(dir: &Path, names: &[String]) -> bool {
    let Ok(recorded) = std::fs::read_to_string(dir.join("names.txt")) else { return false };
    name_set(recorded.lines()) == name_set(names.iter().map(String::as_str))
}

fn name_set<'a>(names: impl Iterator<Item = &'a str>) -> std::collections::BTreeSet<String> {
    names.map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()).collect()
}

/// The certificates of a PEM file, the server's own first.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Cert(shown.clone(), e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Cert(shown.clone(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Cert(shown, "no certificate in the file".into()));
    }
    Ok(certs)
}

/// Makes sure `dir` holds a self-signed certificate for `names`; true when it made one.
fn ensure_self_signed(dir: &Path, names: &[String]) -> Result<bool, TlsError> {
    let have_pair = dir.join("cert.pem").exists() && dir.join("key.pem").exists();
    if have_pair && made_for(dir, names) {
        return Ok(false);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| TlsError::Write(dir.display().to_string(), e))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| TlsError::Generate(e.to_string()))?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "LabBeam appliance");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "LabBeam");
    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&dir.join("key.pem"), key.serialize_pem().as_bytes(), 0o600)?;
    write_private(&dir.join("cert.pem"), cert.pem().as_bytes(), 0o644)?;
    write_private(&dir.join("names.txt"), names.join("\n").as_bytes(), 0o644)?;
    Ok(true)
}

fn write_private(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| TlsError::Write(path.display().to_string(), e))
}

pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// TLS for LabBeam's own connections to campus services (`what` names the config table in
/// errors): rustls on ring, trusting the CA certificates in `ca_file`, or the system's when
/// it is unset.
pub fn client_config(ca_file: Option<&Path>, what: &str) -> anyhow::Result<rustls::ClientConfig> {
    use anyhow::Context;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("cannot read {what} ca_file {}", path.display()))?;
            let mut found = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.with_context(|| format!("{what} ca_file {} is not PEM", path.display()))?;
                roots.add(cert).with_context(|| format!("{what} ca_file {}: a bad certificate", path.display()))?;
                found += 1;
            }
            if found == 0 {
                anyhow::bail!("{what} ca_file {} holds no certificate", path.display());
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                // A system store with one odd certificate still serves with the others.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                anyhow::bail!(
                    "{what}: this machine has no trusted CA certificates (install ca-certificates) and ca_file is unset"
                );
            }
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .with_context(|| format!("TLS for {what}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    fn config_in(dir: &Path, host: &str) -> Config {
        let o = Overrides { data_dir: Some(dir.to_path_buf()), public_host: Some(host.into()), ..Default::default() };
        Config::load(&o, Vec::new()).unwrap()
    }

    #[test]
    fn generated_once_then_reused_and_renewed_when_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_generate(&config_in(dir.path(), "lab1.example.edu")).unwrap();
        assert!(a.generated);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        let b = load_or_generate(&config_in(dir.path(), "lab1.example.edu")).unwrap();
        assert!(!b.generated);
        assert_eq!(a.fingerprint, b.fingerprint);
        let c = load_or_generate(&config_in(dir.path(), "lab2.example.edu")).unwrap();
        assert!(c.generated);
        assert_ne!(a.fingerprint, c.fingerprint);
    }

    #[test]
    fn names_in_another_order_or_case_keep_the_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let with = |extra: &[&str]| {
            let mut c = config_in(dir.path(), "lab1.example.edu");
            c.tls.extra_names = extra.iter().map(|n| n.to_string()).collect();
            c
        };
        let a = load_or_generate(&with(&["b.example.edu", "c.example.edu"])).unwrap();
        assert!(a.generated);
        let b = load_or_generate(&with(&["C.Example.EDU", "b.example.edu"])).unwrap();
        assert!(!b.generated, "same names in another order and case");
        assert_eq!(a.fingerprint, b.fingerprint);
        let c = load_or_generate(&with(&["b.example.edu"])).unwrap();
        assert!(c.generated, "one name fewer");
    }

    #[test]
    fn inspect_reports_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path(), "lab1.example.edu");
        assert!(inspect(&config).unwrap().is_none());
        assert!(!dir.path().join("tls").exists(), "nothing generated");
        let made = load_or_generate(&config).unwrap();
        let tls = dir.path().join("tls");
        let files = || {
            let mut v: Vec<_> = std::fs::read_dir(&tls)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    (e.path(), std::fs::read(e.path()).unwrap(), e.metadata().unwrap().modified().unwrap())
                })
                .collect();
            v.sort();
            v
        };
        let before = files();
        let seen = inspect(&config).unwrap().unwrap();
        assert_eq!((seen.fingerprint.as_str(), seen.renew_for.is_none()), (made.fingerprint.as_str(), true));
        let elsewhere = config_in(dir.path(), "lab2.example.edu");
        let seen = inspect(&elsewhere).unwrap().unwrap();
        assert_eq!(seen.fingerprint, made.fingerprint, "the certificate in use is reported");
        assert!(seen.renew_for.unwrap().contains(&"lab2.example.edu".to_string()));
        assert_eq!(files(), before, "inspect changed the certificate's files");
    }

    #[test]
    fn unreadable_configured_cert_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config_in(dir.path(), "x.example.edu");
        c.tls.cert = Some(dir.path().join("missing.pem"));
        c.tls.key = Some(dir.path().join("missing-key.pem"));
        let e = load_or_generate(&c).err().unwrap().to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }
}
