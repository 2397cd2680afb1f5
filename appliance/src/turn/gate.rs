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
//! - a malformed XOR-PEER-ADDRESS (which the library decodes into another address) and a
//!   channel number outside 0x4000-0x7FFF (which the library binds) get 400;
//! - datagrams over the library's 1500-byte buffer are dropped and counted here rather than
//!   handed over truncated.
//!
//! Requests are screened by one handler per STUN method ([`Gate::REQUESTS`]), which share
//! the policy steps: credentials, the allocation's owner, the peer filter.
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
use turn::proto::channum::ChannelNumber;
use turn::proto::lifetime::Lifetime;
use turn::proto::relayaddr::RelayedAddress;
use util::Conn;

use super::counters::{AuthFailure, DropReason, QuotaScope};
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
    /// CreatePermission, or ChannelBind with its channel number: the first peer address of
    /// the request, the only one the library installs (it reads the first XOR-PEER-ADDRESS
    /// once per attribute), so the mirror follows the library, not the RFC.
    Permission {
        peer: SocketAddr,
        channel: Option<u16>,
    },
}

/// What to do with one packet from the network.
enum Verdict {
    Forward,
    Reply(Vec<u8>),
    Drop,
}

/// The gate's handler of one request method (see [`Gate::REQUESTS`]).
type Screen<T> = fn(&Gate<T>, &mut Message, SocketAddr) -> Verdict;

/// Who sent a request, once the gate checked its credentials.
struct Caller {
    user: i64,
    username: String,
}

