//! Wiring of the relay: binds its sockets (before the start banner, so a taken port is one
//! clear line), works out the relay address, builds the gates, transports and relay
//! allocator around the relay library's server, and runs the upkeep task (user view, lab
//! ranges, nonce rotation, forgotten requests).
//!
//! Sockets: `udp_workers` UDP sockets share the TURN port through SO_REUSEPORT (the kernel
//! spreads clients over them by address hash, so a client always meets the same socket and
//! so the same library read loop and allocation table); TCP on the same port and TLS on
//! its own port, each spread over as many muxes.
//!
//! Thread: the relay runs on a thread of its own with a single-threaded runtime
//! ([`BoundTurn::start_on_own_thread`]); its read loops, relay sockets and upkeep all live
//! there, and the rest of the appliance reaches it only through `Shared` (std locks and
//! channels that work across runtimes) and the [`IceServerIssuer`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinHandle;
use turn::server::Server;
use turn::server::config::{ConnConfig, ServerConfig};

use super::counters::TurnCounters;
use super::credentials::{CredentialKey, DirectoryAuth, IceServerIssuer};
use super::directory::{self, REFRESH};
use super::gate::Gate;
use super::peer_filter::{PolicyRules, RelayPolicy, canonical_ip, local_addresses};
use super::quota::QuotaBook;
use super::relay::{CHANNEL_LIFETIME, RelayAllocator};
use super::shared::Shared;
use super::transport::{StreamAdmission, StreamMux, UdpTransport, accept_streams};
use crate::config::{Config, TurnConfig};
use crate::{datadir, db, tls};

/// The relay's sockets, bound, not yet served.
pub struct BoundTurn {
    udp: Vec<UdpSocket>,
    tcp: std::net::TcpListener,
    tls: std::net::TcpListener,
    listen: SocketAddr,
    tls_port: u16,
    relay_ip: IpAddr,
    relay_ip_source: &'static str,
    bind_ip: IpAddr,
    host: String,
    settings: TurnConfig,
    secret: Vec<u8>,
    tls_config: Arc<rustls::ServerConfig>,
}

/// Binds UDP and TCP on `turn_listen` and TLS on `turn.tls_port`. Port 0 picks a free port
/// that is free for both UDP and TCP.
pub fn bind(config: &Config, tls: &tls::TlsMaterial) -> anyhow::Result<BoundTurn> {
    let settings = config.turn.clone();
    let listen_ip = config.turn_listen.ip();
    let workers = settings
        .udp_workers
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8));
    let (udp, tcp) = bind_udp_and_tcp(config.turn_listen, workers)?;
    let listen = SocketAddr::new(listen_ip, udp[0].local_addr()?.port());
    let tls_port = settings.tls_port.unwrap_or(if config.turn_listen.port() == 0 { 0 } else { 5349 });
    let tls_addr = SocketAddr::new(listen_ip, tls_port);
    let tls_listener = bind_stream(tls_addr).map_err(|e| bind_error("TURN-over-TLS", tls_addr, e))?;
    let tls_port = tls_listener.local_addr()?.port();

    let (relay_ip, relay_ip_source) = relay_ip(config);
    let bind_ip = if listen_ip.is_unspecified() {
        if relay_ip.is_ipv4() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { IpAddr::V6(Ipv6Addr::UNSPECIFIED) }
    } else {
        listen_ip
    };
    if bind_ip.is_ipv4() != relay_ip.is_ipv4() {
        anyhow::bail!(
            "turn.relay_address {relay_ip} and turn_listen {} are of different address families",
            config.turn_listen
        );
    }
    let secret = datadir::secret(&config.data_dir, "turn.key")?;
    let mut tls_config = (*tls.server_config).clone();
    // TURN clients offer "stun.turn" or nothing; the HTTPS ALPN list would refuse them.
    tls_config.alpn_protocols.clear();
    Ok(BoundTurn {
        udp,
        tcp,
        tls: tls_listener,
        listen,
        tls_port,
        relay_ip,
        relay_ip_source,
        bind_ip,
        host: config.advertised_host(),
        settings,
        secret,
        tls_config: Arc::new(tls_config),
    })
}

