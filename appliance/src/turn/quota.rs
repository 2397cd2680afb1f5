//! Allocation quotas: how many allocations each user, and the appliance as a whole, may
//! hold at once. Over either limit an Allocate is answered 486 (Allocation Quota Reached).
//!
//! Invariant: a slot is taken (`reserve`) before the relay library sees the Allocate and is
//! given back exactly once: when the Allocate fails, or when the allocation closes, whatever
//! closed it (expiry, Refresh 0, TCP close, a disabled user, shutdown).

use std::collections::HashMap;
use std::sync::Mutex;

use super::counters::QuotaScope;

pub struct QuotaBook {
    per_user: u32,
    total: u32,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    by_user: HashMap<i64, u32>,
    total: u32,
}

impl QuotaBook {
    pub fn new(per_user: u32, total: u32) -> Self {
        Self { per_user, total, held: Mutex::default() }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes one slot for `user`, or says which limit is reached.
    pub fn reserve(&self, user: i64) -> Result<(), QuotaScope> {
        let mut held = self.held();
        if held.total >= self.total {
            return Err(QuotaScope::Total);
        }
        let mine = held.by_user.entry(user).or_insert(0);
        if *mine >= self.per_user {
            return Err(QuotaScope::User);
        }
        *mine += 1;
        held.total += 1;
        Ok(())
    }

    /// Gives back one slot of `user`.
    pub fn release(&self, user: i64) {
        let mut held = self.held();
        if let Some(mine) = held.by_user.get_mut(&user) {
            *mine -= 1;
            if *mine == 0 {
                held.by_user.remove(&user);
            }
            held.total = held.total.saturating_sub(1);
        }
    }

    #[cfg(test)]
    pub fn held_by(&self, user: i64) -> u32 {
        self.held().by_user.get(&user).copied().unwrap_or(0)
    }

    #[cfg(test)]
    pub fn total_held(&self) -> u32 {
        self.held().total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_and_total_limits_hold_and_release_frees() {
        let q = QuotaBook::new(2, 3);
        assert_eq!(q.reserve(1), Ok(()));
        assert_eq!(q.reserve(1), Ok(()));
        assert_eq!(q.reserve(1), Err(QuotaScope::User));
        assert_eq!(q.reserve(2), Ok(()));
        assert_eq!(q.reserve(3), Err(QuotaScope::Total));
        q.release(1);
        assert_eq!(q.held_by(1), 1);
        assert_eq!(q.reserve(3), Ok(()));
        assert_eq!(q.total_held(), 3);
        // Releasing what is not held changes nothing.
        q.release(99);
        assert_eq!(q.total_held(), 3);
    }
}
