//! A real ICE run through the running relay (`ice.udp`, `ice.tcp`, `ice.tls`): for each
//! transport, two webrtc-ice agents in this process gather relay candidates on the
//! appliance's own TURN server and connect to each other through them, as two lab PCs
//! that cannot reach each other directly would; then a few messages go back and forth
//! over the connected pair to time the round trip through the relay.
//!
//! Relay only: each agent gathers relay candidates only, so the pair that connects is
//! relay to relay and every packet crosses the relay (the peer filter lets the relay's
//! own allocations reach each other, as it does for two relayed PCs). For UDP a third
//! agent also gathers host and server-reflexive candidates against the relay's STUN, to
//! report which candidate types this machine gets.
//!
//! Credentials: doctor reads the relay's secret (`turn.key`) from the data directory, as
//! the server does, and signs a credential with it exactly as `GET /api/ice-servers` does
//! (HMAC-SHA1 over the username, `turn::credentials`), in the `<expiry>:<user-id>` form the
//! relay accepts from tools that hold the secret. Signing in instead would need an
//! account's password, which an unattended doctor does not have, and a session of its
//! own, which doctor may not write. The user is the lowest-numbered active account whose
//! role may relay (the first admin on a fresh install); the run holds two of its
//! allocations per transport for a few seconds.
//!
//! TCP and TLS go through `shim` (webrtc-ice gathers relay candidates over UDP only); TLS
//! trusts exactly the configured certificate (a generated self-signed one included), as
//! `https` does, so a PC's trust in it is `tls.trust`'s question, not this one.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ice::agent::Agent;
use ice::agent::agent_config::AgentConfig;
use ice::candidate::candidate_base::unmarshal_candidate;
use ice::candidate::{Candidate, CandidateType};
use ice::mdns::MulticastDnsMode;
use ice::network_type::NetworkType;
use ice::url::Url;
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use util::Conn;

use super::certificate::Certificate;
use super::service::Service;
use super::shim::Shim;
use super::{Report, Status, https, local_target};
use crate::config::Config;
use crate::db::{self, users};
use crate::turn::{CredentialKey, RestUsername};

/// How long the agents may take to gather their relay candidates.
const GATHER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the connectivity checks through the relay may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages timed through the connected pair.
const PINGS: usize = 5;
/// How long one message may take to come back.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Lifetime of doctor's credential: the run takes seconds.
const CREDENTIAL_TTL_SECS: i64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Udp,
    Tcp,
    Tls,
}

impl Via {
    const ALL: [Via; 3] = [Via::Udp, Via::Tcp, Via::Tls];

    fn check(self) -> &'static str {
        match self {
            Via::Udp => "ice.udp",
            Via::Tcp => "ice.tcp",
            Via::Tls => "ice.tls",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Via::Udp => "UDP",
            Via::Tcp => "TCP",
            Via::Tls => "TLS",
        }
    }
}

/// What every run needs.
struct Plan {
    /// STUN/TURN over UDP and TCP.
    turn: SocketAddr,
    /// TURN over TLS; `None` when `turn.tls_port` is 0 (any free port).
    tls: Option<SocketAddr>,
    server_name: String,
    pins: Vec<CertificateDer<'static>>,
    username: String,
    password: String,
    /// The account the credential names, for the report.
    account: String,
}

/// `ice.udp`, `ice.tcp`, `ice.tls`: one line each, always.
pub async fn checks(
    config: &Config,
    store: Option<&db::Store>,
    certificate: Option<&Certificate>,
    service: &Service,
    r: &mut Report,
) {
    let plan = match plan(config, store, certificate, service).await {
        Ok(plan) => plan,
        Err((status, why)) => {
            for via in Via::ALL {
                r.add(via.check(), status, why.clone());
            }
            return;
        }
    };
    // One transport after the other: two allocations at a time, and a small relay port
    // range is not shared out between the runs by chance.
    for via in Via::ALL {
        match run(via, &plan).await {
            Ok(text) => r.ok(via.check(), text),
            Err((status, text)) => r.add(via.check(), status, text),
        }
    }
}

