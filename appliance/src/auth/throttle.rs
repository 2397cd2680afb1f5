//! Login throttling. Three limits, each over `throttle_window_secs`:
//!
//! - per client address (`max_failures_per_address`), strict: an address that failed that
//!   often is refused for every account until its window ends;
//! - per account *and* address (`max_failures_per_user`), strict: an address that failed
//!   that often against one account is refused for that account until its window ends;
//! - per account, from every address, a progressive backoff: after `max_failures_per_user`
//!   failures the next attempt waits 1 s, then 2 s, 4 s … up to `MAX_ACCOUNT_BACKOFF`. It
//!   applies only to addresses that have themselves failed against the account, so guessing
//!   from elsewhere never locks the owner out of their own PC (no lock-out denial of
//!   service), while spreading guesses over many addresses is still slowed down.
//!
//! A successful login clears its account's backoff and its own (account, address) count,
//! not the address's count (so one valid account cannot reset a password-spraying address)
//! and not other addresses' counts against the account.
//!
//! Checking and counting are one step: `begin` refuses a locked key and otherwise reserves
//! the attempt (counts it as pending) before the password is verified, so parallel guesses
//! cannot all pass the check while the first ones are still being verified. A pending
//! attempt counts against the limits like a failure; the `Attempt` it returns settles it:
//! `succeeded` refunds it, `cancelled` (the password was never checked) refunds it, and
//! anything else, including dropping it, makes it a failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Entries beyond this are pruned of expired windows before a new one is added, which
/// bounds memory under a flood of distinct usernames.
const PRUNE_ABOVE: usize = 10_000;

/// How long a caller refused only because of attempts still being verified should wait.
const PENDING_RETRY: Duration = Duration::from_secs(1);

/// The longest wait the account-wide backoff imposes (never longer than the window).
pub const MAX_ACCOUNT_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
    /// Attempts reserved and not yet settled.
    pending: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Window { started: now, failures: 0, pending: 0 }
    }

    fn expired(&self, now: Instant, window: Duration) -> bool {
        now >= self.started + window
    }

    fn current_failures(&self, now: Instant, window: Duration) -> u32 {
        if self.expired(now, window) { 0 } else { self.failures }
    }
}

/// The account-wide backoff of one username.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    pending: u32,
    /// Last reservation or failure; the count is forgotten a window after it.
    last: Instant,
    /// Addresses that failed against the account may not try again before this.
    next_allowed: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// An account (lower-cased username) and one address.
    Pair(String, IpAddr),
    Addr(IpAddr),
}

#[derive(Default)]
struct Entries {
    windows: HashMap<Key, Window>,
    accounts: HashMap<String, Backoff>,
}

pub struct LoginThrottle {
    max_per_pair: u32,
    max_per_addr: u32,
    window: Duration,
    entries: Mutex<Entries>,
}

/// A reserved login attempt; see the module header for how it is settled.
#[must_use = "an attempt that is dropped counts as a failure"]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    account: String,
    addr: IpAddr,
    settled: bool,
}

impl Attempt<'_> {
    fn keys(&self) -> [Key; 2] {
        [Key::Pair(self.account.clone(), self.addr), Key::Addr(self.addr)]
    }

    /// The password was right: the attempt is refunded, the account's backoff and this
    /// address's failures against the account are cleared.
    pub fn succeeded(mut self) {
        self.settled = true;
        let now = Instant::now();
        let mut entries = self.throttle.lock();
        for key in self.keys() {
            if let Some(w) = entries.windows.get_mut(&key) {
                w.pending = w.pending.saturating_sub(1);
                if matches!(key, Key::Pair(..)) {
                    w.failures = 0;
                }
            }
        }
        if let Some(b) = entries.accounts.get_mut(&self.account) {
            b.pending = b.pending.saturating_sub(1);
            b.failures = 0;
            b.next_allowed = now;
        }
    }

    /// The password was never checked (the server was too busy): no failure is counted.
    pub fn cancelled(mut self) {
        self.settled = true;
        let mut entries = self.throttle.lock();
        for key in self.keys() {
            if let Some(w) = entries.windows.get_mut(&key) {
                w.pending = w.pending.saturating_sub(1);
            }
        }
        if let Some(b) = entries.accounts.get_mut(&self.account) {
            b.pending = b.pending.saturating_sub(1);
        }
    }

    /// The credentials were wrong (or the account may not sign in).
    pub fn failed(mut self) {
        self.settle_failed(Instant::now());
    }

    fn settle_failed(&mut self, now: Instant) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let window = self.throttle.window;
        let mut entries = self.throttle.lock();
        for key in self.keys() {
            let w = entries.windows.entry(key).or_insert_with(|| Window::new(now));
            w.pending = w.pending.saturating_sub(1);
            if w.expired(now, window) {
                *w = Window { pending: w.pending, ..Window::new(now) };
            }
            w.failures += 1;
        }
        let b = entries.accounts.entry(self.account.clone()).or_insert(Backoff {
            failures: 0,
            pending: 0,
            last: now,
            next_allowed: now,
        });
        b.pending = b.pending.saturating_sub(1);
        b.failures += 1;
        b.last = now;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        // A request abandoned while its password was being checked is not a free guess.
        self.settle_failed(Instant::now());
    }
}

