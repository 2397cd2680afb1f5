//! TURN REST credentials (`GET /api/ice-servers`): the username is
//! `<expiry-unix>:<user-id>:<session-tag>` and the password is
//! `base64(HMAC-SHA1(secret, username))`, so the relay can check a credential without a
//! database round trip and without storing one per user. The session tag (16 hex digits of
//! SHA-256 of the session id, which it does not reveal) binds the credential to the sign-in
//! that fetched it: when that session ends (logout, revocation, expiry), the relay refuses the
//! credential and closes the allocations made with it. The two-part form
//! `<expiry-unix>:<user-id>` (coturn's, for tools that hold the secret, such as
//! `turnutils_uclient -W`) is still accepted; the appliance never issues it.
//!
//! Invariants:
//! - the secret never leaves this module (only derived passwords and STUN keys do);
//! - a username is accepted only in its exact canonical form (decimal, no sign, no leading
//!   zeros, no spaces), so one credential has exactly one spelling;
//! - user id 0 is reserved for the appliance's own requests to its relay (see `gate`): it
//!   is never issued to a client and the gate refuses it from the network.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};
use thiserror::Error;

use super::directory::UserStatus;
use super::shared::Shared;

/// The user id of the appliance's own (internal) requests.
pub const SYSTEM_USER: i64 = 0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CredentialError {
    #[error("the username is not of the form <expiry>:<user-id>")]
    Malformed,
    #[error("the credential has expired")]
    Expired,
}

impl CredentialError {
    /// Metric label of the reason.
    pub fn label(self) -> &'static str {
        match self {
            CredentialError::Malformed => "malformed",
            CredentialError::Expired => "expired",
        }
    }
}

/// A parsed REST username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestUsername {
    pub expires_at: i64,
    pub user_id: i64,
    /// The session the credential was issued to ([`session_tag`]); none in the two-part form.
    pub session: Option<String>,
}

/// The tag of a session in credentials: 16 hex digits of SHA-256 of its id.
pub fn session_tag(session_id: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, session_id.as_bytes());
    digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl RestUsername {
    pub fn format(&self) -> String {
        match &self.session {
            Some(tag) => format!("{}:{}:{tag}", self.expires_at, self.user_id),
            None => format!("{}:{}", self.expires_at, self.user_id),
        }
    }

    /// Parses the canonical form only (see the module invariants).
    pub fn parse(text: &str) -> Result<RestUsername, CredentialError> {
        let mut parts = text.split(':');
        let (Some(expiry), Some(user)) = (parts.next(), parts.next()) else { return Err(CredentialError::Malformed) };
        let session = match (parts.next(), parts.next()) {
            (None, _) => None,
            (Some(tag), None) if tag.len() == 16 && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
                Some(tag.to_string())
            }
            _ => return Err(CredentialError::Malformed),
        };
        Ok(RestUsername { expires_at: canonical_number(expiry)?, user_id: canonical_number(user)?, session })
    }

    /// Parses and checks the expiry against `now` (unix seconds).
    pub fn parse_valid(text: &str, now: i64) -> Result<RestUsername, CredentialError> {
        let name = Self::parse(text)?;
        if name.expires_at <= now {
            return Err(CredentialError::Expired);
        }
        Ok(name)
    }
}

fn canonical_number(s: &str) -> Result<i64, CredentialError> {
    let canonical =
        !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(CredentialError::Malformed);
    }
    s.parse().map_err(|_| CredentialError::Malformed)
}

/// Issues and checks credentials with the appliance's TURN secret.
///
/// The HMAC key is the secret as written in `turn.key` (its base64 text), not the decoded
/// bytes: that is a plain-text shared secret in coturn's sense (`static-auth-secret`,
/// `turnutils_uclient -W`), so coturn's tools and a coturn standing in for the relay can
/// use the same credentials.
pub struct CredentialKey {
    key: ring::hmac::Key,
}

impl CredentialKey {
    /// `secret` is the decoded content of `turn.key` (what `datadir::secret` returns).
    pub fn new(secret: &[u8]) -> Self {
        Self::from_text(&B64.encode(secret))
    }

    /// The key from the secret's text form.
    pub fn from_text(text: &str) -> Self {
        Self { key: ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes()) }
    }

    /// The password of `username`: base64(HMAC-SHA1(secret, username)).
    pub fn password(&self, username: &str) -> String {
        B64.encode(ring::hmac::sign(&self.key, username.as_bytes()).as_ref())
    }

    /// A credential for `user_id` signed in with the session tagged `session`, valid for
    /// `ttl_secs` from `now`.
    pub fn issue(&self, user_id: i64, session: &str, now: i64, ttl_secs: u64) -> (String, String) {
        let ttl = i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2);
        let username =
            RestUsername { expires_at: now.saturating_add(ttl), user_id, session: Some(session.to_string()) }.format();
        let password = self.password(&username);
        (username, password)
    }

    /// The STUN long-term key: MD5(username ":" realm ":" password), RFC 8489 §9.2.2.
    pub fn stun_key(&self, username: &str, realm: &str) -> Vec<u8> {
        turn::auth::generate_auth_key(username, realm, &self.password(username))
    }
}

/// The relay library's `AuthHandler`: gives the STUN key of a live REST username. It is
/// synchronous and runs inside the library's read loops, so it reads only memory: the
/// credential itself (expiry, HMAC) and the in-memory user view (see `directory`). The gate
/// has already checked the same things before the library sees a request; this is the
/// second lock on the same door.
pub struct DirectoryAuth {
    pub shared: Arc<Shared>,
}

