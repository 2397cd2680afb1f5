//! The gate: the packet connection the relay library reads and writes for one listener
//! (a UDP socket, or a mux of TCP/TLS connections). Everything a client sends passes the
//! gate before the library sees it, and every answer of the library passes it on the way
//! out. It is where the library's gaps are closed without touching the library:
//!
//! - authentication: requests are checked here (REST username, expiry, user known and
//!   enabled, MESSAGE-INTEGRITY); failures are answered 401 with realm and nonce, as
//!   RFC 8489 says (the library answers 400), and never reach the library;
//! - nonces: challenges and stale nonces are answered here from the [`NonceBook`], so the
//!   library's never-purged nonce table cannot be grown from the network;
//! - the allocation's own username on every later request (441 otherwise), which the
//!   library does not check; requests without an allocation get 437 (the library stays
//!   silent);
//! - a retransmitted Allocate gets the original success again (the library says 437);
//! - quotas (486) before an Allocate reaches the library;
//! - the peer filter on CreatePermission and ChannelBind (403) and on every Send;
//! - datagrams over the library's 1500-byte buffer are dropped and counted here rather than
//!   handed over truncated.
//!
//! The gate also speaks to the library itself, from [`INTERNAL`] or in a client's name, to
//! obtain nonces and to close allocations (TCP/TLS connection closed, user disabled).
//!
//! Invariant: a request the library sees was authenticated by the gate with a live
//! credential, except the gate's own internal requests.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use stun::agent::TransactionId;
use stun::attributes::*;
use stun::error_code::*;
use stun::integrity::MessageIntegrity;
use stun::message::*;
use stun::textattrs::TextAttribute;
use tokio::sync::mpsc;
use turn::proto::lifetime::Lifetime;
use turn::proto::relayaddr::RelayedAddress;
use util::Conn;

use super::counters::{AuthFailure, Drop, QuotaScope};
use super::credentials::{RestUsername, SYSTEM_USER};
use super::directory::UserStatus;
use super::relay::RelayState;
use super::shared::{AllocationRecord, GateHandle, Shared};
use super::transport::{MAX_LIBRARY_PACKET, Transport};

/// The source address of the gate's own requests to the library (no real datagram can
/// come from port 0 of the unspecified address).
pub const INTERNAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
/// Requests that got no answer from the library are forgotten after this.
const PENDING_FOR: Duration = Duration::from_secs(30);

type TxId = [u8; TRANSACTION_ID_SIZE];

pub struct Gate<T: Transport> {
    shared: Arc<Shared>,
    transport: Arc<T>,
    internal_tx: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    internal_rx: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    book: Mutex<GateBook>,
    me: Weak<Gate<T>>,
}

#[derive(Default)]
struct GateBook {
    clients: foldhash::HashMap<SocketAddr, ClientAllocation>,
    pending: HashMap<TxId, Pending>,
    /// Transactions of the gate's own requests: their answers go nowhere.
    internal: HashSet<TxId>,
}

struct ClientAllocation {
    user: i64,
    /// The relay socket's state, for the ChannelData fast path.
    relay: Option<Arc<RelayState>>,
    username: String,
    allocate_tx: TxId,
    allocate_response: Vec<u8>,
}

struct Pending {
    client: SocketAddr,
    user: i64,
    username: String,
    kind: PendingKind,
    at: Instant,
}

enum PendingKind {
    Allocate,
    /// CreatePermission, or ChannelBind with its channel number.
    Permission(Vec<SocketAddr>, Option<u16>),
}

/// What to do with one packet from the network.
enum Verdict {
    Forward,
    Reply(Vec<u8>),
    Drop,
}

impl<T: Transport> Gate<T> {
    pub fn new(shared: Arc<Shared>, transport: Arc<T>) -> Arc<Self> {
        let (internal_tx, internal_rx) = mpsc::channel(1024);
        let gate = Arc::new_cyclic(|me| Gate {
            shared: Arc::clone(&shared),
            transport,
            internal_tx,
            internal_rx: tokio::sync::Mutex::new(internal_rx),
            book: Mutex::default(),
            me: me.clone(),
        });
        let handle: Weak<dyn GateHandle> = Arc::downgrade(&gate) as Weak<dyn GateHandle>;
        shared.gates.lock().unwrap_or_else(|p| p.into_inner()).push(handle);
        gate
    }

