//! The behaviours of webrtc-rs `turn`/`stun` 0.17 that the gate, the relay and the nonce
//! book rely on, each pinned by a test named after it (ARCHITECTURE.md, "Owning the `turn`
//! dependency", lists them with the code that relies on each). The library's source is no
//! longer maintained upstream: an upgrade, a fork or a replacement must keep every test here
//! passing, or change the code that relies on the behaviour that moved.
//!
//! The tests drive the library's own request handler (`turn::server::request::Request`, one
//! datagram at a time, with its nonce table and allocation manager in hand) and its server
//! read loop, through connections that record what the library does. Only loopback sockets
//! are bound; nothing is sent to the peer addresses named in requests.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use stun::agent::TransactionId;
use stun::attributes::*;
use stun::error_code::ErrorCodeAttribute;
use stun::integrity::MessageIntegrity;
use stun::message::*;
use stun::textattrs::TextAttribute;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use turn::allocation::AllocationInfo;
use turn::allocation::allocation_manager::{Manager, ManagerConfig};
use turn::allocation::five_tuple::FiveTuple;
use turn::auth::{AuthHandler, generate_auth_key};
use turn::proto::PROTO_UDP;
use turn::proto::chandata::ChannelData;
use turn::proto::channum::ChannelNumber;
use turn::proto::evenport::EvenPort;
use turn::proto::lifetime::Lifetime;
use turn::proto::peeraddr::PeerAddress;
use turn::proto::relayaddr::RelayedAddress;
use turn::proto::reqtrans::RequestedTransport;
use turn::relay::RelayAddressGenerator;
use turn::server::Server;
use turn::server::config::{ConnConfig, ServerConfig};
use turn::server::request::Request;
use util::Conn;

use super::gate::INTERNAL;
use super::nonces::{ACCEPT_FOR, PURGE_AFTER};

const REALM: &str = "labbeam";
const PASSWORD: &str = "the password";
const LISTENER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3478);
const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)), 40_000);

/// A listener connection: keeps what the library sends and whether it was closed; never
/// delivers anything (the tests hand datagrams to `Request` themselves).
#[derive(Default)]
struct Listener {
    sent: Mutex<Vec<(Vec<u8>, SocketAddr)>>,
    closed: AtomicBool,
}

#[async_trait]
impl Conn for Listener {
    async fn connect(&self, _addr: SocketAddr) -> util::Result<()> {
        Ok(())
    }
    async fn recv(&self, _buf: &mut [u8]) -> util::Result<usize> {
        std::future::pending().await
    }
    async fn recv_from(&self, _buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        std::future::pending().await
    }
    async fn send(&self, buf: &[u8]) -> util::Result<usize> {
        Ok(buf.len())
    }
    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        self.sent.lock().unwrap().push((buf.to_vec(), target));
        Ok(buf.len())
    }
    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(LISTENER)
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }
    async fn close(&self) -> util::Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// A relay socket on loopback that records the buffer sizes the library reads with and
/// whether it was closed.
struct RelaySocket {
    socket: UdpSocket,
    read_with: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
}

#[async_trait]
impl Conn for RelaySocket {
    async fn connect(&self, _addr: SocketAddr) -> util::Result<()> {
        Ok(())
    }
    async fn recv(&self, _buf: &mut [u8]) -> util::Result<usize> {
        std::future::pending().await
    }
    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        self.read_with.store(buf.len(), Ordering::SeqCst);
        Ok(self.socket.recv_from(buf).await?)
    }
    async fn send(&self, buf: &[u8]) -> util::Result<usize> {
        Ok(buf.len())
    }
    async fn send_to(&self, buf: &[u8], _target: SocketAddr) -> util::Result<usize> {
        // Nothing leaves: the peers named in these tests are not contacted.
        Ok(buf.len())
    }
    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }
    async fn close(&self) -> util::Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// One relay socket the library was given.
struct HandedOut {
    addr: SocketAddr,
    read_with: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
    socket: Weak<RelaySocket>,
}

/// Relay sockets on 127.0.0.1, with a record of each one handed out.
#[derive(Default, Clone)]
struct Relays {
    handed_out: Arc<Mutex<Vec<HandedOut>>>,
}

