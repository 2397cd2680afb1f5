//! The state every listener and relay socket of the relay shares: credentials, the user
//! view, the peer filter, quotas, nonces, counters, and the table of open allocations.
//!
//! Invariant: an allocation is in [`AllocationTable`] from the moment its Allocate success
//! leaves the appliance until the relay library reports it closed; its quota slot and the
//! `allocations_active` gauge follow the table exactly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use super::counters::TurnCounters;
use super::credentials::CredentialKey;
use super::directory::UserDirectory;
use super::nonces::NonceBook;
use super::peer_filter::RelayPolicy;
use super::quota::QuotaBook;
use super::relay::RelayState;

/// What the allocation table needs from the listener an allocation lives on.
pub trait GateHandle: Send + Sync {
    /// The relay library closed the allocation of `client`: forget it.
    fn allocation_closed(&self, client: SocketAddr);
    /// Ask the relay library to close the allocation of `client` now.
    fn close_allocation(&self, client: SocketAddr);
    /// Drop bookkeeping of requests that never got an answer.
    fn sweep(&self);
    /// Ask the library for a fresh nonce; hand back an expired one (see `nonces`).
    fn request_nonce(&self, expired: Option<String>);
}

#[derive(Clone)]
pub struct AllocationRecord {
    pub user: i64,
    /// The session tag of the credential it was made with, when bound to one.
    pub session: Option<String>,
    pub client: SocketAddr,
    pub transport: &'static str,
    pub gate: Weak<dyn GateHandle>,
}

#[derive(Default)]
pub struct AllocationTable {
    by_relay_port: Mutex<HashMap<u16, AllocationRecord>>,
    relays: Mutex<HashMap<u16, Arc<RelayState>>>,
}

pub struct Shared {
    pub realm: String,
    pub key: CredentialKey,
    pub users: UserDirectory,
    pub policy: RelayPolicy,
    pub quota: QuotaBook,
    pub nonces: NonceBook,
    pub counters: TurnCounters,
    pub allocations: AllocationTable,
    /// Relays are IPv4 (true) or IPv6 (false).
    pub relay_v4: bool,
    pub max_bytes_per_sec: Option<u64>,
    pub gates: Mutex<Vec<Weak<dyn GateHandle>>>,
    log_budget: LogBudget,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        realm: String,
        key: CredentialKey,
        policy: RelayPolicy,
        quota: QuotaBook,
        counters: TurnCounters,
        relay_v4: bool,
        max_bytes_per_sec: Option<u64>,
    ) -> Self {
        Self {
            realm,
            key,
            users: UserDirectory::default(),
            policy,
            quota,
            nonces: NonceBook::default(),
            counters,
            allocations: AllocationTable::default(),
            relay_v4,
            max_bytes_per_sec,
            gates: Mutex::default(),
            log_budget: LogBudget::default(),
        }
    }

    pub fn gates(&self) -> Vec<Arc<dyn GateHandle>> {
        self.gates.lock().unwrap_or_else(|p| p.into_inner()).iter().filter_map(Weak::upgrade).collect()
    }

    /// True when a refusal may be logged now: at most [`LogBudget::PER_SECOND`] lines a
    /// second, so a flood is counted in full but cannot flood the journal.
    pub fn may_log(&self) -> bool {
        self.log_budget.take()
    }

    pub fn relay_opened(&self, state: Arc<RelayState>) {
        self.policy.relay_opened(state.port);
        self.allocations.relays.lock().unwrap_or_else(|p| p.into_inner()).insert(state.port, state);
    }

    pub fn relay_closed(&self, port: u16) {
        let removed = self.allocations.relays.lock().unwrap_or_else(|p| p.into_inner()).remove(&port);
        if removed.is_some() {
            self.policy.relay_closed(port);
        }
    }

    pub fn relay(&self, port: u16) -> Option<Arc<RelayState>> {
        self.allocations.relays.lock().unwrap_or_else(|p| p.into_inner()).get(&port).cloned()
    }

    /// An Allocate succeeded (its quota slot was reserved before).
    pub fn allocation_opened(&self, relay_port: u16, record: AllocationRecord) {
        if let Some(relay) = self.relay(relay_port) {
            relay.user.store(record.user, Ordering::Relaxed);
        }
        self.counters.allocation_created(record.transport);
        let mut table = self.allocations.by_relay_port.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = table.insert(relay_port, record) {
            // Cannot happen while ports are unique; keep the books straight if it does.
            self.quota.release(old.user);
        }
        self.counters.allocations_active.set(table.len() as i64);
    }

    /// The relay library closed the allocation on `relay_port`.
    pub fn allocation_closed(&self, relay_port: u16) {
        let record = {
            let mut table = self.allocations.by_relay_port.lock().unwrap_or_else(|p| p.into_inner());
            let record = table.remove(&relay_port);
            self.counters.allocations_active.set(table.len() as i64);
            record
        };
        if let Some(record) = record {
            self.quota.release(record.user);
            if let Some(gate) = record.gate.upgrade() {
                gate.allocation_closed(record.client);
            }
            tracing::debug!(user_id = record.user, client = %record.client, relay_port, "TURN allocation closed");
        }
    }

    /// Closes every allocation of `user` (disabled, deleted, or no longer allowed to relay).
    pub fn close_allocations_of(&self, user: i64) {
        let closed = self.close_allocations_where(|r| r.user == user);
        if closed > 0 {
            tracing::info!(
                user_id = user,
                allocations = closed,
                "closed the TURN allocations of a user who may no longer relay"
            );
        }
    }

    /// Closes every allocation made with a credential of the session tagged `tag` (it ended).
    pub fn close_allocations_of_session(&self, tag: &str) {
        let closed = self.close_allocations_where(|r| r.session.as_deref() == Some(tag));
        if closed > 0 {
            tracing::info!(allocations = closed, "closed the TURN allocations of a session that ended");
        }
    }

    fn close_allocations_where(&self, pick: impl Fn(&AllocationRecord) -> bool) -> usize {
        let records: Vec<AllocationRecord> = self
            .allocations
            .by_relay_port
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|r| pick(r))
            .cloned()
            .collect();
        for r in &records {
            if let Some(gate) = r.gate.upgrade() {
                gate.close_allocation(r.client);
            }
        }
        records.len()
    }
}

/// A small token bucket for log lines.
#[derive(Default)]
struct LogBudget {
    /// (unix second, lines logged in it), packed as second << 16 | count.
    state: AtomicU64,
}

impl LogBudget {
    const PER_SECOND: u64 = 20;

    fn take(&self) -> bool {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut current = self.state.load(Ordering::Relaxed);
        loop {
            let (second, count) = (current >> 16, current & 0xffff);
            let next = if second == now & 0xffff_ffff_ffff {
                if count >= Self::PER_SECOND {
                    return false;
                }
                current + 1
            } else {
                (now << 16) | 1
            };
            match self.state.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}
