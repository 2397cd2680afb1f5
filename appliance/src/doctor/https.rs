//! TLS to the appliance's own listeners (HTTPS, TURN over TLS) for doctor: the server must
//! present the certificate the configuration names, byte for byte, with a valid handshake
//! signature. Pinning it, rather than verifying a chain, is what tells "the running labbeam
//! of this configuration" from "another program on the port", and it works the same for a
//! generated self-signed certificate and for a CA-issued one; whether the lab PCs trust
//! the certificate and whether it names `public_host` are the certificate checks' job.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Accepts exactly the pinned certificates and remembers what the server presented.
#[derive(Debug)]
pub struct Pinned {
    pins: Vec<CertificateDer<'static>>,
    seen: Mutex<Option<CertificateDer<'static>>>,
    provider: Arc<CryptoProvider>,
}

impl Pinned {
    pub fn new(pins: Vec<CertificateDer<'static>>) -> Arc<Self> {
        Arc::new(Self { pins, seen: Mutex::new(None), provider: Arc::new(rustls::crypto::ring::default_provider()) })
    }

    /// The certificate the server presented in the last handshake.
    pub fn seen(&self) -> Option<CertificateDer<'static>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A client configuration that trusts only the pins, without ALPN.
    pub fn client_config(self: &Arc<Self>) -> Result<rustls::ClientConfig, rustls::Error> {
        Ok(rustls::ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::clone(self) as Arc<dyn ServerCertVerifier>)
            .with_no_client_auth())
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(end_entity.clone().into_owned());
        if self.pins.iter().any(|pin| pin.as_ref() == end_entity.as_ref()) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a TLS connection to the appliance did not come about.
#[derive(Debug)]
pub enum ConnectError {
    /// Nothing accepted the TCP connection (refused, unreachable, or no answer in time).
    Tcp(io::Error),
    /// The server presented another certificate (SHA-256 fingerprint).
    OtherCertificate(String),
    /// Any other TLS failure.
    Tls(io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Tcp(e) => write!(f, "{e}"),
            ConnectError::OtherCertificate(fp) => {
                write!(f, "it presents the certificate SHA-256 {fp}, not the configured one")
            }
            ConnectError::Tls(e) => write!(f, "the TLS handshake failed: {e}"),
        }
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS connection to `addr` that presents one of `pins`.
pub async fn connect(
    addr: SocketAddr,
    server_name: &str,
    pins: &[CertificateDer<'static>],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ConnectError> {
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "no answer within 3 s");
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| ConnectError::Tcp(timed_out()))?
        .map_err(ConnectError::Tcp)?;
    let _ = tcp.set_nodelay(true);
    let pinned = Pinned::new(pins.to_vec());
    let config = pinned.client_config().map_err(|e| ConnectError::Tls(io::Error::other(e)))?;
    let name = ServerName::try_from(server_name.to_string())
        .or_else(|_| ServerName::try_from("localhost".to_string()))
        .map_err(|e| ConnectError::Tls(io::Error::other(e)))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp)).await {
        Err(_) => Err(ConnectError::Tls(timed_out())),
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => match pinned.seen() {
            Some(seen) if !pins.iter().any(|p| p.as_ref() == seen.as_ref()) => {
                Err(ConnectError::OtherCertificate(crate::tls::fingerprint(&seen)))
            }
            _ => Err(ConnectError::Tls(e)),
        },
    }
}

/// An HTTP answer, as far as doctor reads it.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub date: Option<SystemTime>,
    pub body: String,
}

/// `GET path` over a fresh pinned TLS connection (HTTP/1.1, `Connection: close`).
pub async fn get(
    addr: SocketAddr,
    server_name: &str,
    pins: &[CertificateDer<'static>],
    path: &str,
) -> Result<Answer, ConnectError> {
    let mut stream = connect(addr, server_name, pins).await?;
    let host = if server_name.contains(':') { format!("[{server_name}]") } else { server_name.to_string() };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{}\r\nUser-Agent: labbeam-doctor\r\nConnection: close\r\n\r\n",
        addr.port()
    );
    let exchange = async {
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        (&mut stream).take(1 << 20).read_to_end(&mut raw).await?;
        Ok::<_, io::Error>(raw)
    };
    let raw = match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(e)) => return Err(ConnectError::Tls(e)),
        Err(_) => return Err(ConnectError::Tls(io::Error::new(io::ErrorKind::TimedOut, "no answer within 10 s"))),
    };
    parse_answer(&raw).ok_or_else(|| ConnectError::Tls(io::Error::other("the answer is not HTTP")))
}

/// The status, `Date` and body of a whole HTTP/1.1 answer (chunked bodies are joined).
fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.strip_prefix("HTTP/1.")?.get(2..)?.trim_start().get(..3)?.parse().ok()?;
    let mut date = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.eq_ignore_ascii_case("date") {
            date = httpdate::parse_http_date(value.trim()).ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") && value.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        }
    }
    let body = if chunked { unchunk(body)? } else { body.to_string() };
    Some(Answer { status, date, body })
}

fn unchunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_with_their_date_and_chunks() {
        let a = parse_answer(b"HTTP/1.1 200 OK\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT\r\ncontent-length: 2\r\n\r\nok")
            .unwrap();
        assert_eq!((a.status, a.body.as_str()), (200, "ok"));
        assert_eq!(a.date, Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)));
        let a = parse_answer(
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((a.status, a.body.as_str(), a.date), (503, "abcde", None));
        assert!(parse_answer(b"SSH-2.0-OpenSSH\r\n\r\n").is_none());
    }
}