#[async_trait]
impl RelayAddressGenerator for Relays {
    fn validate(&self) -> Result<(), turn::Error> {
        Ok(())
    }
    async fn allocate_conn(
        &self,
        _use_ipv4: bool,
        _requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let socket = UdpSocket::bind("127.0.0.1:0").await.map_err(|e| turn::Error::Other(e.to_string()))?;
        let addr = socket.local_addr().map_err(|e| turn::Error::Other(e.to_string()))?;
        let (read_with, closed) = (Arc::default(), Arc::default());
        let conn = Arc::new(RelaySocket { socket, read_with: Arc::clone(&read_with), closed: Arc::clone(&closed) });
        let record = HandedOut { addr, read_with, closed, socket: Arc::downgrade(&conn) };
        self.handed_out.lock().unwrap().push(record);
        Ok((conn, addr))
    }
}

/// Gives every username the key of [`PASSWORD`] and remembers the usernames it was asked
/// for; refuses the username "refused".
#[derive(Default)]
struct Keys {
    asked: Mutex<Vec<String>>,
}

impl AuthHandler for Keys {
    fn auth_handle(&self, username: &str, realm: &str, _src: SocketAddr) -> Result<Vec<u8>, turn::Error> {
        self.asked.lock().unwrap().push(username.to_string());
        if username == "refused" {
            return Err(turn::Error::Other("refused".into()));
        }
        Ok(generate_auth_key(username, realm, PASSWORD))
    }
}

type Nonces = Arc<tokio::sync::Mutex<HashMap<String, Instant>>>;

/// The library's request handling for one listener, as its server read loop sets it up.
struct Library {
    listener: Arc<Listener>,
    manager: Arc<Manager>,
    nonces: Nonces,
    keys: Arc<Keys>,
    relays: Relays,
    closed_allocations: mpsc::Receiver<AllocationInfo>,
    channel_bind_timeout: Duration,
}

/// What the library did with one datagram.
struct Outcome {
    result: Result<(), turn::Error>,
    answer: Option<(Message, SocketAddr)>,
}

impl Outcome {
    fn answer(&self) -> &Message {
        &self.answer.as_ref().expect("an answer").0
    }

    fn code(&self) -> Option<u16> {
        let m = self.answer();
        if m.typ.class != CLASS_ERROR_RESPONSE {
            return None;
        }
        let mut code = ErrorCodeAttribute::default();
        code.get_from(m).expect("ERROR-CODE");
        Some(code.code.0)
    }

    fn nonce(&self) -> Option<String> {
        TextAttribute::get_from_as(self.answer(), ATTR_NONCE).ok().map(|n| n.text)
    }
}

impl Library {
    fn new() -> Self {
        let (closed_tx, closed_allocations) = mpsc::channel(16);
        let relays = Relays::default();
        let manager = Manager::new(ManagerConfig {
            relay_addr_generator: Box::new(relays.clone()),
            alloc_close_notify: Some(closed_tx),
        });
        Self {
            listener: Arc::default(),
            manager: Arc::new(manager),
            nonces: Arc::default(),
            keys: Arc::default(),
            relays,
            closed_allocations,
            channel_bind_timeout: turn::proto::lifetime::DEFAULT_LIFETIME,
        }
    }

    async fn handle(&self, raw: Vec<u8>, from: SocketAddr) -> Outcome {
        let mut request = Request {
            conn: Arc::clone(&self.listener) as Arc<dyn Conn + Send + Sync>,
            src_addr: from,
            buff: raw,
            allocation_manager: Arc::clone(&self.manager),
            nonces: Arc::clone(&self.nonces),
            auth_handler: Arc::clone(&self.keys) as Arc<dyn AuthHandler + Send + Sync>,
            realm: REALM.into(),
            channel_bind_timeout: self.channel_bind_timeout,
        };
        let result = request.handle_request().await;
        let mut sent = std::mem::take(&mut *self.listener.sent.lock().unwrap());
        assert!(sent.len() <= 1, "one answer at most");
        let answer = sent.pop().map(|(raw, to)| {
            let mut m = Message::new();
            m.raw = raw;
            m.decode().expect("the library's answer decodes");
            (m, to)
        });
        Outcome { result, answer }
    }

    /// A nonce in the library's table, issued `age` ago.
    async fn nonce_aged(&self, age: Duration) -> String {
        let nonce = format!("nonce-{}", age.as_secs());
        let issued = Instant::now().checked_sub(age).expect("an instant in the past");
        self.nonces.lock().await.insert(nonce.clone(), issued);
        nonce
    }

    async fn nonce(&self) -> String {
        self.nonce_aged(Duration::ZERO).await
    }

    async fn allocation(&self, client: SocketAddr) -> Option<Arc<turn::allocation::Allocation>> {
        self.manager.get_allocation(&FiveTuple { protocol: PROTO_UDP, src_addr: client, dst_addr: LISTENER }).await
    }

