//! The one application state handed to every handler: configuration, store, keys and the
//! shared in-memory parts. Cheap to clone (an `Arc`); no globals anywhere else.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::throttle::LoginThrottle;
use crate::auth::token::TokenKeys;
use crate::config::Config;
use crate::db::Store;
use crate::metrics::Metrics;
use crate::signaling::Signaling;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: Store,
    pub tokens: TokenKeys,
    pub throttle: LoginThrottle,
    pub metrics: Metrics,
    pub signaling: Signaling,
    /// Key of the portal's CSRF tokens.
    pub csrf_key: ring::hmac::Key,
    /// Set once the TURN relay runs (absent when `turn.enabled = false`).
    pub turn: std::sync::OnceLock<crate::turn::IceServerIssuer>,
    /// The store's access generation as last acted on (`access_watch`): the TURN relay
    /// reloads its users and lab ranges when it moves.
    pub access_changes: tokio::sync::watch::Sender<i64>,
    /// The Health page's on-demand ICE run and its last result.
    pub ice_runs: crate::health::IceGate,
    /// The campus directory, when `[auth.ldap]` is set.
    pub directory: Option<Arc<crate::directory::Directory>>,
    /// The OpenID providers of `[[auth.oidc]]` (none when unset).
    pub oidc: crate::oidc::Providers,
}

impl AppState {
    /// Fails when `[auth.ldap]`'s or `[[auth.oidc]]`'s files (passwords, secrets, CAs) cannot
    /// be read.
    pub fn new(config: Config, db: Store, jwt_secret: &[u8]) -> anyhow::Result<Self> {
        let directory = match &config.auth.ldap {
            Some(ldap) => Some(Arc::new(crate::directory::Directory::from_config(ldap)?)),
            None => None,
        };
        let oidc = crate::oidc::Providers::from_config(&config.auth.oidc)?;
        let a = &config.auth;
        let throttle = LoginThrottle::new(
            a.max_failures_per_user,
            a.max_failures_per_address,
            Duration::from_secs(a.throttle_window_secs),
        );
        Ok(AppState(Arc::new(Inner {
            tokens: TokenKeys::new(jwt_secret),
            throttle,
            metrics: Metrics::new(),
            signaling: Signaling::default(),
            csrf_key: crate::auth::csrf::key(jwt_secret),
            config,
            db,
            turn: Default::default(),
            access_changes: tokio::sync::watch::Sender::new(0),
            ice_runs: Default::default(),
            directory,
            oidc,
        })))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
