//! The certificate of HTTPS and TURN over TLS (`tls.certificate`).

use rustls::pki_types::CertificateDer;

use super::Report;
use crate::config::Config;
use crate::tls;

/// The certificate `serve` uses (or will use), as read from its file.
pub struct Certificate {
    /// The chain as in the file, the server's own certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    pub fingerprint: String,
}

/// `tls.certificate`: it loads and pairs with its key. `None` when there is none yet or it
/// does not load.
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
    Some(Certificate { chain, fingerprint: inspection.fingerprint })
}