    /// Allocates for `client` as `user`; the relay address.
    async fn allocate(&self, client: SocketAddr, user: &str) -> SocketAddr {
        let nonce = self.nonce().await;
        let outcome = self.handle(signed(METHOD_ALLOCATE, allocate_attrs(), user, PASSWORD, &nonce), client).await;
        assert_eq!(outcome.code(), None, "Allocate succeeds");
        let mut relayed = RelayedAddress::default();
        relayed.get_from(outcome.answer()).expect("XOR-RELAYED-ADDRESS");
        SocketAddr::new(relayed.ip, relayed.port)
    }
}

type Attrs = Vec<Box<dyn Setter>>;

fn allocate_attrs() -> Attrs {
    vec![Box::new(RequestedTransport { protocol: PROTO_UDP })]
}

fn peer(addr: &str) -> Box<dyn Setter> {
    let addr: SocketAddr = addr.parse().unwrap();
    Box::new(PeerAddress { ip: addr.ip(), port: addr.port() })
}

fn build(method: Method, class: MessageClass, attrs: Attrs) -> Vec<u8> {
    let mut setters: Attrs = vec![Box::new(TransactionId::new()), Box::new(MessageType::new(method, class))];
    setters.extend(attrs);
    let mut m = Message::new();
    m.build(&setters).unwrap();
    m.raw
}

/// A request with the long-term credentials of `user`.
fn signed(method: Method, mut attrs: Attrs, user: &str, password: &str, nonce: &str) -> Vec<u8> {
    attrs.push(Box::new(TextAttribute::new(ATTR_USERNAME, user.into())));
    attrs.push(Box::new(TextAttribute::new(ATTR_REALM, REALM.into())));
    attrs.push(Box::new(TextAttribute::new(ATTR_NONCE, nonce.into())));
    attrs.push(Box::new(MessageIntegrity::new_long_term_integrity(user.into(), REALM.into(), password.into())));
    build(method, CLASS_REQUEST, attrs)
}

/// The gate asks the library for a nonce with an unsigned Refresh from [`INTERNAL`]; clients
/// start with an unsigned request. Relied on by `nonces` and `gate::request_nonce`.
#[tokio::test]
async fn library_challenges_an_unsigned_request_with_401_and_a_nonce_it_keeps() {
    let library = Library::new();
    let outcome = library.handle(build(METHOD_REFRESH, CLASS_REQUEST, vec![]), INTERNAL).await;
    assert_eq!(outcome.answer.as_ref().map(|(_, to)| *to), Some(INTERNAL), "answered where it came from");
    assert_eq!(outcome.code(), Some(401));
    let nonce = outcome.nonce().expect("NONCE");
    assert_eq!(text(outcome.answer(), ATTR_REALM).as_deref(), Some(REALM));
    assert!(library.nonces.lock().await.contains_key(&nonce), "the nonce is in the library's table");
    // And that nonce authenticates a request.
    let outcome = library.handle(signed(METHOD_ALLOCATE, allocate_attrs(), "7", PASSWORD, &nonce), CLIENT).await;
    assert_eq!(outcome.code(), None);
}

/// Every challenge adds a nonce that stays until presented after its lifetime: an
/// unauthenticated flood would grow the table without bound, so the gate never lets a
/// challenge reach the library (`nonces`, `gate::authenticate`).
#[tokio::test]
async fn library_keeps_every_nonce_it_issues_until_it_is_presented_expired() {
    let library = Library::new();
    for _ in 0..64 {
        library.handle(build(METHOD_ALLOCATE, CLASS_REQUEST, allocate_attrs()), CLIENT).await;
    }
    assert_eq!(library.nonces.lock().await.len(), 64);
    // An old nonce nobody presents stays too.
    library.nonce_aged(Duration::from_secs(24 * 3600)).await;
    library.handle(build(METHOD_ALLOCATE, CLASS_REQUEST, allocate_attrs()), CLIENT).await;
    assert_eq!(library.nonces.lock().await.len(), 66);
}

