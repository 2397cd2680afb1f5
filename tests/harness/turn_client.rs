#![allow(dead_code)] // Each test file uses a different part.
//! TURN clients for the tests: the webrtc-rs `turn` client over UDP, TCP and TLS (its
//! connection is a packet `Conn`, so TCP and TLS get a small client-side framing adapter
//! here), and raw STUN exchanges for the cases a well-behaved client never produces.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use stun::agent::TransactionId;
use stun::attributes::*;
use stun::error_code::ErrorCodeAttribute;
use stun::integrity::MessageIntegrity;
use stun::message::*;
use stun::textattrs::TextAttribute;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;
use turn::client::{Client, ClientConfig};
use turn::proto::reqtrans::RequestedTransport;
use util::Conn;

use super::Server;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Udp,
    Tcp,
    Tls,
}

/// A TURN credential from `GET /api/ice-servers`.
#[derive(Debug, Clone)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

pub async fn credential(server: &Server, token: &str) -> Credential {
    let (status, body) = server.get("/api/ice-servers", token).await;
    assert_eq!(status, 200, "{body}");
    credential_of(&body)
}

pub fn credential_of(body: &Value) -> Credential {
    let turn = &body["iceServers"][1];
    Credential {
        username: turn["username"].as_str().expect("username").to_string(),
        password: turn["credential"].as_str().expect("credential").to_string(),
    }
}

/// base64(HMAC-SHA1(secret text, username)): the REST scheme, computed independently.
pub fn rest_password(secret_text: &str, username: &str) -> String {
    use base64::Engine;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret_text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(ring::hmac::sign(&key, username.as_bytes()).as_ref())
}

/// A connected `turn` client (not yet allocated).
pub async fn client(server: &Server, via: Via, cred: &Credential) -> Client {
    let (conn, addr): (Arc<dyn Conn + Send + Sync>, SocketAddr) = match via {
        Via::Udp => {
            let addr = SocketAddr::from(([127, 0, 0, 1], server.turn_port));
            (Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("udp")), addr)
        }
        Via::Tcp => {
            let addr = SocketAddr::from(([127, 0, 0, 1], server.turn_port));
            let tcp = TcpStream::connect(addr).await.expect("tcp connect");
            let local = tcp.local_addr().expect("local");
            (Arc::new(StreamConn::new(tcp, addr, local)), addr)
        }
        Via::Tls => {
            let addr = SocketAddr::from(([127, 0, 0, 1], server.turns_port));
            let tls = tls_connect(server, addr).await.expect("tls connect");
            let local = tls.get_ref().0.local_addr().expect("local");
            (Arc::new(StreamConn::new(tls, addr, local)), addr)
        }
    };
    let client = Client::new(ClientConfig {
        stun_serv_addr: addr.to_string(),
        turn_serv_addr: addr.to_string(),
        username: cred.username.clone(),
        password: cred.password.clone(),
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn,
        vnet: None,
    })
    .await
    .expect("turn client");
    client.listen().await.expect("listen");
    client
}

pub async fn tls_connect(
    server: &Server,
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(server.data_dir().join("tls").join("cert.pem"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.map_err(std::io::Error::other)?).map_err(std::io::Error::other)?;
    }
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    connector.connect(name, tcp).await
}

use rustls::pki_types::pem::PemObject;

