//! Relay sockets: the relay address generator the relay library calls for each Allocate,
//! and the socket wrapper ([`RelayConn`]) through which every relayed datagram passes.
//!
//! The wrapper is the last line of the peer filter: every datagram to a peer (Send or
//! ChannelData, whichever path the library took) and every datagram from a peer is judged
//! by [`RelayPolicy`](super::peer_filter::RelayPolicy) here, counted here, and held to the
//! per-allocation bandwidth cap here. Datagrams from peers without a permission are dropped
//! here too (the library would drop them, but after counting and logging them).
//!
//! The fast path: once a channel is bound, ChannelData is relayed here and in the gate
//! without the library (its per-datagram path copies each datagram twice, boxes futures and
//! takes async locks; about four times coturn's instructions per message). The gate mirrors
//! every ChannelBind the library accepted into [`RelayState`] (channel, peer, expiry) and
//! tells it the client's address and transport at Allocate; then a client's ChannelData is
//! sent to the peer by [`RelayState::forward_to_peer`], and a peer's datagram on a bound
//! channel goes back to the client from [`RelayConn`]'s receive loop. Same checks, counters
//! and caps as the library's path; anything the mirror does not know goes to the library.
//!
//! Invariant: a relay port is in the filter's live set exactly while its socket is open.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use foldhash::HashMap;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use turn::relay::RelayAddressGenerator;
use util::Conn;

use super::counters::DropReason;
use super::credentials::SYSTEM_USER;
use super::shared::Shared;
use super::transport::Transport;

/// How long a channel binding lives without a refresh (RFC 8656 §12: 10 minutes). `service`
/// gives the library the same `channel_bind_timeout`, so its bindings and the mirror's
/// expire together.
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// ChannelData header: channel number and length, two bytes each.
const CHANNEL_HEADER: usize = 4;
/// The largest datagram relayed (the library's buffer is as large).
const MAX_DATAGRAM: usize = 1500;

/// A permission lasts 300 s (RFC 8656 §9) unless refreshed.
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Tries to find a free port in the range before answering 508.
const PORT_TRIES: usize = 64;

/// What the appliance knows of one relay socket beyond the library.
pub struct RelayState {
    pub port: u16,
    /// The owning user, once the Allocate succeeded (for logs).
    pub user: AtomicI64,
    permissions: Mutex<HashMap<IpAddr, Instant>>,
    channels: Mutex<Channels>,
    /// The allocation's client and the transport it came in on (set at Allocate).
    client: OnceLock<ClientPath>,
    /// The relay socket; dead once the library dropped it.
    socket: Weak<UdpSocket>,
    open: AtomicBool,
    to_peer: Option<Mutex<Bucket>>,
    to_client: Option<Mutex<Bucket>>,
}

/// The library's channel bindings of one allocation, as the gate saw them accepted.
#[derive(Default)]
struct Channels {
    by_number: HashMap<u16, (SocketAddr, Instant)>,
    by_peer: HashMap<SocketAddr, u16>,
}

struct ClientPath {
    addr: SocketAddr,
    transport: Arc<dyn Transport>,
}

impl RelayState {
    fn new(port: u16, max_bytes_per_sec: Option<u64>, socket: Weak<UdpSocket>) -> Self {
        let bucket = || max_bytes_per_sec.map(|rate| Mutex::new(Bucket::new(rate)));
        Self {
            port,
            user: AtomicI64::new(SYSTEM_USER),
            permissions: Mutex::default(),
            channels: Mutex::default(),
            client: OnceLock::new(),
            socket,
            open: AtomicBool::new(true),
            to_peer: bucket(),
            to_client: bucket(),
        }
    }

    /// Mirrors a permission the library just installed (CreatePermission or ChannelBind).
    pub fn permit(&self, ip: IpAddr, now: Instant) {
        let mut p = self.permissions.lock().unwrap_or_else(|e| e.into_inner());
        p.retain(|_, until| *until > now);
        p.insert(ip, now + PERMISSION_LIFETIME);
    }

    fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions.lock().unwrap_or_else(|e| e.into_inner()).get(&ip).is_some_and(|until| *until > now)
    }

    fn user(&self) -> i64 {
        self.user.load(Ordering::Relaxed)
    }

    /// The allocation's client: where ChannelData from peers goes.
    pub fn set_client(&self, addr: SocketAddr, transport: Arc<dyn Transport>) {
        let _ = self.client.set(ClientPath { addr, transport });
    }

    /// The library accepted a ChannelBind of `number` to `peer` (a new binding or a refresh;
    /// the library refuses a number or a peer already bound otherwise, so the two maps stay
    /// one-to-one).
    pub fn bind_channel(&self, number: u16, peer: SocketAddr, now: Instant) {
        let mut guard = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let Channels { by_number, by_peer } = &mut *guard;
        by_number.retain(|_, (_, until)| *until > now);
        by_peer.retain(|_, n| by_number.contains_key(n));
        by_number.insert(number, (peer, now + CHANNEL_LIFETIME));
        by_peer.insert(peer, number);
    }

    fn channel_peer(&self, number: u16, now: Instant) -> Option<SocketAddr> {
        let c = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        c.by_number.get(&number).filter(|(_, until)| *until > now).map(|(peer, _)| *peer)
    }

    fn peer_channel(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        let c = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let number = *c.by_peer.get(&peer)?;
        c.by_number.get(&number).filter(|(_, until)| *until > now).map(|_| number)
    }

    /// Relays a client's ChannelData `packet` to its channel's peer. False when the
    /// library must handle it (no live binding mirrored here, a malformed frame, a full
    /// socket buffer); true when it was sent, or dropped as the library's path would drop it.
    pub fn forward_to_peer(&self, shared: &Shared, packet: &[u8]) -> bool {
        let Some(header) = packet.first_chunk::<CHANNEL_HEADER>() else { return false };
        let number = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let Some(payload) = packet.get(CHANNEL_HEADER..CHANNEL_HEADER + len) else { return false };
        if !self.open.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        let Some(peer) = self.channel_peer(number, now) else { return false };
        let Some(socket) = self.socket.upgrade() else { return false };
        if let Err(why) = shared.policy.check(peer) {
            refused(shared, self.user(), peer, why, "to_peer");
            return true;
        }
        if !take(&self.to_peer, payload.len(), now) {
            shared.counters.dropped(DropReason::Bandwidth);
            return true;
        }
        match socket.try_send_to(payload, peer) {
            Ok(n) => {
                shared.counters.bytes_to_peer.inc_by(n as u64);
                shared.counters.packets_to_peer.inc();
                shared.counters.fast_to_peer.inc();
                true
            }
            // The library's path waits for room; refused and unreachable peers it ignores.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(_) => true,
        }
    }
}

fn refused(shared: &Shared, user: i64, peer: SocketAddr, why: super::peer_filter::Refusal, direction: &'static str) {
    shared.counters.refusal(why);
    if shared.may_log() {
        tracing::warn!(user_id = user, peer = %peer, reason = why.label(), direction, "TURN peer refused by the peer filter");
    }
}