/// The nonce book hands nonces to clients for [`ACCEPT_FOR`] and presents them back to the
/// library after [`PURGE_AFTER`]: the library's lifetime (1 h) must lie between the two.
#[tokio::test]
async fn library_accepts_a_nonce_for_one_hour() {
    let library = Library::new();
    let fresh_enough = library.nonce_aged(ACCEPT_FOR).await;
    let outcome = library.handle(signed(METHOD_ALLOCATE, allocate_attrs(), "7", PASSWORD, &fresh_enough), CLIENT).await;
    assert_eq!(outcome.code(), None, "a nonce as old as the book still hands out");
    let old = library.nonce_aged(PURGE_AFTER).await;
    let other = SocketAddr::from(([127, 0, 0, 9], 40_001));
    let outcome = library.handle(signed(METHOD_ALLOCATE, allocate_attrs(), "7", PASSWORD, &old), other).await;
    assert_eq!(outcome.code(), Some(438), "a nonce as old as the book's purge age");
}

/// `gate::request_nonce` hands an expired nonce back with made-up credentials: the library
/// looks at the nonce first, removes it, and answers 438 with a fresh nonce it keeps.
#[tokio::test]
async fn library_removes_an_expired_nonce_when_presented_and_answers_438_with_a_new_one() {
    let library = Library::new();
    let expired = library.nonce_aged(PURGE_AFTER).await;
    let raw = build(
        METHOD_REFRESH,
        CLASS_REQUEST,
        vec![
            Box::new(TextAttribute::new(ATTR_USERNAME, "0:0".into())),
            Box::new(TextAttribute::new(ATTR_REALM, REALM.into())),
            Box::new(TextAttribute::new(ATTR_NONCE, expired.clone())),
            Box::new(MessageIntegrity::new_short_term_integrity("x".into())),
        ],
    );
    let outcome = library.handle(raw, INTERNAL).await;
    assert_eq!(outcome.code(), Some(438));
    let fresh = outcome.nonce().expect("a new NONCE");
    let table = library.nonces.lock().await;
    assert!(!table.contains_key(&expired), "the expired nonce is gone");
    assert!(table.contains_key(&fresh), "the new one is kept");
    assert_eq!(table.len(), 1);
    assert!(library.keys.asked.lock().unwrap().is_empty(), "credentials were not looked at");
}

/// RFC 8489 says 401; the library says 400. The gate checks credentials itself and answers
/// 401 with a nonce (`gate::authenticate`), so clients retry with new credentials.
#[tokio::test]
async fn library_answers_a_bad_integrity_with_400() {
    let library = Library::new();
    let nonce = library.nonce().await;
    let outcome = library.handle(signed(METHOD_ALLOCATE, allocate_attrs(), "7", "wrong", &nonce), CLIENT).await;
    assert_eq!(outcome.code(), Some(400));
    assert_eq!(outcome.nonce(), None);
}

/// Same as a bad integrity: a username the `AuthHandler` refuses gets 400, not 401.
#[tokio::test]
async fn library_answers_a_refused_username_with_400() {
    let library = Library::new();
    let nonce = library.nonce().await;
    let outcome = library.handle(signed(METHOD_ALLOCATE, allocate_attrs(), "refused", PASSWORD, &nonce), CLIENT).await;
    assert_eq!(outcome.code(), Some(400));
}

/// The library never compares a request's username with its allocation's. The gate refuses
/// another username (441, `gate::check_owner`) and uses the gap to close a client's
/// allocation with the appliance's own credentials (`gate::close_allocation`).
#[tokio::test]
async fn library_does_not_check_the_allocations_username() {
    let library = Library::new();
    library.allocate(CLIENT, "7").await;
    let nonce = library.nonce().await;
    let raw = signed(METHOD_CREATE_PERMISSION, vec![peer("10.1.2.3:5000")], "8", PASSWORD, &nonce);
    assert_eq!(library.handle(raw, CLIENT).await.code(), None, "CreatePermission by another user");
    let raw = signed(METHOD_REFRESH, vec![Box::new(Lifetime(Duration::ZERO))], "0", PASSWORD, &nonce);
    assert_eq!(library.handle(raw, CLIENT).await.code(), None, "Refresh 0 by another user");
    assert!(library.allocation(CLIENT).await.is_none(), "deleted");
}