    fn book(&self) -> std::sync::MutexGuard<'_, GateBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Judges one packet from `from`.
    fn screen(&self, packet: &[u8], from: SocketAddr) -> Verdict {
        let Some(&first) = packet.first() else { return Verdict::Drop };
        match first >> 6 {
            // ChannelData: the library checks the channel; the peer was judged at ChannelBind
            // and is judged again by the relay socket.
            0b01 => return Verdict::Forward,
            0b00 => {}
            _ => return self.malformed(),
        }
        let mut m = Message::new();
        m.raw = packet.to_vec();
        if m.decode().is_err() {
            return self.malformed();
        }
        match (m.typ.class, m.typ.method) {
            (CLASS_REQUEST, METHOD_BINDING) => Verdict::Forward,
            (CLASS_INDICATION, METHOD_SEND) => self.screen_send(&m, from),
            (CLASS_REQUEST, METHOD_ALLOCATE | METHOD_REFRESH | METHOD_CREATE_PERMISSION | METHOD_CHANNEL_BIND) => {
                self.screen_request(&mut m, from)
            }
            (CLASS_REQUEST, _) => self.reply(&m, CODE_BAD_REQUEST, "this server does not support that method", false),
            _ => self.malformed(),
        }
    }

    fn malformed(&self) -> Verdict {
        self.shared.counters.dropped(Drop::Malformed);
        Verdict::Drop
    }

    fn screen_send(&self, m: &Message, from: SocketAddr) -> Verdict {
        let Some(peer) = peer_addresses(m).into_iter().next() else { return self.malformed() };
        match self.shared.policy.check(peer) {
            Ok(()) => Verdict::Forward,
            Err(why) => {
                let user = self.book().clients.get(&from).map(|c| c.user);
                self.refused(user, from, peer, why);
                Verdict::Drop
            }
        }
    }

    fn refused(&self, user: Option<i64>, client: SocketAddr, peer: SocketAddr, why: super::peer_filter::Refusal) {
        self.shared.counters.refusal(why);
        if self.shared.may_log() {
            tracing::warn!(
                user_id = user.unwrap_or(SYSTEM_USER),
                client = %client,
                peer = %peer,
                reason = why.label(),
                "TURN peer refused by the peer filter"
            );
        }
    }

