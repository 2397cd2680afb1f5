//! Login throttling: a fixed window of failed attempts per username and per client
//! address. Successful logins clear the username's count (not the address's, so one
//! valid account cannot be used to reset a password-spraying address).
//!
//! Checking and counting are one step: `begin` refuses a locked key and otherwise reserves
//! the attempt (counts it as pending) before the password is verified, so parallel guesses
//! cannot all pass the check while the first ones are still being verified. A pending
//! attempt counts against the limit like a failure; the `Attempt` it returns settles it:
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
}

pub struct LoginThrottle {
    max_per_user: u32,
    max_per_addr: u32,
    window: Duration,
    entries: Mutex<HashMap<Key, Window>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(IpAddr),
}

/// A reserved login attempt; see the module header for how it is settled.
#[must_use = "an attempt that is dropped counts as a failure"]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    keys: [Key; 2],
    settled: bool,
}

impl Attempt<'_> {
    /// The password was right: the attempt is refunded and the username's failures cleared.
    pub fn succeeded(mut self) {
        self.settled = true;
        let mut entries = self.throttle.lock();
        for key in &self.keys {
            if let Some(w) = entries.get_mut(key) {
                w.pending = w.pending.saturating_sub(1);
                if matches!(key, Key::User(_)) {
                    w.failures = 0;
                }
            }
        }
    }

    /// The password was never checked (the server was too busy): no failure is counted.
    pub fn cancelled(mut self) {
        self.settled = true;
        let mut entries = self.throttle.lock();
        for key in &self.keys {
            if let Some(w) = entries.get_mut(key) {
                w.pending = w.pending.saturating_sub(1);
            }
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
        for key in &self.keys {
            let w = entries.entry(key.clone()).or_insert_with(|| Window::new(now));
            w.pending = w.pending.saturating_sub(1);
            if w.expired(now, window) {
                *w = Window { pending: w.pending, ..Window::new(now) };
            }
            w.failures += 1;
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        // A request abandoned while its password was being checked is not a free guess.
        self.settle_failed(Instant::now());
    }
}

impl LoginThrottle {
    pub fn new(max_per_user: u32, max_per_addr: u32, window: Duration) -> Self {
        Self { max_per_user, max_per_addr, window, entries: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Window>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves an attempt for `username` from `addr`, or `Err(retry_after)` when either is
    /// locked out (by failures, or by attempts still being verified).
    pub fn begin(&self, username: &str, addr: IpAddr, now: Instant) -> Result<Attempt<'_>, Duration> {
        let keys = [Key::User(username.to_lowercase()), Key::Addr(addr)];
        let mut entries = self.lock();
        let mut wait: Option<Duration> = None;
        for (key, max) in keys.iter().zip([self.max_per_user, self.max_per_addr]) {
            let Some(w) = entries.get(key) else { continue };
            let failures = if w.expired(now, self.window) { 0 } else { w.failures };
            if failures >= max {
                let ends = w.started + self.window;
                wait = wait.max(Some((ends - now).max(PENDING_RETRY)));
            } else if failures + w.pending >= max {
                wait = wait.max(Some(PENDING_RETRY));
            }
        }
        if let Some(wait) = wait {
            return Err(wait);
        }
        if entries.len() > PRUNE_ABOVE {
            entries.retain(|_, w| w.pending > 0 || !w.expired(now, self.window));
        }
        for key in &keys {
            let w = entries.entry(key.clone()).or_insert_with(|| Window::new(now));
            if w.expired(now, self.window) {
                *w = Window { pending: w.pending, ..Window::new(now) };
            }
            w.pending += 1;
        }
        drop(entries);
        Ok(Attempt { throttle: self, keys, settled: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn fail(t: &LoginThrottle, user: &str, addr: IpAddr, now: Instant) {
        t.begin(user, addr, now).expect("not locked").settle_failed_at(now);
    }

    impl Attempt<'_> {
        fn settle_failed_at(mut self, now: Instant) {
            self.settle_failed(now);
        }
    }

    #[test]
    fn username_locks_after_max_failures_until_window_ends() {
        let t = LoginThrottle::new(3, 100, Duration::from_secs(60));
        let now = Instant::now();
        for _ in 0..3 {
            fail(&t, "alice", A, now);
        }
        // Locked for every address, whatever the case of the name.
        let wait = t.begin("ALICE", B, now + Duration::from_secs(10)).err().unwrap();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(t.begin("bob", B, now).is_ok());
        assert!(t.begin("alice", B, now + Duration::from_secs(61)).is_ok());
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
    fn success_clears_the_username_but_not_the_address() {
        let t = LoginThrottle::new(2, 2, Duration::from_secs(60));
        let now = Instant::now();
        fail(&t, "a", A, now);
        t.begin("a", A, now).unwrap().succeeded();
        assert!(t.begin("a", B, now).is_ok());
        fail(&t, "b", A, now);
        assert!(t.begin("c", A, now).is_err());
    }

    #[test]
    fn pending_attempts_count_until_they_are_settled() {
        let t = LoginThrottle::new(2, 100, Duration::from_secs(60));
        let now = Instant::now();
        let first = t.begin("a", A, now).unwrap();
        let second = t.begin("a", B, now).unwrap();
        // Both slots are reserved: a third guess is refused before anything was verified.
        assert_eq!(t.begin("a", A, now).err(), Some(PENDING_RETRY));
        first.cancelled();
        second.succeeded();
        let third = t.begin("a", A, now).unwrap();
        drop(third); // abandoned: a failure
        fail(&t, "a", A, now);
        assert_eq!(t.begin("a", A, now).err(), Some(Duration::from_secs(60)));
    }
}