/// Requests that need an allocation get no answer at all without one; the gate answers 437
/// (`gate::check_owner`).
#[tokio::test]
async fn library_stays_silent_without_an_allocation() {
    let library = Library::new();
    let nonce = library.nonce().await;
    let cases: [(&str, Vec<u8>); 4] = [
        ("CreatePermission", signed(METHOD_CREATE_PERMISSION, vec![peer("10.1.2.3:5000")], "7", PASSWORD, &nonce)),
        (
            "ChannelBind",
            signed(
                METHOD_CHANNEL_BIND,
                vec![Box::new(ChannelNumber(0x4001)), peer("10.1.2.3:5000")],
                "7",
                PASSWORD,
                &nonce,
            ),
        ),
        ("Refresh", signed(METHOD_REFRESH, vec![Box::new(Lifetime(Duration::from_secs(600)))], "7", PASSWORD, &nonce)),
        ("Send", build(METHOD_SEND, CLASS_INDICATION, vec![peer("10.1.2.3:5000")])),
    ];
    for (what, raw) in cases {
        let outcome = library.handle(raw, CLIENT).await;
        assert!(outcome.answer.is_none(), "{what}: no answer");
        assert!(outcome.result.is_err(), "{what}");
    }
}

/// A second Allocate on the same 5-tuple is 437 even when it is a retransmission of the
/// first (same transaction): the gate answers retransmissions with the first answer
/// (`gate::screen_allocate`).
#[tokio::test]
async fn library_answers_a_retransmitted_allocate_with_437() {
    let library = Library::new();
    let nonce = library.nonce().await;
    let raw = signed(METHOD_ALLOCATE, allocate_attrs(), "7", PASSWORD, &nonce);
    assert_eq!(library.handle(raw.clone(), CLIENT).await.code(), None);
    assert_eq!(library.handle(raw, CLIENT).await.code(), Some(437));
}

/// CreatePermission loops over the XOR-PEER-ADDRESS attributes but decodes the first one each
/// time: only the first peer gets a permission. The mirror follows (`gate::PendingKind`).
#[tokio::test]
async fn library_installs_only_the_first_xor_peer_address() {
    let library = Library::new();
    library.allocate(CLIENT, "7").await;
    let nonce = library.nonce().await;
    let raw =
        signed(METHOD_CREATE_PERMISSION, vec![peer("10.1.0.1:5000"), peer("10.1.0.2:5000")], "7", PASSWORD, &nonce);
    assert_eq!(library.handle(raw, CLIENT).await.code(), None);
    let allocation = library.allocation(CLIENT).await.expect("allocation");
    assert!(allocation.has_permission(&"10.1.0.1:5000".parse().unwrap()).await);
    assert!(!allocation.has_permission(&"10.1.0.2:5000".parse().unwrap()).await, "the second peer");
}

/// Permissions are per IP address, whatever the port (RFC 8656 §9); the mirror keys them
/// the same way (`relay::RelayState::permit`).
#[tokio::test]
async fn library_keys_permissions_by_ip_address_alone() {
    let library = Library::new();
    library.allocate(CLIENT, "7").await;
    let nonce = library.nonce().await;
    let raw = signed(METHOD_CREATE_PERMISSION, vec![peer("10.1.0.1:5000")], "7", PASSWORD, &nonce);
    assert_eq!(library.handle(raw, CLIENT).await.code(), None);
    let allocation = library.allocation(CLIENT).await.expect("allocation");
    assert!(allocation.has_permission(&"10.1.0.1:6000".parse().unwrap()).await);
}

/// A ChannelBind also installs (or refreshes) a permission for its peer; the mirror permits
/// the peer on a ChannelBind too (`gate::observe_answer`).
#[tokio::test]
async fn library_permits_the_peer_of_a_channel_binding() {
    let library = Library::new();
    library.allocate(CLIENT, "7").await;
    let nonce = library.nonce().await;
    let raw = signed(
        METHOD_CHANNEL_BIND,
        vec![Box::new(ChannelNumber(0x4001)), peer("10.1.0.1:5000")],
        "7",
        PASSWORD,
        &nonce,
    );
    assert_eq!(library.handle(raw, CLIENT).await.code(), None);
    let allocation = library.allocation(CLIENT).await.expect("allocation");
    assert!(allocation.has_permission(&"10.1.0.1:5000".parse().unwrap()).await);
    assert_eq!(allocation.get_channel_addr(&ChannelNumber(0x4001)).await, Some("10.1.0.1:5000".parse().unwrap()));
}

