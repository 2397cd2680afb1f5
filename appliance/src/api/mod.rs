//! The JSON API under `/api`. Handlers are thin: parse (`ApiJson`), authorise (extractors
//! from `auth`), call plain functions, map the result (`ApiError`).

mod audit;
mod auth;
mod connection_tests;
pub mod error;
mod ice;
mod oidc;
mod transfers;
mod users;

use axum::Router;
use axum::routing::{get, post};

pub use error::{ApiError, ApiJson};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/providers", get(oidc::providers))
        .route("/auth/oidc/{provider}/start", get(oidc::start))
        .route("/auth/oidc/{provider}/callback", get(oidc::callback))
        .route("/me", get(auth::me))
        .route("/me/password", post(auth::change_password))
        .route("/ice-servers", get(ice::ice_servers))
        .route("/connection-tests", post(connection_tests::record))
        .route("/users", get(users::list))
        .route("/audit", get(audit::list))
        .route("/transfers", get(transfers::list))
        .fallback(not_found)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no API endpoint at {}", uri.path()))
}
