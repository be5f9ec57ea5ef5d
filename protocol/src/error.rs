//! Stable error codes: the `code` of WebSocket `error` frames and of HTTP
//! error bodies. Clients branch on these, so they never change meaning.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message or body is not what the API takes (malformed JSON, a
    /// missing or mistyped field).
    BadRequest,
    /// A WebSocket message whose `type` is missing or not known.
    UnknownType,
    /// Coordinates outside the board.
    OutOfBounds,
    /// Not a `#RRGGBB` color, or a color outside the palette.
    InvalidColor,
    /// A username that is not 1–32 letters, digits, `_` or `-`.
    InvalidUsername,
    /// The user placed a pixel too recently; `retryAfterMs` says when to retry.
    Cooldown,
    /// A WebSocket frame over the size limit.
    FrameTooLarge,
    /// A binary WebSocket frame (protocol v1 is JSON text only).
    BinaryNotSupported,
    /// Too many requests; retry later.
    RateLimited,
    /// The store (Redis, or canvas-api) cannot be reached; nothing was stored.
    Unavailable,
    /// Nobody ever placed the pixel asked about.
    NeverPlaced,
    /// The replay log no longer reaches back that far: refetch the board.
    Gone,
    /// No such route or resource.
    NotFound,
    /// A request body over the size limit.
    PayloadTooLarge,
    /// A fault on our side; the cause is in the server's log.
    Internal,
    /// The user is banned by a moderator and may not place pixels.
    Banned,
    /// The pixel lies in a rectangle protected by a moderator.
    Protected,
    /// No valid token where one is needed: a session token (`AUTH=required`
    /// and none was given, or it is forged, expired or malformed), or the
    /// admin token on an admin route.
    Unauthorized,
    /// An admin route while no `ADMIN_TOKEN` is configured.
    ModerationDisabled,
    /// `POST /api/session` for a name another live session holds.
    UsernameTaken,
    /// The request took longer than `REQUEST_TIMEOUT_SECS`.
    RequestTimeout,
    /// A whole-board read (`canvas.bin`, PNG, the prototype's JSON, the
    /// history) of a board too large to read whole: read it by chunks.
    BoardTooLarge,
    /// Something canvas-api does not do yet when it keeps the board on a
    /// Redis Cluster (whole-board reads, the canvas-wide replay log,
    /// clears): HTTP 501.
    NotOnCluster,
    /// A code this build does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::OutOfBounds => "out_of_bounds",
            ErrorCode::InvalidColor => "invalid_color",
            ErrorCode::InvalidUsername => "invalid_username",
            ErrorCode::Cooldown => "cooldown",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::BinaryNotSupported => "binary_not_supported",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::NeverPlaced => "never_placed",
            ErrorCode::Gone => "gone",
            ErrorCode::NotFound => "not_found",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Internal => "internal",
            ErrorCode::Banned => "banned",
            ErrorCode::Protected => "protected",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::ModerationDisabled => "moderation_disabled",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::BoardTooLarge => "board_too_large",
            ErrorCode::NotOnCluster => "not_on_cluster",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_matches_serde_name() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::UnknownType,
            ErrorCode::OutOfBounds,
            ErrorCode::InvalidColor,
            ErrorCode::InvalidUsername,
            ErrorCode::Cooldown,
            ErrorCode::FrameTooLarge,
            ErrorCode::BinaryNotSupported,
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
            ErrorCode::NeverPlaced,
            ErrorCode::Gone,
            ErrorCode::NotFound,
            ErrorCode::PayloadTooLarge,
            ErrorCode::Internal,
            ErrorCode::Banned,
            ErrorCode::Protected,
            ErrorCode::Unauthorized,
            ErrorCode::ModerationDisabled,
            ErrorCode::UsernameTaken,
            ErrorCode::RequestTimeout,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"brand_new\"").unwrap(),
            ErrorCode::Unknown
        );
    }
}