/// A channel number stays with its peer and a peer with its number until the binding
/// expires (400 otherwise); the same binding again refreshes it. The mirror's two maps stay
/// one-to-one because of this (`relay::RelayState::bind_channel`).
#[tokio::test]
async fn library_refuses_to_rebind_a_channel_or_a_peer_with_400() {
    let library = Library::new();
    library.allocate(CLIENT, "7").await;
    let nonce = library.nonce().await;
    let bind = |number: u16, to: &str| {
        signed(METHOD_CHANNEL_BIND, vec![Box::new(ChannelNumber(number)), peer(to)], "7", PASSWORD, &nonce)
    };
    assert_eq!(library.handle(bind(0x4001, "10.1.0.1:5000"), CLIENT).await.code(), None);
    assert_eq!(library.handle(bind(0x4001, "10.1.0.2:5000"), CLIENT).await.code(), Some(400), "number taken");
    assert_eq!(library.handle(bind(0x4002, "10.1.0.1:5000"), CLIENT).await.code(), Some(400), "peer bound");
    assert_eq!(library.handle(bind(0x4001, "10.1.0.1:5000"), CLIENT).await.code(), None, "a refresh");
}

/// A binding lives `channel_bind_timeout` after its last ChannelBind. `service` passes the
/// mirror's [`CHANNEL_LIFETIME`](super::relay::CHANNEL_LIFETIME), so both expire together
/// (checked here with a short timeout).
#[tokio::test]
async fn library_expires_a_channel_binding_its_timeout_after_the_last_bind() {
    let mut library = Library::new();
    library.channel_bind_timeout = Duration::from_millis(1000);
    library.allocate(CLIENT, "7").await;
    let nonce = library.nonce().await;
    let bind = || {
        signed(METHOD_CHANNEL_BIND, vec![Box::new(ChannelNumber(0x4001)), peer("10.1.0.1:5000")], "7", PASSWORD, &nonce)
    };
    let allocation = library.allocation(CLIENT).await.expect("allocation");
    let bound = || async { allocation.get_channel_addr(&ChannelNumber(0x4001)).await.is_some() };
    assert_eq!(library.handle(bind(), CLIENT).await.code(), None);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(bound().await, "bound before its timeout");
    assert_eq!(library.handle(bind(), CLIENT).await.code(), None, "refreshed");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(bound().await, "the refresh restarted the timeout");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!bound().await, "expired");
}

/// ChannelData is recognised on channels 0x4000-0x7FFF (RFC 5766's range; RFC 8656 narrowed
/// it to 0x4FFF but coturn's client still uses the whole range), which `transport` frames
/// and the fast path relays.
#[test]
fn library_takes_channel_data_on_channels_0x4000_to_0x7fff() {
    for (number, taken) in
        [(0x3fff, false), (0x4000, true), (0x4fff, true), (0x5000, true), (0x7fff, true), (0x8000, false)]
    {
        let mut frame = u16::to_be_bytes(number).to_vec();
        frame.extend_from_slice(&[0, 4, 1, 2, 3, 4]);
        assert_eq!(ChannelData::is_channel_data(&frame), taken, "{number:#x}");
    }
}

/// The library binds any CHANNEL-NUMBER, even one no ChannelData can carry (RFC 8656 says
/// 400); the gate refuses those itself (`gate::screen_channel_bind`).
#[tokio::test]
async fn library_binds_a_channel_number_outside_0x4000_to_0x7fff() {
    let library = Library::new();
    library.allocate(CLIENT, "7").await;
    let nonce = library.nonce().await;
    let raw = signed(
        METHOD_CHANNEL_BIND,
        vec![Box::new(ChannelNumber(0x8001)), peer("10.1.0.1:5000")],
        "7",
        PASSWORD,
        &nonce,
    );
    assert_eq!(library.handle(raw, CLIENT).await.code(), None);
}

/// A truncated XOR-PEER-ADDRESS (fewer address bytes than its family has) decodes to an
/// address padded with zero bytes instead of failing. The gate refuses such a request
/// (400, `gate::peer_addresses`), so the peer it judges is the peer the library installs.
#[tokio::test]
async fn library_decodes_a_truncated_xor_peer_address() {
    let mut m = Message::new();
    m.build(&[Box::new(TransactionId::new()) as Box<dyn Setter>, Box::new(BINDING_REQUEST)]).unwrap();
    // Family IPv4, port, one address byte: 0x2b ^ 0x21 (the cookie's first byte) = 10.
    m.add(ATTR_XOR_PEER_ADDRESS, &[0x00, 0x01, 0x00, 0x00, 0x2b]);
    let mut decoded = Message::new();
    decoded.raw = m.raw.clone();
    decoded.decode().unwrap();
    let mut peer = PeerAddress::default();
    peer.get_from(&decoded).expect("decoded");
    assert_eq!(peer.ip, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)));
}

