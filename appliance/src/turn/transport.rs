//! Client transports for the gate: UDP sockets, and TURN over TCP and TLS (RFC 8656 §3.1)
//! turned into packet transports, because the relay library only reads datagrams.
//!
//! Over a stream, messages are framed by their own headers: a STUN message is a 20-byte
//! header plus the length in its bytes 2..4; ChannelData is a 4-byte header plus its length,
//! padded to a multiple of 4. [`StreamMux`] reads frames from every connection of a
//! listener into one queue (the source address names the connection) and writes each
//! outgoing packet to the connection of its destination. One mux is one read loop of the
//! library; the listener spreads connections over several muxes.
//!
//! Admission ([`StreamAdmission`]): a connection is closed at accept when its address
//! already holds `turn.max_tcp_connections_per_address` or the listeners hold
//! `turn.max_tcp_connections`; and it must finish its TLS handshake, start with a STUN
//! message and be granted an allocation (the mux sees the Allocate success response go
//! out) within `turn.tcp_setup_timeout_secs`, or it is closed. So a client without valid
//! credentials holds a place for seconds, not for the 15-minute idle timeout.
//!
//! Invariants: a connection that sends something that is not a frame, or whose first frame
//! is not STUN, is closed; a slow reader loses packets (its send queue is bounded), never
//! stalls the relay; when a connection ends its address is reported on `closed()`, so its
//! allocation ends with it.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::counters::{DropReason, StreamCap, TurnCounters};
use crate::conn_limit::{AddressSlot, LogEvery, PerAddress};

/// Largest frame the relay library can take (its read buffers are 1500 bytes).
pub const MAX_LIBRARY_PACKET: usize = 1500;
/// Bytes 4..8 of every STUN message (RFC 5389).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// A connection that sends nothing for this long is closed (allocations refresh every few
/// minutes, so a live client never comes close).
const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Packets queued towards one client connection before new ones are dropped.
const SEND_QUEUE: usize = 1024;
/// Frames queued from all connections of one mux towards the relay library.
const RECV_QUEUE: usize = 4096;

/// A packet transport the gate reads and writes.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// One packet into `buf`; the returned length is the packet's real length, larger than
    /// `buf` when it did not fit. `NotConnected` means the transport is shut.
    async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)>;
    async fn send(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize>;
    /// `send` without waiting: `WouldBlock` when the packet cannot leave now.
    fn try_send(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize>;
    fn local_addr(&self) -> SocketAddr;
    /// The next client connection that ended (never resolves for UDP).
    async fn closed(&self) -> SocketAddr;
    /// "udp", "tcp" or "tls".
    fn name(&self) -> &'static str;
}

pub struct UdpTransport {
    socket: UdpSocket,
    local: SocketAddr,
}

impl UdpTransport {
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        let local = socket.local_addr()?;
        Ok(Self { socket: UdpSocket::from_std(socket)?, local })
    }
}

#[async_trait]
impl Transport for UdpTransport {
    async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        super::relay::recv_measured(&self.socket, buf).await
    }

    async fn send(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.socket.send_to(buf, to).await
    }

    fn try_send(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.socket.try_send_to(buf, to)
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    async fn closed(&self) -> SocketAddr {
        std::future::pending().await
    }

    fn name(&self) -> &'static str {
        "udp"
    }
}

/// Many stream connections seen as one packet transport.
pub struct StreamMux {
    name: &'static str,
    local: SocketAddr,
    frames: tokio::sync::Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    frames_tx: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    connections: Mutex<HashMap<SocketAddr, Route>>,
    closed: tokio::sync::Mutex<mpsc::UnboundedReceiver<SocketAddr>>,
    closed_tx: mpsc::UnboundedSender<SocketAddr>,
    counters: TurnCounters,
}

/// Where packets to one client connection go.
struct Route {
    tx: mpsc::Sender<Vec<u8>>,
    /// Set when an Allocate success response is sent on the connection.
    allocated: Arc<AtomicBool>,
}

