//! The portal's request guards. Every handler names what it needs in its signature, and the
//! guard checks it before the handler's body runs:
//!
//! - [`PortalPage<G>`]: a page (GET or HEAD only): a live session with `portal.access`
//!   (else the login page), then `G` (else 403);
//! - [`PortalForm<G, T>`]: a state change: the same, then the session's CSRF token (the
//!   form field `csrf`, else 403 and nothing changed), then `G`, then the form parsed as `T`;
//! - [`PortalUpload<G>`]: a multipart state change (a file upload): the same checks, with the
//!   token from the `csrf` part; the parts are read into memory first, bounded.
//!
//! `PortalPage` refuses every method but GET and HEAD, so a handler that changes state
//! cannot be written without the CSRF check, and no handler can forget its permission.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::{FromRequest, FromRequestParts, Multipart, Request};
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::{PortalError, PortalUser};
use crate::auth::{self, Grant};
use crate::state::AppState;

/// A portal page for a user whom `G` allows.
pub struct PortalPage<G: Grant>(pub PortalUser, PhantomData<G>);

impl<G: Grant> Deref for PortalPage<G> {
    type Target = PortalUser;
    fn deref(&self) -> &PortalUser {
        &self.0
    }
}

/// The signed-in portal user of `parts`, if `G` allows them.
async fn allowed<G: Grant>(parts: &mut Parts, state: &AppState) -> Result<PortalUser, Response> {
    let portal = PortalUser::from_request_parts(parts, state).await?;
    if !G::allows(portal.user.permissions) {
        return Err(PortalError::Forbidden(G::NEEDS.name()).into_response());
    }
    Ok(portal)
}

impl<G: Grant> FromRequestParts<AppState> for PortalPage<G> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET && parts.method != Method::HEAD {
            // A state change must go through PortalForm or PortalUpload (CSRF).
            return Err(PortalError::Csrf.into_response());
        }
        Ok(PortalPage(allowed::<G>(parts, state).await?, PhantomData))
    }
}

fn check_csrf(portal: &PortalUser, token: &str) -> Result<(), PortalError> {
    if auth::csrf::matches(&portal.csrf, token) { Ok(()) } else { Err(PortalError::Csrf) }
}

/// A form post from a user whom `G` allows, with this session's CSRF token; `form` is the
/// rest of the form.
pub struct PortalForm<G: Grant, T> {
    pub portal: PortalUser,
    pub form: T,
    _grant: PhantomData<G>,
}

#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<G: Grant, T: DeserializeOwned> FromRequest<AppState> for PortalForm<G, T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let portal = PortalUser::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, super::MAX_FORM_BYTES)
            .await
            .map_err(|_| PortalError::BadRequest("The form is too large.".into()).into_response())?;
        // The token first: a forged post learns nothing, not even whether it was allowed.
        let CsrfField { csrf } = serde_urlencoded::from_bytes(&bytes).map_err(|_| PortalError::Csrf.into_response())?;
        check_csrf(&portal, &csrf).map_err(IntoResponse::into_response)?;
        if !G::allows(portal.user.permissions) {
            return Err(PortalError::Forbidden(G::NEEDS.name()).into_response());
        }
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| PortalError::BadRequest(format!("The form is not valid: {e}.")).into_response())?;
        Ok(PortalForm { portal, form, _grant: PhantomData })
    }
}

/// A multipart post (an upload) from a user whom `G` allows, with this session's CSRF
/// token: every part's bytes by name (the last of a repeated name).
pub struct PortalUpload<G: Grant> {
    pub portal: PortalUser,
    pub parts: HashMap<String, axum::body::Bytes>,
    _grant: PhantomData<G>,
}

impl<G: Grant> FromRequest<AppState> for PortalUpload<G> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let portal = PortalUser::from_request_parts(&mut parts, state).await?;
        let bad = |e: String| PortalError::BadRequest(e).into_response();
        let mut multipart = Multipart::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|e| bad(format!("The upload is not a form: {e}")))?;
        let mut fields = HashMap::new();
        let mut total = 0usize;
        while let Some(field) = multipart.next_field().await.map_err(|e| bad(e.to_string()))? {
            let name = field.name().unwrap_or_default().to_string();
            let bytes = field.bytes().await.map_err(|e| bad(e.to_string()))?;
            total += bytes.len();
            if total > super::MAX_UPLOAD_BYTES {
                return Err(bad(format!("The upload is larger than {} MiB.", super::MAX_UPLOAD_BYTES >> 20)));
            }
            fields.insert(name, bytes);
        }
        let csrf = fields.get("csrf").map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
        check_csrf(&portal, &csrf).map_err(IntoResponse::into_response)?;
        if !G::allows(portal.user.permissions) {
            return Err(PortalError::Forbidden(G::NEEDS.name()).into_response());
        }
        Ok(PortalUpload { portal, parts: fields, _grant: PhantomData })
    }
}
