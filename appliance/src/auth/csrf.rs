//! CSRF tokens for the portal's forms: an HMAC of the session id under a key derived from
//! the JWT secret, so no state is stored and a token is useless with another session. The
//! login form (no session yet) uses a random double-submit cookie instead.

/// The key for CSRF tokens, derived from the JWT secret with its own label.
pub fn key(jwt_secret: &[u8]) -> ring::hmac::Key {
    let base = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, jwt_secret);
    let derived = ring::hmac::sign(&base, b"labbeam csrf v1");
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref())
}

pub fn token_for(key: &ring::hmac::Key, session_id: &str) -> String {
    let tag = ring::hmac::sign(key, session_id.as_bytes());
    tag.as_ref()[..20].iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time comparison of the expected and the submitted token.
pub fn matches(expected: &str, submitted: &str) -> bool {
    !expected.is_empty()
        && expected.len() == submitted.len()
        && expected.bytes().zip(submitted.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_per_session_and_compared_exactly() {
        let k = key(b"0123456789abcdef0123456789abcdef");
        let a = token_for(&k, "session-a");
        assert_eq!(a.len(), 40);
        assert_ne!(a, token_for(&k, "session-b"));
        assert_ne!(a, token_for(&key(b"another secret................!!"), "session-a"));
        assert!(matches(&a, &a.clone()));
        assert!(!matches(&a, ""));
        assert!(!matches("", ""));
        assert!(!matches(&a, &a[..39]));
    }
}