/// TURN over a byte stream, seen as a packet connection to one server (RFC 8656 §3.1).
pub struct StreamConn<S> {
    reader: Mutex<ReadHalf<S>>,
    writer: Mutex<WriteHalf<S>>,
    server: SocketAddr,
    local: SocketAddr,
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> StreamConn<S> {
    pub fn new(stream: S, server: SocketAddr, local: SocketAddr) -> Self {
        let (r, w) = tokio::io::split(stream);
        Self { reader: Mutex::new(r), writer: Mutex::new(w), server, local }
    }
}

#[async_trait]
impl<S: AsyncRead + AsyncWrite + Send + Sync + 'static> Conn for StreamConn<S> {
    async fn connect(&self, _addr: SocketAddr) -> util::Result<()> {
        Ok(())
    }
    async fn recv(&self, buf: &mut [u8]) -> util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }
    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        let mut r = self.reader.lock().await;
        let mut header = [0u8; 4];
        r.read_exact(&mut header).await?;
        let len = u16::from_be_bytes([header[2], header[3]]) as usize;
        let (total, padded) =
            if header[0] >> 6 == 0 { (20 + len, 20 + len) } else { (4 + len, (4 + len).div_ceil(4) * 4) };
        let mut frame = vec![0u8; padded];
        frame[..4].copy_from_slice(&header);
        r.read_exact(&mut frame[4..]).await?;
        let n = total.min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok((n, self.server))
    }
    async fn send(&self, buf: &[u8]) -> util::Result<usize> {
        self.send_to(buf, self.server).await
    }
    async fn send_to(&self, buf: &[u8], _target: SocketAddr) -> util::Result<usize> {
        let mut w = self.writer.lock().await;
        let mut frame = buf.to_vec();
        if buf.first().is_some_and(|b| b >> 6 == 1) {
            frame.resize(buf.len().div_ceil(4) * 4, 0);
        }
        w.write_all(&frame).await?;
        w.flush().await?;
        Ok(buf.len())
    }
    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(self.local)
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.server)
    }
    async fn close(&self) -> util::Result<()> {
        let _ = self.writer.lock().await.shutdown().await;
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// Sends `data` from `a` to `b` through both relays until it arrives (permissions are
/// created on first send, so the first datagrams may be dropped); returns what arrived.
pub async fn relay_roundtrip(a: &(impl Conn + ?Sized), b: &(impl Conn + ?Sized), data: &[u8]) -> Vec<u8> {
    let a_addr = a.local_addr().expect("relay a");
    let b_addr = b.local_addr().expect("relay b");
    let mut buf = vec![0u8; 2048];
    for _ in 0..40 {
        // b permits a (by sending to it), a sends to b.
        let _ = b.send_to(b"hello from b", a_addr).await;
        a.send_to(data, b_addr).await.expect("relay send");
        if let Ok(Ok((n, from))) = tokio::time::timeout(Duration::from_millis(250), b.recv_from(&mut buf)).await
            && from == a_addr
            && &buf[..n] == data
        {
            return buf[..n].to_vec();
        }
    }
    panic!("nothing arrived from {a_addr} at {b_addr}");
}

/// A raw STUN transaction over UDP with the server; returns the decoded answer.
pub async fn stun_exchange(socket: &UdpSocket, server: SocketAddr, raw: &[u8]) -> Message {
    let mut buf = vec![0u8; 2048];
    for _ in 0..5 {
        socket.send_to(raw, server).await.expect("send");
        if let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_millis(500), socket.recv_from(&mut buf)).await {
            let mut m = Message::new();
            m.raw = buf[..n].to_vec();
            m.decode().expect("STUN answer");
            return m;
        }
    }
    panic!("no STUN answer from {server}");
}

/// An Allocate request; with `auth` = (username, password, realm, nonce) it carries
/// MESSAGE-INTEGRITY.
pub fn allocate_request(tx: TransactionId, auth: Option<(&str, &str, &str, &str)>) -> Vec<u8> {
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(tx),
        Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_REQUEST)),
        Box::new(RequestedTransport { protocol: turn::proto::PROTO_UDP }),
    ];
    if let Some((user, pass, realm, nonce)) = auth {
        setters.push(Box::new(TextAttribute::new(ATTR_USERNAME, user.into())));
        setters.push(Box::new(TextAttribute::new(ATTR_REALM, realm.into())));
        setters.push(Box::new(TextAttribute::new(ATTR_NONCE, nonce.into())));
        setters.push(Box::new(MessageIntegrity::new_long_term_integrity(user.into(), realm.into(), pass.into())));
    }
    let mut m = Message::new();
    m.build(&setters).expect("build");
    m.raw
}

/// The error code of an error response, or None for a success.
pub fn error_code(m: &Message) -> Option<u16> {
    if m.typ.class != CLASS_ERROR_RESPONSE {
        return None;
    }
    let mut code = ErrorCodeAttribute::default();
    code.get_from(m).expect("ERROR-CODE");
    Some(code.code.0)
}

pub fn text_attr(m: &Message, attr: AttrType) -> Option<String> {
    TextAttribute::get_from_as(m, attr).ok().map(|t| t.text)
}