    fn screen_request(&self, m: &mut Message, from: SocketAddr) -> Verdict {
        let now = Instant::now();
        let shared = &self.shared;
        if !m.contains(ATTR_MESSAGE_INTEGRITY) {
            // The normal first step of a client: challenge it with a nonce from the book. Before
            // the first nonce is in the book (the first milliseconds), the library answers.
            return match shared.nonces.current(now) {
                Some(_) => self.reply(m, CODE_UNAUTHORIZED, "credentials required", true),
                None => Verdict::Forward,
            };
        }
        let (Ok(nonce), Ok(username), Ok(realm)) = (
            TextAttribute::get_from_as(m, ATTR_NONCE),
            TextAttribute::get_from_as(m, ATTR_USERNAME),
            TextAttribute::get_from_as(m, ATTR_REALM),
        ) else {
            return self.reply(
                m,
                CODE_BAD_REQUEST,
                "USERNAME, REALM and NONCE are required with MESSAGE-INTEGRITY",
                false,
            );
        };
        if !shared.nonces.accepts(&nonce.text, now) {
            return match shared.nonces.current(now) {
                Some(_) => self.reply(m, CODE_STALE_NONCE, "stale nonce", true),
                None => Verdict::Forward,
            };
        }
        let username = username.text;
        let user = match self.check_user(&username, &realm.text, m) {
            Ok(user) => user,
            Err(why) => {
                shared.counters.auth_failure(why);
                if shared.may_log() {
                    let user_id = RestUsername::parse(&username).map(|u| u.user_id).ok();
                    tracing::warn!(client = %from, user_id, reason = why.label(), "TURN credentials refused");
                }
                return self.reply(
                    m,
                    CODE_UNAUTHORIZED,
                    "wrong or expired credentials; fetch new ones from /api/ice-servers",
                    true,
                );
            }
        };
        let mut book = self.book();
        let existing = book.clients.get(&from);
        if m.typ.method == METHOD_ALLOCATE {
            if let Some(a) = existing {
                if a.allocate_tx == m.transaction_id.0 {
                    // A retransmission whose answer was lost: the same answer again.
                    return Verdict::Reply(a.allocate_response.clone());
                }
                return Verdict::Forward; // the library answers 437
            }
            if let Ok(family) = m.get(ATTR_REQUESTED_ADDRESS_FAMILY) {
                let wants_v4 = family.first() == Some(&0x01);
                if wants_v4 != shared.relay_v4 {
                    drop(book);
                    return self.reply(
                        m,
                        CODE_ADDR_FAMILY_NOT_SUPPORTED,
                        "this relay does not serve that address family",
                        false,
                    );
                }
            }
            if let Err(scope) = shared.quota.reserve(user) {
                drop(book);
                shared.counters.quota_refusal(scope);
                if shared.may_log() {
                    let scope = if scope == QuotaScope::User { "user" } else { "total" };
                    tracing::warn!(user_id = user, client = %from, scope, "TURN allocation refused: quota reached");
                }
                return self.reply(m, CODE_ALLOC_QUOTA_REACHED, "allocation quota reached", false);
            }
            book.pending.insert(
                m.transaction_id.0,
                Pending { client: from, user, username, kind: PendingKind::Allocate, at: now },
            );
            return Verdict::Forward;
        }
        match existing {
            None => {
                drop(book);
                return self.reply(m, CODE_ALLOC_MISMATCH, "no allocation for this client", false);
            }
            Some(a) if a.username != username => {
                drop(book);
                shared.counters.auth_failure(AuthFailure::WrongUser);
                if shared.may_log() {
                    tracing::warn!(user_id = user, client = %from, "TURN request refused: not the allocation's username");
                }
                return self.reply(m, CODE_WRONG_CREDENTIALS, "not the credentials of this allocation", false);
            }
            Some(_) => {}
        }
        if m.typ.method == METHOD_CREATE_PERMISSION || m.typ.method == METHOD_CHANNEL_BIND {
            let peers = peer_addresses(m);
            if peers.is_empty() {
                drop(book);
                return self.reply(m, CODE_BAD_REQUEST, "XOR-PEER-ADDRESS is required", false);
            }
            for peer in &peers {
                if let Err(why) = shared.policy.check(*peer) {
                    drop(book);
                    self.refused(Some(user), from, *peer, why);
                    return self.reply(m, CODE_FORBIDDEN, "this peer address is not allowed", false);
                }
            }
            let channel = (m.typ.method == METHOD_CHANNEL_BIND)
                .then(|| m.get(ATTR_CHANNEL_NUMBER).ok())
                .flatten()
                .and_then(|v| v.first_chunk::<2>().map(|n| u16::from_be_bytes(*n)));
            book.pending.insert(
                m.transaction_id.0,
                Pending { client: from, user, username, kind: PendingKind::Permission(peers, channel), at: now },
            );
        }
        Verdict::Forward
    }

    fn check_user(&self, username: &str, realm: &str, m: &mut Message) -> Result<i64, AuthFailure> {
        let name = RestUsername::parse_valid(username, crate::db::now()).map_err(AuthFailure::Credential)?;
        if name.user_id == SYSTEM_USER {
            return Err(AuthFailure::UnknownUser);
        }
        match self.shared.users.status(name.user_id) {
            UserStatus::Active => {}
            UserStatus::Disabled => return Err(AuthFailure::Disabled),
            UserStatus::Unknown => return Err(AuthFailure::UnknownUser),
        }
        if name.session.as_deref().is_some_and(|tag| !self.shared.users.session_live(tag)) {
            return Err(AuthFailure::SessionEnded);
        }
        if realm != self.shared.realm {
            return Err(AuthFailure::BadIntegrity);
        }
        let key = self.shared.key.stun_key(username, realm);
        MessageIntegrity(key).check(m).map_err(|_| AuthFailure::BadIntegrity)?;
        Ok(name.user_id)
    }

