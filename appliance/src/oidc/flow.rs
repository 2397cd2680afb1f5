//! The authorization-code flow, from LabBeam's side: `start` sends the browser to the
//! provider, `finish` takes it back and opens a session.
//!
//! What keeps it safe:
//! - `state` (256 random bits) names a row of `oidc_flows`, deleted when the browser comes
//!   back: a callback works once, within 10 minutes, and only for the provider it was for;
//! - the row also holds the SHA-256 of a random cookie given to the browser that started
//!   the sign-in (SameSite=Lax, so it comes back on the provider's redirect): a callback
//!   link made by someone else and opened by a victim is refused (login CSRF);
//! - PKCE (S256): the code is worth nothing without the verifier kept in the row;
//! - the ID token's signature, issuer, audience, expiry and nonce (`id_token`);
//! - the account is bound to the provider's subject: a username claimed by a local or
//!   directory account, or by another person of any provider, is refused.

use std::net::IpAddr;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Map, Value};

use super::id_token::{self, Expected, Refusal};
use super::{OidcError, Provider};
use crate::audit::{self, Actor, AuditEvent, LoginFailure};
use crate::auth::AuthError;
use crate::auth::login::{self, LoginOk};
use crate::db::oidc_flows::{self, Flow, Refused};
use crate::db::sessions;
use crate::db::users::{self, Source};
use crate::directory::admit::{self, Admission, AdmitError, Identity};
use crate::state::AppState;

/// The cookie binding a sign-in in progress to the browser that started it.
pub const BINDING_COOKIE: &str = "labbeam_oidc";
/// Where it is sent: the OpenID routes only.
pub const BINDING_COOKIE_PATH: &str = "/api/auth/oidc";

/// Where `start` sends the browser, and the binding cookie's value to set.
pub struct Started {
    pub authorization_url: String,
    pub binding: String,
}

/// A LabBeam page to land on after signing in: a path of this server only.
pub fn safe_return_to(to: Option<&str>) -> String {
    match to {
        Some(t)
            if t.starts_with('/')
                && !t.starts_with("//")
                && !t.contains('\\')
                && t.len() <= 512
                && !t.chars().any(char::is_control) =>
        {
            t.to_string()
        }
        _ => "/".into(),
    }
}

fn random_b64(bytes: usize) -> Result<String, AuthError> {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf)
        .map_err(|_| AuthError::Internal("no system randomness".into()))?;
    Ok(B64.encode(buf))
}

fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `host` (a Host header) is a plain host name or address with an optional port.
fn valid_host_header(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

/// The callback URL for this provider: `redirect_uri` as configured, or this server's
/// address as the browser used it.
pub fn redirect_uri(provider: &Provider, host: Option<&str>) -> Result<String, AuthError> {
    if let Some(uri) = &provider.config.redirect_uri {
        return Ok(uri.clone());
    }
    match host {
        Some(h) if valid_host_header(h) => Ok(format!("https://{h}/api/auth/oidc/{}/callback", provider.slug)),
        _ => Err(AuthError::Internal(
            "the request has no usable Host header to build the OpenID redirect URI from; set auth.oidc redirect_uri"
                .into(),
        )),
    }
}

/// Starts a sign-in with `provider`: stores it, and gives the provider's authorization URL.
/// `binding`: the browser's binding cookie when it already has one (a second tab keeps it).
pub async fn start(
    state: &AppState,
    provider: &Provider,
    host: Option<&str>,
    return_to: &str,
    binding: Option<&str>,
    addr: IpAddr,
) -> Result<Started, AuthError> {
    let metadata = provider.metadata().await.map_err(|e| {
        tracing::warn!(provider = %provider.slug, error = %e, "OpenID provider unusable");
        AuthError::ProviderUnavailable(provider.name().to_string())
    })?;
    let binding = match binding {
        Some(b) if b.len() == 43 && b.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') => {
            b.to_string()
        }
        _ => random_b64(32)?,
    };
    let flow = Flow {
        state: random_b64(32)?,
        provider: provider.slug.clone(),
        binding: sha256_hex(&binding),
        nonce: random_b64(32)?,
        code_verifier: random_b64(32)?,
        redirect_uri: redirect_uri(provider, host)?,
        return_to: return_to.to_string(),
        client_addr: addr.to_string(),
        expires_at: 0,
    };
    match oidc_flows::create(&state.db, &flow).await? {
        Ok(()) => {}
        Err(Refused::AddressFull) => return Err(AuthError::TooManyAttempts { retry_after_secs: 60 }),
        Err(Refused::StoreFull) => return Err(AuthError::Busy { retry_after_secs: 60 }),
    }
    let challenge = B64.encode(ring::digest::digest(&ring::digest::SHA256, flow.code_verifier.as_bytes()));
    let mut url = url::Url::parse(&metadata.authorization_endpoint)
        .map_err(|e| AuthError::Internal(format!("the provider's authorization_endpoint is not a URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &provider.config.client_id)
        .append_pair("redirect_uri", &flow.redirect_uri)
        .append_pair("scope", &provider.config.scopes.join(" "))
        .append_pair("state", &flow.state)
        .append_pair("nonce", &flow.nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(Started { authorization_url: url.into(), binding })
}

/// What the provider sent the browser back with.
#[derive(Debug, Default, serde::Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    /// The issuer, from providers that say who answers (RFC 9207): must be this provider.
    pub iss: Option<String>,
}

/// A finished sign-in: the session, and where the browser goes next.
pub struct Finished {
    pub login: LoginOk,
    pub return_to: String,
}

/// A failed one: why, and where the browser was going (for the "try again" link).
pub struct Failed {
    pub error: AuthError,
    pub return_to: String,
}

/// Finishes a sign-in with `provider`. Every outcome is audited (source `oidc`).
pub async fn finish(
    state: &AppState,
    provider: &Provider,
    query: CallbackQuery,
    binding: Option<&str>,
    addr: IpAddr,
    user_agent: &str,
) -> Result<Finished, Failed> {
    let mut return_to = "/".to_string();
    let actor = Actor { user_id: None, username: String::new(), client_addr: addr.to_string() };
    let fail = |actor: Actor, reason: LoginFailure, error: AuthError, return_to: String| async move {
        if let AuthError::Internal(_) | AuthError::StoreUnavailable(_) = error {
            return Failed { error, return_to };
        }
        state.metrics.login(if reason == LoginFailure::Throttled { "throttled" } else { "failure" });
        let recorded = audit::record(
            &state.db,
            &actor,
            AuditEvent::LoginFailed { username: &actor.username, reason, source: Source::Oidc.as_str() },
        )
        .await;
        match recorded {
            Ok(()) => Failed { error, return_to },
            Err(e) => Failed { error: e.into(), return_to },
        }
    };
    let Some(state_param) = query.state.filter(|s| !s.is_empty() && s.len() <= 128) else {
        return Err(fail(actor, LoginFailure::InvalidState, AuthError::SignInExpired, return_to).await);
    };
    // Each callback is its own "account" for the throttle: the limit per client address is
    // what holds (a flood of forged callbacks from one place), never one lab's sign-ins
    // against another's.
    let attempt = match state.throttle.begin(&format!("oidc-state:{state_param}"), addr, Instant::now()) {
        Ok(a) => a,
        Err(wait) => {
            let error = AuthError::TooManyAttempts { retry_after_secs: wait.as_secs_f64().ceil() as u64 };
            return Err(fail(actor, LoginFailure::Throttled, error, return_to).await);
        }
    };
    let flow = match oidc_flows::take(&state.db, &state_param).await {
        Ok(flow) => flow,
        Err(e) => {
            attempt.cancelled();
            return Err(Failed { error: e.into(), return_to });
        }
    };
    let bound = |flow: &Flow| binding.is_some_and(|b| sha256_hex(b) == flow.binding);
    let flow = match flow {
        Some(flow) if flow.provider == provider.slug && bound(&flow) => flow,
        _ => {
            // A used or forged `state`, or another browser's: not a password guess, and
            // nothing was sent to the provider.
            attempt.cancelled();
            return Err(fail(actor, LoginFailure::InvalidState, AuthError::SignInExpired, return_to).await);
        }
    };
    return_to = flow.return_to.clone();
    if query.iss.as_deref().is_some_and(|iss| iss != provider.config.issuer.trim()) {
        // An answer from another provider sent here (a mix-up attack).
        attempt.failed();
        return Err(fail(actor, LoginFailure::TokenInvalid, AuthError::ProviderTokenInvalid, return_to).await);
    }
    if let Some(error) = query.error {
        attempt.cancelled();
        let code: String =
            error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect::<String>();
        return Err(fail(actor, LoginFailure::ProviderRefused, AuthError::ProviderRefused(code), return_to).await);
    }
    let Some(code) = query.code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
        attempt.failed();
        return Err(fail(actor, LoginFailure::TokenInvalid, AuthError::ProviderTokenInvalid, return_to).await);
    };
    let (claims, id_token) = match verified_claims(provider, &flow, &code).await {
        Ok(found) => found,
        Err(OidcError::Unreachable(e)) => {
            attempt.cancelled();
            tracing::warn!(provider = %provider.slug, error = %e, "OpenID provider unreachable during a sign-in");
            let error = AuthError::ProviderUnavailable(provider.name().to_string());
            return Err(fail(actor, LoginFailure::ProviderUnreachable, error, return_to).await);
        }
        Err(OidcError::Invalid(e)) => {
            attempt.failed();
            tracing::warn!(provider = %provider.slug, error = %e, "OpenID sign-in refused");
            return Err(fail(actor, LoginFailure::TokenInvalid, AuthError::ProviderTokenInvalid, return_to).await);
        }
    };
    // The token is genuine: whatever follows is not a guess.
    attempt.cancelled();
    let username = claim_text(&claims, &provider.config.username_claim).unwrap_or_default();
    let actor = Actor { username: username.clone(), ..actor };
    if crate::accounts::check_username(&username).is_err() {
        let error = AuthError::UsernameUnusable(username.chars().take(64).collect());
        return Err(fail(actor, LoginFailure::UsernameUnusable, error, return_to).await);
    }
    let display_name = claim_text(&claims, &provider.config.display_name_claim).unwrap_or_default();
    let groups = claim_list(&claims, &provider.config.groups_claim);
    let subject = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
    let external_id = format!("{}#{subject}", provider.config.issuer.trim());
    let existing = match users::by_username(&state.db, &username).await {
        Ok(found) => found,
        Err(e) => return Err(Failed { error: e.into(), return_to }),
    };
    if existing.as_ref().is_some_and(|u| u.source() != Source::Oidc || u.external_id.as_deref() != Some(&external_id)) {
        return Err(fail(actor, LoginFailure::AccountConflict, AuthError::AccountConflict, return_to).await);
    }
    let identity = Identity {
        source: Source::Oidc,
        external_id: &external_id,
        username: &username,
        display_name: &display_name,
        groups: &groups,
    };
    let user = match admit::admit(&state.db, &state.config.auth, identity, existing, &addr.to_string()).await {
        Ok(Admission::Admitted(user)) => *user,
        Ok(Admission::NoRole) => {
            return Err(fail(actor, LoginFailure::NotInMappedGroup, AuthError::NotPermitted, return_to).await);
        }
        Err(AdmitError::Db(e)) => return Err(Failed { error: e.into(), return_to }),
        Err(AdmitError::InvalidUsername(name)) => {
            return Err(fail(actor, LoginFailure::UsernameUnusable, AuthError::UsernameUnusable(name), return_to).await);
        }
        Err(e) => {
            tracing::error!(error = %e, user = %username, "an OpenID user could not be admitted");
            return Err(Failed { error: AuthError::Internal(e.to_string()), return_to });
        }
    };
    if user.is_disabled() {
        return Err(fail(actor, LoginFailure::Disabled, AuthError::AccountDisabled, return_to).await);
    }
    let login = match login::open_session(state, user, Source::Oidc, addr, user_agent).await {
        Ok(login) => login,
        Err(error) => return Err(Failed { error, return_to }),
    };
    if let Some(url) = end_session_url(provider, &flow, &id_token).await
        && let Err(e) = sessions::set_end_session_url(&state.db, &login.user.session_id, &url).await
    {
        return Err(Failed { error: e.into(), return_to });
    }
    Ok(Finished { login, return_to })
}

/// The code exchanged, the ID token checked, and its claims with the userinfo endpoint's
/// added when the username or groups claim is not in the token (some providers put only the
/// required claims there).
async fn verified_claims(
    provider: &Provider,
    flow: &Flow,
    code: &str,
) -> Result<(Map<String, Value>, String), OidcError> {
    let metadata = provider.metadata().await?;
    let tokens = provider.exchange_code(&metadata, code, &flow.redirect_uri, &flow.code_verifier).await?;
    let Some(id_token) = tokens.id_token else {
        return Err(OidcError::Invalid("the token endpoint gave no ID token (is \"openid\" a scope?)".into()));
    };
    let expected = Expected {
        issuer: provider.config.issuer.trim(),
        client_id: &provider.config.client_id,
        nonce: &flow.nonce,
        algorithms: &provider.config.algorithms,
    };
    let keys = provider.keys(&metadata, false).await?;
    let mut claims = match id_token::check(&id_token, &keys, &expected) {
        Ok(claims) => claims,
        Err(Refusal::NoKey) => {
            let keys = provider.keys(&metadata, true).await?;
            id_token::check(&id_token, &keys, &expected).map_err(|r| match r {
                Refusal::NoKey => OidcError::Invalid("no key of the provider fits the ID token".into()),
                Refusal::Invalid(why) => OidcError::Invalid(why),
            })?
        }
        Err(Refusal::Invalid(why)) => return Err(OidcError::Invalid(why)),
    };
    let groups_claim = &provider.config.groups_claim;
    let missing = !claims.contains_key(&provider.config.username_claim)
        || (!groups_claim.is_empty() && !claims.contains_key(groups_claim));
    if missing && let Some(access_token) = &tokens.access_token {
        let info = provider.userinfo(&metadata, access_token).await?;
        if !info.is_empty() {
            // OpenID Connect Core 5.3.2: userinfo's sub must be the ID token's.
            if info.get("sub") != claims.get("sub") {
                return Err(OidcError::Invalid("the userinfo endpoint answered for another subject".into()));
            }
            for (k, v) in info {
                claims.entry(k).or_insert(v);
            }
        }
    }
    Ok((claims, id_token))
}

/// A claim as text (a string, or a number).
fn claim_text(claims: &Map<String, Value>, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A claim as a list of strings (an array of strings, or one string); at most 1,000.
fn claim_list(claims: &Map<String, Value>, name: &str) -> Vec<String> {
    if name.is_empty() {
        return Vec::new();
    }
    match claims.get(name) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).take(1000).map(str::to_string).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The provider's end-session URL for this sign-in, when it has one: the ID token as hint,
/// back to this server's start page afterwards (register it at the provider as a
/// post-logout redirect URI).
async fn end_session_url(provider: &Provider, flow: &Flow, id_token: &str) -> Option<String> {
    let metadata = provider.metadata().await.ok()?;
    let endpoint = metadata.end_session_endpoint.as_ref()?;
    let mut url = url::Url::parse(endpoint).ok()?;
    let back = url::Url::parse(&flow.redirect_uri).ok()?.join("/").ok()?;
    url.query_pairs_mut()
        .append_pair("id_token_hint", id_token)
        .append_pair("client_id", &provider.config.client_id)
        .append_pair("post_logout_redirect_uri", back.as_str());
    Some(url.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_stays_on_this_server() {
        assert_eq!(safe_return_to(Some("/admin/users?q=a")), "/admin/users?q=a");
        for bad in ["https://evil.example", "//evil.example/", "/\\evil", "evil", "/a\nb"] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_return_to(None), "/");
    }

    #[test]
    fn claims_become_text_and_lists() {
        let claims: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "preferred_username": " ann ", "uid": 42, "groups": ["staff", 3, "tech"], "one": "staff", "obj": {}
        }))
        .unwrap();
        assert_eq!(claim_text(&claims, "preferred_username").as_deref(), Some("ann"));
        assert_eq!(claim_text(&claims, "uid").as_deref(), Some("42"));
        assert_eq!(claim_text(&claims, "obj"), None);
        assert_eq!(claim_list(&claims, "groups"), ["staff", "tech"]);
        assert_eq!(claim_list(&claims, "one"), ["staff"]);
        assert!(claim_list(&claims, "missing").is_empty());
        assert!(claim_list(&claims, "").is_empty());
    }

    #[test]
    fn host_headers_are_plain_hosts() {
        assert!(valid_host_header("lab.campus.example:8443"));
        assert!(valid_host_header("[::1]:443"));
        for bad in ["", "evil.example/path", "a b", "x@y"] {
            assert!(!valid_host_header(bad), "{bad}");
        }
    }
}