/// The Allocate success names the relay socket's own address in XOR-RELAYED-ADDRESS: the
/// gate finds the relay's state by that port (`gate::observe_answer`).
#[tokio::test]
async fn library_names_the_relay_sockets_address_in_the_allocate_success() {
    let library = Library::new();
    let relayed = library.allocate(CLIENT, "7").await;
    let handed_out: Vec<SocketAddr> = library.relays.handed_out.lock().unwrap().iter().map(|h| h.addr).collect();
    assert_eq!(handed_out, vec![relayed]);
}

/// Closing an allocation closes the relay socket and reports the relay address on
/// `alloc_close_notify` (`service` → `Shared::allocation_closed` frees the quota slot and
/// the table entry; `relay::RelayConn::close` takes the port out of the filter).
#[tokio::test]
async fn library_closes_the_relay_socket_and_reports_the_relay_address_when_an_allocation_closes() {
    let mut library = Library::new();
    let relayed = library.allocate(CLIENT, "7").await;
    let nonce = library.nonce().await;
    let raw = signed(METHOD_REFRESH, vec![Box::new(Lifetime(Duration::ZERO))], "7", PASSWORD, &nonce);
    assert_eq!(library.handle(raw, CLIENT).await.code(), None);
    let info = tokio::time::timeout(Duration::from_secs(5), library.closed_allocations.recv()).await.unwrap().unwrap();
    assert_eq!((info.relay_addr, info.five_tuple.src_addr), (relayed, CLIENT));
    assert!(library.relays.handed_out.lock().unwrap()[0].closed.load(Ordering::SeqCst), "relay socket closed");
}

/// Closing one allocation also calls `close` on the listener connection it came in on
/// (the gate, shared by every allocation of that listener): the gate's `close` must do
/// nothing.
#[tokio::test]
async fn library_closes_the_listener_connection_when_an_allocation_closes() {
    let library = Library::new();
    library.allocate(CLIENT, "7").await;
    assert!(!library.listener.closed.load(Ordering::SeqCst));
    let nonce = library.nonce().await;
    let raw = signed(METHOD_REFRESH, vec![Box::new(Lifetime(Duration::ZERO))], "7", PASSWORD, &nonce);
    assert_eq!(library.handle(raw, CLIENT).await.code(), None);
    assert!(library.listener.closed.load(Ordering::SeqCst));
}

/// A relay socket is read into a 1500-byte buffer: `relay::RelayConn::recv_from` drops
/// larger datagrams as oversize against the buffer it is given.
#[tokio::test]
async fn library_reads_relay_sockets_with_a_1500_byte_buffer() {
    let library = Library::new();
    library.allocate(CLIENT, "7").await;
    let read_with = Arc::clone(&library.relays.handed_out.lock().unwrap()[0].read_with);
    for _ in 0..100 {
        if read_with.load(Ordering::SeqCst) != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(read_with.load(Ordering::SeqCst), super::transport::MAX_LIBRARY_PACKET);
}

/// A listener connection for the server's read loop: records the buffer sizes it is read
/// with, fails its first read when told to, and records `close`.
#[derive(Default)]
struct ReadLoopProbe {
    reads: Mutex<Vec<usize>>,
    fail: bool,
    closed: AtomicBool,
}

#[async_trait]
impl Conn for ReadLoopProbe {
    async fn connect(&self, _addr: SocketAddr) -> util::Result<()> {
        Ok(())
    }
    async fn recv(&self, _buf: &mut [u8]) -> util::Result<usize> {
        std::future::pending().await
    }
    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        self.reads.lock().unwrap().push(buf.len());
        if self.fail {
            return Err(util::Error::Other("a transient failure".into()));
        }
        std::future::pending().await
    }
    async fn send(&self, buf: &[u8]) -> util::Result<usize> {
        Ok(buf.len())
    }
    async fn send_to(&self, buf: &[u8], _target: SocketAddr) -> util::Result<usize> {
        Ok(buf.len())
    }
    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(LISTENER)
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }
    async fn close(&self) -> util::Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

async fn serve(probe: Arc<ReadLoopProbe>) -> Server {
    Server::new(ServerConfig {
        conn_configs: vec![ConnConfig { conn: probe, relay_addr_generator: Box::new(Relays::default()) }],
        realm: REALM.into(),
        auth_handler: Arc::new(Keys::default()),
        channel_bind_timeout: Duration::ZERO,
        alloc_close_notify: None,
    })
    .await
    .expect("server")
}

