//! Password hashing (argon2id, OWASP parameters), the password policy, and one-time
//! passwords. Hashing costs tens of milliseconds of CPU, so callers on the async runtime
//! use the `*_blocking`-free async wrappers, which move the work to the blocking pool.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use super::AuthError;

/// A hash of a password nobody knows, verified against when the username is unknown so a
/// failed login takes the same time whether or not the account exists.
static DECOY_PASSWORD: &str = "labbeam-decoy-password-never-matches";

pub fn hash(password: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Internal(format!("password hashing failed: {e}")))
}

pub fn verify(password: &str, phc: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), phc).is_ok()
}

pub async fn hash_async(password: String) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| AuthError::Internal(format!("hashing task failed: {e}")))?
}

/// Verifies off the async runtime. `phc = None` runs a decoy verification and fails.
pub async fn verify_async(password: String, phc: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => verify(&password, &phc),
        None => {
            let decoy = decoy_hash();
            let _ = verify(&password, decoy);
            false
        }
    })
    .await
    .unwrap_or(false)
}

fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(DECOY_PASSWORD).unwrap_or_default())
}

/// Checks a new password against the policy; the error says what is wrong in plain words.
pub fn check_policy(password: &str, username: &str, min_len: usize) -> Result<(), AuthError> {
    let chars = password.chars().count();
    if chars < min_len {
        return Err(AuthError::WeakPassword(format!("the password must have at least {min_len} characters")));
    }
    if chars > 1024 {
        return Err(AuthError::WeakPassword("the password must have at most 1024 characters".into()));
    }
    if password.eq_ignore_ascii_case(username) {
        return Err(AuthError::WeakPassword("the password must not be the username".into()));
    }
    if password.chars().collect::<std::collections::HashSet<_>>().len() < 4 {
        return Err(AuthError::WeakPassword("the password must use at least 4 different characters".into()));
    }
    Ok(())
}

/// A random password of 20 characters from an alphabet without look-alikes (no 0/O, 1/l/I),
/// about 115 bits of entropy: for first admin accounts and password resets.
pub fn one_time_password() -> Result<String, AuthError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = String::with_capacity(24);
    let mut buf = [0u8; 64];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf)
        .map_err(|_| AuthError::Internal("no system randomness".into()))?;
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - (256 % ALPHABET.len());
    for b in buf {
        if (b as usize) < limit {
            out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            if out.len() == 20 {
                return Ok(out);
            }
        }
    }
    one_time_password()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_only_the_right_password() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &h));
        assert!(!verify("wrong horse battery", &h));
        assert!(!verify("x", "not a phc string"));
    }

    #[test]
    fn policy_rejects_short_username_and_monotone_passwords() {
        assert!(check_policy("short", "u", 10).is_err());
        assert!(check_policy("alice12345", "alice12345", 10).is_err());
        assert!(check_policy("aaaaaaaaaaaa", "u", 10).is_err());
        assert!(check_policy("a good long passphrase", "u", 10).is_ok());
    }

    #[test]
    fn one_time_passwords_are_long_and_distinct() {
        let a = one_time_password().unwrap();
        let b = one_time_password().unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
        assert!(check_policy(&a, "admin", 10).is_ok());
    }

    #[tokio::test]
    async fn decoy_verification_fails() {
        assert!(!verify_async("anything".into(), None).await);
    }
}