    /// An error response to `m`; with `nonce`, REALM and the current NONCE are added.
    fn reply(&self, m: &Message, code: ErrorCode, reason: &str, nonce: bool) -> Verdict {
        let mut setters: Vec<Box<dyn Setter>> = vec![
            Box::new(m.transaction_id),
            Box::new(MessageType::new(m.typ.method, CLASS_ERROR_RESPONSE)),
            Box::new(ErrorCodeAttribute { code, reason: reason.as_bytes().to_vec() }),
        ];
        if nonce {
            let Some(current) = self.shared.nonces.current(Instant::now()) else { return Verdict::Forward };
            setters.push(Box::new(TextAttribute::new(ATTR_REALM, self.shared.realm.clone())));
            setters.push(Box::new(TextAttribute::new(ATTR_NONCE, current)));
        }
        let mut out = Message::new();
        match out.build(&setters) {
            Ok(()) => Verdict::Reply(out.raw),
            Err(_) => Verdict::Drop,
        }
    }

    /// Looks at an answer of the library before it leaves; false when it must not leave.
    fn observe_answer(&self, packet: &[u8], to: SocketAddr) -> bool {
        if to == INTERNAL {
            self.take_nonce(packet);
            return false;
        }
        if !is_response(packet) {
            return true;
        }
        let Some(tx) = packet.get(8..20).and_then(|t| TxId::try_from(t).ok()) else { return true };
        let mut book = self.book();
        if book.internal.remove(&tx) {
            return false;
        }
        let Some(pending) = book.pending.remove(&tx) else { return true };
        if pending.client != to {
            return true;
        }
        let mut m = Message::new();
        m.raw = packet.to_vec();
        let success = m.decode().is_ok() && m.typ.class == CLASS_SUCCESS_RESPONSE;
        match pending.kind {
            PendingKind::Allocate if success => {
                let mut relayed = RelayedAddress::default();
                let port = relayed.get_from(&m).ok().map(|()| relayed.port);
                let relay = port.and_then(|port| self.shared.relay(port));
                let session = RestUsername::parse(&pending.username).ok().and_then(|n| n.session);
                if let Some(relay) = &relay {
                    relay.set_client(to, Arc::clone(&self.transport) as Arc<dyn Transport>);
                }
                book.clients.insert(
                    to,
                    ClientAllocation {
                        user: pending.user,
                        relay,
                        username: pending.username,
                        allocate_tx: tx,
                        allocate_response: packet.to_vec(),
                    },
                );
                drop(book);
                match port {
                    Some(port) => {
                        let gate: Weak<dyn GateHandle> = self.me.clone() as Weak<dyn GateHandle>;
                        let record = AllocationRecord {
                            user: pending.user,
                            session,
                            client: to,
                            transport: self.transport.name(),
                            gate,
                        };
                        self.shared.allocation_opened(port, record);
                        tracing::debug!(user_id = pending.user, client = %to, relay_port = port, "TURN allocation opened");
                    }
                    None => self.shared.quota.release(pending.user),
                }
            }
            PendingKind::Allocate => {
                drop(book);
                self.shared.quota.release(pending.user);
            }
            PendingKind::Permission(peers, channel) if success => {
                let relay = book.clients.get(&to).and_then(|c| c.relay.clone());
                drop(book);
                // The library installs only the first XOR-PEER-ADDRESS of a request (it reads
                // the first one once per attribute); the mirror follows the library, not the RFC.
                if let (Some(relay), Some(first)) = (relay, peers.first()) {
                    let now = Instant::now();
                    relay.permit(first.ip(), now);
                    if let Some(number) = channel {
                        relay.bind_channel(number, *first, now);
                    }
                }
            }
            PendingKind::Permission(..) => {}
        }
        true
    }

    fn take_nonce(&self, packet: &[u8]) {
        let mut m = Message::new();
        m.raw = packet.to_vec();
        if m.decode().is_ok()
            && let Ok(nonce) = TextAttribute::get_from_as(&m, ATTR_NONCE)
        {
            self.shared.nonces.add(nonce.text, Instant::now());
        }
    }

