//! The certificate of HTTPS and TURN over TLS, as a lab PC's browser will judge it
//! (`tls.certificate`, `tls.expiry`, `tls.names`, `tls.trust`).

use std::net::IpAddr;

use rustls::pki_types::{CertificateDer, ServerName};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::Report;
use crate::config::Config;
use crate::tls;

/// The certificate `serve` uses (or will use), as read from its file.
pub struct Certificate {
    /// The chain as in the file, the server's own certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    pub fingerprint: String,
}

/// Within this many days of its end a certificate is a warning.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// `tls.certificate`, then (when it loads) `tls.expiry`, `tls.names` and `tls.trust`.
/// `None` when there is no certificate yet or it does not load.
pub fn check(config: &Config, r: &mut Report) -> Option<Certificate> {
    let inspection = match tls::inspect(config) {
        Ok(Some(inspection)) => inspection,
        Ok(None) => {
            r.warn("tls.certificate", "no certificate yet: the first start of serve generates a self-signed one");
            return None;
        }
        Err(e) => {
            r.fail("tls.certificate", format!("{e}: fix [tls] cert and key, or remove both to use a generated one"));
            return None;
        }
    };
    let chain = match tls::read_certs(&inspection.cert_path) {
        Ok(chain) => chain,
        Err(e) => {
            r.fail("tls.certificate", e.to_string());
            return None;
        }
    };
    let shown = inspection.cert_path.display();
    let renewing = inspection.renew_for.is_some();
    match inspection.renew_for {
        None => r.ok("tls.certificate", format!("certificate {shown} loads, SHA-256 {}", inspection.fingerprint)),
        Some(names) => r.warn(
            "tls.certificate",
            format!(
                "certificate {shown} (SHA-256 {}) was made for other host names: the next start of serve makes a new \
                 one for {}",
                inspection.fingerprint,
                names.join(", ")
            ),
        ),
    }
    let generated = config.tls.cert.is_none();
    match X509Certificate::from_der(chain[0].as_ref()) {
        Ok((_, parsed)) => {
            expiry(&parsed, generated, r);
            names(config, &chain[0], &parsed, renewing, r);
            trust(&parsed, r);
        }
        Err(e) => r.fail("tls.expiry", format!("cannot read the certificate's fields: {e}")),
    }
    Some(Certificate { chain, fingerprint: inspection.fingerprint })
}

/// `tls.expiry`: browsers refuse a certificate outside its validity.
fn expiry(cert: &X509Certificate<'_>, generated: bool, r: &mut Report) {
    let now = crate::db::now();
    let (from, until) = (cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp());
    let renew = if generated {
        "move the data directory's tls/ folder away and restart labbeam to make a new one"
    } else {
        "renew it and put the new one at [tls] cert and key, then restart labbeam"
    };
    let days = (until - now) / 86_400;
    if from > now {
        r.fail(
            "tls.expiry",
            format!("the certificate is valid only from {}: is this machine's clock right? (see clock)", date(from)),
        );
    } else if until <= now {
        r.fail("tls.expiry", format!("the certificate expired on {}: {renew}", date(until)));
    } else if days < EXPIRY_WARNING_DAYS {
        r.warn("tls.expiry", format!("the certificate expires on {}, in {days} day(s): {renew}", date(until)));
    } else {
        r.ok("tls.expiry", format!("valid until {} ({days} days)", date(until)));
    }
}

/// `tls.names`: the name lab PCs use (`public_host`) must be one the certificate carries,
/// or browsers refuse the page and TURN over TLS.
fn names(config: &Config, der: &CertificateDer<'_>, cert: &X509Certificate<'_>, renewing: bool, r: &mut Report) {
    let carried = carried_names(cert);
    let listed = if carried.is_empty() { "no host name".to_string() } else { carried.join(", ") };
    if renewing {
        r.warn(
            "tls.names",
            "the generated certificate was made for other names than this configuration's: the next start of serve \
             makes one for them (see tls.certificate)",
        );
        return;
    }
    let Some(host) = &config.public_host else {
        r.ok("tls.names", format!("the certificate names {listed} (public_host is not set)"));
        return;
    };
    match names_host(der, host) {
        Ok(()) => r.ok("tls.names", format!("the certificate names public_host {host} (all its names: {listed})")),
        Err(why) => r.fail(
            "tls.names",
            format!(
                "the certificate names {listed}, not public_host {host} ({why}): browsers refuse https://{host}/ and \
                 TURN over TLS; get one for {host}, or set public_host to a name it carries"
            ),
        ),
    }
}