impl StreamMux {
    pub fn new(name: &'static str, local: SocketAddr, counters: TurnCounters) -> Self {
        let (frames_tx, frames) = mpsc::channel(RECV_QUEUE);
        let (closed_tx, closed) = mpsc::unbounded_channel();
        Self {
            name,
            local,
            frames: tokio::sync::Mutex::new(frames),
            frames_tx,
            connections: Mutex::default(),
            closed: tokio::sync::Mutex::new(closed),
            closed_tx,
            counters,
        }
    }

    /// Serves one accepted connection until it ends, or until `setup_deadline` when it has
    /// no allocation by then.
    pub async fn serve<S>(self: Arc<Self>, stream: S, peer: SocketAddr, setup_deadline: Instant)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (reader, writer) = tokio::io::split(stream);
        let (tx, rx) = mpsc::channel::<Vec<u8>>(SEND_QUEUE);
        let allocated = Arc::new(AtomicBool::new(false));
        let route = Route { tx, allocated: Arc::clone(&allocated) };
        self.connections.lock().unwrap_or_else(|e| e.into_inner()).insert(peer, route);
        let writing = tokio::spawn(write_frames(writer, rx));
        let setup = async {
            tokio::time::sleep_until(setup_deadline).await;
            if allocated.load(Ordering::Relaxed) {
                std::future::pending::<()>().await;
            }
        };
        let outcome = tokio::select! {
            outcome = read_frames(reader, peer, &self.frames_tx, &self.counters) => outcome,
            () = setup => {
                self.counters.stream_setup_timeouts.inc();
                Err(io::Error::new(io::ErrorKind::TimedOut, "no allocation within turn.tcp_setup_timeout_secs"))
            }
        };
        if let Err(e) = outcome {
            tracing::debug!(transport = self.name, client = %peer, error = %e, "TURN stream connection ended");
        }
        self.connections.lock().unwrap_or_else(|e| e.into_inner()).remove(&peer);
        writing.abort();
        let _ = self.closed_tx.send(peer);
    }
}

#[async_trait]
impl Transport for StreamMux {
    async fn recv(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (frame, from) = self.frames.lock().await.recv().await.ok_or(io::ErrorKind::NotConnected)?;
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok((frame.len(), from))
    }

    async fn send(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.try_send(buf, to)
    }

    fn try_send(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        let granted = is_allocate_success(buf);
        let tx = self.connections.lock().unwrap_or_else(|e| e.into_inner()).get(&to).map(|route| {
            if granted {
                route.allocated.store(true, Ordering::Relaxed);
            }
            route.tx.clone()
        });
        match tx {
            Some(tx) => {
                if tx.try_send(buf.to_vec()).is_err() {
                    self.counters.dropped(DropReason::QueueFull);
                }
                Ok(buf.len())
            }
            // The connection is gone; its allocation is being closed.
            None => Ok(buf.len()),
        }
    }

    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    async fn closed(&self) -> SocketAddr {
        match self.closed.lock().await.recv().await {
            Some(addr) => addr,
            None => std::future::pending().await,
        }
    }

    fn name(&self) -> &'static str {
        self.name
    }
}

/// The length of the frame that starts with `header` (at least 4 bytes), or an error when
/// it is neither STUN nor ChannelData.
pub fn frame_length(header: &[u8; 4]) -> io::Result<usize> {
    let length = u16::from_be_bytes([header[2], header[3]]) as usize;
    match header[0] >> 6 {
        0b00 => {
            if !length.is_multiple_of(4) {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "STUN length is not a multiple of 4"));
            }
            Ok(20 + length)
        }
        // Channels 0x4000-0x7FFF: RFC 8656 narrowed them to 0x4FFF, but RFC 5766 clients
        // (coturn's among them) still use the whole range.
        0b01 => Ok(4 + length),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, "neither STUN nor ChannelData")),
    }
}

/// A STUN message (the top two bits 0 and the magic cookie), not ChannelData.
fn is_stun_message(frame: &[u8]) -> bool {
    frame.len() >= 20 && frame[0] >> 6 == 0 && frame[4..8] == MAGIC_COOKIE
}

/// An Allocate success response (type 0x0103).
fn is_allocate_success(packet: &[u8]) -> bool {
    packet.len() >= 20 && packet[..2] == [0x01, 0x03] && packet[4..8] == MAGIC_COOKIE
}