impl<T: Transport> Gate<T> {
    /// The request methods the gate lets through, each with its handler (one per method, as
    /// pion/turn lays out its server; the policy they share is in [`Self::authenticate`],
    /// [`Self::check_owner`] and [`Self::screen_peers`]). Any other request method is
    /// answered 400 here.
    const REQUESTS: [(Method, Screen<T>); 5] = [
        (METHOD_BINDING, Self::screen_binding),
        (METHOD_ALLOCATE, Self::screen_allocate),
        (METHOD_REFRESH, Self::screen_refresh),
        (METHOD_CREATE_PERMISSION, Self::screen_create_permission),
        (METHOD_CHANNEL_BIND, Self::screen_channel_bind),
    ];

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
        match m.typ.class {
            CLASS_REQUEST => match Self::REQUESTS.iter().find(|(method, _)| *method == m.typ.method) {
                Some((_, screen)) => screen(self, &mut m, from),
                None => self.reply(&m, CODE_BAD_REQUEST, "this server does not support that method", false),
            },
            CLASS_INDICATION if m.typ.method == METHOD_SEND => self.screen_send(&m, from),
            _ => self.malformed(),
        }
    }

    fn malformed(&self) -> Verdict {
        self.shared.counters.dropped(DropReason::Malformed);
        Verdict::Drop
    }

    /// Binding (plain STUN, RFC 8489): the library answers it, without credentials.
    fn screen_binding(&self, _m: &mut Message, _from: SocketAddr) -> Verdict {
        Verdict::Forward
    }

    /// Allocate: credentials; a retransmission of the client's own Allocate; the address
    /// family; the quota (a slot is reserved here and given back if the library refuses).
    fn screen_allocate(&self, m: &mut Message, from: SocketAddr) -> Verdict {
        let caller = match self.authenticate(m, from) {
            Ok(caller) => caller,
            Err(verdict) => return verdict,
        };
        let tx = m.transaction_id.0;
        let replay = self.book().clients.get(&from).map(|a| (a.allocate_tx == tx).then(|| a.allocate_response.clone()));
        match replay {
            // A retransmission whose answer was lost: the same answer again.
            Some(Some(answer)) => return Verdict::Reply(answer),
            Some(None) => return Verdict::Forward, // the library answers 437
            None => {}
        }
        if let Ok(family) = m.get(ATTR_REQUESTED_ADDRESS_FAMILY) {
            let wants_v4 = family.first() == Some(&0x01);
            if wants_v4 != self.shared.relay_v4 {
                return self.reply(
                    m,
                    CODE_ADDR_FAMILY_NOT_SUPPORTED,
                    "this relay does not serve that address family",
                    false,
                );
            }
        }
        if let Err(scope) = self.shared.quota.reserve(caller.user) {
            self.shared.counters.quota_refusal(scope);
            if self.shared.may_log() {
                let scope = if scope == QuotaScope::User { "user" } else { "total" };
                tracing::warn!(user_id = caller.user, client = %from, scope, "TURN allocation refused: quota reached");
            }
            return self.reply(m, CODE_ALLOC_QUOTA_REACHED, "allocation quota reached", false);
        }
        self.expect_answer(m, from, caller, PendingKind::Allocate);
        Verdict::Forward
    }

    /// Refresh (a lifetime of 0 deletes): credentials, and the allocation's own username.
    fn screen_refresh(&self, m: &mut Message, from: SocketAddr) -> Verdict {
        let caller = match self.authenticate(m, from) {
            Ok(caller) => caller,
            Err(verdict) => return verdict,
        };
        match self.check_owner(m, from, &caller) {
            Ok(()) => Verdict::Forward,
            Err(verdict) => verdict,
        }
    }

    /// CreatePermission: credentials, the allocation's own username, every peer address
    /// through the peer filter; the answer is awaited to mirror the permission.
    fn screen_create_permission(&self, m: &mut Message, from: SocketAddr) -> Verdict {
        let caller = match self.authenticate(m, from) {
            Ok(caller) => caller,
            Err(verdict) => return verdict,
        };
        let peer = match self.check_owner(m, from, &caller).and_then(|()| self.screen_peers(m, from, &caller)) {
            Ok(peer) => peer,
            Err(verdict) => return verdict,
        };
        self.expect_answer(m, from, caller, PendingKind::Permission { peer, channel: None });
        Verdict::Forward
    }

    /// ChannelBind: as CreatePermission, with a channel number ChannelData can carry; the
    /// answer is awaited to mirror the binding for the ChannelData fast path.
    fn screen_channel_bind(&self, m: &mut Message, from: SocketAddr) -> Verdict {
        let caller = match self.authenticate(m, from) {
            Ok(caller) => caller,
            Err(verdict) => return verdict,
        };
        if let Err(verdict) = self.check_owner(m, from, &caller) {
            return verdict;
        }
        // The library binds any number (RFC 8656 §12.2 wants 400 outside the range); one no
        // ChannelData can carry would only confuse the mirror.
        let mut channel = ChannelNumber::default();
        if channel.get_from(m).is_err() || !channel.valid() {
            return self.reply(m, CODE_BAD_REQUEST, "CHANNEL-NUMBER 0x4000-0x7FFF is required", false);
        }
        let peer = match self.screen_peers(m, from, &caller) {
            Ok(peer) => peer,
            Err(verdict) => return verdict,
        };
        self.expect_answer(m, from, caller, PendingKind::Permission { peer, channel: Some(channel.0) });
        Verdict::Forward
    }

    /// Send indication: its peer through the peer filter (no answer either way).
    fn screen_send(&self, m: &Message, from: SocketAddr) -> Verdict {
        let Some(peer) = peer_addresses(m).and_then(|peers| peers.first().copied()) else { return self.malformed() };
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

    /// The caller of `m` once its credentials are checked; otherwise what to do instead: a
    /// challenge (401) or a stale nonce (438) with the book's nonce, 400 for incomplete
    /// credentials, 401 for refused ones. Until the book has its first nonce (the first
    /// milliseconds) the library answers challenges itself.
    fn authenticate(&self, m: &mut Message, from: SocketAddr) -> Result<Caller, Verdict> {
        let now = Instant::now();
        let shared = &self.shared;
        if !m.contains(ATTR_MESSAGE_INTEGRITY) {
            // The normal first step of a client: challenge it with a nonce from the book.
            return Err(match shared.nonces.current(now) {
                Some(_) => self.reply(m, CODE_UNAUTHORIZED, "credentials required", true),
                None => Verdict::Forward,
            });
        }
        let (Ok(nonce), Ok(username), Ok(realm)) = (
            TextAttribute::get_from_as(m, ATTR_NONCE),
            TextAttribute::get_from_as(m, ATTR_USERNAME),
            TextAttribute::get_from_as(m, ATTR_REALM),
        ) else {
            return Err(self.reply(
                m,
                CODE_BAD_REQUEST,
                "USERNAME, REALM and NONCE are required with MESSAGE-INTEGRITY",
                false,
            ));
        };
        if !shared.nonces.accepts(&nonce.text, now) {
            return Err(match shared.nonces.current(now) {
                Some(_) => self.reply(m, CODE_STALE_NONCE, "stale nonce", true),
                None => Verdict::Forward,
            });
        }
        let username = username.text;
        match self.check_user(&username, &realm.text, m) {
            Ok(user) => Ok(Caller { user, username }),
            Err(why) => {
                shared.counters.auth_failure(why);
                if shared.may_log() {
                    let user_id = RestUsername::parse(&username).map(|u| u.user_id).ok();
                    tracing::warn!(client = %from, user_id, reason = why.label(), "TURN credentials refused");
                }
                Err(self.reply(
                    m,
                    CODE_UNAUTHORIZED,
                    "wrong or expired credentials; fetch new ones from /api/ice-servers",
                    true,
                ))
            }
        }
    }

    /// A request on an allocation must come from the allocation's client (437 otherwise: the
    /// library would stay silent) with the allocation's username (441 otherwise: the library
    /// does not check it).
    fn check_owner(&self, m: &Message, from: SocketAddr, caller: &Caller) -> Result<(), Verdict> {
        let same_username = self.book().clients.get(&from).map(|a| a.username == caller.username);
        match same_username {
            Some(true) => Ok(()),
            None => Err(self.reply(m, CODE_ALLOC_MISMATCH, "no allocation for this client", false)),
            Some(false) => {
                self.shared.counters.auth_failure(AuthFailure::WrongUser);
                if self.shared.may_log() {
                    tracing::warn!(user_id = caller.user, client = %from, "TURN request refused: not the allocation's username");
                }
                Err(self.reply(m, CODE_WRONG_CREDENTIALS, "not the credentials of this allocation", false))
            }
        }
    }

    /// Every XOR-PEER-ADDRESS of a CreatePermission or ChannelBind through the peer filter
    /// (403 at the first refused; 400 without any, or with a malformed one); the first peer,
    /// the one the library installs.
    fn screen_peers(&self, m: &Message, from: SocketAddr, caller: &Caller) -> Result<SocketAddr, Verdict> {
        let Some(peers) = peer_addresses(m) else {
            return Err(self.reply(m, CODE_BAD_REQUEST, "malformed XOR-PEER-ADDRESS", false));
        };
        let Some(&first) = peers.first() else {
            return Err(self.reply(m, CODE_BAD_REQUEST, "XOR-PEER-ADDRESS is required", false));
        };
        for &peer in &peers {
            if let Err(why) = self.shared.policy.check(peer) {
                self.refused(Some(caller.user), from, peer, why);
                return Err(self.reply(m, CODE_FORBIDDEN, "this peer address is not allowed", false));
            }
        }
        Ok(first)
    }

    /// Remembers a request handed to the library whose answer the gate must see (see
    /// [`Self::observe_answer`]).
    fn expect_answer(&self, m: &Message, from: SocketAddr, caller: Caller, kind: PendingKind) {
        let pending = Pending { client: from, user: caller.user, username: caller.username, kind, at: Instant::now() };
        self.book().pending.insert(m.transaction_id.0, pending);
    }

    fn check_user(&self, username: &str, realm: &str, m: &mut Message) -> Result<i64, AuthFailure> {
        let now = crate::db::now();
        let name = RestUsername::parse_valid(username, now).map_err(AuthFailure::Credential)?;
        if name.user_id == SYSTEM_USER {
            return Err(AuthFailure::UnknownUser);
        }
        match self.shared.users.status(name.user_id) {
            UserStatus::Active => {}
            UserStatus::Disabled => return Err(AuthFailure::Disabled),
            UserStatus::Unknown => return Err(AuthFailure::UnknownUser),
        }
        if name.session.as_deref().is_some_and(|tag| !self.shared.users.session_live(tag, now)) {
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
            PendingKind::Permission { peer, channel } if success => {
                let relay = book.clients.get(&to).and_then(|c| c.relay.clone());
                drop(book);
                if let Some(relay) = relay {
                    let now = Instant::now();
                    relay.permit(peer.ip(), now);
                    if let Some(number) = channel {
                        relay.bind_channel(number, peer, now);
                    }
                }
            }
            PendingKind::Permission { .. } => {}
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
                        self.shared.counters.dropped(DropReason::Oversize);
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

/// Every XOR-PEER-ADDRESS of `m`, decoded (the library reads only the first); None when any
/// of them is malformed. The library decodes a truncated one into an address padded with
/// zero bytes (and takes a one with a stray first byte for nothing), so a request that
/// carries one is refused whole: the peer judged here is then always the peer the library
/// reads.
pub fn peer_addresses(m: &Message) -> Option<Vec<SocketAddr>> {
    m.attributes
        .0
        .iter()
        .filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS)
        .map(|a| decode_xor_address(&a.value, &m.transaction_id.0))
        .collect()
}

/// RFC 8489 §14.2: a 16-bit family (1 or 2), the port XOR the cookie's top half, and exactly
/// 4 or 16 address bytes XOR the cookie (and the transaction id).
fn decode_xor_address(value: &[u8], tx: &TxId) -> Option<SocketAddr> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let (&[f0, f1, p0, p1], address) = value.split_first_chunk::<4>()?;
    let port = u16::from_be_bytes([p0, p1]) ^ (MAGIC_COOKIE >> 16) as u16;
    match (u16::from_be_bytes([f0, f1]), address.len()) {
        (0x0001, 4) => {
            let ip: [u8; 4] = std::array::from_fn(|i| address[i] ^ cookie[i]);
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        (0x0002, 16) => {
            let ip: [u8; 16] = std::array::from_fn(|i| address[i] ^ if i < 4 { cookie[i] } else { tx[i - 4] });
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turn::proto::peeraddr::PeerAddress;

    use std::io;

    use turn::proto::reqfamily::{REQUESTED_FAMILY_IPV4, REQUESTED_FAMILY_IPV6};

    use crate::turn::counters::TurnCounters;
    use crate::turn::credentials::CredentialKey;
    use crate::turn::peer_filter::{PolicyRules, RelayPolicy};
    use crate::turn::quota::QuotaBook;

    const REALM: &str = "labbeam";
    const NONCE: &str = "nonce-from-the-book";
    const USER: i64 = 7;
    const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)), 40_000);

    /// A transport that is never read and keeps what is sent.
    #[derive(Default)]
    struct Recorder {
        sent: Mutex<Vec<(Vec<u8>, SocketAddr)>>,
    }

    #[async_trait]
    impl Transport for Recorder {
        async fn recv(&self, _buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
            std::future::pending().await
        }
        async fn send(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
            self.try_send(buf, to)
        }
        fn try_send(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
            self.sent.lock().unwrap().push((buf.to_vec(), to));
            Ok(buf.len())
        }
        fn local_addr(&self) -> SocketAddr {
            SocketAddr::from(([127, 0, 0, 1], 3478))
        }
        async fn closed(&self) -> SocketAddr {
            std::future::pending().await
        }
        fn name(&self) -> &'static str {
            "udp"
        }
    }

    /// A gate whose book has a nonce, whose user 7 is active, and whose filter allows the lab
    /// 10.1.0.0/16 (only judged here: nothing is sent to it).
    fn gate_with(quota: QuotaBook) -> Arc<Gate<Recorder>> {
        let rules = PolicyRules {
            labs: vec!["10.1.0.0/16".parse().unwrap()],
            extra: Vec::new(),
            relay_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            own_ips: [IpAddr::V4(Ipv4Addr::LOCALHOST)].into_iter().collect(),
            allow_public: false,
        };
        let counters = TurnCounters::register(&mut prometheus_client::registry::Registry::default());
        let shared = Shared::new(
            REALM.into(),
            CredentialKey::new(b"secret"),
            RelayPolicy::new(rules),
            quota,
            counters,
            true,
            None,
        );
        shared.nonces.add(NONCE.into(), Instant::now());
        shared.users.mark_active(USER);
        Gate::new(Arc::new(shared), Arc::new(Recorder::default()))
    }

    fn gate() -> Arc<Gate<Recorder>> {
        gate_with(QuotaBook::new(4, 16))
    }

    fn username(user: i64) -> String {
        RestUsername { expires_at: crate::db::now() + 600, user_id: user, session: None }.format()
    }

    /// A request of `method` with `attrs`, signed for `user` (None: without credentials).
    fn request(
        gate: &Gate<Recorder>,
        method: Method,
        attrs: Vec<Box<dyn Setter>>,
        user: Option<&str>,
    ) -> (Vec<u8>, TxId) {
        let tx = TransactionId::new();
        let mut setters: Vec<Box<dyn Setter>> = vec![Box::new(tx), Box::new(MessageType::new(method, CLASS_REQUEST))];
        setters.extend(attrs);
        if let Some(name) = user {
            let password = gate.shared.key.password(name);
            setters.push(Box::new(TextAttribute::new(ATTR_USERNAME, name.into())));
            setters.push(Box::new(TextAttribute::new(ATTR_REALM, REALM.into())));
            setters.push(Box::new(TextAttribute::new(ATTR_NONCE, NONCE.into())));
            setters.push(Box::new(MessageIntegrity::new_long_term_integrity(name.into(), REALM.into(), password)));
        }
        let mut m = Message::new();
        m.build(&setters).unwrap();
        (m.raw, tx.0)
    }

    /// Attributes of a request, built fresh for each use.
    type Attrs = Vec<Box<dyn Setter>>;

    fn peer(addr: &str) -> Box<dyn Setter> {
        let addr: SocketAddr = addr.parse().unwrap();
        Box::new(PeerAddress { ip: addr.ip(), port: addr.port() })
    }

    /// The error code of a reply (None for a forward or a drop).
    fn code_of(verdict: &Verdict) -> Option<u16> {
        let Verdict::Reply(raw) = verdict else { return None };
        let mut m = Message::new();
        m.raw = raw.clone();
        m.decode().unwrap();
        let mut code = ErrorCodeAttribute::default();
        code.get_from(&m).unwrap();
        Some(code.code.0)
    }

    fn nonce_of(verdict: &Verdict) -> Option<String> {
        let Verdict::Reply(raw) = verdict else { return None };
        let mut m = Message::new();
        m.raw = raw.clone();
        m.decode().unwrap();
        TextAttribute::get_from_as(&m, ATTR_NONCE).ok().map(|n| n.text)
    }

    /// Records an allocation of `name` for CLIENT, as an Allocate success would.
    fn allocated(gate: &Gate<Recorder>, name: &str, allocate_tx: TxId) {
        let allocation = ClientAllocation {
            user: USER,
            relay: None,
            username: name.into(),
            allocate_tx,
            allocate_response: b"the original answer".to_vec(),
        };
        gate.book().clients.insert(CLIENT, allocation);
    }

    #[test]
    fn credentials_are_checked_before_any_method() {
        let gate = gate();
        let name = username(USER);
        for method in [METHOD_ALLOCATE, METHOD_REFRESH, METHOD_CREATE_PERMISSION, METHOD_CHANNEL_BIND] {
            // None: a challenge with the book's nonce.
            let (raw, _) = request(&gate, method, vec![], None);
            let verdict = gate.screen(&raw, CLIENT);
            assert_eq!((code_of(&verdict), nonce_of(&verdict).as_deref()), (Some(401), Some(NONCE)), "{method}");
            // MESSAGE-INTEGRITY without USERNAME, REALM and NONCE: 400.
            let mut m = Message::new();
            m.build(&[
                Box::new(TransactionId::new()) as Box<dyn Setter>,
                Box::new(MessageType::new(method, CLASS_REQUEST)),
                Box::new(MessageIntegrity::new_short_term_integrity("x".into())),
            ])
            .unwrap();
            assert_eq!(code_of(&gate.screen(&m.raw, CLIENT)), Some(400), "{method}");
            // A nonce the book never had: 438 with the book's.
            let mut m = Message::new();
            m.build(&[
                Box::new(TransactionId::new()) as Box<dyn Setter>,
                Box::new(MessageType::new(method, CLASS_REQUEST)),
                Box::new(TextAttribute::new(ATTR_USERNAME, name.clone())),
                Box::new(TextAttribute::new(ATTR_REALM, REALM.into())),
                Box::new(TextAttribute::new(ATTR_NONCE, "made-up".into())),
                Box::new(MessageIntegrity::new_long_term_integrity(name.clone(), REALM.into(), "x".into())),
            ])
            .unwrap();
            let verdict = gate.screen(&m.raw, CLIENT);
            assert_eq!((code_of(&verdict), nonce_of(&verdict).as_deref()), (Some(438), Some(NONCE)), "{method}");
            // A wrong password, an unknown user: 401 with a nonce, never the library's 400.
            let mut m = Message::new();
            m.build(&[
                Box::new(TransactionId::new()) as Box<dyn Setter>,
                Box::new(MessageType::new(method, CLASS_REQUEST)),
                Box::new(TextAttribute::new(ATTR_USERNAME, name.clone())),
                Box::new(TextAttribute::new(ATTR_REALM, REALM.into())),
                Box::new(TextAttribute::new(ATTR_NONCE, NONCE.into())),
                Box::new(MessageIntegrity::new_long_term_integrity(name.clone(), REALM.into(), "wrong".into())),
            ])
            .unwrap();
            let verdict = gate.screen(&m.raw, CLIENT);
            assert_eq!((code_of(&verdict), nonce_of(&verdict).as_deref()), (Some(401), Some(NONCE)), "{method}");
            let (raw, _) = request(&gate, method, vec![], Some(&username(99)));
            assert_eq!(code_of(&gate.screen(&raw, CLIENT)), Some(401), "{method}");
        }
        assert!(gate.book().pending.is_empty());
    }

    #[test]
    fn an_allocate_reserves_a_slot_and_awaits_its_answer() {
        let gate = gate_with(QuotaBook::new(1, 16));
        let name = username(USER);
        let (raw, tx) = request(&gate, METHOD_ALLOCATE, vec![], Some(&name));
        assert!(matches!(gate.screen(&raw, CLIENT), Verdict::Forward));
        assert!(matches!(gate.book().pending.get(&tx).map(|p| &p.kind), Some(PendingKind::Allocate)));
        assert_eq!(gate.shared.quota.held_by(USER), 1);
        // Over the quota (another address of the same user): 486, nothing reserved.
        let other = SocketAddr::from(([127, 0, 0, 9], 40_001));
        let (raw, tx) = request(&gate, METHOD_ALLOCATE, vec![], Some(&name));
        assert_eq!(code_of(&gate.screen(&raw, other)), Some(486));
        assert!(!gate.book().pending.contains_key(&tx));
        assert_eq!(gate.shared.quota.held_by(USER), 1);
    }

    #[test]
    fn an_allocate_for_the_other_address_family_gets_440() {
        let gate = gate();
        let name = username(USER);
        let (raw, _) = request(&gate, METHOD_ALLOCATE, vec![Box::new(REQUESTED_FAMILY_IPV6)], Some(&name));
        assert_eq!(code_of(&gate.screen(&raw, CLIENT)), Some(440));
        assert_eq!(gate.shared.quota.held_by(USER), 0);
        let (raw, _) = request(&gate, METHOD_ALLOCATE, vec![Box::new(REQUESTED_FAMILY_IPV4)], Some(&name));
        assert!(matches!(gate.screen(&raw, CLIENT), Verdict::Forward));
    }

    #[test]
    fn a_second_allocate_is_answered_again_when_retransmitted_and_left_to_the_library_otherwise() {
        let gate = gate();
        let name = username(USER);
        let (raw, tx) = request(&gate, METHOD_ALLOCATE, vec![], Some(&name));
        allocated(&gate, &name, tx);
        match gate.screen(&raw, CLIENT) {
            Verdict::Reply(answer) => assert_eq!(answer, b"the original answer"),
            _ => panic!("a retransmission gets the original answer"),
        }
        let (raw, tx) = request(&gate, METHOD_ALLOCATE, vec![], Some(&name));
        assert!(matches!(gate.screen(&raw, CLIENT), Verdict::Forward), "the library answers 437");
        assert!(!gate.book().pending.contains_key(&tx));
        assert_eq!(gate.shared.quota.held_by(USER), 0);
    }

    #[test]
    fn requests_on_an_allocation_need_one_and_its_username() {
        let gate = gate();
        let name = username(USER);
        let cases: [(Method, fn() -> Attrs); 3] = [
            (METHOD_REFRESH, Vec::new),
            (METHOD_CREATE_PERMISSION, || vec![peer("10.1.2.3:5000")]),
            (METHOD_CHANNEL_BIND, || vec![peer("10.1.2.3:5000"), Box::new(ChannelNumber(0x4001))]),
        ];
        for (method, attrs) in cases {
            let (raw, _) = request(&gate, method, attrs(), Some(&name));
            assert_eq!(code_of(&gate.screen(&raw, CLIENT)), Some(437), "{method} without an allocation");
        }
        allocated(&gate, &name, [0; 12]);
        gate.shared.users.mark_active(8);
        for (method, attrs) in cases {
            let (raw, _) = request(&gate, method, attrs(), Some(&username(8)));
            assert_eq!(code_of(&gate.screen(&raw, CLIENT)), Some(441), "{method} with another username");
            let (raw, _) = request(&gate, method, attrs(), Some(&name));
            assert!(matches!(gate.screen(&raw, CLIENT), Verdict::Forward), "{method}");
        }
    }

    #[test]
    fn permissions_and_bindings_judge_every_peer_and_await_the_answer() {
        let gate = gate();
        let name = username(USER);
        allocated(&gate, &name, [0; 12]);
        for method in [METHOD_CREATE_PERMISSION, METHOD_CHANNEL_BIND] {
            let channel = || -> Vec<Box<dyn Setter>> {
                if method == METHOD_CHANNEL_BIND { vec![Box::new(ChannelNumber(0x4001))] } else { vec![] }
            };
            let (raw, _) = request(&gate, method, channel(), Some(&name));
            assert_eq!(code_of(&gate.screen(&raw, CLIENT)), Some(400), "{method} without a peer");
            let mut attrs = channel();
            attrs.extend([peer("10.1.2.3:5000"), peer("127.0.0.1:22")]);
            let (raw, tx) = request(&gate, method, attrs, Some(&name));
            assert_eq!(code_of(&gate.screen(&raw, CLIENT)), Some(403), "{method}: the second peer is loopback");
            assert!(!gate.book().pending.contains_key(&tx));
            let mut attrs = channel();
            attrs.extend([peer("10.1.2.3:5000"), peer("10.1.9.9:6000")]);
            let (raw, tx) = request(&gate, method, attrs, Some(&name));
            assert!(matches!(gate.screen(&raw, CLIENT), Verdict::Forward), "{method}");
            assert!(gate.book().pending.contains_key(&tx), "{method}: the answer is awaited");
        }
    }

    #[test]
    fn malformed_peer_addresses_and_unusable_channel_numbers_get_400() {
        let gate = gate();
        let name = username(USER);
        allocated(&gate, &name, [0; 12]);
        // Family IPv4 with one address byte (the library reads 10.0.0.0), a stray first family
        // byte, IPv6 cut short, IPv4 too long.
        let bad: [&[u8]; 4] = [
            &[0x00, 0x01, 0x00, 0x00, 0x2b],
            &[0xff, 0x01, 0x00, 0x00, 0x2b, 0x13, 0xa4, 0x43],
            &[0x00, 0x02, 0x00, 0x00, 1, 2, 3, 4, 5, 6, 7, 8],
            &[0x00, 0x01, 0x00, 0x00, 0x2b, 0x13, 0xa4, 0x43, 0, 0, 0, 0],
        ];
        for value in bad {
            for method in [METHOD_CREATE_PERMISSION, METHOD_CHANNEL_BIND] {
                let tx = TransactionId::new();
                let mut m = Message::new();
                m.build(&[Box::new(tx) as Box<dyn Setter>, Box::new(MessageType::new(method, CLASS_REQUEST))]).unwrap();
                if method == METHOD_CHANNEL_BIND {
                    ChannelNumber(0x4001).add_to(&mut m).unwrap();
                }
                // A good peer first: the malformed one alone refuses the request.
                PeerAddress { ip: "10.1.2.3".parse().unwrap(), port: 5000 }.add_to(&mut m).unwrap();
                m.add(ATTR_XOR_PEER_ADDRESS, value);
                let password = gate.shared.key.password(&name);
                for setter in [
                    Box::new(TextAttribute::new(ATTR_USERNAME, name.clone())) as Box<dyn Setter>,
                    Box::new(TextAttribute::new(ATTR_REALM, REALM.into())),
                    Box::new(TextAttribute::new(ATTR_NONCE, NONCE.into())),
                    Box::new(MessageIntegrity::new_long_term_integrity(name.clone(), REALM.into(), password)),
                ] {
                    setter.add_to(&mut m).unwrap();
                }
                assert_eq!(code_of(&gate.screen(&m.raw, CLIENT)), Some(400), "{method} {value:02x?}");
                assert!(!gate.book().pending.contains_key(&tx.0));
            }
        }
        for number in [0x3fff, 0x8000, 0xffff] {
            let attrs: Attrs = vec![Box::new(ChannelNumber(number)), peer("10.1.2.3:5000")];
            let (raw, _) = request(&gate, METHOD_CHANNEL_BIND, attrs, Some(&name));
            assert_eq!(code_of(&gate.screen(&raw, CLIENT)), Some(400), "channel {number:#x}");
        }
        let (raw, _) = request(&gate, METHOD_CHANNEL_BIND, vec![peer("10.1.2.3:5000")], Some(&name));
        assert_eq!(code_of(&gate.screen(&raw, CLIENT)), Some(400), "no CHANNEL-NUMBER");
        let attrs: Attrs = vec![Box::new(ChannelNumber(0x7fff)), peer("10.1.2.3:5000")];
        let (raw, _) = request(&gate, METHOD_CHANNEL_BIND, attrs, Some(&name));
        assert!(matches!(gate.screen(&raw, CLIENT), Verdict::Forward), "channel 0x7fff");
    }

    #[test]
    fn binding_is_forwarded_and_other_methods_and_classes_are_not() {
        let gate = gate();
        let (raw, _) = request(&gate, METHOD_BINDING, vec![], None);
        assert!(matches!(gate.screen(&raw, CLIENT), Verdict::Forward));
        // Method 0x00a (not a TURN method), request class.
        let (mut raw, _) = request(&gate, METHOD_BINDING, vec![], None);
        raw[1] = 0x0a;
        assert_eq!(code_of(&gate.screen(&raw, CLIENT)), Some(400));
        let mut m = Message::new();
        m.build(&[
            Box::new(TransactionId::new()) as Box<dyn Setter>,
            Box::new(MessageType::new(METHOD_ALLOCATE, CLASS_SUCCESS_RESPONSE)),
        ])
        .unwrap();
        assert!(matches!(gate.screen(&m.raw, CLIENT), Verdict::Drop), "a response from a client");
        m.build(&[
            Box::new(TransactionId::new()) as Box<dyn Setter>,
            Box::new(MessageType::new(METHOD_DATA, CLASS_INDICATION)),
        ])
        .unwrap();
        assert!(matches!(gate.screen(&m.raw, CLIENT), Verdict::Drop), "a Data indication from a client");
        assert!(matches!(gate.screen(&[0x40, 0x01, 0, 0], CLIENT), Verdict::Forward), "ChannelData");
        assert!(matches!(gate.screen(&[0x80, 0, 0, 0], CLIENT), Verdict::Drop));
        assert!(matches!(gate.screen(&[], CLIENT), Verdict::Drop));
    }

    #[test]
    fn a_send_indication_to_a_refused_peer_is_dropped() {
        let gate = gate();
        let send = |to: &str| {
            let mut m = Message::new();
            m.build(&[
                Box::new(TransactionId::new()) as Box<dyn Setter>,
                Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
                peer(to),
            ])
            .unwrap();
            m.raw
        };
        assert!(matches!(gate.screen(&send("10.1.2.3:5000"), CLIENT), Verdict::Forward));
        assert!(matches!(gate.screen(&send("127.0.0.1:22"), CLIENT), Verdict::Drop));
        let mut m = Message::new();
        m.build(&[
            Box::new(TransactionId::new()) as Box<dyn Setter>,
            Box::new(MessageType::new(METHOD_SEND, CLASS_INDICATION)),
        ])
        .unwrap();
        assert!(matches!(gate.screen(&m.raw, CLIENT), Verdict::Drop), "without a peer");
        m.add(ATTR_XOR_PEER_ADDRESS, &[0x00, 0x01, 0x00, 0x00, 0x2b]);
        assert!(matches!(gate.screen(&m.raw, CLIENT), Verdict::Drop), "with a truncated peer");
    }

    mod properties {
        use proptest::prelude::*;
        use stun::xoraddr::XorMappedAddress;

        use super::*;

        /// An XOR-PEER-ADDRESS: a well-formed one in the allowed lab, or any bytes.
        #[derive(Debug, Clone)]
        enum PeerAttr {
            Lab(u16, u16),
            Raw(Vec<u8>),
        }

        fn peer_attr() -> impl Strategy<Value = PeerAttr> {
            prop_oneof![
                3 => (any::<u16>(), 1u16..).prop_map(|(host, port)| PeerAttr::Lab(host, port)),
                1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(PeerAttr::Raw),
            ]
        }

        /// Every attribute the gate or the library reads, and any other.
        fn attribute() -> impl Strategy<Value = (u16, Vec<u8>)> {
            let typ = prop_oneof![
                Just(ATTR_USERNAME.0),
                Just(ATTR_REALM.0),
                Just(ATTR_NONCE.0),
                Just(ATTR_MESSAGE_INTEGRITY.0),
                Just(ATTR_XOR_PEER_ADDRESS.0),
                Just(ATTR_CHANNEL_NUMBER.0),
                Just(ATTR_REQUESTED_ADDRESS_FAMILY.0),
                Just(ATTR_REQUESTED_TRANSPORT.0),
                Just(ATTR_LIFETIME.0),
                Just(ATTR_EVEN_PORT.0),
                Just(ATTR_DATA.0),
                any::<u16>(),
            ];
            (typ, prop::collection::vec(any::<u8>(), 0..24))
        }

        /// A message type: every method the gate screens in each class, or any type.
        fn message_type() -> impl Strategy<Value = u16> {
            let methods = [METHOD_BINDING, METHOD_ALLOCATE, METHOD_REFRESH, METHOD_SEND, METHOD_DATA]
                .into_iter()
                .chain([METHOD_CREATE_PERMISSION, METHOD_CHANNEL_BIND]);
            let classes = [CLASS_REQUEST, CLASS_INDICATION, CLASS_SUCCESS_RESPONSE, CLASS_ERROR_RESPONSE];
            let known: Vec<u16> =
                methods.flat_map(|m| classes.iter().map(move |c| MessageType::new(m, *c).value())).collect();
            prop_oneof![3 => prop::sample::select(known), 1 => 0u16..0x4000]
        }

        /// A message of type `typ` with `attrs`, signed as the allocation's user when `sign`.
        fn message(
            gate: &Gate<Recorder>,
            typ: u16,
            attrs: &[(u16, Vec<u8>)],
            peers: &[PeerAttr],
            sign: bool,
        ) -> Vec<u8> {
            let mut m = Message::new();
            m.build(&[Box::new(TransactionId::new()) as Box<dyn Setter>, Box::new(BINDING_REQUEST)]).unwrap();
            m.raw[..2].copy_from_slice(&typ.to_be_bytes());
            for (t, v) in attrs {
                m.add(AttrType(*t), v);
            }
            for peer in peers {
                match peer {
                    PeerAttr::Lab(host, port) => {
                        let [a, b] = host.to_be_bytes();
                        PeerAddress { ip: IpAddr::V4(Ipv4Addr::new(10, 1, a, b)), port: *port }.add_to(&mut m).unwrap()
                    }
                    PeerAttr::Raw(value) => m.add(ATTR_XOR_PEER_ADDRESS, value),
                }
            }
            if sign {
                let name = username(USER);
                let password = gate.shared.key.password(&name);
                for setter in [
                    Box::new(TextAttribute::new(ATTR_USERNAME, name.clone())) as Box<dyn Setter>,
                    Box::new(TextAttribute::new(ATTR_REALM, REALM.into())),
                    Box::new(TextAttribute::new(ATTR_NONCE, NONCE.into())),
                    Box::new(MessageIntegrity::new_long_term_integrity(name, REALM.into(), password)),
                ] {
                    setter.add_to(&mut m).unwrap();
                }
            }
            m.raw
        }

        /// A gate with an allocation of the user for CLIENT, so every handler runs its course.
        fn allocated_gate() -> Arc<Gate<Recorder>> {
            let gate = gate();
            allocated(&gate, &username(USER), [0; 12]);
            gate
        }

        /// A reply is an error response to the same transaction.
        fn check_reply(verdict: &Verdict, packet: &[u8]) -> Result<(), TestCaseError> {
            if let Verdict::Reply(raw) = verdict {
                let mut m = Message::new();
                m.raw = raw.clone();
                prop_assert!(m.decode().is_ok());
                prop_assert_eq!(m.typ.class, CLASS_ERROR_RESPONSE);
                prop_assert_eq!(&m.transaction_id.0[..], &packet[8..20]);
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(crate::turn::proptest_config())]

            #[test]
            fn arbitrary_datagrams_are_judged_without_panic(packet in prop::collection::vec(any::<u8>(), 0..1500)) {
                let gate = allocated_gate();
                check_reply(&gate.screen(&packet, CLIENT), &packet)?;
            }

            #[test]
            fn arbitrary_messages_are_judged_without_panic(
                typ in message_type(),
                attrs in prop::collection::vec(attribute(), 0..8),
                peers in prop::collection::vec(peer_attr(), 0..3),
                sign: bool,
            ) {
                let gate = allocated_gate();
                let packet = message(&gate, typ, &attrs, &peers, sign);
                check_reply(&gate.screen(&packet, CLIENT), &packet)?;
            }

            /// Whenever the gate lets a CreatePermission or ChannelBind through, the peer it
            /// judged and will mirror is the peer the library reads from the request.
            #[test]
            fn the_peer_the_gate_mirrors_is_the_peer_the_library_reads(
                bind: bool,
                peers in prop::collection::vec(peer_attr(), 1..4),
                channel in prop_oneof![Just(0x4001u16), any::<u16>()],
            ) {
                let gate = allocated_gate();
                let (method, attrs) = if bind {
                    let mut number = channel.to_be_bytes().to_vec();
                    number.extend_from_slice(&[0, 0]);
                    (METHOD_CHANNEL_BIND, vec![(ATTR_CHANNEL_NUMBER.0, number)])
                } else {
                    (METHOD_CREATE_PERMISSION, vec![])
                };
                let packet = message(&gate, MessageType::new(method, CLASS_REQUEST).value(), &attrs, &peers, true);
                let verdict = gate.screen(&packet, CLIENT);
                check_reply(&verdict, &packet)?;
                if matches!(verdict, Verdict::Forward) {
                    let mut m = Message::new();
                    m.raw = packet.clone();
                    m.decode().unwrap();
                    let mut read = PeerAddress::default();
                    prop_assert!(read.get_from(&m).is_ok());
                    let tx: TxId = packet[8..20].try_into().unwrap();
                    let book = gate.book();
                    let Some(PendingKind::Permission { peer, channel: mirrored }) = book.pending.get(&tx).map(|p| &p.kind) else {
                        return Err(TestCaseError::fail("no pending permission"));
                    };
                    prop_assert_eq!(*peer, SocketAddr::new(read.ip, read.port));
                    prop_assert_eq!(*mirrored, bind.then_some(channel));
                }
            }

            /// The gate's decoding agrees with stun's on every value the gate accepts, and it
            /// refuses exactly the truncated or odd values stun would read differently.
            #[test]
            fn peer_address_decoding_agrees_with_stun(value in prop::collection::vec(any::<u8>(), 0..24), tx: [u8; 12]) {
                let mut m = Message::new();
                m.build(&[Box::new(TransactionId(tx)) as Box<dyn Setter>, Box::new(BINDING_REQUEST)]).unwrap();
                m.add(ATTR_XOR_PEER_ADDRESS, &value);
                let mut stun = XorMappedAddress::default();
                let stun = stun.get_from_as(&m, ATTR_XOR_PEER_ADDRESS).map(|()| SocketAddr::new(stun.ip, stun.port));
                let full = match value.get(..2) {
                    Some([0, 1]) => value.len() == 8,
                    Some([0, 2]) => value.len() == 20,
                    _ => false,
                };
                prop_assert_eq!(decode_xor_address(&value, &tx), if full { stun.ok() } else { None });
            }

            #[test]
            fn peer_addresses_round_trip(peers in prop::collection::vec((any::<IpAddr>(), any::<u16>()), 0..5)) {
                // What the wire carries: no IPv6 flow label or scope.
                let addrs: Vec<SocketAddr> = peers.into_iter().map(|(ip, port)| SocketAddr::new(ip, port)).collect();
                let mut setters: Vec<Box<dyn Setter>> =
                    vec![Box::new(TransactionId::new()), Box::new(MessageType::new(METHOD_CREATE_PERMISSION, CLASS_REQUEST))];
                for addr in &addrs {
                    setters.push(Box::new(PeerAddress { ip: addr.ip(), port: addr.port() }));
                }
                let mut m = Message::new();
                m.build(&setters).unwrap();
                let mut decoded = Message::new();
                decoded.raw = m.raw;
                decoded.decode().unwrap();
                prop_assert_eq!(peer_addresses(&decoded), Some(addrs));
            }

            /// `is_response` agrees with stun's decoder.
            #[test]
            fn responses_are_told_as_stun_tells_them(typ in message_type(), attrs in prop::collection::vec(attribute(), 0..3)) {
                let gate = gate();
                let packet = message(&gate, typ, &attrs, &[], false);
                let mut m = Message::new();
                m.raw = packet.clone();
                m.decode().unwrap();
                let response = m.typ.class == CLASS_SUCCESS_RESPONSE || m.typ.class == CLASS_ERROR_RESPONSE;
                prop_assert_eq!(is_response(&packet), response);
            }
        }
    }

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
        assert_eq!(peer_addresses(&decoded), Some(vec![a, b]));
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
