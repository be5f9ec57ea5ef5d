//! [`ApiError`]: every way a canvas call fails, as the client is told it.
//! 4xx bodies say what was wrong; 5xx bodies say little and the cause goes
//! to the log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::ErrorCode;
use protocol::http::{ErrorBody, ErrorDetail};

use crate::store::StoreError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("({x}, {y}) is outside the {width}x{height} board")]
    OutOfBounds {
        x: i64,
        y: i64,
        width: u32,
        height: u32,
    },
    #[error("{0}")]
    InvalidColor(String),
    #[error("{0}")]
    InvalidUsername(String),
    #[error("you can place another pixel in {}.{:03} s", retry_after_ms / 1000, retry_after_ms % 1000)]
    Cooldown { retry_after_ms: u64 },
    #[error("you are banned from placing pixels")]
    Banned,
    #[error("this pixel is protected by the moderators")]
    Protected,
    #[error("moderation is disabled: no ADMIN_TOKEN is configured")]
    ModerationDisabled,
    #[error("nobody has placed the pixel at ({x}, {y})")]
    NeverPlaced { x: u32, y: u32 },
    #[error(
        "the replay log no longer reaches back to seq {since} (latest is {latest_seq}); refetch the board"
    )]
    Gone { since: u64, latest_seq: u64 },
    #[error("{0}")]
    NotFound(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// A body that does not say it is JSON (415, code `bad_request`).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The cause is logged, not sent.
    #[error("the canvas store is unavailable; nothing was stored, try again shortly")]
    Unavailable(String),
    /// The cause is logged, not sent.
    #[error("internal error")]
    Internal(String),
    /// No valid session token (or admin token) where one is needed; says
    /// which fault.
    #[error("{0}")]
    Unauthorized(String),
    /// The name is held by another live session.
    #[error("the username {username:?} is taken; choose another, or retry in {} s", retry_after_ms.div_ceil(1000))]
    UsernameTaken {
        username: String,
        retry_after_ms: u64,
    },
    /// Too many requests from one IP (session issuance, the per-IP
    /// placement pool).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_ms: u64,
    },
    #[error("the request took longer than {0} s")]
    RequestTimeout(u64),
    #[error(
        "the {width}x{height} board is too large to read whole; read it by chunks: GET /api/chunk/{{cx}}/{{cy}}.bin"
    )]
    BoardTooLarge { width: u32, height: u32 },
    /// What the Redis Cluster store does not do yet.
    #[error("{0} are not available while the board is on a Redis Cluster (not built yet)")]
    NotOnCluster(&'static str),
    /// An error as a remote canvas-api reported it.
    #[error("{}", .0.message)]
    Remote(ErrorDetail),
}

impl ApiError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) | ApiError::UnsupportedMediaType(_) => ErrorCode::BadRequest,
            ApiError::OutOfBounds { .. } => ErrorCode::OutOfBounds,
            ApiError::InvalidColor(_) => ErrorCode::InvalidColor,
            ApiError::InvalidUsername(_) => ErrorCode::InvalidUsername,
            ApiError::Cooldown { .. } => ErrorCode::Cooldown,
            ApiError::Banned => ErrorCode::Banned,
            ApiError::Protected => ErrorCode::Protected,
            ApiError::ModerationDisabled => ErrorCode::ModerationDisabled,
            ApiError::NeverPlaced { .. } => ErrorCode::NeverPlaced,
            ApiError::Gone { .. } => ErrorCode::Gone,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
            ApiError::Unauthorized(_) => ErrorCode::Unauthorized,
            ApiError::UsernameTaken { .. } => ErrorCode::UsernameTaken,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::RequestTimeout(_) => ErrorCode::RequestTimeout,
            ApiError::BoardTooLarge { .. } => ErrorCode::BoardTooLarge,
            ApiError::NotOnCluster(_) => ErrorCode::NotOnCluster,
            ApiError::Remote(detail) => detail.code,
        }
    }

    pub fn retry_after_ms(&self) -> Option<u64> {
        match self {
            ApiError::Cooldown { retry_after_ms }
            | ApiError::UsernameTaken { retry_after_ms, .. }
            | ApiError::RateLimited { retry_after_ms, .. } => Some(*retry_after_ms),
            ApiError::Remote(detail) => detail.retry_after_ms,
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        if let ApiError::UnsupportedMediaType(_) = self {
            return StatusCode::UNSUPPORTED_MEDIA_TYPE;
        }
        match self.code() {
            ErrorCode::BadRequest
            | ErrorCode::UnknownType
            | ErrorCode::InvalidColor
            | ErrorCode::InvalidUsername
            | ErrorCode::OutOfBounds
            | ErrorCode::FrameTooLarge
            | ErrorCode::BinaryNotSupported => StatusCode::BAD_REQUEST,
            ErrorCode::Cooldown | ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::NeverPlaced | ErrorCode::NotFound | ErrorCode::ModerationDisabled => {
                StatusCode::NOT_FOUND
            }
            ErrorCode::Banned | ErrorCode::Protected => StatusCode::FORBIDDEN,
            ErrorCode::Gone => StatusCode::GONE,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::UsernameTaken => StatusCode::CONFLICT,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::BoardTooLarge => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::NotOnCluster => StatusCode::NOT_IMPLEMENTED,
            ErrorCode::Internal | ErrorCode::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code(),
            message: self.to_string(),
            retry_after_ms: self.retry_after_ms(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => ApiError::Unavailable(cause),
            StoreError::Corrupt(cause) => ApiError::Internal(cause),
            StoreError::Unsupported(what) => ApiError::NotOnCluster(what),
            StoreError::TooLargeToReadWhole { width, height } => {
                ApiError::BoardTooLarge { width, height }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Unavailable(cause) => tracing::warn!(%cause, "canvas store unavailable"),
            ApiError::Internal(cause) => tracing::error!(%cause, "internal error"),
            _ => {}
        }
        let mut response = (
            self.status(),
            Json(ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response();
        if let Some(ms) = self.retry_after_ms() {
            let secs = ms.div_ceil(1000).max(1);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