async fn read_frames<R: AsyncRead + Unpin>(
    reader: R,
    peer: SocketAddr,
    frames: &mpsc::Sender<(Vec<u8>, SocketAddr)>,
    counters: &TurnCounters,
) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(16 * 1024, reader);
    let mut first = true;
    loop {
        let mut header = [0u8; 4];
        match tokio::time::timeout(IDLE_TIMEOUT, reader.read_exact(&mut header)).await {
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "idle")),
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r?,
        };
        let length = frame_length(&header)?;
        // ChannelData is padded to 4 bytes over streams; the padding is not part of it.
        let padded = if header[0] >> 6 == 0b01 { length.div_ceil(4) * 4 } else { length };
        let mut frame = vec![0u8; padded];
        frame[..4].copy_from_slice(&header);
        reader.read_exact(&mut frame[4..]).await?;
        frame.truncate(length);
        // A TURN client starts with Allocate (RFC 8656 §7.1); nothing else is relayed.
        if first && !is_stun_message(&frame) {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "the first frame is not a STUN message"));
        }
        first = false;
        if frame.len() > MAX_LIBRARY_PACKET {
            counters.dropped(DropReason::Oversize);
            continue;
        }
        if frames.send((frame, peer)).await.is_err() {
            return Ok(());
        }
    }
}

async fn write_frames<W: AsyncWrite + Unpin>(mut writer: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        batch.clear();
        push_padded(&mut batch, &first);
        while batch.len() < 60 * 1024 {
            match rx.try_recv() {
                Ok(more) => push_padded(&mut batch, &more),
                Err(_) => break,
            }
        }
        if writer.write_all(&batch).await.is_err() || writer.flush().await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

/// Appends a packet, padding ChannelData to 4 bytes as streams require.
fn push_padded(batch: &mut Vec<u8>, packet: &[u8]) {
    batch.extend_from_slice(packet);
    if packet.first().is_some_and(|b| b >> 6 == 0b01) {
        batch.resize(batch.len() + (4 - packet.len() % 4) % 4, 0);
    }
}

/// The caps and the setup deadline shared by the TCP and TLS listeners.
pub struct StreamAdmission {
    open: Arc<AtomicUsize>,
    limit: usize,
    per_address: Arc<PerAddress>,
    setup_timeout: Duration,
    counters: TurnCounters,
    log: LogEvery,
}

/// An admitted connection's places in both caps, given back when dropped.
struct Admitted {
    _total: ConnectionSlot,
    _address: AddressSlot,
}

impl StreamAdmission {
    pub fn new(limit: usize, per_address: usize, setup_timeout: Duration, counters: TurnCounters) -> Arc<Self> {
        Arc::new(Self {
            open: Arc::new(AtomicUsize::new(0)),
            limit,
            per_address: PerAddress::new(per_address, Vec::new()),
            setup_timeout,
            counters,
            log: LogEvery::new(Duration::from_secs(60)),
        })
    }

    /// Places in both caps for a connection from `peer`, or None (counted and logged).
    fn admit(&self, peer: SocketAddr, transport: &'static str) -> Option<Admitted> {
        let refused = match self.per_address.take(peer.ip()) {
            Some(address) => match ConnectionSlot::take(&self.open, self.limit) {
                Some(total) => return Some(Admitted { _total: total, _address: address }),
                None => StreamCap::Total,
            },
            None => StreamCap::PerAddress,
        };
        self.counters.stream_refused(refused);
        if let Some(not_logged) = self.log.check() {
            let limit = match refused {
                StreamCap::PerAddress => self.per_address.limit(),
                StreamCap::Total => self.limit,
            };
            tracing::warn!(
                transport,
                client = %peer.ip(),
                cap = refused.label(),
                limit,
                refused_since_last_line = not_logged,
                "TURN stream connection refused: too many open connections"
            );
        }
        None
    }
}

/// Accepts TCP connections, or TLS ones when `tls` is given (handshake with the HTTPS
/// certificate), and hands them to the muxes in turn.
pub async fn accept_streams(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    muxes: Vec<Arc<StreamMux>>,
    admission: Arc<StreamAdmission>,
) {
    let transport = if tls.is_some() { "tls" } else { "tcp" };
    let mut next = 0usize;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(transport, error = %e, "TURN stream accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Dropping a refused stream closes it.
        let Some(admitted) = admission.admit(peer, transport) else { continue };
        let _ = stream.set_nodelay(true);
        let mux = Arc::clone(&muxes[next % muxes.len()]);
        next = next.wrapping_add(1);
        let deadline = Instant::now() + admission.setup_timeout;
        let tls = tls.clone();
        let counters = admission.counters.clone();
        tokio::spawn(async move {
            match tls {
                None => mux.serve(stream, peer, deadline).await,
                Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => mux.serve(tls, peer, deadline).await,
                    Ok(Err(e)) => tracing::debug!(client = %peer, error = %e, "TURN TLS handshake failed"),
                    Err(_) => {
                        counters.stream_setup_timeouts.inc();
                        tracing::debug!(client = %peer, "TURN TLS handshake timed out");
                    }
                },
            }
            drop(admitted);
        });
    }
}