fn bind_udp_and_tcp(addr: SocketAddr, workers: usize) -> anyhow::Result<(Vec<UdpSocket>, std::net::TcpListener)> {
    let tries = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let first = bind_udp(addr).map_err(|e| bind_error("TURN (UDP)", addr, e))?;
        let port = first.local_addr()?.port();
        let at = SocketAddr::new(addr.ip(), port);
        let tcp = match bind_stream(at) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && addr.port() == 0 => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(bind_error("TURN (TCP)", at, e)),
        };
        let mut udp = vec![first];
        for _ in 1..workers {
            udp.push(bind_udp(at).map_err(|e| bind_error("TURN (UDP)", at, e))?);
        }
        return Ok((udp, tcp));
    }
    Err(bind_error("TURN (TCP)", addr, last.unwrap_or_else(|| io::ErrorKind::AddrInUse.into())))
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
    socket.set_reuse_port(true)?;
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn bind_stream(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn bind_error(what: &str, addr: SocketAddr, e: io::Error) -> anyhow::Error {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            anyhow::anyhow!("{what} address {addr} is already in use (is coturn or another labbeam running?)")
        }
        io::ErrorKind::PermissionDenied => {
            anyhow::anyhow!("{what} address {addr}: permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)")
        }
        io::ErrorKind::AddrNotAvailable => anyhow::anyhow!("{what} address {addr} is not an address of this machine"),
        _ => anyhow::anyhow!("cannot listen on {what} address {addr}: {e}"),
    }
}

/// The address given to clients as their relay, and where it came from.
pub fn relay_ip(config: &Config) -> (IpAddr, &'static str) {
    if let Some(ip) = config.turn.relay_address {
        return (ip, "turn.relay_address");
    }
    if let Some(ip) = config.public_host.as_deref().and_then(|h| h.parse::<IpAddr>().ok())
        && !ip.is_unspecified()
    {
        return (ip, "public_host");
    }
    if !config.turn_listen.ip().is_unspecified() {
        return (config.turn_listen.ip(), "turn_listen");
    }
    // The source address of the default route. Connecting a UDP socket sends nothing.
    let probe = || -> io::Result<IpAddr> {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect("192.0.2.1:9")?;
        Ok(s.local_addr()?.ip())
    };
    match probe() {
        Ok(ip) if !ip.is_unspecified() => (ip, "auto-detected"),
        _ => (IpAddr::V4(Ipv4Addr::LOCALHOST), "auto-detection failed: set turn.relay_address"),
    }
}

impl BoundTurn {
    /// The address TURN over UDP and TCP took (`turn_listen`, its port 0 resolved).
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// The port TURN over TLS took.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// Lines for the start banner; the first is parsed by the test harness.
    pub fn banner_lines(&self) -> Vec<String> {
        let ip = self.listen.ip();
        vec![
            format!("  TURN:         udp/tcp {}, tls {}", self.listen, SocketAddr::new(ip, self.tls_port)),
            format!(
                "  TURN relay:   {} ({}), ports {}-{}",
                self.relay_ip, self.relay_ip_source, self.settings.relay_port_min, self.settings.relay_port_max
            ),
        ]
    }

