//! Nonces: the relay library keeps every nonce it ever issued in a table it never purges
//! (an unauthenticated flood grows it without bound), so the library is not allowed to
//! issue nonces to the network at all. The gate answers every challenge (401) and every
//! stale nonce (438) itself, always with a nonce from this book; the book's nonces are
//! obtained from the library by the appliance's own internal requests, and an expired one
//! is presented back to the library once, which removes it from the library's table and
//! yields the next nonce in the same step. The library's table therefore stays at the
//! size of this book: one nonce per [`ROTATE`] over the library's nonce lifetime.
//!
//! Invariant: the gate accepts a nonce only if it is in this book and younger than
//! [`ACCEPT_FOR`], which is shorter than the library's own lifetime (1 h), so the library
//! never sees a nonce it would call stale.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A new nonce is taken this often.
pub const ROTATE: Duration = Duration::from_secs(10 * 60);
/// Clients may use a nonce this long after it was taken.
pub const ACCEPT_FOR: Duration = Duration::from_secs(55 * 60);
/// After this, the library considers the nonce expired (its lifetime is 1 h) and will drop
/// it when it is presented.
pub const PURGE_AFTER: Duration = Duration::from_secs(61 * 60);

#[derive(Default)]
pub struct NonceBook {
    issued: Mutex<VecDeque<(String, Instant)>>,
}

impl NonceBook {
    fn issued(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, Instant)>> {
        self.issued.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a nonce the library just issued to the appliance's internal request.
    pub fn add(&self, nonce: String, now: Instant) {
        let mut issued = self.issued();
        if !issued.iter().any(|(n, _)| *n == nonce) {
            issued.push_back((nonce, now));
        }
    }

    /// The nonce to give clients now, if any was obtained yet.
    pub fn current(&self, now: Instant) -> Option<String> {
        self.issued().back().filter(|(_, at)| now.duration_since(*at) < ACCEPT_FOR).map(|(n, _)| n.clone())
    }

    pub fn accepts(&self, nonce: &str, now: Instant) -> bool {
        self.issued().iter().any(|(n, at)| n == nonce && now.duration_since(*at) < ACCEPT_FOR)
    }

    /// True when a fresh nonce should be taken.
    pub fn needs_new(&self, now: Instant) -> bool {
        self.issued().back().is_none_or(|(_, at)| now.duration_since(*at) >= ROTATE)
    }

    /// Takes the nonces old enough for the library to drop when presented.
    pub fn take_expired(&self, now: Instant) -> Vec<String> {
        let mut issued = self.issued();
        let mut expired = Vec::new();
        while let Some((_, at)) = issued.front() {
            if now.duration_since(*at) < PURGE_AFTER {
                break;
            }
            if let Some((n, _)) = issued.pop_front() {
                expired.push(n);
            }
        }
        expired
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.issued().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_rotate_expire_and_are_handed_back() {
        let book = NonceBook::default();
        let t0 = Instant::now();
        assert!(book.needs_new(t0));
        assert_eq!(book.current(t0), None);
        book.add("a".into(), t0);
        assert_eq!(book.current(t0).as_deref(), Some("a"));
        assert!(!book.needs_new(t0 + Duration::from_secs(60)));
        assert!(book.needs_new(t0 + ROTATE));
        book.add("b".into(), t0 + ROTATE);
        assert!(book.accepts("a", t0 + ROTATE));
        assert!(!book.accepts("a", t0 + ACCEPT_FOR));
        assert!(book.accepts("b", t0 + ACCEPT_FOR));
        assert!(!book.accepts("zzz", t0));
        assert!(book.take_expired(t0 + ACCEPT_FOR).is_empty());
        assert_eq!(book.take_expired(t0 + PURGE_AFTER), vec!["a".to_string()]);
        assert_eq!(book.len(), 1);
    }
}