/// Where the relay is and a credential for it, or why the run cannot happen.
async fn plan(
    config: &Config,
    store: Option<&db::Store>,
    certificate: Option<&Certificate>,
    service: &Service,
) -> Result<Plan, (Status, String)> {
    if !config.turn.enabled {
        return Err((
            Status::Fail,
            "the TURN relay is off (turn.enabled = false): PCs that cannot reach each other directly (other \
             networks, NAT, firewalls) cannot connect at all; set turn.enabled = true"
                .into(),
        ));
    }
    let not_run = |why: &str| Err((Status::Warn, format!("not run: {why}")));
    let certificate = match (service, certificate) {
        (Service::Running(_), Some(certificate)) => certificate,
        (Service::Running(_), None) => return not_run("the running labbeam's certificate cannot be read"),
        (Service::Stopped, _) => return not_run("labbeam is not running; start it and run doctor again"),
        (Service::Unknown, _) => return not_run("doctor cannot find the running labbeam (http_listen has port 0)"),
        (Service::Other, _) => return not_run("the HTTPS port is not the running labbeam's (see service)"),
    };
    if config.turn_listen.port() == 0 {
        return not_run("turn_listen has port 0 (any free port), so doctor cannot find the relay");
    }
    let Some(store) = store else {
        return not_run("the credential names an account from the store, which doctor cannot read (see store.connect)");
    };
    let secret = match crate::datadir::read_secret(&config.data_dir, "turn.key") {
        Ok(secret) => secret,
        Err(crate::datadir::ReadSecretError::Missing) => {
            return Err((Status::Fail, format!("labbeam runs, but {} has no turn.key", config.data_dir.display())));
        }
        Err(crate::datadir::ReadSecretError::Unusable(e)) => {
            return Err((
                Status::Fail,
                format!("{e}: run doctor as the service's user (sudo -u labbeam labbeam doctor --config …)"),
            ));
        }
    };
    let (user_id, account) = relay_account(store).await?;
    let username = RestUsername { expires_at: db::now() + CREDENTIAL_TTL_SECS, user_id, session: None }.format();
    let password = CredentialKey::new(&secret).password(&username);
    let turn = local_target(config.turn_listen);
    let tls_port = config.turn.tls_port.unwrap_or(5349);
    let tls = (tls_port != 0).then(|| SocketAddr::new(turn.ip(), tls_port));
    Ok(Plan {
        turn,
        tls,
        server_name: config.advertised_host(),
        pins: certificate.chain[..1].to_vec(),
        username,
        password,
        account,
    })
}

/// The lowest-numbered active account whose role may relay: its id and how to name it.
async fn relay_account(store: &db::Store) -> Result<(i64, String), (Status, String)> {
    let read = |e: db::DbError| (Status::Fail, format!("cannot read the accounts: {e}"));
    let access = db::access::all(store).await.map_err(read)?;
    let mut ids: Vec<i64> = access.iter().filter(|(_, a)| !a.disabled && a.may_relay()).map(|(id, _)| *id).collect();
    ids.sort_unstable();
    let Some(&id) = ids.first() else {
        return Err((
            Status::Fail,
            "no active account may relay (no enabled user has a role with transfer.send, transfer.receive or \
             broadcast.send), so the relay admits no one"
                .into(),
        ));
    };
    let name = users::list(store).await.map_err(read)?.into_iter().find(|u| u.id == id).map(|u| u.username);
    Ok((id, format!("user {} (id {id})", name.unwrap_or_default())))
}

