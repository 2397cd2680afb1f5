//! OpenID Connect sign-ins in progress (migration 0013): made when a browser is sent to the
//! provider, taken once when it comes back.

use super::{DbError, Store, now, on_pool};

/// How long a browser may take at the provider.
pub const LIFETIME_SECS: i64 = 10 * 60;
/// Sign-ins in progress one client address may have at once: a lecture hall of 500 behind
/// one NAT address, some trying twice, fits; one address cannot take the whole store's share.
pub const MAX_PER_ADDRESS: i64 = 1_000;
/// Sign-ins in progress the whole store holds at once (a row is about 600 bytes): an
/// unauthenticated flood of `start` requests cannot grow the table without bound.
pub const MAX_TOTAL: i64 = 50_000;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Flow {
    pub state: String,
    pub provider: String,
    pub binding: String,
    pub nonce: String,
    pub code_verifier: String,
    pub redirect_uri: String,
    pub return_to: String,
    pub client_addr: String,
    /// When it stops being usable (set by `create`).
    pub expires_at: i64,
}

/// Why a flow was not stored.
#[derive(Debug)]
pub enum Refused {
    /// `MAX_PER_ADDRESS` from this address.
    AddressFull,
    /// `MAX_TOTAL` in the store.
    StoreFull,
}

/// Stores `flow` (its `expires_at` is set here), first deleting the
/// expired ones.
pub async fn create(store: &Store, flow: &Flow) -> Result<Result<(), Refused>, DbError> {
    let at = now();
    on_pool!(store, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM oidc_flows WHERE expires_at < $1").bind(at).execute(&mut *tx).await?;
        let from_address =
            sqlx::query_scalar::<_, i64>("SELECT CAST(COUNT(*) AS BIGINT) FROM oidc_flows WHERE client_addr = $1")
                .bind(&flow.client_addr)
                .fetch_one(&mut *tx)
                .await?;
        if from_address >= MAX_PER_ADDRESS {
            return Ok(Err(Refused::AddressFull));
        }
        let total =
            sqlx::query_scalar::<_, i64>("SELECT CAST(COUNT(*) AS BIGINT) FROM oidc_flows").fetch_one(&mut *tx).await?;
        if total >= MAX_TOTAL {
            return Ok(Err(Refused::StoreFull));
        }
        sqlx::query(
            "INSERT INTO oidc_flows (state, provider, binding, nonce, code_verifier, redirect_uri, return_to, \
             client_addr, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&flow.state)
        .bind(&flow.provider)
        .bind(&flow.binding)
        .bind(&flow.nonce)
        .bind(&flow.code_verifier)
        .bind(&flow.redirect_uri)
        .bind(&flow.return_to)
        .bind(&flow.client_addr)
        .bind(at)
        .bind(at + LIFETIME_SECS)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(()))
    })
}

/// Takes the flow named by `state`: deleted in the same statement, so two callbacks with
/// one `state` cannot both get it. An expired flow is taken but not returned.
pub async fn take(store: &Store, state: &str) -> Result<Option<Flow>, DbError> {
    let at = now();
    let flow = on_pool!(store, |pool| {
        sqlx::query_as::<_, Flow>(
            "DELETE FROM oidc_flows WHERE state = $1 RETURNING state, provider, binding, nonce, code_verifier, \
             redirect_uri, return_to, client_addr, expires_at",
        )
        .bind(state)
        .fetch_optional(pool)
        .await?
    });
    Ok(flow.filter(|f| f.expires_at >= at))
}
