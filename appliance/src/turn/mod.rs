//! The STUN/TURN relay (webrtc-rs `turn` 0.17 inside wrappers of our own): NAT traversal
//! and relay fallback for lab PCs that cannot reach each other directly.
//!
//! Owns: the relay's sockets (UDP, TCP and TLS listeners, relay ports), its credentials
//! (the REST scheme behind `GET /api/ice-servers`), the peer filter, quotas and counters.
//!
//! Map: `service` wires everything; `gate` wraps each listener and closes the library's
//! gaps (auth, nonces, usernames, retransmits, quotas, peer filter on requests);
//! `transport` frames TURN over TCP/TLS; `relay` is the relay address generator and the
//! filtering, counting relay socket; `peer_filter` decides which peers are allowed;
//! `credentials` issues and checks credentials; `directory` is the in-memory view of
//! users and labs; `quota`, `nonces`, `counters` and `shared` hold the shared state.
//!
//! Invariants:
//! - the relay only carries what clients send it (DTLS-encrypted): it never reads, stores
//!   or logs payload bytes;
//! - every request that reaches the library was authenticated by the gate with a live
//!   credential of a known, enabled user (except the gate's own internal requests);
//! - every datagram to or from a peer was judged by the peer filter;
//! - nothing from the network can panic the relay or stop a read loop.

mod counters;
mod credentials;
mod directory;
mod gate;
/// The behaviours of `turn`/`stun` 0.17 the relay relies on, pinned by tests.
#[cfg(test)]
mod library_contract;
mod nonces;
mod peer_filter;
mod quota;
mod relay;
mod service;
mod shared;
mod transport;

pub use counters::TurnCounters;
pub use credentials::{CredentialKey, IceServerIssuer, RestUsername};
pub use peer_filter::{canonical_ip, local_addresses};
pub use service::{bind, relay_ip};
pub use transport::frame_length;

/// What the relay reaches under the current lab ranges and `[turn]` settings, in words,
/// read from the store (so it is right at once after a lab change): for `doctor` and the
/// portal.
pub async fn describe_peer_policy(
    pool: &crate::db::Store,
    turn: &crate::config::TurnConfig,
) -> Result<String, crate::db::DbError> {
    if !turn.enabled {
        return Ok("the TURN relay is off (turn.enabled = false)".into());
    }
    let labs = directory::load_lab_ranges(pool).await?;
    let extra: Vec<ipnet::IpNet> = turn.allowed_peer_ranges.iter().map(|n| n.trunc()).collect();
    Ok(peer_filter::describe_reach(&labs, &extra, turn.allow_public_peers))
}

/// Cases per property test: 256 (about a second for the relay's properties in a debug
/// build), or `PROPTEST_CASES` when set, to search longer by hand.
#[cfg(test)]
fn proptest_config() -> proptest::test_runner::Config {
    let mut config = proptest::test_runner::Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 256;
    }
    config
}