    /// The fast path: ChannelData of a client with a mirrored binding goes to the peer from
    /// here. False when the library must take it.
    fn relay_channel_data(&self, packet: &[u8], from: SocketAddr) -> bool {
        let relay = self.book().clients.get(&from).and_then(|c| c.relay.clone());
        relay.is_some_and(|relay| relay.forward_to_peer(&self.shared, packet))
    }

    /// Queues a request of the gate's own, as if it came from `from`.
    fn inject(&self, setters: Vec<Box<dyn Setter>>, from: SocketAddr) {
        let mut m = Message::new();
        if m.build(&setters).is_err() {
            return;
        }
        if from != INTERNAL {
            self.book().internal.insert(m.transaction_id.0);
        }
        if self.internal_tx.try_send((m.raw, from)).is_err() {
            tracing::warn!("TURN internal request queue is full");
        }
    }
}

/// The relay library's long-term key for the appliance's own requests.
fn system_integrity(shared: &Shared) -> (String, MessageIntegrity) {
    let username = RestUsername { expires_at: crate::db::now() + 300, user_id: SYSTEM_USER, session: None }.format();
    let key = shared.key.stun_key(&username, &shared.realm);
    (username, MessageIntegrity(key))
}

impl<T: Transport> GateHandle for Gate<T> {
    fn allocation_closed(&self, client: SocketAddr) {
        self.book().clients.remove(&client);
    }

    fn close_allocation(&self, client: SocketAddr) {
        if !self.book().clients.contains_key(&client) {
            return;
        }
        let Some(nonce) = self.shared.nonces.current(Instant::now()) else {
            tracing::warn!(client = %client, "cannot close a TURN allocation before the first nonce; it will expire");
            return;
        };
        let (username, integrity) = system_integrity(&self.shared);
        self.inject(
            vec![
                Box::new(TransactionId::new()),
                Box::new(MessageType::new(METHOD_REFRESH, CLASS_REQUEST)),
                Box::new(Lifetime(Duration::ZERO)),
                Box::new(TextAttribute::new(ATTR_USERNAME, username)),
                Box::new(TextAttribute::new(ATTR_REALM, self.shared.realm.clone())),
                Box::new(TextAttribute::new(ATTR_NONCE, nonce)),
                Box::new(integrity),
            ],
            client,
        );
    }

    fn sweep(&self) {
        let now = Instant::now();
        let mut released = Vec::new();
        {
            let mut book = self.book();
            book.pending.retain(|_, p| {
                let keep = now.duration_since(p.at) < PENDING_FOR;
                if !keep && matches!(p.kind, PendingKind::Allocate) {
                    released.push(p.user);
                }
                keep
            });
            if book.internal.len() > 10_000 {
                book.internal.clear();
            }
        }
        for user in released {
            self.shared.quota.release(user);
        }
    }

    fn request_nonce(&self, expired: Option<String>) {
        let mut setters: Vec<Box<dyn Setter>> =
            vec![Box::new(TransactionId::new()), Box::new(MessageType::new(METHOD_REFRESH, CLASS_REQUEST))];
        if let Some(nonce) = expired {
            // Any integrity will do: the library looks at the nonce first, finds it expired,
            // removes it and answers 438 with a new one.
            setters.push(Box::new(TextAttribute::new(ATTR_USERNAME, "0:0".into())));
            setters.push(Box::new(TextAttribute::new(ATTR_REALM, self.shared.realm.clone())));
            setters.push(Box::new(TextAttribute::new(ATTR_NONCE, nonce)));
            setters.push(Box::new(MessageIntegrity::new_short_term_integrity("x".into())));
        }
        self.inject(setters, INTERNAL);
    }
}

#[async_trait]
impl<T: Transport> Conn for Gate<T> {
    async fn connect(&self, _addr: SocketAddr) -> util::Result<()> {
        Err(util::Error::Other("a TURN listener is not connected".into()))
    }