/// One transport's run: the text of an ok line, or a status and why.
async fn run(via: Via, plan: &Plan) -> Result<String, (Status, String)> {
    let fail = |text: String| (Status::Fail, text);
    // The way in: STUN answers over UDP, the TCP or TLS port accepts.
    let target = match via {
        Via::Tls => plan.tls.ok_or_else(|| {
            (Status::Warn, "not run: turn.tls_port is 0 (any free port), so doctor cannot find it".to_string())
        })?,
        _ => plan.turn,
    };
    let mut reached = String::new();
    let mut shims = Vec::new();
    let mut urls = Vec::new();
    match via {
        Via::Udp => {
            if !plan.turn.is_ipv4() {
                return Err((
                    Status::Warn,
                    format!(
                        "not run: the relay listens on {} and doctor's ICE agents (webrtc-ice) speak TURN over \
                         IPv4 only",
                        plan.turn
                    ),
                ));
            }
            let mapped = stun_binding(plan.turn).await.map_err(|e| {
                fail(format!(
                    "no STUN answer from UDP {} ({e}): is the relay running there, or does a firewall drop UDP \
                     {}? lab PCs need it open",
                    plan.turn,
                    plan.turn.port()
                ))
            })?;
            reached = format!("; STUN answers (this machine seen as {mapped})");
            for _ in 0..2 {
                urls.push(turn_url(plan.turn, plan)?);
            }
        }
        Via::Tcp | Via::Tls => {
            for _ in 0..2 {
                let shim = stream_shim(via, target, plan).await.map_err(fail)?;
                urls.push(turn_url(shim.addr, plan)?);
                shims.push(shim);
            }
            if via == Via::Tls {
                reached = "; the relay presents the configured certificate".into();
            }
        }
    }
    let outcome = connect_through_relay(via, target, plan, urls).await;
    drop(shims);
    let connected = outcome?;
    let gathered = if via == Via::Udp { gather_local(plan.turn).await } else { String::new() };
    Ok(format!(
        "{} over {} in {} ms, with a credential for {}; round trip through the relay {}{reached}{gathered}",
        connected.pair,
        via.word(),
        connected.setup.as_millis(),
        plan.account,
        connected.round_trip,
    ))
}

/// A `turn:` URL with doctor's credential for a relay (or shim) at `addr`.
fn turn_url(addr: SocketAddr, plan: &Plan) -> Result<Url, (Status, String)> {
    let mut url = Url::parse_url(&format!("turn:{addr}?transport=udp"))
        .map_err(|e| (Status::Fail, format!("cannot make a TURN URL for {addr}: {e}")))?;
    url.username = plan.username.clone();
    url.password = plan.password.clone();
    Ok(url)
}

/// A new TCP or TLS connection to the relay, behind a shim.
async fn stream_shim(via: Via, target: SocketAddr, plan: &Plan) -> Result<Shim, String> {
    let port = target.port();
    let started = match via {
        Via::Tls => match https::connect(target, &plan.server_name, &plan.pins).await {
            Ok(stream) => Shim::start(stream).await,
            Err(https::ConnectError::Tcp(e)) => {
                return Err(format!(
                    "cannot connect to TURN over TLS at {target} ({e}): is the relay running there (turn.tls_port), \
                     or does a firewall drop TCP {port}? PCs on networks that only let TLS out need it"
                ));
            }
            Err(e) => return Err(format!("TURN over TLS at {target}: {e}")),
        },
        _ => match tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(target)).await {
            Ok(Ok(stream)) => Shim::start(stream).await,
            Ok(Err(e)) => {
                return Err(format!(
                    "cannot connect to TURN over TCP at {target} ({e}): is the relay running there, or does a \
                     firewall drop TCP {port}? PCs whose network drops UDP need it"
                ));
            }
            Err(_) => return Err(format!("no answer from TURN over TCP at {target} within 3 s (a firewall?)")),
        },
    };
    started.map_err(|e| format!("cannot open a local UDP socket: {e}"))
}

struct Connected {
    setup: Duration,
    /// The connected pair, in words.
    pair: String,
    round_trip: String,
}

/// Two relay-only agents on `urls` connect to each other and time a few messages.
async fn connect_through_relay(
    via: Via,
    target: SocketAddr,
    plan: &Plan,
    urls: Vec<Url>,
) -> Result<Connected, (Status, String)> {
    let fail = |text: String| (Status::Fail, text);
    let started = Instant::now();
    let mut agents = Vec::new();
    for (n, url) in urls.into_iter().enumerate() {
        let config = AgentConfig {
            urls: vec![url],
            network_types: vec![NetworkType::Udp4],
            candidate_types: vec![CandidateType::Relay],
            multicast_dns_mode: MulticastDnsMode::Disabled,
            is_controlling: n == 0,
            relay_acceptance_min_wait: Some(Duration::ZERO),
            failed_timeout: Some(CONNECT_TIMEOUT),
            ..Default::default()
        };
        let agent = Agent::new(config).await.map_err(|e| fail(format!("cannot start an ICE agent: {e}")))?;
        agents.push(Arc::new(agent));
    }
    let result = connect_agents(via, target, plan, &agents, started).await;
    for agent in &agents {
        let _ = agent.close().await;
    }
    result
}