    /// Serves the relay on a thread of its own with a single-threaded runtime; returns once
    /// it runs. Every relayed datagram is a wake-up of the runtime, and on the shared
    /// multi-thread runtime each one also paid for work stealing, scheduler statistics and
    /// cross-thread unparking, a large share of the relay's instructions per message
    /// (callgrind figures: bench/turn/README.md). One core relays far more than a lab's
    /// relayed share of traffic needs.
    pub async fn start_on_own_thread(
        self,
        pool: db::Store,
        counters: TurnCounters,
        access_changes: tokio::sync::watch::Receiver<i64>,
    ) -> anyhow::Result<TurnThread> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<anyhow::Result<IceServerIssuer>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("labbeam-turn".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build();
                match runtime {
                    Ok(runtime) => runtime.block_on(async move {
                        match self.start(pool, counters, access_changes).await {
                            Ok(running) => {
                                let _ = ready_tx.send(Ok(running.issuer()));
                                // Also when the sender is dropped: the server is going away.
                                let _ = stop_rx.await;
                                running.stop().await;
                            }
                            Err(e) => {
                                let _ = ready_tx.send(Err(e));
                            }
                        }
                    }),
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::Error::new(e).context("cannot start the TURN runtime")));
                    }
                }
                let _ = done_tx.send(());
            })
            .context("cannot start the TURN thread")?;
        let issuer = ready_rx.await.context("the TURN thread ended before the relay ran")??;
        Ok(TurnThread { issuer, stop: stop_tx, done: done_rx })
    }

    /// Serves the relay on the current runtime; returns once it runs.
    async fn start(
        self,
        pool: db::Store,
        counters: TurnCounters,
        access_changes: tokio::sync::watch::Receiver<i64>,
    ) -> anyhow::Result<RunningTurn> {
        let s = &self.settings;
        let mut own_ips = local_addresses();
        own_ips.insert(canonical_ip(self.relay_ip));
        if !self.listen.ip().is_unspecified() {
            own_ips.insert(canonical_ip(self.listen.ip()));
        }
        let rules = PolicyRules {
            labs: directory::load_lab_ranges(&pool).await?,
            extra: s.allowed_peer_ranges.iter().map(|n| n.trunc()).collect(),
            relay_ip: Some(canonical_ip(self.relay_ip)),
            own_ips,
            allow_public: s.allow_public_peers,
        };
        let shared = Arc::new(Shared::new(
            s.realm.clone(),
            CredentialKey::new(&self.secret),
            RelayPolicy::new(rules),
            QuotaBook::new(s.max_allocations_per_user, s.max_allocations),
            counters.clone(),
            self.relay_ip.is_ipv4(),
            s.allocation_max_bytes_per_sec,
        ));
        shared.users.replace(directory::load_users(&pool).await?);
        shared.users.replace_sessions(directory::load_sessions(&pool).await?);

        let allocator = || -> Box<dyn turn::relay::RelayAddressGenerator + Send + Sync> {
            Box::new(RelayAllocator {
                shared: Arc::clone(&shared),
                bind_ip: self.bind_ip,
                relay_ip: self.relay_ip,
                min_port: s.relay_port_min,
                max_port: s.relay_port_max,
            })
        };
        let mut conn_configs = Vec::new();
        for socket in self.udp {
            let gate = Gate::new(Arc::clone(&shared), Arc::new(UdpTransport::new(socket)?));
            conn_configs.push(ConnConfig { conn: gate, relay_addr_generator: allocator() });
        }
        let workers = conn_configs.len();
        let mut tasks = Vec::new();
        // One admission for both listeners: the caps count TCP and TLS connections together.
        let admission = StreamAdmission::new(
            s.max_tcp_connections,
            s.max_tcp_connections_per_address,
            Duration::from_secs(s.tcp_setup_timeout_secs),
            counters.clone(),
        );
        for (name, listener) in [("tcp", self.tcp), ("tls", self.tls)] {
            let local = listener.local_addr()?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let muxes: Vec<Arc<StreamMux>> =
                (0..workers).map(|_| Arc::new(StreamMux::new(name, local, counters.clone()))).collect();
            for mux in &muxes {
                let gate = Gate::new(Arc::clone(&shared), Arc::clone(mux));
                conn_configs.push(ConnConfig { conn: gate, relay_addr_generator: allocator() });
            }
            let tls = (name == "tls").then(|| tokio_rustls::TlsAcceptor::from(Arc::clone(&self.tls_config)));
            tasks.push(tokio::spawn(accept_streams(listener, tls, muxes, Arc::clone(&admission))));
        }

        let (closed_tx, mut closed_rx) = tokio::sync::mpsc::channel(4096);
        let server = Server::new(ServerConfig {
            conn_configs,
            realm: s.realm.clone(),
            auth_handler: Arc::new(DirectoryAuth { shared: Arc::clone(&shared) }),
            // The mirror's lifetime, so the library's bindings and the mirror's expire together.
            channel_bind_timeout: CHANNEL_LIFETIME,
            alloc_close_notify: Some(closed_tx),
        })
        .await
        .context("cannot start the TURN server")?;
        let upkeep_shared = Arc::clone(&shared);
        tasks.push(tokio::spawn(async move {
            while let Some(info) = closed_rx.recv().await {
                upkeep_shared.allocation_closed(info.relay_addr.port());
            }
        }));
        tasks.push(tokio::spawn(upkeep(Arc::clone(&shared), pool, access_changes)));
        let issuer = IceServerIssuer::new(
            Arc::clone(&shared),
            &self.host,
            self.listen.port(),
            self.tls_port,
            s.credential_ttl_secs,
        );
        tracing::info!(listen = %self.listen, tls_port = self.tls_port, relay = %self.relay_ip, "TURN relay running");
        Ok(RunningTurn { server, issuer, tasks })
    }
}