impl turn::auth::AuthHandler for DirectoryAuth {
    fn auth_handle(&self, username: &str, realm: &str, _src: SocketAddr) -> Result<Vec<u8>, turn::Error> {
        let now = crate::db::now();
        let name = RestUsername::parse_valid(username, now).map_err(|e| turn::Error::Other(e.to_string()))?;
        if name.user_id != SYSTEM_USER && self.shared.users.status(name.user_id) != UserStatus::Active {
            return Err(turn::Error::Other("unknown or disabled user".into()));
        }
        if name.session.as_deref().is_some_and(|tag| !self.shared.users.session_live(tag, now)) {
            return Err(turn::Error::Other("the session of this credential has ended".into()));
        }
        if realm != self.shared.realm {
            return Err(turn::Error::Other("wrong realm".into()));
        }
        Ok(self.shared.key.stun_key(username, realm))
    }
}

/// Builds the answer of `GET /api/ice-servers` for a signed-in user.
#[derive(Clone)]
pub struct IceServerIssuer {
    shared: Arc<Shared>,
    /// Host as written in a URL (IPv6 in brackets).
    host: String,
    port: u16,
    tls_port: u16,
    ttl_secs: u64,
}

impl IceServerIssuer {
    /// Reads the relay's users, sessions and lab ranges now rather than at the next access
    /// change the watch reports: for an account made after the relay started (the first
    /// admin), which tools holding the TURN secret may use at once (`labbeam doctor`).
    pub async fn reload_directory(&self, pool: &crate::db::Store) -> bool {
        super::service::reload_directory(&self.shared, pool).await
    }

    pub fn new(shared: Arc<Shared>, host: &str, port: u16, tls_port: u16, ttl_secs: u64) -> Self {
        let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
        Self { shared, host, port, tls_port, ttl_secs }
    }

    /// What the relay will reach, in words (see `PolicyRules::describe`).
    pub fn peer_policy(&self) -> String {
        self.shared.policy.rules().describe()
    }

    /// ICE servers with a fresh credential for `user_id`, who has just been authenticated
    /// through the live session `session_id`, which ends at `session_expires_at` (so the
    /// relay's view learns of both at once).
    pub fn issue(&self, user_id: i64, session_id: &str, session_expires_at: i64, now: i64) -> Value {
        let tag = session_tag(session_id);
        self.shared.users.mark_active(user_id);
        self.shared.users.mark_session(&tag, session_expires_at);
        let (username, credential) = self.shared.key.issue(user_id, &tag, now, self.ttl_secs);
        let (h, p, t) = (&self.host, self.port, self.tls_port);
        json!({
            "iceServers": [
                { "urls": [format!("stun:{h}:{p}")] },
                {
                    "urls": [
                        format!("turn:{h}:{p}?transport=udp"),
                        format!("turn:{h}:{p}?transport=tcp"),
                        format!("turns:{h}:{t}?transport=tcp"),
                    ],
                    "username": username,
                    "credential": credential,
                },
            ],
            "ttl": self.ttl_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_credential_matches_the_published_scheme() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let key = CredentialKey::new(secret);
        let tag = session_tag("a-session-id");
        assert_eq!(tag.len(), 16);
        let (username, password) = key.issue(42, &tag, 1_700_000_000, 3600);
        assert_eq!(username, format!("1700003600:42:{tag}"));
        // Independent computation of base64(HMAC-SHA1(secret text, username)), the secret
        // text being what turn.key holds.
        let text = B64.encode(secret);
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, text.as_bytes());
        assert_eq!(password, B64.encode(ring::hmac::sign(&k, username.as_bytes()).as_ref()));
        assert_eq!(B64.decode(&password).unwrap().len(), 20);
        assert_eq!(CredentialKey::from_text(&text).password(&username), password);
        let other = CredentialKey::new(b"another secret of thirty-two by!");
        assert_ne!(other.password(&username), password);
    }

    #[test]
    fn usernames_parse_only_in_canonical_form() {
        assert_eq!(
            RestUsername::parse("1700003600:42"),
            Ok(RestUsername { expires_at: 1_700_003_600, user_id: 42, session: None })
        );
        assert_eq!(
            RestUsername::parse("1700003600:42:00ff00ff00ff00ff"),
            Ok(RestUsername { expires_at: 1_700_003_600, user_id: 42, session: Some("00ff00ff00ff00ff".into()) })
        );
        for bad in [
            "1:2:00FF00FF00FF00FF",
            "1:2:00ff00ff00ff00f",
            "1:2:00ff00ff00ff00ff0",
            "1:2:00ff00ff00ff00fg",
            "1:2:00ff00ff00ff00ff:",
            "1:2:",
            "",
            "1700003600",
            ":42",
            "1700003600:",
            "+1700003600:42",
            "1700003600:042",
            " 1:2",
            "1:2 ",
            "a:1",
            "1:-2",
            "99999999999999999999:1",
        ] {
            assert_eq!(RestUsername::parse(bad), Err(CredentialError::Malformed), "{bad:?}");
        }
        assert_eq!(RestUsername::parse_valid("100:1", 100), Err(CredentialError::Expired));
        assert!(RestUsername::parse_valid("101:1", 100).is_ok());
    }

    #[test]
    fn stun_key_is_md5_of_username_realm_password() {
        let key = CredentialKey::new(b"0123456789abcdef0123456789abcdef");
        let k = key.stun_key("10:1", "labbeam");
        let expected = stun::integrity::MessageIntegrity::new_long_term_integrity(
            "10:1".into(),
            "labbeam".into(),
            key.password("10:1"),
        );
        assert_eq!(k, expected.0);
    }
}