/// One of the `limit` stream connections; given back when dropped.
struct ConnectionSlot(Arc<AtomicUsize>);

impl ConnectionSlot {
    fn take(open: &Arc<AtomicUsize>, limit: usize) -> Option<Self> {
        let mut now = open.load(Ordering::Relaxed);
        loop {
            if now >= limit {
                return None;
            }
            match open.compare_exchange_weak(now, now + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(Self(Arc::clone(open))),
                Err(seen) => now = seen,
            }
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_follow_the_headers() {
        assert_eq!(frame_length(&[0x00, 0x03, 0x00, 0x08]).unwrap(), 28);
        assert_eq!(frame_length(&[0x40, 0x00, 0x00, 0x05]).unwrap(), 9);
        assert!(frame_length(&[0x00, 0x01, 0x00, 0x05]).is_err());
        assert!(frame_length(&[0x80, 0, 0, 0]).is_err());
        assert_eq!(frame_length(&[0x7f, 0xff, 0, 4]).unwrap(), 8);
        assert!(frame_length(&[0xc0, 0, 0, 4]).is_err());
    }

    #[test]
    fn channel_data_is_padded_on_the_way_out() {
        let mut out = Vec::new();
        push_padded(&mut out, &[0x40, 0, 0, 1, 9]);
        assert_eq!(out, vec![0x40, 0, 0, 1, 9, 0, 0, 0]);
        push_padded(&mut out, &[0x01, 0x01, 0, 0]);
        assert_eq!(out.len(), 12);
    }

    #[tokio::test]
    async fn frames_split_across_reads_and_padding_are_handled() {
        let counters = TurnCounters::register(&mut prometheus_client::registry::Registry::default());
        let (tx, mut rx) = mpsc::channel(8);
        // A 20-byte STUN header with no body, then ChannelData of 5 bytes (padded to 8).
        let stun = [0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut wire = stun.to_vec();
        wire.extend_from_slice(&[0x40, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0]);
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        read_frames(&wire[..], peer, &tx, &counters).await.unwrap();
        let (a, _) = rx.recv().await.unwrap();
        assert_eq!(a.len(), 20);
        let (b, _) = rx.recv().await.unwrap();
        assert_eq!(b, vec![0x40, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
        assert!(read_frames(&b"\x80\x00\x00\x00"[..], peer, &tx, &counters).await.is_err());
        assert!(read_frames(&b"\x16\x03\x01\x02\x00"[..], peer, &tx, &counters).await.is_err());
    }

    #[tokio::test]
    async fn a_stream_must_start_with_a_stun_message() {
        let counters = TurnCounters::register(&mut prometheus_client::registry::Registry::default());
        let (tx, mut rx) = mpsc::channel(8);
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        // ChannelData first: refused, nothing passed on.
        let e = read_frames(&[0x40, 0x01, 0x00, 0x04, 1, 2, 3, 4][..], peer, &tx, &counters).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        // STUN-shaped but without the magic cookie (RFC 3489 or noise): refused too.
        let old = [0x00, 0x01, 0x00, 0x00, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(read_frames(&old[..], peer, &tx, &counters).await.is_err());
        assert!(rx.try_recv().is_err());
    }

    mod properties {
        use std::pin::Pin;
        use std::task::{Context, Poll};

        use proptest::prelude::*;
        use tokio::io::ReadBuf;

        use super::*;

        /// A stream that hands out its bytes at most `step` at a time, as TCP may.
        struct Chunked {
            data: Vec<u8>,
            at: usize,
            step: usize,
        }

        impl AsyncRead for Chunked {
            fn poll_read(
                mut self: Pin<&mut Self>,
                _cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let n = self.step.min(buf.remaining()).min(self.data.len() - self.at);
                let at = self.at;
                buf.put_slice(&self.data[at..at + n]);
                self.at += n;
                Poll::Ready(Ok(()))
            }
        }

        /// The frames `read_frames` passes on from `wire` read `step` bytes at a time, whether
        /// it ended without error, and how many frames it dropped as oversize.
        fn frames_of(wire: &[u8], step: usize) -> (Vec<Vec<u8>>, bool, u64) {
            let counters = TurnCounters::register(&mut prometheus_client::registry::Registry::default());
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            let (tx, mut rx) = mpsc::channel(wire.len() + 1);
            let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
            let reader = Chunked { data: wire.to_vec(), at: 0, step };
            let clean = runtime.block_on(read_frames(reader, peer, &tx, &counters)).is_ok();
            let mut frames = Vec::new();
            while let Ok((frame, from)) = rx.try_recv() {
                assert_eq!(from, peer);
                frames.push(frame);
            }
            (frames, clean, counters.dropped_count(DropReason::Oversize))
        }

        /// `len` bytes of filler (their values do not matter to the framing; drawing each one
        /// would make the properties slow).
        fn filler(len: usize, seed: u8) -> Vec<u8> {
            (0..len).map(|i| seed.wrapping_add((i as u8).wrapping_mul(31))).collect()
        }

        /// A well-formed frame: STUN (with the cookie, a body of whole 4-byte words) or
        /// ChannelData on 0x4000-0x7FFF; up to 2000 bytes, so some are over the library's 1500.
        fn frame() -> impl Strategy<Value = Vec<u8>> {
            let stun =
                (0u16..0x4000, any::<[u8; 12]>(), 0usize..495, any::<u8>()).prop_map(|(typ, tx, words, seed)| {
                    let body = filler(words * 4, seed);
                    let mut f = typ.to_be_bytes().to_vec();
                    f.extend_from_slice(&(body.len() as u16).to_be_bytes());
                    f.extend_from_slice(&MAGIC_COOKIE);
                    f.extend_from_slice(&tx);
                    f.extend_from_slice(&body);
                    f
                });
            let channel_data = (0x4000u16..=0x7fff, 0usize..1996, any::<u8>()).prop_map(|(number, len, seed)| {
                let mut f = number.to_be_bytes().to_vec();
                f.extend_from_slice(&(len as u16).to_be_bytes());
                f.extend_from_slice(&filler(len, seed));
                f
            });
            prop_oneof![stun, channel_data]
        }

        /// A stream as a client writes it: a STUN message first, then any frames.
        fn stream() -> impl Strategy<Value = Vec<Vec<u8>>> {
            (frame(), prop::collection::vec(frame(), 0..8)).prop_filter_map("starts with STUN", |(first, rest)| {
                is_stun_message(&first).then(|| std::iter::once(first).chain(rest).collect())
            })
        }

        fn wire_of(frames: &[Vec<u8>]) -> Vec<u8> {
            let mut wire = Vec::new();
            for f in frames {
                push_padded(&mut wire, f);
            }
            wire
        }

        proptest! {
            #![proptest_config(crate::turn::proptest_config())]

            #[test]
            fn any_four_bytes_give_a_frame_length_or_an_error(header: [u8; 4]) {
                let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
                match (header[0] >> 6, frame_length(&header)) {
                    (0b00, Ok(n)) => prop_assert!(length % 4 == 0 && n == 20 + length),
                    (0b00, Err(_)) => prop_assert!(length % 4 != 0),
                    (0b01, Ok(n)) => prop_assert_eq!(n, 4 + length),
                    (_, r) => prop_assert!(r.is_err()),
                }
            }

            /// Well-formed streams come out frame by frame, however the bytes are split, less
            /// the frames too large for the library (counted).
            #[test]
            fn well_formed_streams_round_trip(frames in stream(), step in 1usize..64) {
                let (out, clean, oversize) = frames_of(&wire_of(&frames), step);
                prop_assert!(clean);
                let fitting: Vec<Vec<u8>> = frames.iter().filter(|f| f.len() <= MAX_LIBRARY_PACKET).cloned().collect();
                prop_assert_eq!(oversize as usize, frames.len() - fitting.len());
                prop_assert_eq!(out, fitting);
            }

            /// Whatever follows well-formed frames, those frames come out unchanged first.
            #[test]
            fn garbage_after_frames_never_changes_the_frames_before_it(
                frames in stream(),
                tail in prop::collection::vec(any::<u8>(), 0..64),
                step in 1usize..64,
            ) {
                let fitting: Vec<Vec<u8>> = frames.iter().filter(|f| f.len() <= MAX_LIBRARY_PACKET).cloned().collect();
                let mut wire = wire_of(&frames);
                wire.extend_from_slice(&tail);
                let (out, _, _) = frames_of(&wire, step);
                prop_assert!(out.len() >= fitting.len());
                prop_assert_eq!(&out[..fitting.len()], &fitting[..]);
            }

            /// Arbitrary bytes never panic the framing, and whatever is passed on is a whole
            /// frame by its own header, within the library's buffer, behind a STUN first frame.
            #[test]
            fn arbitrary_bytes_never_misframe(wire in prop::collection::vec(any::<u8>(), 0..4096), step in 1usize..64) {
                let (out, _, _) = frames_of(&wire, step);
                for (i, f) in out.iter().enumerate() {
                    prop_assert!(f.len() >= 4 && f.len() <= MAX_LIBRARY_PACKET);
                    let header: [u8; 4] = f[..4].try_into().unwrap();
                    prop_assert_eq!(frame_length(&header).ok(), Some(f.len()));
                    if i == 0 {
                        prop_assert!(is_stun_message(f));
                    }
                }
            }

            /// The header checks agree with stun's decoder on every message it decodes.
            #[test]
            fn allocate_success_is_told_as_stun_tells_it(mut packet in prop::collection::vec(any::<u8>(), 20..64), typ: u16) {
                packet[..2].copy_from_slice(&typ.to_be_bytes());
                let length = (packet.len() as u16 - 20) & !3;
                packet[2..4].copy_from_slice(&length.to_be_bytes());
                packet[4..8].copy_from_slice(&MAGIC_COOKIE);
                let mut m = stun::message::Message::new();
                m.raw = packet.clone();
                if m.decode().is_ok() {
                    let allocate_success = stun::message::MessageType::new(
                        stun::message::METHOD_ALLOCATE,
                        stun::message::CLASS_SUCCESS_RESPONSE,
                    );
                    prop_assert_eq!(is_allocate_success(&packet), m.typ == allocate_success);
                    prop_assert_eq!(is_stun_message(&packet), typ >> 14 == 0);
                }
            }
        }
    }

    #[test]
    fn only_an_allocate_success_counts_as_a_grant() {
        let mut success = vec![0x01, 0x03, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        success.extend_from_slice(&[7u8; 12]);
        assert!(is_allocate_success(&success));
        let mut error = success.clone();
        error[1] = 0x13;
        assert!(!is_allocate_success(&error), "Allocate error response");
        let mut binding = success.clone();
        binding[1] = 0x01;
        assert!(!is_allocate_success(&binding), "Binding success");
        assert!(!is_allocate_success(&[0x01, 0x03, 0, 0]), "too short");
    }

    #[test]
    fn the_address_cap_is_checked_before_the_total() {
        let counters = TurnCounters::register(&mut prometheus_client::registry::Registry::default());
        let admission = StreamAdmission::new(3, 2, Duration::from_secs(10), counters);
        let a: SocketAddr = "192.0.2.1:1000".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:1000".parse().unwrap();
        let held = [admission.admit(a, "tcp").unwrap(), admission.admit(a, "tls").unwrap()];
        assert!(admission.admit(a, "tcp").is_none(), "third from one address");
        let third = admission.admit(b, "tcp").unwrap();
        assert!(admission.admit(b, "tcp").is_none(), "fourth in all");
        drop(held);
        drop(third);
        assert_eq!(admission.open.load(Ordering::Relaxed), 0);
        assert!(admission.admit(a, "tcp").is_some());
    }
}
