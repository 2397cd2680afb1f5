//! Login throttling: a fixed window of failed attempts per username and per client
//! address. Successful logins clear the username's count (not the address's, so one
//! valid account cannot be used to reset a password-spraying address).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries beyond this are pruned of expired windows before a new one is added, which
/// bounds memory under a flood of distinct usernames.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
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

impl LoginThrottle {
    pub fn new(max_per_user: u32, max_per_addr: u32, window: Duration) -> Self {
        Self { max_per_user, max_per_addr, window, entries: Mutex::new(HashMap::new()) }
    }

    /// `Err(retry_after)` when either the username or the address is locked out.
    pub fn check(&self, username: &str, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let wait = |key: Key, max: u32| {
            entries.get(&key).and_then(|w| {
                let ends = w.started + self.window;
                (w.failures >= max && now < ends).then(|| ends - now)
            })
        };
        let user = wait(Key::User(username.to_lowercase()), self.max_per_user);
        let addr = wait(Key::Addr(addr), self.max_per_addr);
        match user.max(addr) {
            Some(d) => Err(d.max(Duration::from_secs(1))),
            None => Ok(()),
        }
    }

    pub fn record_failure(&self, username: &str, addr: IpAddr, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() > PRUNE_ABOVE {
            entries.retain(|_, w| now < w.started + self.window);
        }
        for key in [Key::User(username.to_lowercase()), Key::Addr(addr)] {
            let w = entries.entry(key).or_insert(Window { started: now, failures: 0 });
            if now >= w.started + self.window {
                *w = Window { started: now, failures: 0 };
            }
            w.failures += 1;
        }
    }

    pub fn record_success(&self, username: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(&Key::User(username.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn username_locks_after_max_failures_until_window_ends() {
        let t = LoginThrottle::new(3, 100, Duration::from_secs(60));
        let now = Instant::now();
        for _ in 0..3 {
            assert!(t.check("Alice", A, now).is_ok());
            t.record_failure("alice", A, now);
        }
        // Locked for every address, whatever the case of the name.
        let wait = t.check("ALICE", B, now + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(t.check("bob", B, now).is_ok());
        assert!(t.check("alice", B, now + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn address_locks_across_usernames() {
        let t = LoginThrottle::new(100, 2, Duration::from_secs(60));
        let now = Instant::now();
        t.record_failure("a", A, now);
        t.record_failure("b", A, now);
        assert!(t.check("c", A, now).is_err());
        assert!(t.check("c", B, now).is_ok());
    }

    #[test]
    fn success_clears_the_username_but_not_the_address() {
        let t = LoginThrottle::new(2, 2, Duration::from_secs(60));
        let now = Instant::now();
        t.record_failure("a", A, now);
        t.record_failure("a", A, now);
        t.record_success("a");
        assert!(t.check("a", B, now).is_ok());
        assert!(t.check("a", A, now).is_err());
    }
}
