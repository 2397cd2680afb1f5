//! Sign-in with OpenID Connect providers (`[[auth.oidc]]`; README "Campus sign-in").
//!
//! The authorization-code flow with PKCE, `state` and `nonce` (`flow`): `start` stores the
//! sign-in in progress and sends the browser to the provider; `finish` takes it back once,
//! exchanges the code, checks the ID token (`id_token`) and opens a LabBeam session for the
//! account the claims map to (the same role map as the campus directory).
//!
//! Built on jsonwebtoken (signatures and registered claims, with the ring provider of
//! `auth::jwt`) and reqwest (one HTTP client, rustls on ring), not on the `openidconnect`
//! crate: that one brings RustCrypto's RSA and elliptic-curve code, a second crypto stack
//! beside ring, for checks that are a screenful here.
//!
//! Each provider's discovery document and signing keys are fetched when first needed (a
//! provider down does not stop `serve`; local accounts still sign in) and kept for an hour;
//! an ID token signed with a key not seen yet makes the keys be read again (key rotation),
//! at most once every 30 s.

pub mod flow;
pub mod id_token;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::config::OidcConfig;

/// Largest answer read from a provider.
const MAX_BODY: usize = 1 << 20;
/// How long a discovery document or key set is used before it is read again.
const CACHE_FOR: Duration = Duration::from_secs(3600);
/// Keys are read again for an unknown key id at most this often.
const REFETCH_KEYS_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum OidcError {
    /// The provider did not answer, or answered with a server error.
    #[error("{0}")]
    Unreachable(String),
    /// The provider answered, but not as it should (a refused code, a bad token, a broken
    /// document).
    #[error("{0}")]
    Invalid(String),
}

/// The parts of the discovery document LabBeam uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub userinfo_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Vec<String>,
}

struct Cached<T> {
    at: Instant,
    value: Arc<T>,
}

/// One configured provider.
pub struct Provider {
    pub position: usize,
    pub slug: String,
    pub config: OidcConfig,
    secret: String,
    http: reqwest::Client,
    metadata: tokio::sync::Mutex<Option<Cached<Metadata>>>,
    keys: tokio::sync::Mutex<Option<Cached<JwkSet>>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("slug", &self.slug).field("issuer", &self.config.issuer).finish()
    }
}

/// Every `[[auth.oidc]]` provider, in the file's order.
#[derive(Debug, Default)]
pub struct Providers(Vec<Arc<Provider>>);

impl Providers {
    /// Reads each provider's client secret and CA file now, so a mistake stops `serve`
    /// with a clear line instead of failing every sign-in later.
    pub fn from_config(list: &[OidcConfig]) -> anyhow::Result<Providers> {
        let mut providers = Vec::new();
        for (position, config) in list.iter().enumerate() {
            let what = format!("auth.oidc provider {:?}", config.name);
            let secret = match &config.client_secret_file {
                Some(file) => crate::config::read_secret_file(file, &format!("{what} client_secret_file"))?,
                None => anyhow::bail!("{what} needs client_secret_file"),
            };
            let tls = crate::tls::client_config(config.ca_file.as_deref(), &what)?;
            let http = reqwest::Client::builder()
                .tls_backend_preconfigured(tls)
                .timeout(Duration::from_secs(config.timeout_secs))
                .connect_timeout(Duration::from_secs(config.timeout_secs.min(5)))
                // The provider's endpoints are taken as they are: a redirect is an error.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("LabBeam/", env!("CARGO_PKG_VERSION")))
                .build()
                .with_context(|| format!("{what}: the HTTP client"))?;
            providers.push(Arc::new(Provider {
                position,
                slug: config.slug(),
                config: config.clone(),
                secret,
                http,
                metadata: tokio::sync::Mutex::new(None),
                keys: tokio::sync::Mutex::new(None),
            }));
        }
        Ok(Providers(providers))
    }

    /// The provider named by its slug or its position (`0` for the first).
    pub fn find(&self, id: &str) -> Option<&Arc<Provider>> {
        match id.parse::<usize>() {
            Ok(position) => self.0.get(position),
            Err(_) => self.0.iter().find(|p| p.slug == id),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.0.iter()
    }
}

impl Provider {
    pub fn name(&self) -> &str {
        self.config.name.trim()
    }