impl LoginThrottle {
    /// `max_per_pair` failures per (account, address), `max_per_addr` per address; the
    /// account-wide backoff starts after `max_per_pair` failures from anywhere.
    pub fn new(max_per_pair: u32, max_per_addr: u32, window: Duration) -> Self {
        Self { max_per_pair, max_per_addr, window, entries: Mutex::new(Entries::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The wait after the `n`-th failure beyond the free ones (0-based), doubling.
    fn backoff(&self, n: u32) -> Duration {
        let cap = MAX_ACCOUNT_BACKOFF.min(self.window);
        Duration::from_secs(1u64 << n.min(16)).min(cap)
    }

    /// Reserves an attempt for `username` from `addr`, or `Err(retry_after)` when a limit
    /// refuses it (by failures, or by attempts still being verified).
    pub fn begin(&self, username: &str, addr: IpAddr, now: Instant) -> Result<Attempt<'_>, Duration> {
        let account = username.to_lowercase();
        let pair_key = Key::Pair(account.clone(), addr);
        let addr_key = Key::Addr(addr);
        let mut entries = self.lock();
        let mut wait: Option<Duration> = None;
        for (key, max) in [(&pair_key, self.max_per_pair), (&addr_key, self.max_per_addr)] {
            let Some(w) = entries.windows.get(key) else { continue };
            let failures = w.current_failures(now, self.window);
            if failures >= max {
                let ends = w.started + self.window;
                wait = wait.max(Some((ends - now).max(PENDING_RETRY)));
            } else if failures + w.pending >= max {
                wait = wait.max(Some(PENDING_RETRY));
            }
        }
        // The account-wide backoff holds back only addresses that tried this account.
        let tried_here =
            entries.windows.get(&pair_key).is_some_and(|w| w.pending > 0 || w.current_failures(now, self.window) > 0);
        let backoff = entries.accounts.get(&account).copied().map(|mut b| {
            if b.pending == 0 && now >= b.last + self.window {
                b.failures = 0;
                b.next_allowed = now;
            }
            b
        });
        if tried_here
            && let Some(b) = backoff
            && b.failures + b.pending >= self.max_per_pair
            && now < b.next_allowed
        {
            wait = wait.max(Some((b.next_allowed - now).max(PENDING_RETRY)));
        }
        if let Some(wait) = wait {
            return Err(wait);
        }

        if entries.windows.len() + entries.accounts.len() > PRUNE_ABOVE {
            let window = self.window;
            entries.windows.retain(|_, w| w.pending > 0 || !w.expired(now, window));
            entries.accounts.retain(|_, b| b.pending > 0 || now < b.last + window);
        }
        for key in [pair_key, addr_key] {
            let w = entries.windows.entry(key).or_insert_with(|| Window::new(now));
            if w.expired(now, self.window) {
                *w = Window { pending: w.pending, ..Window::new(now) };
            }
            w.pending += 1;
        }
        let mut b = backoff.unwrap_or(Backoff { failures: 0, pending: 0, last: now, next_allowed: now });
        let counted = b.failures + b.pending;
        if counted >= self.max_per_pair {
            b.next_allowed = now + self.backoff(counted - self.max_per_pair);
        }
        b.pending += 1;
        b.last = now;
        entries.accounts.insert(account.clone(), b);
        drop(entries);
        Ok(Attempt { throttle: self, account, addr, settled: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn addr(i: u8) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 1, i))
    }

    fn fail(t: &LoginThrottle, user: &str, addr: IpAddr, now: Instant) {
        t.begin(user, addr, now).expect("not locked").settle_failed_at(now);
    }

    impl Attempt<'_> {
        fn settle_failed_at(mut self, now: Instant) {
            self.settle_failed(now);
        }
    }

    #[test]
    fn an_account_locks_for_the_failing_address_only_until_its_window_ends() {
        let t = LoginThrottle::new(3, 100, Duration::from_secs(60));
        let now = Instant::now();
        for _ in 0..3 {
            fail(&t, "alice", A, now);
        }
        // Locked from A, whatever the case of the name ...
        let wait = t.begin("ALICE", A, now + Duration::from_secs(10)).err().unwrap();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(t.begin("alice", A, now + Duration::from_secs(61)).is_ok());
        // ... but not from an address that has not failed against alice.
        t.begin("alice", B, now + Duration::from_secs(10)).unwrap().succeeded();
        assert!(t.begin("bob", A, now).is_ok());
    }

    #[test]
    fn address_locks_across_usernames() {
        let t = LoginThrottle::new(100, 2, Duration::from_secs(60));
        let now = Instant::now();
        fail(&t, "a", A, now);
        fail(&t, "b", A, now);
        assert!(t.begin("c", A, now).is_err());
        assert!(t.begin("c", B, now).is_ok());
    }

    #[test]
    fn success_clears_the_account_but_not_the_address_nor_other_addresses() {
        let t = LoginThrottle::new(2, 3, Duration::from_secs(60));
        let now = Instant::now();
        fail(&t, "a", A, now);
        fail(&t, "a", A, now);
        assert!(t.begin("a", A, now).is_err());
        t.begin("a", B, now).unwrap().succeeded();
        // A stays locked against a, and keeps its two failures as an address.
        assert!(t.begin("a", A, now).is_err());
        fail(&t, "b", A, now);
        assert!(t.begin("c", A, now).is_err());
    }

    #[test]
    fn failures_from_many_addresses_back_off_the_addresses_that_failed() {
        let t = LoginThrottle::new(2, 100, Duration::from_secs(900));
        let now = Instant::now();
        // Two free failures account-wide, then each attempt sets a growing wait: 1 s, 2 s, 4 s.
        for i in 0..5 {
            fail(&t, "root", addr(i), now);
        }
        let wait = t.begin("root", addr(0), now).err().expect("addr 0 failed before: backoff");
        assert_eq!(wait, Duration::from_secs(4));
        assert!(t.begin("root", addr(1), now + Duration::from_secs(3)).is_err());
        // An address that never failed against root is not held back.
        let fresh = t.begin("root", addr(200), now).expect("fresh address");
        fresh.settle_failed_at(now);
        // That failure pushed the wait to 8 s; it never exceeds the cap.
        assert_eq!(t.begin("root", addr(2), now).err(), Some(Duration::from_secs(8)));
        for i in 10..40 {
            fail(&t, "root", addr(i), now);
        }
        assert_eq!(t.begin("root", addr(3), now).err(), Some(MAX_ACCOUNT_BACKOFF));
        // After the wait, one try is allowed, and it sets the next wait at once.
        let later = now + MAX_ACCOUNT_BACKOFF;
        let attempt = t.begin("root", addr(3), later).expect("after the backoff");
        assert!(t.begin("root", addr(4), later).is_err());
        attempt.succeeded();
        assert!(t.begin("root", addr(4), later).is_ok(), "success clears the backoff");
    }

    #[test]
    fn pending_attempts_count_until_they_are_settled() {
        let t = LoginThrottle::new(2, 100, Duration::from_secs(60));
        let now = Instant::now();
        let first = t.begin("a", A, now).unwrap();
        let second = t.begin("a", A, now).unwrap();
        // Both slots are reserved: a third guess is refused before anything was verified.
        assert_eq!(t.begin("a", A, now).err(), Some(PENDING_RETRY));
        first.cancelled();
        second.succeeded();
        let third = t.begin("a", A, now).unwrap();
        drop(third); // abandoned: a failure
        fail(&t, "a", A, now);
        assert_eq!(t.begin("a", A, now).err(), Some(Duration::from_secs(60)));
    }

    #[test]
    fn the_account_count_is_forgotten_a_window_after_the_last_failure() {
        let t = LoginThrottle::new(1, 100, Duration::from_secs(60));
        let now = Instant::now();
        fail(&t, "a", A, now);
        fail(&t, "a", B, now);
        assert!(t.begin("a", B, now).is_err());
        let later = now + Duration::from_secs(61);
        t.begin("a", B, later).unwrap().settle_failed_at(later);
        // One failure in the new window: B is locked by its own pair, A is not held back.
        assert!(t.begin("a", B, later).is_err());
        assert!(t.begin("a", A, later).is_ok());
    }
}