/// Token bucket: `rate` bytes a second, bursts up to one second's worth.
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u64) -> Self {
        Self { rate: rate as f64, tokens: rate as f64, last: Instant::now() }
    }

    fn take(&mut self, bytes: usize, now: Instant) -> bool {
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= bytes as f64 {
            self.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}

fn take(bucket: &Option<Mutex<Bucket>>, bytes: usize, now: Instant) -> bool {
    match bucket {
        None => true,
        Some(b) => b.lock().unwrap_or_else(|e| e.into_inner()).take(bytes, now),
    }
}

/// Binds relay sockets on `bind_ip`, in `[min, max]`, and advertises them as `relay_ip`.
pub struct RelayAllocator {
    pub shared: Arc<Shared>,
    pub bind_ip: IpAddr,
    pub relay_ip: IpAddr,
    pub min_port: u16,
    pub max_port: u16,
}

impl RelayAllocator {
    fn bind(&self, port: u16) -> io::Result<UdpSocket> {
        let addr = SocketAddr::new(self.bind_ip, port);
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
        socket.set_nonblocking(true)?;
        // Relay sockets carry bursts of a whole data channel window: give them room.
        let _ = socket.set_recv_buffer_size(1 << 20);
        let _ = socket.set_send_buffer_size(1 << 20);
        socket.bind(&addr.into())?;
        UdpSocket::from_std(socket.into())
    }
}

#[async_trait]
impl RelayAddressGenerator for RelayAllocator {
    fn validate(&self) -> Result<(), turn::Error> {
        if self.min_port == 0 || self.min_port > self.max_port {
            return Err(turn::Error::ErrMaxPortLessThanMinPort);
        }
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        if use_ipv4 != self.bind_ip.is_ipv4() {
            return Err(turn::Error::Other("this relay does not serve that address family".into()));
        }
        let socket = if requested_port != 0 {
            if !(self.min_port..=self.max_port).contains(&requested_port) {
                return Err(turn::Error::Other(format!("port {requested_port} is outside the relay range")));
            }
            self.bind(requested_port).map_err(|e| turn::Error::Other(e.to_string()))?
        } else {
            let span = u32::from(self.max_port - self.min_port) + 1;
            let mut found = None;
            for _ in 0..PORT_TRIES {
                let port = self.min_port + (rand_u32() % span) as u16;
                if let Ok(s) = self.bind(port) {
                    found = Some(s);
                    break;
                }
            }
            found.ok_or(turn::Error::ErrMaxRetriesExceeded)?
        };
        let port = socket.local_addr().map_err(|e| turn::Error::Other(e.to_string()))?.port();
        let socket = Arc::new(socket);
        let state = Arc::new(RelayState::new(port, self.shared.max_bytes_per_sec, Arc::downgrade(&socket)));
        self.shared.relay_opened(Arc::clone(&state));
        let (closed, _) = watch::channel(false);
        let conn = RelayConn { socket, state, shared: Arc::clone(&self.shared), closed };
        Ok((Arc::new(conn), SocketAddr::new(self.relay_ip, port)))
    }
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u32::from_ne_bytes(b)
}

/// Receives one datagram into `buf` and returns its real length, which is larger than
/// `buf` when the datagram did not fit (then `buf` holds its start).
pub async fn recv_measured(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    loop {
        socket.readable().await?;
        let result = socket.try_io(Interest::READABLE, || {
            // SAFETY: `u8` and `MaybeUninit<u8>` have the same layout, and the kernel only
            // writes initialised bytes into the buffer; nothing uninitialised is read back.
            let uninit = unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) };
            socket2::SockRef::from(socket).recv_from_with_flags(uninit, libc::MSG_TRUNC)
        });
        match result {
            Ok((n, addr)) => {
                let addr = addr.as_socket().ok_or_else(|| io::Error::other("datagram without an IP source"))?;
                return Ok((n, addr));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

pub struct RelayConn {
    socket: Arc<UdpSocket>,
    state: Arc<RelayState>,
    shared: Arc<Shared>,
    closed: watch::Sender<bool>,
}

impl RelayConn {
    fn refused(&self, peer: SocketAddr, why: super::peer_filter::Refusal, direction: &'static str) {
        refused(&self.shared, self.state.user(), peer, why, direction);
    }
}

#[async_trait]
impl Conn for RelayConn {
    async fn connect(&self, _addr: SocketAddr) -> util::Result<()> {
        Err(util::Error::Other("a relay socket is not connected".into()))
    }

    async fn recv(&self, _buf: &mut [u8]) -> util::Result<usize> {
        Err(util::Error::Other("use recv_from on a relay socket".into()))
    }

    async fn recv_from(&self, buf: &mut [u8]) -> util::Result<(usize, SocketAddr)> {
        let mut closed = self.closed.subscribe();
        // One wait for the whole loop: a new one per datagram would register with (and
        // leave) the channel's waiter list each time.
        let closed = closed.wait_for(|c| *c);
        tokio::pin!(closed);
        // Received after room for a ChannelData header (and padding), so that a datagram on
        // a bound channel goes to the client without a copy.
        let mut frame = [0u8; CHANNEL_HEADER + MAX_DATAGRAM + 3];
        let room = buf.len().min(MAX_DATAGRAM);
        loop {
            let (n, from) = tokio::select! {
                r = recv_measured(&self.socket, &mut frame[CHANNEL_HEADER..CHANNEL_HEADER + room]) => match r {
                    Ok(v) => v,
                    // ICMP errors of earlier sends surface here; the socket is still fine.
                    Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset) => continue,
                    Err(e) => return Err(e.into()),
                },
                _ = &mut closed => return Err(util::Error::Other("relay socket closed".into())),
            };
            let counters = &self.shared.counters;
            if n > room {
                counters.dropped(DropReason::Oversize);
                continue;
            }
            if let Err(why) = self.shared.policy.check(from) {
                self.refused(from, why, "from_peer");
                continue;
            }
            let now = Instant::now();
            if !self.state.permitted(from.ip(), now) {
                counters.dropped(DropReason::NoPermission);
                continue;
            }
            if !take(&self.state.to_client, n, now) {
                counters.dropped(DropReason::Bandwidth);
                continue;
            }
            counters.bytes_to_client.inc_by(n as u64);
            counters.packets_to_client.inc();
            if let (Some(number), Some(client)) = (self.state.peer_channel(from, now), self.state.client.get()) {
                let end = CHANNEL_HEADER + n;
                frame[..2].copy_from_slice(&number.to_be_bytes());
                frame[2..CHANNEL_HEADER].copy_from_slice(&(n as u16).to_be_bytes());
                // Padded to four bytes, as stream transports require (UDP allows it).
                let padded = end.next_multiple_of(4);
                frame[end..padded].fill(0);
                let out = &frame[..padded];
                let sent = match client.transport.try_send(out, client.addr) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => client.transport.send(out, client.addr).await,
                    other => other,
                };
                match sent {
                    Ok(_) => {
                        counters.fast_to_client.inc();
                    }
                    Err(e) => tracing::debug!(client = %client.addr, error = %e, "ChannelData to the client not sent"),
                }
                continue;
            }
            buf[..n].copy_from_slice(&frame[CHANNEL_HEADER..CHANNEL_HEADER + n]);
            return Ok((n, from));
        }
    }

    async fn send(&self, _buf: &[u8]) -> util::Result<usize> {
        Err(util::Error::Other("use send_to on a relay socket".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> util::Result<usize> {
        if let Err(why) = self.shared.policy.check(target) {
            self.refused(target, why, "to_peer");
            return Err(util::Error::Other(format!("peer {target} refused: {}", why.label())));
        }
        if !take(&self.state.to_peer, buf.len(), Instant::now()) {
            self.shared.counters.dropped(DropReason::Bandwidth);
            return Ok(buf.len());
        }
        let n = self.socket.send_to(buf, target).await?;
        self.shared.counters.bytes_to_peer.inc_by(n as u64);
        self.shared.counters.packets_to_peer.inc();
        Ok(n)
    }

    fn local_addr(&self) -> util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> util::Result<()> {
        self.state.open.store(false, Ordering::Release);
        self.closed.send_replace(true);
        self.shared.relay_closed(self.state.port);
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

impl Drop for RelayConn {
    fn drop(&mut self) {
        self.state.open.store(false, Ordering::Release);
        // Also covers sockets the library bound and dropped without closing (EVEN-PORT probes).
        self.shared.relay_closed(self.state.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turn::counters::TurnCounters;
    use crate::turn::credentials::CredentialKey;
    use crate::turn::peer_filter::{PolicyRules, RelayPolicy};
    use crate::turn::quota::QuotaBook;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn shared() -> Shared {
        let rules = PolicyRules {
            labs: Vec::new(),
            extra: Vec::new(),
            relay_ip: Some(LOOPBACK),
            own_ips: [LOOPBACK].into_iter().collect(),
            allow_public: false,
        };
        let counters = TurnCounters::register(&mut prometheus_client::registry::Registry::default());
        Shared::new(
            "realm".into(),
            CredentialKey::new(b"secret"),
            RelayPolicy::new(rules),
            QuotaBook::new(4, 16),
            counters,
            true,
            None,
        )
    }

    #[test]
    fn channel_bindings_expire_unless_refreshed_and_map_one_to_one() {
        let t0 = Instant::now();
        let state = RelayState::new(50_000, None, Weak::new());
        let a: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:4000".parse().unwrap();
        state.bind_channel(0x4000, a, t0);
        assert_eq!(state.channel_peer(0x4000, t0), Some(a));
        assert_eq!(state.peer_channel(a, t0), Some(0x4000));
        assert_eq!(state.peer_channel(b, t0), None);
        let late = t0 + CHANNEL_LIFETIME + Duration::from_secs(1);
        assert_eq!(state.channel_peer(0x4000, late), None);
        assert_eq!(state.peer_channel(a, late), None);
        // A refresh (the same ChannelBind again) extends it.
        state.bind_channel(0x4000, a, t0 + Duration::from_secs(300));
        assert_eq!(state.channel_peer(0x4000, late), Some(a));
        // Once expired, the number may go to another peer, and the old peer is forgotten.
        let later = t0 + Duration::from_secs(300) + CHANNEL_LIFETIME + Duration::from_secs(1);
        state.bind_channel(0x4000, b, later);
        assert_eq!(state.channel_peer(0x4000, later), Some(b));
        assert_eq!(state.peer_channel(a, later), None);
        assert_eq!(state.peer_channel(b, later), Some(0x4000));
    }

    #[tokio::test]
    async fn bound_channel_data_goes_to_the_peer_and_everything_else_to_the_library() {
        let shared = shared();
        // The peer is another relay socket of this appliance: the one loopback peer the
        // filter allows.
        let peer = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
        let peer_addr = peer.local_addr().unwrap();
        shared.relay_opened(Arc::new(RelayState::new(peer_addr.port(), None, Weak::new())));
        let socket = Arc::new(UdpSocket::bind((LOOPBACK, 0)).await.unwrap());
        let state = RelayState::new(socket.local_addr().unwrap().port(), None, Arc::downgrade(&socket));
        // As a relay socket in service: the reactor has seen it writable.
        socket.writable().await.unwrap();
        let frame = [0x40, 0x00, 0x00, 0x03, b'a', b'b', b'c', 0x00];

        assert!(!state.forward_to_peer(&shared, &frame), "no binding yet: the library's");
        state.bind_channel(0x4000, peer_addr, Instant::now());
        assert!(state.forward_to_peer(&shared, &frame));
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"abc"[..], socket.local_addr().unwrap()));
        assert_eq!(shared.counters.fast_to_peer.get(), 1);
        assert_eq!(shared.counters.bytes_to_peer.get(), 3);

        assert!(!state.forward_to_peer(&shared, &[0x40, 0x01, 0x00, 0x01, b'x']), "another channel");
        assert!(!state.forward_to_peer(&shared, &[0x40, 0x00, 0x00, 0x09, b'x']), "shorter than its length");
        assert!(!state.forward_to_peer(&shared, &[0x40, 0x00]), "no header");
        state.open.store(false, Ordering::Release);
        assert!(!state.forward_to_peer(&shared, &frame), "closed");
        assert_eq!(shared.counters.fast_to_peer.get(), 1);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// ChannelData-shaped bytes: channel 0x4000 (bound), 0x4001 (not) or any; any payload.
        fn packet() -> impl Strategy<Value = Vec<u8>> {
            let number = prop_oneof![Just(0x4000u16), Just(0x4001u16), any::<u16>()];
            // The length field: the payload's, shorter (the rest is padding), or anything.
            let length = prop_oneof![Just(None), (0u16..72).prop_map(Some), any::<u16>().prop_map(Some)];
            let frame =
                (number, length, prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(number, length, payload)| {
                    let length = length.unwrap_or(payload.len() as u16);
                    let mut p = number.to_be_bytes().to_vec();
                    p.extend_from_slice(&length.to_be_bytes());
                    p.extend_from_slice(&payload);
                    p
                });
            prop_oneof![frame, prop::collection::vec(any::<u8>(), 0..8)]
        }

        proptest! {
            #![proptest_config(crate::turn::proptest_config())]

            /// The fast path takes exactly the ChannelData of the bound channel whose length
            /// fits, and sends the peer exactly its payload (padding left behind); anything
            /// else goes to the library, and nothing panics.
            #[test]
            fn the_fast_path_relays_exactly_the_payload_of_bound_channel_data(packet in packet()) {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
                let shared = shared();
                let peer = std::net::UdpSocket::bind((LOOPBACK, 0)).unwrap();
                peer.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let peer_addr = peer.local_addr().unwrap();
                shared.relay_opened(Arc::new(RelayState::new(peer_addr.port(), None, Weak::new())));
                let socket = runtime.block_on(async {
                    let socket = Arc::new(UdpSocket::bind((LOOPBACK, 0)).await.unwrap());
                    socket.writable().await.unwrap();
                    socket
                });
                let state = RelayState::new(socket.local_addr().unwrap().port(), None, Arc::downgrade(&socket));
                state.bind_channel(0x4000, peer_addr, Instant::now());

                let length = packet.get(2..4).map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])));
                let bound_and_whole = packet.starts_with(&[0x40, 0x00]) && length.is_some_and(|l| 4 + l <= packet.len());
                let taken = runtime.block_on(async { state.forward_to_peer(&shared, &packet) });
                prop_assert_eq!(taken, bound_and_whole);
                prop_assert_eq!(shared.counters.fast_to_peer.get(), u64::from(taken));
                if taken {
                    let mut buf = [0u8; 128];
                    let (n, from) = peer.recv_from(&mut buf).unwrap();
                    prop_assert_eq!(from, socket.local_addr().unwrap());
                    prop_assert_eq!(&buf[..n], &packet[4..4 + length.unwrap_or(0)]);
                }
            }
        }
    }

    #[test]
    fn bucket_allows_its_rate_and_refills() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1000);
        b.last = t0;
        assert!(b.take(600, t0));
        assert!(!b.take(600, t0));
        assert!(b.take(600, t0 + Duration::from_millis(300)));
        // Never more than one second's worth at once.
        assert!(!b.take(1200, t0 + Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn measured_receive_reports_the_real_length_of_an_oversize_datagram() {
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        a.send_to(&[7u8; 3000], b.local_addr().unwrap()).await.unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = recv_measured(&b, &mut buf).await.unwrap();
        assert_eq!((n, from), (3000, a.local_addr().unwrap()));
        assert_eq!(buf[1499], 7);
    }
}