/// The server reads each listener into a 1500-byte buffer: the gate and the stream framing
/// drop larger packets (counted as oversize) rather than hand them over truncated.
#[tokio::test]
async fn library_reads_listeners_with_a_1500_byte_buffer() {
    let probe = Arc::new(ReadLoopProbe::default());
    let server = serve(Arc::clone(&probe)).await;
    for _ in 0..100 {
        if !probe.reads.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(probe.reads.lock().unwrap().first().copied(), Some(super::transport::MAX_LIBRARY_PACKET));
    server.close().await.unwrap();
}

/// The first error from a listener's `recv_from` ends its read loop for good (and closes
/// the listener): the gate returns an error only when its transport is shut, and waits out
/// every other failure itself (`gate` `Conn::recv_from`).
#[tokio::test]
async fn library_stops_a_listener_at_its_first_receive_error() {
    let probe = Arc::new(ReadLoopProbe { fail: true, ..Default::default() });
    let _server = serve(Arc::clone(&probe)).await;
    for _ in 0..100 {
        if probe.closed.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(probe.closed.load(Ordering::SeqCst), "the listener was closed");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(probe.reads.lock().unwrap().len(), 1, "never read again");
}

/// Binding requests are answered without credentials (plain STUN for ICE); the gate lets
/// them through unauthenticated (`gate::screen_binding`).
#[tokio::test]
async fn library_answers_a_binding_request_without_credentials() {
    let library = Library::new();
    let outcome = library.handle(build(METHOD_BINDING, CLASS_REQUEST, vec![]), CLIENT).await;
    assert_eq!(outcome.answer().typ, BINDING_SUCCESS);
    let mut mapped = stun::xoraddr::XorMappedAddress::default();
    mapped.get_from(outcome.answer()).expect("XOR-MAPPED-ADDRESS");
    assert_eq!(SocketAddr::new(mapped.ip, mapped.port), CLIENT);
}

/// Of repeated USERNAME (or NONCE, REALM) attributes, stun 0.17 and the library use the first:
/// the username the gate checks (`gate::authenticate`) is the one the library authenticates
/// and records on the allocation.
#[tokio::test]
async fn library_uses_the_first_of_repeated_attributes() {
    let library = Library::new();
    let nonce = library.nonce().await;
    let mut attrs = allocate_attrs();
    attrs.push(Box::new(TextAttribute::new(ATTR_USERNAME, "7".into())));
    attrs.push(Box::new(TextAttribute::new(ATTR_USERNAME, "8".into())));
    attrs.push(Box::new(TextAttribute::new(ATTR_REALM, REALM.into())));
    attrs.push(Box::new(TextAttribute::new(ATTR_NONCE, nonce)));
    attrs.push(Box::new(MessageIntegrity::new_long_term_integrity("7".into(), REALM.into(), PASSWORD.into())));
    let raw = build(METHOD_ALLOCATE, CLASS_REQUEST, attrs);
    let mut m = Message::new();
    m.raw = raw.clone();
    m.decode().unwrap();
    assert_eq!(text(&m, ATTR_USERNAME).as_deref(), Some("7"), "stun's getter");
    assert_eq!(library.handle(raw, CLIENT).await.code(), None);
    assert_eq!(*library.keys.asked.lock().unwrap(), vec!["7".to_string()], "the library's");
}

/// An EVEN-PORT Allocate makes the library take a relay socket to learn a port and drop it
/// unclosed; `relay::RelayConn`'s `Drop` takes such a port out of the filter.
#[tokio::test]
async fn library_drops_the_relay_socket_of_an_even_port_probe_without_closing_it() {
    let library = Library::new();
    let nonce = library.nonce().await;
    let mut attrs = allocate_attrs();
    attrs.push(Box::new(EvenPort::default()));
    // The library probes until it sees an even port, then allocates (this generator ignores
    // the port asked for).
    let outcome = library.handle(signed(METHOD_ALLOCATE, attrs, "7", PASSWORD, &nonce), CLIENT).await;
    assert_eq!(outcome.code(), None);
    let handed_out = library.relays.handed_out.lock().unwrap();
    let (allocated, probes) = handed_out.split_last().expect("relay sockets");
    assert!(!probes.is_empty(), "at least one probe");
    for probe in probes {
        assert!(probe.socket.upgrade().is_none(), "a probe is dropped");
        assert!(!probe.closed.load(Ordering::SeqCst), "without being closed");
    }
    assert!(allocated.socket.upgrade().is_some(), "the allocation's socket lives");
}

fn text(m: &Message, attr: AttrType) -> Option<String> {
    TextAttribute::get_from_as(m, attr).ok().map(|t| t.text)
}
