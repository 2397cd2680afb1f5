//! The relay's counters, registered in the appliance's one Prometheus registry (`/metrics`)
//! and read later by the admin dashboard.
//!
//! Every label value is fixed at registration, and the hot path holds plain `Counter`
//! handles (an atomic add per packet): no map lookup, no allocation.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::credentials::CredentialError;
use super::peer_filter::Refusal;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// The client transport an allocation came in on ("udp", "tcp", "tls"), as a label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportKind {
    transport: &'static str,
}

/// Why the relay refused an Allocate for quota (486).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScope {
    User,
    Total,
}

/// Why credentials were refused (401); the first two come from the credential scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Credential(CredentialError),
    UnknownUser,
    Disabled,
    BadIntegrity,
    WrongUser,
    /// The credential's session ended (logout, revocation, expiry).
    SessionEnded,
}

impl AuthFailure {
    pub fn label(self) -> &'static str {
        match self {
            AuthFailure::Credential(e) => e.label(),
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::Disabled => "disabled",
            AuthFailure::BadIntegrity => "bad_integrity",
            AuthFailure::WrongUser => "wrong_user",
            AuthFailure::SessionEnded => "session_ended",
        }
    }
}

/// Datagrams the relay drops without relaying them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Larger than the relay library's 1500-byte buffers.
    Oversize,
    /// Not STUN, not ChannelData, or not decodable.
    Malformed,
    /// A TCP/TLS client's send queue was full.
    QueueFull,
    /// Over the per-allocation bandwidth cap.
    Bandwidth,
    /// From a peer with no permission on the allocation.
    NoPermission,
}

impl DropReason {
    /// Metric label of the reason (`turn_dropped_datagrams{reason}`).
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Oversize => "oversize",
            DropReason::Malformed => "malformed",
            DropReason::QueueFull => "queue_full",
            DropReason::Bandwidth => "bandwidth",
            DropReason::NoPermission => "no_permission",
        }
    }
}

/// Which cap refused a TURN TCP/TLS connection at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCap {
    /// `turn.max_tcp_connections_per_address`.
    PerAddress,
    /// `turn.max_tcp_connections`.
    Total,
}

impl StreamCap {
    pub fn label(self) -> &'static str {
        match self {
            StreamCap::PerAddress => "per_address",
            StreamCap::Total => "total",
        }
    }
}

#[derive(Clone)]
pub struct TurnCounters {
    pub allocations_active: Gauge,
    allocations_created: Family<TransportKind, Counter>,
    pub bytes_to_peer: Counter,
    pub bytes_to_client: Counter,
    pub packets_to_peer: Counter,
    pub packets_to_client: Counter,
    /// Of the packets above, those the ChannelData fast path relayed (not the library).
    pub fast_to_peer: Counter,
    pub fast_to_client: Counter,
    auth_failures: Family<Reason, Counter>,
    refusals: Family<Reason, Counter>,
    quota: Family<Reason, Counter>,
    dropped: Family<Reason, Counter>,
    stream_refused: Family<Reason, Counter>,
    /// TCP/TLS connections closed for having no allocation by `turn.tcp_setup_timeout_secs`.
    pub stream_setup_timeouts: Counter,
}