    async fn recv(&self, _buf: &mut [u8]) -> util::Result<usize> {
        Err(util::Error::Other("use recv_from on a TURN listener".into()))
    }

    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        let mut internal = self.internal_rx.lock().await;
        // One wait for the whole loop (the fast path loops here for every datagram).
        let closed = self.transport.closed();
        tokio::pin!(closed);
        loop {
            tokio::select! {
                biased;
                Some((packet, from)) = internal.recv() => {
                    if packet.len() <= buf.len() {
                        buf[..packet.len()].copy_from_slice(&packet);
                        return Ok((packet.len(), from));
                    }
                }
                client = &mut closed => {
                    self.close_allocation(client);
                    closed.set(self.transport.closed());
                }
                received = self.transport.recv(buf) => {
                    let (n, from) = match received {
                        Ok(v) => v,
                        Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return Err(e.into()),
                        Err(e) => {
                            if self.shared.may_log() {
                                tracing::warn!(transport = self.transport.name(), error = %e, "TURN receive failed");
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            continue;
                        }
                    };
                    if n > buf.len().min(MAX_LIBRARY_PACKET) {
                        self.shared.counters.dropped(Drop::Oversize);
                        continue;
                    }
                    if buf[0] >> 6 == 0b01 && self.relay_channel_data(&buf[..n], from) {
                        continue;
                    }
                    match self.screen(&buf[..n], from) {
                        Verdict::Forward => return Ok((n, from)),
                        Verdict::Reply(answer) => {
                            let _ = self.transport.send(&answer, from).await;
                        }
                        Verdict::Drop => {}
                    }
                }
            }
        }
    }

    async fn send(&self, _buf: &[u8]) -> util::Result<usize> {
        Err(util::Error::Other("use send_to on a TURN listener".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        if !self.observe_answer(buf, target) {
            return Ok(buf.len());
        }
        Ok(self.transport.send(buf, target).await?)
    }

    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(self.transport.local_addr())
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// True for a STUN success or error response (class bits C1 C0 = 1x).
fn is_response(packet: &[u8]) -> bool {
    packet.len() >= 20 && packet[0] >> 6 == 0 && packet[0] & 0x01 != 0
}

/// Every XOR-PEER-ADDRESS of `m`, decoded (the library reads only the first).
pub fn peer_addresses(m: &Message) -> Vec<SocketAddr> {
    m.attributes
        .0
        .iter()
        .filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS)
        .filter_map(|a| decode_xor_address(&a.value, &m.transaction_id.0))
        .collect()
}

/// RFC 8489 §14.2: family, port XOR the cookie's top half, address XOR cookie (+ txid).
fn decode_xor_address(value: &[u8], tx: &TxId) -> Option<SocketAddr> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
    match *value.get(1)? {
        0x01 => {
            let raw: [u8; 4] = value.get(4..8)?.try_into().ok()?;
            let ip: [u8; 4] = std::array::from_fn(|i| raw[i] ^ cookie[i]);
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        0x02 => {
            let raw: [u8; 16] = value.get(4..20)?.try_into().ok()?;
            let ip: [u8; 16] = std::array::from_fn(|i| raw[i] ^ if i < 4 { cookie[i] } else { tx[i - 4] });
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turn::proto::peeraddr::PeerAddress;

    #[test]
    fn every_peer_address_is_decoded_in_both_families() {
        let a: SocketAddr = "10.1.2.3:4000".parse().unwrap();
        let b: SocketAddr = "[::ffff:127.0.0.1]:80".parse().unwrap();
        let mut m = Message::new();
        let mut setters: Vec<Box<dyn Setter>> =
            vec![Box::new(TransactionId::new()), Box::new(MessageType::new(METHOD_CREATE_PERMISSION, CLASS_REQUEST))];
        for addr in [a, b] {
            setters.push(Box::new(PeerAddress { ip: addr.ip(), port: addr.port() }));
        }
        m.build(&setters).unwrap();
        let mut decoded = Message::new();
        decoded.raw = m.raw.clone();
        decoded.decode().unwrap();
        assert_eq!(peer_addresses(&decoded), vec![a, b]);
    }

    #[test]
    fn responses_are_told_from_requests_and_indications() {
        let mut req = vec![0u8; 20];
        req[1] = 0x03;
        assert!(!is_response(&req));
        let mut ok = vec![0u8; 20];
        ok[0] = 0x01;
        ok[1] = 0x03;
        assert!(is_response(&ok));
        let mut data_ind = vec![0u8; 20];
        data_ind[1] = 0x17;
        assert!(!is_response(&data_ind));
        assert!(!is_response(&[0x40, 0, 0, 0]));
    }
}
