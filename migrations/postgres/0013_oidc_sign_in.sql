-- OpenID Connect sign-ins in progress (README "Campus sign-in", `oidc` module). A row is
-- made when a browser is sent to the provider and taken (deleted) when it comes back, so
-- a callback is used at most once; rows live 10 minutes. Kept in the store, not in memory,
-- so a restart does not break a sign-in in progress.
--   state:         the `state` parameter sent to the provider (random, single use);
--   binding:       SHA-256 (hex) of the random cookie given to the browser that started it:
--                  a callback from another browser is refused (login CSRF);
--   nonce:         put in the ID token by the provider, checked on the way back;
--   code_verifier: PKCE's secret (RFC 7636), sent with the code;
--   redirect_uri:  the callback URL given to the provider (the code is bound to it);
--   return_to:     the LabBeam page to land on afterwards.
-- `sessions.end_session_url`: where signing out sends the browser, to end the provider's
-- session too (its end_session_endpoint with the ID token as hint); NULL for other
-- sessions. This file is the same in migrations/sqlite and migrations/postgres.
CREATE TABLE oidc_flows (
    state TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    binding TEXT NOT NULL,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    return_to TEXT NOT NULL,
    client_addr TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_flows_expires_at ON oidc_flows (expires_at);
CREATE INDEX oidc_flows_client_addr ON oidc_flows (client_addr);
ALTER TABLE sessions ADD COLUMN end_session_url TEXT;
