//! Password hashing (argon2id, OWASP parameters), the password policy, and one-time
//! passwords. Hashing costs tens of milliseconds of CPU, so callers on the async runtime
//! use the async wrappers, which move the work to the blocking pool.
//!
//! Every argon2 run needs 19 MiB of working memory (m = 19456 KiB). The async wrappers
//! therefore run in one of `argon2_slots()` slots (the machine's cores, at most
//! `MAX_ARGON2_SLOTS`), each owning one reusable 19 MiB buffer, allocated at its first use
//! and kept. A caller that finds no slot free within `SLOT_WAIT` gets `AuthError::Busy`
//! (503 `busy` with `Retry-After`), so no number of anonymous logins can make argon2 hold
//! more than slots × 19 MiB. The buffers are kept rather than freed after each run because
//! the allocator does not give freed buffers of that size back reliably: glibc's dynamic
//! mmap threshold moves them into per-thread arenas, and with a fresh buffer per run the
//! server kept hundreds of MiB after a login flood although only two ran at a time (the
//! figures: README.md, "Memory under a login flood").
//!
//! The slot is held by the blocking task itself, so a request that is abandoned does not
//! free it before its argon2 run ends. The slots are one process-wide limit, not a part of
//! `AppState`, because the memory they bound is the process's and every caller must count
//! (the account functions shared with the command line and the portal have no `AppState`).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;

use super::AuthError;

/// More parallel argon2 runs than this gain nothing on an appliance and cost 19 MiB each.
pub const MAX_ARGON2_SLOTS: usize = 4;

/// How long a caller waits for a free slot before it is told the server is busy.
const SLOT_WAIT: Duration = Duration::from_secs(3);

/// What a caller told "busy" is asked to wait before trying again.
pub const BUSY_RETRY_SECS: u64 = 2;

/// Length of a new hash's salt, in bytes.
const SALT_LEN: usize = 16;

/// Concurrent argon2 runs allowed in this process: the available cores, at most
/// `MAX_ARGON2_SLOTS` (argon2 with p = 1 uses one core; more runs would only queue on the
/// CPU while each holds its buffer).
pub fn argon2_slots() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, MAX_ARGON2_SLOTS)
}

/// The argon2 parameters of new hashes (OWASP: argon2id, m = 19 MiB, t = 2, p = 1).
fn params() -> Params {
    Params::DEFAULT
}

/// Working memory of one slot: the blocks our own parameters need, and the most a stored
/// hash may ask for (a hash that needs more is not verified, so a tampered row cannot
/// make the server allocate).
fn slot_blocks() -> usize {
    params().block_count()
}

/// The argon2 slots: a semaphore, and the buffers of the slots not in use.
struct Slots {
    free: Arc<Semaphore>,
    buffers: Mutex<Vec<Vec<Block>>>,
}

impl Slots {
    fn new(n: usize) -> Arc<Slots> {
        Arc::new(Slots { free: Arc::new(Semaphore::new(n)), buffers: Mutex::new(Vec::new()) })
    }

    /// Runs `work` with a slot's buffer on the blocking pool, or `Err(Busy)` when no slot
    /// came free within `wait`.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        wait: Duration,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let permit = match tokio::time::timeout(wait, self.free.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            // Timed out, or (never: it is not closed) the semaphore was closed.
            _ => return Err(AuthError::Busy { retry_after_secs: BUSY_RETRY_SECS }),
        };
        let slots = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut buffer = slots.buffers.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default();
            let out = work(&mut buffer);
            slots.buffers.lock().unwrap_or_else(|p| p.into_inner()).push(buffer);
            drop(permit);
            out
        })
        .await
        .map_err(|e| AuthError::Internal(format!("argon2 task failed: {e}")))
    }
}

fn slots() -> &'static Arc<Slots> {
    static SLOTS: OnceLock<Arc<Slots>> = OnceLock::new();
    SLOTS.get_or_init(|| Slots::new(argon2_slots()))
}

/// `memory` grown (once) to `blocks` blocks, as a slice of exactly that many.
fn blocks(memory: &mut Vec<Block>, blocks: usize) -> &mut [Block] {
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    &mut memory[..blocks]
}

