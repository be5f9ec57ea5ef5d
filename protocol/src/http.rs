//! Bodies of canvas-api's HTTP API.

use serde::{Deserialize, Serialize};

use crate::{Color, ErrorCode, ServerMessage};

/// Response headers of `GET /api/canvas.bin`.
pub const HEADER_CANVAS_WIDTH: &str = "x-canvas-width";
pub const HEADER_CANVAS_HEIGHT: &str = "x-canvas-height";
/// The `seq` whose write is the last one the returned bytes include.
pub const HEADER_CANVAS_SEQ: &str = "x-canvas-seq";
/// The board's epoch: `seq`s are comparable only within one epoch. Pass it
/// back as `/api/updates?since=SEQ&epoch=EPOCH` to be told (410) when the
/// store lost its data since, even if its `seq` has passed yours again.
pub const HEADER_CANVAS_EPOCH: &str = "x-canvas-epoch";
/// Set by a gateway on `PUT /api/pixel` to say it publishes the event itself,
/// so canvas-api must not publish it a second time, and that it answers its
/// WebSocket client itself, so the user is not told of it as a placement
/// made over HTTP.
pub const HEADER_PUBLISHED_BY_CALLER: &str = "x-canvas-published-by-caller";

/// `GET /api/config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanvasConfig {
    pub width: u32,
    pub height: u32,
    /// The colors that may be placed; empty when `anyColor`.
    pub palette: Vec<Color>,
    #[serde(default)]
    pub any_color: bool,
    pub cooldown_ms: u64,
    /// The canvas-wide `seq` when the config was read.
    #[serde(default)]
    pub seq: u64,
    /// `AUTH=required`: placing needs a session token (`POST /api/session`).
    #[serde(default)]
    pub auth_required: bool,
}

/// `PUT /api/pixel` request. Fields are loose on purpose (see
/// [`crate::ClientMessage`]) so each fault gets its own error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacePixelRequest {
    pub x: i64,
    pub y: i64,
    pub color: String,
    /// Ignored when the request carries a session token
    /// (`Authorization: Bearer`): the token's username places.
    #[serde(default)]
    pub username: String,
}

/// `PUT /api/pixel` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacePixelResponse {
    pub seq: u64,
    pub timestamp: u64,
    pub x: u32,
    pub y: u32,
    pub color: Color,
}

/// `GET /api/pixel/{x}/{y}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelInfo {
    pub x: u32,
    pub y: u32,
    pub color: Color,
    pub username: String,
    pub timestamp: u64,
    pub seq: u64,
}

/// `GET /api/updates?since=SEQ`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatesPage {
    /// `pixel_updated` messages with `seq > since`, in `seq` order.
    pub events: Vec<ServerMessage>,
    /// The canvas-wide `seq` when the page was read.
    pub latest_seq: u64,
    /// True when more events follow; ask again with the last `seq`.
    pub has_more: bool,
    /// The board's epoch (see [`HEADER_CANVAS_EPOCH`]); empty from servers
    /// that predate it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub epoch: String,
}

/// The body of every HTTP error: `{"error":{"code":..,"message":..}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// `GET /api/canvas`: the prototype's JSON board, listing only pixels that
/// differ from the white background, keyed `"x,y"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyCanvas {
    pub width: u32,
    pub height: u32,
    pub seq: u64,
    pub pixels: std::collections::BTreeMap<String, Color>,
}

/// `POST /api/session`: claim a username.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRequest {
    pub username: String,
}

/// `POST /api/session`'s answer: a signed token for `?token=` (WebSocket)
/// and `Authorization: Bearer` (HTTP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    pub token: String,
    pub username: String,
    /// Milliseconds since the Unix epoch when the token stops being valid.
    pub expires_at: u64,
}
