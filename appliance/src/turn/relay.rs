//! Relay sockets: the relay address generator the relay library calls for each Allocate,
//! and the socket wrapper ([`RelayConn`]) through which every relayed datagram passes.
//!
//! The wrapper is the last line of the peer filter: every datagram to a peer (Send or
//! ChannelData, whichever path the library took) and every datagram from a peer is judged
//! by [`RelayPolicy`](super::peer_filter::RelayPolicy) here, counted here, and held to the
//! per-allocation bandwidth cap here. Datagrams from peers without a permission are dropped
//! here too (the library would drop them, but after counting and logging them).
//!
//! Invariant: a relay port is in the filter's live set exactly while its socket is open.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use turn::relay::RelayAddressGenerator;
use util::Conn;

use super::counters::Drop;
use super::credentials::SYSTEM_USER;
use super::shared::Shared;

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
    to_peer: Option<Mutex<Bucket>>,
    to_client: Option<Mutex<Bucket>>,
}

impl RelayState {
    fn new(port: u16, max_bytes_per_sec: Option<u64>) -> Self {
        let bucket = || max_bytes_per_sec.map(|rate| Mutex::new(Bucket::new(rate)));
        Self {
            port,
            user: AtomicI64::new(SYSTEM_USER),
            permissions: Mutex::default(),
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
        self.user.load(std::sync::atomic::Ordering::Relaxed)
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
        let state = Arc::new(RelayState::new(port, self.shared.max_bytes_per_sec));
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
    socket: UdpSocket,
    state: Arc<RelayState>,
    shared: Arc<Shared>,
    closed: watch::Sender<bool>,
}

impl RelayConn {
    fn refused(&self, peer: SocketAddr, why: super::peer_filter::Refusal, direction: &'static str) {
        self.shared.counters.refusal(why);
        if self.shared.may_log() {
            tracing::warn!(
                user_id = self.state.user(),
                peer = %peer,
                reason = why.label(),
                direction,
                "TURN peer refused by the peer filter"
            );
        }
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
        loop {
            let (n, from) = tokio::select! {
                r = recv_measured(&self.socket, buf) => match r {
                    Ok(v) => v,
                    // ICMP errors of earlier sends surface here; the socket is still fine.
                    Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset) => continue,
                    Err(e) => return Err(e.into()),
                },
                _ = closed.wait_for(|c| *c) => return Err(util::Error::Other("relay socket closed".into())),
            };
            let counters = &self.shared.counters;
            if n > buf.len() {
                counters.dropped(Drop::Oversize);
                continue;
            }
            if let Err(why) = self.shared.policy.check(from) {
                self.refused(from, why, "from_peer");
                continue;
            }
            let now = Instant::now();
            if !self.state.permitted(from.ip(), now) {
                counters.dropped(Drop::NoPermission);
                continue;
            }
            if !take(&self.state.to_client, n, now) {
                counters.dropped(Drop::Bandwidth);
                continue;
            }
            counters.bytes_to_client.inc_by(n as u64);
            counters.packets_to_client.inc();
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
            self.shared.counters.dropped(Drop::Bandwidth);
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
        self.closed.send_replace(true);
        self.shared.relay_closed(self.state.port);
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

impl std::ops::Drop for RelayConn {
    fn drop(&mut self) {
        // Also covers sockets the library bound and dropped without closing (EVEN-PORT probes).
        self.shared.relay_closed(self.state.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