/// Whether the certificate is valid for `host`, as a browser matches names (wildcards,
/// addresses), checked by rustls.
fn names_host(der: &CertificateDer<'_>, host: &str) -> Result<(), String> {
    let parsed = rustls::server::ParsedCertificate::try_from(der).map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    rustls::client::verify_server_name(&parsed, &name).map_err(|e| e.to_string())
}

/// The DNS names and addresses of the subject alternative names.
fn carried_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes).ok().map(|b| IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// `tls.trust`: a self-signed certificate works for TURN over TLS only on PCs that were
/// told to trust it (README, "TURN over TLS needs a certificate the lab PCs trust").
fn trust(cert: &X509Certificate<'_>, r: &mut Report) {
    if cert.issuer().as_raw() == cert.subject().as_raw() {
        r.warn(
            "tls.trust",
            "the certificate is self-signed: browsers on the lab PCs warn about the page, and TURN over TLS (turns:) \
             fails silently on PCs that do not trust it; install it on the PCs as trusted, or give LabBeam a \
             certificate from a CA they trust ([tls] cert and key)",
        );
    } else {
        let issuer = cert
            .issuer()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| cert.issuer().to_string());
        r.ok("tls.trust", format!("issued by {issuer}: the lab PCs must trust that CA"));
    }
}

/// A Unix time as a UTC date.
fn date(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(names: &[&str], days: i64, ca: bool) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        let key = rcgen::KeyPair::generate().unwrap();
        if ca {
            let mut issuer = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            issuer.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            issuer.distinguished_name.push(rcgen::DnType::CommonName, "Campus CA");
            let issuer = rcgen::CertifiedIssuer::self_signed(issuer, rcgen::KeyPair::generate().unwrap()).unwrap();
            params.signed_by(&key, &issuer).unwrap().der().clone()
        } else {
            params.self_signed(&key).unwrap().der().clone()
        }
    }

    fn report(der: &CertificateDer<'_>, public_host: Option<&str>) -> Vec<super::super::Check> {
        let tls = crate::config::TlsConfig { cert: Some("/etc/labbeam/cert.pem".into()), ..Default::default() };
        let config = crate::config::Config { public_host: public_host.map(str::to_string), tls, ..Default::default() };
        let (_, parsed) = X509Certificate::from_der(der.as_ref()).unwrap();
        let mut r = Report::default();
        expiry(&parsed, false, &mut r);
        names(&config, der, &parsed, false, &mut r);
        trust(&parsed, &mut r);
        r.checks
    }

    fn status(checks: &[super::super::Check], name: &str) -> (super::super::Status, String) {
        let c = checks.iter().find(|c| c.check == name).unwrap();
        (c.status, c.message.clone())
    }

    #[test]
    fn expiry_names_and_issuer_are_judged_as_a_browser_would() {
        use super::super::Status;
        let good = certificate(&["lab.example.edu", "10.0.0.5"], 400, true);
        let checks = report(&good, Some("LAB.example.edu"));
        assert_eq!(status(&checks, "tls.expiry").0, Status::Ok);
        assert_eq!(status(&checks, "tls.names").0, Status::Ok, "names are matched without case");
        let (trusted, message) = status(&checks, "tls.trust");
        assert_eq!(trusted, Status::Ok);
        assert!(message.contains("Campus CA"), "{message}");
        assert_eq!(status(&report(&good, Some("10.0.0.5")), "tls.names").0, Status::Ok, "an address");

        let (named, message) = status(&report(&good, Some("other.example.edu")), "tls.names");
        assert_eq!(named, Status::Fail);
        assert!(message.contains("lab.example.edu, 10.0.0.5") && message.contains("other.example.edu"), "{message}");

        let soon = certificate(&["lab.example.edu"], 10, false);
        let checks = report(&soon, Some("lab.example.edu"));
        let (expiring, message) = status(&checks, "tls.expiry");
        assert_eq!(expiring, Status::Warn);
        assert!(message.contains("in 9 day(s)") || message.contains("in 10 day(s)"), "{message}");
        let (trusted, message) = status(&checks, "tls.trust");
        assert_eq!(trusted, Status::Warn);
        assert!(message.contains("self-signed") && message.contains("TURN over TLS"), "{message}");

        let gone = certificate(&["lab.example.edu"], -2, false);
        assert_eq!(status(&report(&gone, None), "tls.expiry").0, Status::Fail);
    }
}