async fn connect_agents(
    via: Via,
    target: SocketAddr,
    plan: &Plan,
    agents: &[Arc<Agent>],
    started: Instant,
) -> Result<Connected, (Status, String)> {
    let fail = |text: String| (Status::Fail, text);
    let [a, b] = agents else { return Err(fail("two ICE agents are needed".into())) };
    let (gathered_a, gathered_b) = tokio::join!(gather(a), gather(b));
    let (gathered_a, gathered_b) = (gathered_a.map_err(fail)?, gathered_b.map_err(fail)?);
    if gathered_a.is_empty() || gathered_b.is_empty() {
        let why = allocation_refusal(via, target, plan).await;
        return Err(fail(format!("the relay at {target} gave no relay candidate over {}: {why}", via.word())));
    }
    for (to, candidates) in [(b, &gathered_a), (a, &gathered_b)] {
        for text in candidates {
            let candidate = unmarshal_candidate(text).map_err(|e| fail(format!("candidate {text:?}: {e}")))?;
            let candidate: Arc<dyn Candidate + Send + Sync> = Arc::new(candidate);
            to.add_remote_candidate(&candidate).map_err(|e| fail(format!("candidate {text:?}: {e}")))?;
        }
    }
    let (ufrag_a, pwd_a) = a.get_local_user_credentials().await;
    let (ufrag_b, pwd_b) = b.get_local_user_credentials().await;
    let (_cancel_a, cancel_rx_a) = mpsc::channel(1);
    let (_cancel_b, cancel_rx_b) = mpsc::channel(1);
    let dialled = tokio::time::timeout(CONNECT_TIMEOUT, async {
        tokio::join!(a.dial(cancel_rx_a, ufrag_b, pwd_b), b.accept(cancel_rx_b, ufrag_a, pwd_a))
    })
    .await;
    let relays = format!("{} and {}", addresses(&gathered_a), addresses(&gathered_b));
    let no_path = |why: String| {
        fail(format!(
            "both agents got a relay candidate over {} ({relays}), but no connectivity check through the relay \
             succeeded ({why}): the relay does not pass data between its own allocations; see turn.peer_policy and \
             the server's log",
            via.word()
        ))
    };
    let (conn_a, conn_b) = match dialled {
        Err(_) => return Err(no_path(format!("nothing within {} s", CONNECT_TIMEOUT.as_secs()))),
        Ok((Ok(conn_a), Ok(conn_b))) => (conn_a, conn_b),
        Ok((Err(e), _)) | Ok((_, Err(e))) => return Err(no_path(e.to_string())),
    };
    let setup = started.elapsed();
    let pair = match a.get_selected_candidate_pair() {
        Some(pair) => {
            let (local, remote) = (pair.local.candidate_type(), pair.remote.candidate_type());
            if local != CandidateType::Relay || remote != CandidateType::Relay {
                return Err(fail(format!("the agents connected {local} to {remote}, not through the relay")));
            }
            format!(
                "relay {}:{} connected to relay {}:{}",
                pair.local.address(),
                pair.local.port(),
                pair.remote.address(),
                pair.remote.port()
            )
        }
        None => return Err(fail("the agents connected without a selected candidate pair".into())),
    };
    let round_trip = time_messages(conn_a, conn_b).await.map_err(|e| {
        fail(format!("the agents connected through the relay ({pair}), but messages over it did not come back: {e}"))
    })?;
    Ok(Connected { setup, pair, round_trip })
}

/// The agent's gathered candidates (marshalled), once gathering is complete.
async fn gather(agent: &Agent) -> Result<Vec<String>, String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<String>>();
    agent.on_candidate(Box::new(move |candidate: Option<Arc<dyn Candidate + Send + Sync>>| {
        let _ = tx.send(candidate.map(|c| c.marshal()));
        Box::pin(async {})
    }));
    agent.gather_candidates().map_err(|e| format!("cannot gather candidates: {e}"))?;
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + GATHER_TIMEOUT;
    while let Ok(Some(Some(candidate))) = tokio::time::timeout_at(deadline, rx.recv()).await {
        found.push(candidate);
    }
    Ok(found)
}

