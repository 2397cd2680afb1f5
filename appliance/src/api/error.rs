//! The one place where errors become HTTP answers: `{"error":{"code","message"}}` with a
//! stable snake_case code. Module errors convert into `ApiError`; Socket.IO acks reuse
//! `code()` and `message` so both transports say the same thing.

use axum::extract::FromRequest;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::auth::AuthError;
use crate::db::DbError;
use crate::signaling::SignalError;

/// `Retry-After` of a `directory_unavailable` answer.
const DIRECTORY_RETRY_AFTER_SECS: u64 = 30;
/// `Retry-After` of a `store_unavailable` answer: a database restart takes seconds.
const STORE_RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        // The detail goes to the log, never to the client.
        tracing::error!(error = %detail, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "something went wrong on the server; it was logged")
    }

    /// 503 `store_unavailable`: the database is away (stopped, restarting, unreachable);
    /// the request may be repeated, and works again once the database is back.
    pub fn store_unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "store unavailable");
        Self {
            retry_after: Some(STORE_RETRY_AFTER_SECS),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", crate::db::UNAVAILABLE_MESSAGE)
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code, "message": self.message } })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let message = e.to_string();
        let (status, code) = match &e {
            AuthError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            AuthError::AccountDisabled => (StatusCode::FORBIDDEN, "account_disabled"),
            AuthError::TooManyAttempts { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            AuthError::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            AuthError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            AuthError::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            AuthError::SessionExpired => (StatusCode::UNAUTHORIZED, "session_expired"),
            AuthError::SessionRevoked => (StatusCode::UNAUTHORIZED, "session_revoked"),
            AuthError::PasswordChangeRequired => (StatusCode::FORBIDDEN, "password_change_required"),
            AuthError::CsrfRequired => (StatusCode::FORBIDDEN, "csrf_required"),
            AuthError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AuthError::WeakPassword(_) => (StatusCode::BAD_REQUEST, "weak_password"),
            AuthError::Internal(detail) => return ApiError::internal(detail),
            AuthError::StoreUnavailable(detail) => return ApiError::store_unavailable(detail),
            AuthError::DirectoryUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "directory_unavailable"),
            AuthError::NotPermitted => (StatusCode::FORBIDDEN, "not_permitted"),
            AuthError::LocalSignInOff => (StatusCode::FORBIDDEN, "local_sign_in_off"),
            AuthError::SignInExpired => (StatusCode::BAD_REQUEST, "invalid_state"),
            AuthError::ProviderUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable"),
            AuthError::ProviderRefused(_) => (StatusCode::UNAUTHORIZED, "provider_refused"),
            AuthError::ProviderTokenInvalid => (StatusCode::UNAUTHORIZED, "token_invalid"),
            AuthError::AccountConflict => (StatusCode::CONFLICT, "account_conflict"),
            AuthError::UsernameUnusable(_) => (StatusCode::FORBIDDEN, "username_unusable"),
        };
        let mut api = ApiError::new(status, code, message);
        if let AuthError::DirectoryUnavailable = e {
            api.retry_after = Some(DIRECTORY_RETRY_AFTER_SECS);
        }
        if let AuthError::TooManyAttempts { retry_after_secs } | AuthError::Busy { retry_after_secs } = e {
            api.retry_after = Some(retry_after_secs);
        }
        api
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

impl From<SignalError> for ApiError {
    fn from(e: SignalError) -> Self {
        let status = match &e {
            SignalError::Invalid(_) | SignalError::UnknownLab(_) => StatusCode::BAD_REQUEST,
            SignalError::TooLarge { .. } | SignalError::TooManyFiles(_) | SignalError::TextTooLong { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            SignalError::Forbidden(_) | SignalError::NotParty | SignalError::ExamMode => StatusCode::FORBIDDEN,
            SignalError::PeerOffline
            | SignalError::UnknownTransfer
            | SignalError::UnknownAnnouncement
            | SignalError::NoRecipients => StatusCode::NOT_FOUND,
            SignalError::PeerCannotReceive | SignalError::WrongState(_) | SignalError::NotConnected => {
                StatusCode::CONFLICT
            }
            SignalError::TransferEnded(_) => StatusCode::GONE,
            SignalError::UnknownHandin => StatusCode::NOT_FOUND,
            SignalError::HandinClosed | SignalError::DeadlinePassed => StatusCode::GONE,
            SignalError::NotInLab(_) => StatusCode::FORBIDDEN,
            SignalError::ExtensionNotAllowed { .. } => StatusCode::BAD_REQUEST,
            SignalError::HandinTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            SignalError::CollectorOffline => StatusCode::CONFLICT,
            SignalError::TooManyPending(_) | SignalError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            SignalError::Internal(detail) => return ApiError::internal(detail),
            SignalError::StoreUnavailable(detail) => return ApiError::store_unavailable(detail),
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_unavailable() {
            return ApiError::store_unavailable(e);
        }
        match e {
            DbError::Conflict(what) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", format!("{what} already exists"))
            }
            DbError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            other => ApiError::internal(other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is too large")
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            _ => {
                let detail = r.body_text();
                let message = match r {
                    JsonRejection::JsonDataError(_) => format!("the JSON does not have the expected fields: {detail}"),
                    _ => format!("the body is not valid JSON: {detail}"),
                };
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message)
            }
        }
    }
}

/// `axum::Json` whose rejections use the JSON error body.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
    }
}