/// Every `REFRESH`: rotate nonces, forget unanswered requests, and close the allocations of
/// sessions that ended by time. When an access change is seen (`access_changes`), at once:
/// reload users (closing the allocations of users who may no longer relay), sessions and
/// lab ranges. A reload that failed is tried again on every tick until it succeeds.
async fn upkeep(shared: Arc<Shared>, pool: db::Store, mut access_changes: tokio::sync::watch::Receiver<i64>) {
    let mut tick = tokio::time::interval(REFRESH);
    let mut watching = true;
    let mut reload = false;
    loop {
        if watching {
            tokio::select! {
                _ = tick.tick() => {}
                changed = access_changes.changed() => {
                    watching = changed.is_ok();
                    reload = true;
                }
            }
        } else {
            tick.tick().await;
        }
        let now = Instant::now();
        if let Some(gate) = shared.gates().first() {
            for expired in shared.nonces.take_expired(now) {
                gate.request_nonce(Some(expired));
            }
            if shared.nonces.needs_new(now) {
                gate.request_nonce(None);
            }
        }
        for gate in shared.gates() {
            gate.sweep();
        }
        for tag in shared.users.expire_sessions(db::now()) {
            shared.close_allocations_of_session(&tag);
        }
        if reload {
            reload = !reload_directory(&shared, &pool).await;
        }
    }
}

/// Reloads the relay's view of users, sessions and lab ranges; false when a part could not
/// be read (that part keeps its last view).
pub(super) async fn reload_directory(shared: &Shared, pool: &db::Store) -> bool {
    let mut complete = true;
    match directory::load_users(pool).await {
        Ok(users) => {
            for user in shared.users.replace(users) {
                shared.close_allocations_of(user);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "TURN: cannot reload users; keeping the last view");
            complete = false;
        }
    }
    match directory::load_sessions(pool).await {
        Ok(sessions) => {
            for tag in shared.users.replace_sessions(sessions) {
                shared.close_allocations_of_session(&tag);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "TURN: cannot reload sessions; keeping the last view");
            complete = false;
        }
    }
    match directory::load_lab_ranges(pool).await {
        Ok(labs) => {
            let count = labs.len();
            if shared.policy.set_labs(labs) {
                tracing::info!(ranges = count, "TURN peer filter: lab ranges changed");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "TURN: cannot reload lab ranges; keeping the last ones");
            complete = false;
        }
    }
    complete
}

/// The relay running on its own thread ([`BoundTurn::start_on_own_thread`]).
pub struct TurnThread {
    issuer: IceServerIssuer,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::sync::oneshot::Receiver<()>,
}

impl TurnThread {
    pub fn issuer(&self) -> IceServerIssuer {
        self.issuer.clone()
    }

    /// Closes every allocation, stops the listeners, and waits for the thread to end.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        // `RunningTurn::stop` gives the library 5 s.
        if tokio::time::timeout(Duration::from_secs(10), self.done).await.is_err() {
            tracing::warn!("the TURN thread did not end within 10 s");
        }
    }
}

/// The running relay.
pub struct RunningTurn {
    server: Server,
    issuer: IceServerIssuer,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningTurn {
    pub fn issuer(&self) -> IceServerIssuer {
        self.issuer.clone()
    }

    /// Closes every allocation and stops the listeners.
    pub async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        if tokio::time::timeout(Duration::from_secs(5), self.server.close()).await.is_err() {
            tracing::warn!("TURN server did not close within 5 s");
        }
    }
}