/// `address:port` of marshalled candidates.
fn addresses(candidates: &[String]) -> String {
    let shown: Vec<String> = candidates
        .iter()
        .filter_map(|c| unmarshal_candidate(c).ok())
        .map(|c| format!("{}:{}", c.address(), c.port()))
        .collect();
    shown.join(", ")
}

/// Why the relay gave no allocation: one allocation by a plain TURN client over the same
/// transport, whose error names the refusal (401, 486, a timeout …).
async fn allocation_refusal(via: Via, target: SocketAddr, plan: &Plan) -> String {
    let attempt = async {
        let mut _shim = None;
        let (socket, server) = match via {
            Via::Udp => (UdpSocket::bind("0.0.0.0:0").await.map_err(|e| e.to_string())?, target),
            Via::Tcp | Via::Tls => {
                let shim = stream_shim(via, target, plan).await?;
                let addr = shim.addr;
                _shim = Some(shim);
                (UdpSocket::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?, addr)
            }
        };
        let client = turn::client::Client::new(turn::client::ClientConfig {
            stun_serv_addr: String::new(),
            turn_serv_addr: server.to_string(),
            username: plan.username.clone(),
            password: plan.password.clone(),
            realm: String::new(),
            software: String::new(),
            rto_in_ms: 0,
            conn: Arc::new(socket),
            vnet: None,
        })
        .await
        .map_err(|e| e.to_string())?;
        client.listen().await.map_err(|e| e.to_string())?;
        let result = client.allocate().await.map(|relay| relay.local_addr().ok());
        let _ = client.close().await;
        match result {
            Ok(relay) => Ok(relay),
            Err(e) => Err(e.to_string()),
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Err(_) => "a plain TURN client got no answer to its allocation within 10 s either".into(),
        Ok(Err(e)) => format!("the relay refused an allocation for {} ({e}): {}", plan.account, refusal_advice(&e)),
        Ok(Ok(relay)) => format!(
            "yet a plain TURN client was granted one ({}), so the ICE agent's TURN client failed",
            relay.map(|a| a.to_string()).unwrap_or_default()
        ),
    }
}

/// What to do about an allocation refused with the error in `text` (`… error 486 …`).
fn refusal_advice(text: &str) -> &'static str {
    let code = text.rsplit("error ").next().and_then(|rest| rest.get(..3)).and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(401) => {
            "the relay does not accept the credential: is doctor reading the data directory of the running labbeam?"
        }
        Some(486) => {
            "an allocation quota is reached: turn.max_allocations_per_user must allow doctor's 2 besides the \
             account's own, and turn.max_allocations the appliance's"
        }
        Some(508) => "no relay port is free: widen turn.relay_port_min..relay_port_max (see turn.relay_ports)",
        _ => "see the server's log (journalctl -u labbeam)",
    }
}