/// A new argon2id PHC string of `password`, computed in `memory`.
fn hash_in(password: &str, memory: &mut Vec<Block>) -> Result<String, AuthError> {
    let fail = |e: &dyn std::fmt::Display| AuthError::Internal(format!("password hashing failed: {e}"));
    let mut salt = [0u8; SALT_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| AuthError::Internal("no system randomness".into()))?;
    let params = params();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon2
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, blocks(memory, params.block_count()))
        .map_err(|e| fail(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| fail(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| fail(&e))?),
        hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`, computed in `memory`. Anything that
/// does not parse, or needs more memory than a slot has, does not match.
fn verify_in(password: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    if params.block_count() > slot_blocks() {
        tracing::warn!(m_cost = params.m_cost(), "a stored password hash needs more memory than allowed; not verified");
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    if argon2
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks(memory, params.block_count()))
        .is_err()
    {
        return false;
    }
    // Output's equality is constant-time.
    Output::new(&out).is_ok_and(|computed| &computed == expected)
}

/// A hash of a password nobody knows, verified against when the username is unknown so a
/// failed login takes the same time whether or not the account exists.
static DECOY_PASSWORD: &str = "labbeam-decoy-password-never-matches";

/// Hashes in an argon2 slot; `Err(Busy)` when none came free in time.
pub async fn hash_async(password: String) -> Result<String, AuthError> {
    slots().run(SLOT_WAIT, move |memory| hash_in(&password, memory)).await?
}

/// Verifies in an argon2 slot. `phc = None` runs a decoy verification and fails.
/// `Err(Busy)` when no slot came free in time: nothing was verified.
pub async fn verify_async(password: String, phc: Option<String>) -> Result<bool, AuthError> {
    slots()
        .run(SLOT_WAIT, move |memory| match phc {
            Some(phc) => verify_in(&password, &phc, memory),
            None => {
                let _ = verify_in(&password, decoy_hash(memory), memory);
                false
            }
        })
        .await
}

/// The decoy hash, made once (in the calling slot's memory).
fn decoy_hash(memory: &mut Vec<Block>) -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_in(DECOY_PASSWORD, memory).unwrap_or_default())
}

/// The zxcvbn score a new password must reach: `Two` means it takes more than 10^6 guesses
/// (online guessing is also throttled). Below it are the passwords of zxcvbn's common
/// password list (about 30 000 from real leaks), and words, names, keyboard rows, sequences,
/// repeats and dates with a few digits or symbols around them.
const MIN_STRENGTH: zxcvbn::Score = zxcvbn::Score::Two;

/// Checks a new password against the policy; the error says what is wrong in plain words.
/// The same rules hold wherever a password is set: sign-in password change, the portal,
/// CSV import and the command line (they all come here).
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
    // zxcvbn looks at the first 100 characters only, which bounds its work.
    let strength = zxcvbn::zxcvbn(password, &[username, "labbeam"]);
    if strength.score() < MIN_STRENGTH {
        let why = strength.feedback().and_then(|f| f.warning()).map(|w| {
            let w = w.to_string();
            let w = w.trim_end_matches('.');
            let mut c = w.chars();
            match c.next() {
                Some(first) => format!(" ({}{})", first.to_lowercase(), c.as_str()),
                None => String::new(),
            }
        });
        return Err(AuthError::WeakPassword(format!(
            "the password is too easy to guess{}; a few unrelated words are easier to remember and much harder to guess",
            why.unwrap_or_default()
        )));
    }
    Ok(())
}

/// Refuses a new password equal to the current one (a forced change must change it).
pub fn check_changed(current: &str, new: &str) -> Result<(), AuthError> {
    if current == new {
        return Err(AuthError::WeakPassword("the new password must differ from the current one".into()));
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

    fn hash(password: &str) -> Result<String, AuthError> {
        hash_in(password, &mut Vec::new())
    }

    fn verify(password: &str, phc: &str) -> bool {
        verify_in(password, phc, &mut Vec::new())
    }

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
    fn policy_rejects_common_and_patterned_passwords() {
        for weak in [
            "1234567890",
            "password12",
            "password123",
            "qwertyuiop",
            "1q2w3e4r5t",
            "iloveyou12",
            "P@ssw0rd2024",
            "abcdefghij",
            "admin12345",
            "michael1990",
            "labbeam2024",
        ] {
            let e = check_policy(weak, "admin", 10).expect_err(weak);
            assert!(e.to_string().contains("too easy to guess"), "{weak}: {e}");
        }
        // Containing the username makes a password weaker.
        assert!(check_policy("walter.white99", "walter.white", 10).is_err());
        for fine in [
            "correct horse battery staple",
            "a long passphrase",
            "a brand new passphrase",
            "another long passphrase",
            "Vx7-kq2m-Pw9z",
            "tuesday lamp orbit",
        ] {
            assert!(check_policy(fine, "admin", 10).is_ok(), "{fine}: {:?}", check_policy(fine, "admin", 10));
        }
    }

    #[test]
    fn policy_says_why_in_plain_words() {
        let e = check_policy("1234567890", "admin", 10).unwrap_err().to_string();
        assert!(e.starts_with("the password is too easy to guess (this is a top-"), "{e}");
    }

    #[test]
    fn the_new_password_must_differ_from_the_current_one() {
        assert!(check_changed("old passphrase", "old passphrase").is_err());
        assert!(check_changed("old passphrase", "new passphrase").is_ok());
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
        assert_eq!(verify_async("anything".into(), None).await, Ok(false));
    }

    #[test]
    fn hashes_are_standard_argon2id_phc_strings() {
        use argon2::{PasswordHasher, PasswordVerifier};
        // Ours verify with the library's own verifier, and the library's with ours.
        let ours = hash("correct horse battery").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        assert!(Argon2::default().verify_password(b"correct horse battery", ours.as_str()).is_ok());
        assert!(Argon2::default().verify_password(b"wrong horse battery", ours.as_str()).is_err());
        let theirs = Argon2::default().hash_password(b"correct horse battery").unwrap().to_string();
        assert!(verify("correct horse battery", &theirs));
        assert!(!verify("correct horse batter", &theirs));
        // Two hashes of one password differ (random salt).
        assert_ne!(ours, hash("correct horse battery").unwrap());
    }

    #[test]
    fn a_reused_buffer_gives_the_same_answers() {
        let mut memory = Vec::new();
        let a = hash_in("first password here", &mut memory).unwrap();
        let b = hash_in("second password here", &mut memory).unwrap();
        assert!(verify_in("first password here", &a, &mut memory));
        assert!(verify_in("second password here", &b, &mut memory));
        assert!(!verify_in("second password here", &a, &mut memory));
        assert_eq!(memory.len(), slot_blocks());
    }

    #[test]
    fn a_hash_that_asks_for_more_memory_than_a_slot_has_is_not_verified() {
        let big = Params::new(64 * 1024, 1, 1, None).unwrap();
        let mut out = [0u8; 32];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, big.clone())
            .hash_password_into(b"password of a big hash", b"saltsaltsalt", &mut out)
            .unwrap();
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&big).unwrap(),
            salt: Some(Salt::new(b"saltsaltsalt").unwrap()),
            hash: Some(Output::new(&out).unwrap()),
        }
        .to_string();
        let mut memory = Vec::new();
        assert!(!verify_in("password of a big hash", &phc, &mut memory));
        assert!(memory.is_empty(), "nothing was allocated");
    }

    #[tokio::test]
    async fn a_caller_that_finds_no_free_slot_in_time_is_told_busy() {
        let slots = Slots::new(1);
        let held = slots.free.clone().acquire_owned().await.unwrap();
        let r = slots.run(Duration::from_millis(50), |_| 1).await;
        assert_eq!(r, Err(AuthError::Busy { retry_after_secs: BUSY_RETRY_SECS }));
        drop(held);
        assert_eq!(slots.run(Duration::from_millis(50), |_| 1).await, Ok(1));
        // The slot is held until the blocking work ends, not until the caller gives up.
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let running = {
            let slots = slots.clone();
            tokio::spawn(async move {
                slots
                    .run(Duration::from_secs(5), move |_| {
                        started_tx.send(()).unwrap();
                        finish_rx.recv().unwrap();
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap()).await.unwrap();
        running.abort();
        assert_eq!(slots.free.available_permits(), 0, "abandoned, still running");
        finish_tx.send(()).unwrap();
        let free = slots.free.clone().acquire_owned();
        assert!(tokio::time::timeout(Duration::from_secs(5), free).await.is_ok());
    }

    #[tokio::test]
    async fn slots_reuse_their_buffers() {
        let slots = Slots::new(2);
        for _ in 0..5 {
            slots.run(Duration::from_secs(1), |m| m.resize(3, Block::default())).await.unwrap();
        }
        let buffers = slots.buffers.lock().unwrap();
        assert_eq!(buffers.len(), 1, "one at a time: one buffer");
    }

    #[test]
    fn slots_follow_the_cores_with_a_cap() {
        assert!((1..=MAX_ARGON2_SLOTS).contains(&argon2_slots()));
    }
}