    /// The discovery document, read when missing or older than an hour (an old one is used
    /// while the provider does not answer).
    pub async fn metadata(&self) -> Result<Arc<Metadata>, OidcError> {
        let mut cached = self.metadata.lock().await;
        if let Some(c) = cached.as_ref()
            && c.at.elapsed() < CACHE_FOR
        {
            return Ok(c.value.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim().trim_end_matches('/'));
        let fetched = self.get_json::<Metadata>(&url).await.and_then(|m| self.check_metadata(m));
        match (fetched, cached.as_ref()) {
            (Ok(m), _) => {
                let value = Arc::new(m);
                *cached = Some(Cached { at: Instant::now(), value: value.clone() });
                Ok(value)
            }
            (Err(OidcError::Unreachable(e)), Some(old)) => {
                tracing::warn!(provider = %self.slug, error = %e, "discovery document not read again; using the last one");
                Ok(old.value.clone())
            }
            (Err(e), _) => Err(e),
        }
    }

    fn check_metadata(&self, m: Metadata) -> Result<Metadata, OidcError> {
        if m.issuer != self.config.issuer.trim() {
            return Err(OidcError::Invalid(format!(
                "the discovery document names the issuer {:?}, not {:?} as configured (auth.oidc issuer must be \
                 exactly the provider's)",
                m.issuer, self.config.issuer
            )));
        }
        for (what, url) in [
            ("authorization_endpoint", Some(&m.authorization_endpoint)),
            ("token_endpoint", Some(&m.token_endpoint)),
            ("jwks_uri", Some(&m.jwks_uri)),
            ("userinfo_endpoint", m.userinfo_endpoint.as_ref()),
            ("end_session_endpoint", m.end_session_endpoint.as_ref()),
        ] {
            if let Some(url) = url
                && !url.starts_with("https://")
            {
                return Err(OidcError::Invalid(format!("the provider's {what} {url:?} is not an https:// URL")));
            }
        }
        Ok(m)
    }

    /// The provider's signing keys; `fresh` reads them again (an ID token named a key not
    /// in the set), unless they were read less than 30 s ago.
    pub async fn keys(&self, metadata: &Metadata, fresh: bool) -> Result<Arc<JwkSet>, OidcError> {
        let mut cached = self.keys.lock().await;
        if let Some(c) = cached.as_ref() {
            let age = c.at.elapsed();
            if (!fresh && age < CACHE_FOR) || (fresh && age < REFETCH_KEYS_AFTER) {
                return Ok(c.value.clone());
            }
        }
        let set = Arc::new(self.get_json::<JwkSet>(&metadata.jwks_uri).await?);
        *cached = Some(Cached { at: Instant::now(), value: set.clone() });
        Ok(set)
    }

    async fn get_json<T: DeserializeOwned>(&self, url: &str) -> Result<T, OidcError> {
        let response = self
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(format!("{url}: {}", error_chain(&e))))?;
        read_json(url, response).await
    }

    /// Exchanges an authorization code at the token endpoint (client_secret_basic, or
    /// client_secret_post when the provider offers only that).
    pub async fn exchange_code(
        &self,
        metadata: &Metadata,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<TokenResponse, OidcError> {
        let methods = &metadata.token_endpoint_auth_methods_supported;
        let post = !methods.is_empty()
            && !methods.iter().any(|m| m == "client_secret_basic")
            && methods.iter().any(|m| m == "client_secret_post");
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ];
        let mut request = self.http.post(&metadata.token_endpoint).header(reqwest::header::ACCEPT, "application/json");
        if post {
            form.push(("client_id", &self.config.client_id));
            form.push(("client_secret", &self.secret));
        } else {
            // RFC 6749 2.3.1: both form-encoded before they are joined.
            let id: String = url::form_urlencoded::byte_serialize(self.config.client_id.as_bytes()).collect();
            let secret: String = url::form_urlencoded::byte_serialize(self.secret.as_bytes()).collect();
            request = request.basic_auth(id, Some(secret));
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(format!("token endpoint: {}", error_chain(&e))))?;
        let status = response.status();
        if status.is_client_error() {
            let body: serde_json::Value = read_json("token endpoint", response).await.unwrap_or_default();
            let error = body.get("error").and_then(|e| e.as_str()).unwrap_or("no error code");
            return Err(OidcError::Invalid(format!("the token endpoint refused the code ({status}: {error})")));
        }
        read_json("token endpoint", response).await
    }

    /// The userinfo endpoint's claims, for the access token.
    pub async fn userinfo(
        &self,
        metadata: &Metadata,
        access_token: &str,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
        let Some(url) = &metadata.userinfo_endpoint else {
            return Ok(serde_json::Map::new());
        };
        let response = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(format!("userinfo endpoint: {}", error_chain(&e))))?;
        if response.status().is_client_error() {
            return Err(OidcError::Invalid(format!("the userinfo endpoint answered {}", response.status())));
        }
        read_json("userinfo endpoint", response).await
    }
}

/// What the token endpoint answers.
#[derive(Debug, Deserialize)]
pub struct TokenResponse {
    pub id_token: Option<String>,
    pub access_token: Option<String>,
}

async fn read_json<T: DeserializeOwned>(what: &str, mut response: reqwest::Response) -> Result<T, OidcError> {
    let status = response.status();
    if status.is_server_error() {
        return Err(OidcError::Unreachable(format!("{what} answered {status}")));
    }
    if !status.is_success() && !status.is_client_error() {
        return Err(OidcError::Invalid(format!("{what} answered {status}")));
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| OidcError::Unreachable(format!("{what}: {}", error_chain(&e))))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(OidcError::Invalid(format!("{what} answered more than {MAX_BODY} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return serde_json::from_slice(&body).map_err(|_| OidcError::Invalid(format!("{what} answered {status}")));
    }
    serde_json::from_slice(&body)
        .map_err(|e| OidcError::Invalid(format!("{what} did not answer JSON as expected: {e}")))
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