/// Sends `PINGS` messages from `a` that `b` echoes; min, median and max round trip.
async fn time_messages(
    a: Arc<impl Conn + Send + Sync + 'static>,
    b: Arc<impl Conn + Send + Sync + 'static>,
) -> Result<String, String> {
    let echo = tokio::spawn(async move {
        let mut buf = vec![0u8; 1500];
        while let Ok(n) = b.recv(&mut buf).await {
            if b.send(&buf[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut times = Vec::with_capacity(PINGS);
    let mut buf = vec![0u8; 1500];
    let mut result = Ok(());
    for i in 0..PINGS {
        let message = format!("labbeam doctor {i}");
        let sent = Instant::now();
        if let Err(e) = a.send(message.as_bytes()).await {
            result = Err(format!("message {i}: {e}"));
            break;
        }
        match tokio::time::timeout(PING_TIMEOUT, a.recv(&mut buf)).await {
            Ok(Ok(n)) if buf[..n] == *message.as_bytes() => times.push(sent.elapsed()),
            Ok(Ok(_)) => {
                result = Err(format!("message {i} came back changed"));
                break;
            }
            Ok(Err(e)) => {
                result = Err(format!("message {i}: {e}"));
                break;
            }
            Err(_) => {
                result = Err(format!("message {i} did not come back within {} s", PING_TIMEOUT.as_secs()));
                break;
            }
        }
    }
    echo.abort();
    result?;
    times.sort_unstable();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    let (first, last) = (times[0], times[times.len() - 1]);
    Ok(format!("{} ms median of {PINGS} messages ({}–{} ms)", ms(times[times.len() / 2]), ms(first), ms(last)))
}

/// One STUN Binding over UDP: the address the relay sees this machine as.
async fn stun_binding(server: SocketAddr) -> Result<SocketAddr, String> {
    use stun::message::{BINDING_REQUEST, Getter, Message, Setter};
    use stun::xoraddr::XorMappedAddress;
    let bind = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    let request = {
        // Built in a block: the setters are not `Send`, and the run may be awaited on any
        // thread (the portal's Health page runs it in the server).
        let mut request = Message::new();
        let setters: [Box<dyn Setter>; 2] = [Box::new(stun::agent::TransactionId::new()), Box::new(BINDING_REQUEST)];
        request.build(&setters).map_err(|e| e.to_string())?;
        request
    };
    let mut buf = vec![0u8; 1500];
    for _ in 0..3 {
        socket.send(&request.raw).await.map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await {
            Err(_) => continue,
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(n)) => {
                let mut answer = Message::new();
                answer.raw = buf[..n].to_vec();
                if answer.decode().is_err() || answer.transaction_id != request.transaction_id {
                    continue;
                }
                let mut mapped = XorMappedAddress::default();
                mapped.get_from(&answer).map_err(|e| format!("an answer without XOR-MAPPED-ADDRESS: {e}"))?;
                return Ok(SocketAddr::new(mapped.ip, mapped.port));
            }
        }
    }
    Err("no answer to 3 requests, 1 s apart".into())
}

/// Host and server-reflexive candidates this machine gathers against the relay's STUN.
async fn gather_local(stun: SocketAddr) -> String {
    let Ok(url) = Url::parse_url(&format!("stun:{stun}")) else { return String::new() };
    let config = AgentConfig {
        urls: vec![url],
        network_types: vec![NetworkType::Udp4],
        candidate_types: vec![CandidateType::Host, CandidateType::ServerReflexive],
        multicast_dns_mode: MulticastDnsMode::Disabled,
        ..Default::default()
    };
    let Ok(agent) = Agent::new(config).await else { return String::new() };
    let found = gather(&agent).await.unwrap_or_default();
    let _ = agent.close().await;
    let kinds: Vec<(CandidateType, String)> = found
        .iter()
        .filter_map(|c| unmarshal_candidate(c).ok())
        .map(|c| (c.candidate_type(), format!("{}:{}", c.address(), c.port())))
        .collect();
    let count = |kind: CandidateType| kinds.iter().filter(|(k, _)| *k == kind).count();
    let srflx: Vec<&str> =
        kinds.iter().filter(|(k, _)| *k == CandidateType::ServerReflexive).map(|(_, a)| a.as_str()).collect();
    let host_ips: Vec<IpAddr> = kinds
        .iter()
        .filter(|(k, _)| *k == CandidateType::Host)
        .filter_map(|(_, a)| a.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .collect();
    let hosts = if host_ips.is_empty() {
        String::new()
    } else {
        format!(" ({})", host_ips.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", "))
    };
    format!(
        "; candidates gathered: host {}{hosts}, srflx {} ({}), relay 2",
        count(CandidateType::Host),
        count(CandidateType::ServerReflexive),
        if srflx.is_empty() { "none".to_string() } else { srflx.join(", ") }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_by_their_error_code() {
        assert!(refusal_advice("Allocate error response (error 508: )").contains("relay_port_min"));
        assert!(refusal_advice("Allocate error response (error 486: Allocation Quota Reached)").contains("quota"));
        assert!(refusal_advice("Allocate error response (error 401: Unauthorized)").contains("credential"));
        assert!(refusal_advice("timeout").contains("log"));
    }
}