impl TurnCounters {
    pub fn register(registry: &mut Registry) -> Self {
        let allocations_active = Gauge::default();
        registry.register("turn_allocations_active", "TURN allocations open now", allocations_active.clone());
        let allocations_created = Family::<TransportKind, Counter>::default();
        registry.register(
            "turn_allocations",
            "TURN allocations created, by client transport",
            allocations_created.clone(),
        );
        let bytes = Family::<Direction, Counter>::default();
        registry.register("turn_relayed_bytes", "Payload bytes relayed, by direction", bytes.clone());
        let packets = Family::<Direction, Counter>::default();
        registry.register("turn_relayed_packets", "Datagrams relayed, by direction", packets.clone());
        let fast = Family::<Direction, Counter>::default();
        registry.register(
            "turn_fast_path_packets",
            "Of the datagrams relayed, the ChannelData the appliance relayed itself on a bound channel, by direction",
            fast.clone(),
        );
        let auth_failures = Family::<Reason, Counter>::default();
        registry.register(
            "turn_auth_failures",
            "TURN requests refused for their credentials (401/441)",
            auth_failures.clone(),
        );
        let refusals = Family::<Reason, Counter>::default();
        registry.register("turn_peer_refusals", "Peer addresses refused by the peer filter", refusals.clone());
        let quota = Family::<Reason, Counter>::default();
        registry.register("turn_quota_refusals", "Allocations refused for quota (486)", quota.clone());
        let dropped = Family::<Reason, Counter>::default();
        registry.register("turn_dropped_datagrams", "Datagrams dropped without relaying, by reason", dropped.clone());
        let stream_refused = Family::<Reason, Counter>::default();
        registry.register(
            "turn_stream_connections_refused",
            "TURN TCP/TLS connections closed at accept, by cap (per_address, total)",
            stream_refused.clone(),
        );
        let stream_setup_timeouts = Counter::default();
        registry.register(
            "turn_stream_setup_timeouts",
            "TURN TCP/TLS connections closed for having no allocation within turn.tcp_setup_timeout_secs",
            stream_setup_timeouts.clone(),
        );
        // One statement per handle: `get_or_create` returns a read guard, and a second call
        // on the same family while one is alive would wait for the write lock forever.
        let handle =
            |family: &Family<Direction, Counter>, direction| family.get_or_create(&Direction { direction }).clone();
        let bytes_to_peer = handle(&bytes, "to_peer");
        let bytes_to_client = handle(&bytes, "to_client");
        let packets_to_peer = handle(&packets, "to_peer");
        let packets_to_client = handle(&packets, "to_client");
        let fast_to_peer = handle(&fast, "to_peer");
        let fast_to_client = handle(&fast, "to_client");
        let counters = Self {
            allocations_active,
            allocations_created,
            bytes_to_peer,
            bytes_to_client,
            packets_to_peer,
            packets_to_client,
            fast_to_peer,
            fast_to_client,
            auth_failures,
            refusals,
            quota,
            dropped,
            stream_refused,
            stream_setup_timeouts,
        };
        // Every series exists from the start, at 0, so dashboards and alerts see them.
        for r in Refusal::ALL {
            let _ = counters.refusals.get_or_create(&Reason { reason: r.label() });
        }
        for t in ["udp", "tcp", "tls"] {
            let _ = counters.allocations_created.get_or_create(&TransportKind { transport: t });
        }
        for s in [QuotaScope::User, QuotaScope::Total] {
            let _ = counters.quota.get_or_create(&Reason { reason: quota_label(s) });
        }
        for cap in [StreamCap::PerAddress, StreamCap::Total] {
            let _ = counters.stream_refused.get_or_create(&Reason { reason: cap.label() });
        }
        counters
    }

    pub fn allocation_created(&self, transport: &'static str) {
        self.allocations_created.get_or_create(&TransportKind { transport }).inc();
    }

    pub fn auth_failure(&self, why: AuthFailure) {
        self.auth_failures.get_or_create(&Reason { reason: why.label() }).inc();
    }

    pub fn refusal(&self, why: Refusal) {
        self.refusals.get_or_create(&Reason { reason: why.label() }).inc();
    }

    pub fn quota_refusal(&self, scope: QuotaScope) {
        self.quota.get_or_create(&Reason { reason: quota_label(scope) }).inc();
    }

    pub fn stream_refused(&self, cap: StreamCap) {
        self.stream_refused.get_or_create(&Reason { reason: cap.label() }).inc();
    }

    pub fn dropped(&self, why: DropReason) {
        self.dropped.get_or_create(&Reason { reason: why.label() }).inc();
    }

    /// Datagrams dropped so far for `why`.
    #[cfg(test)]
    pub fn dropped_count(&self, why: DropReason) -> u64 {
        self.dropped.get_or_create(&Reason { reason: why.label() }).get()
    }
}

fn quota_label(scope: QuotaScope) -> &'static str {
    match scope {
        QuotaScope::User => "user",
        QuotaScope::Total => "total",
    }
}
