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
/// Response header of `GET /api/chunk/{cx}/{cy}.bin`: pixels along one side
/// of a chunk (the body is that squared, times 3 bytes of RGB).
pub const HEADER_CANVAS_CHUNK_SIZE: &str = "x-canvas-chunk-size";
/// Sent by a gateway on `PUT /api/pixel`: its signature over this placement
/// (user, client IP, pixel, color, a deadline), made with a key derived from
/// `AUTH_SECRET`. With a valid one, canvas-api counts the body's `ip` for the
/// per-IP pool, and leaves answering to the gateway (it
/// answers its WebSocket client itself, so the user is not told of it as a
/// placement made over HTTP). Without one, or with one that does not match,
/// the request is an ordinary HTTP placement.
pub const HEADER_GATEWAY_PROOF: &str = "x-canvas-gateway-proof";

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
    /// The pixel pool: a user holds up to `poolSize` pixels and gets one
    /// back every `poolRefillMs` (absent: no pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_refill_ms: Option<u64>,
    /// The canvas-wide `seq` when the config was read (0 on a Redis
    /// Cluster, which counts `seq` per chunk: a chunk's comes with it).
    #[serde(default)]
    pub seq: u64,
    /// `AUTH=required`: placing needs a session token (`POST /api/session`).
    #[serde(default)]
    pub auth_required: bool,
    /// Pixels along one side of a chunk (`GET /api/chunk/{cx}/{cy}.bin`,
    /// `subscribe`); 0 from servers that predate chunks.
    #[serde(default)]
    pub chunk_size: u32,
    /// Whether the board is small enough to read whole (`canvas.bin`);
    /// a client of a larger board loads the chunks it views.
    #[serde(default = "whole_by_default")]
    pub whole_board: bool,
}

fn whole_by_default() -> bool {
    true
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
    /// The placing client's IP, for per-IP limits. canvas-api believes it
    /// only from a gateway (a request carrying a valid
    /// [`HEADER_GATEWAY_PROOF`] that signs it); anyone else is limited by
    /// the address they connect from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
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

/// The most placements one `POST /api/pixels` carries: Redis serves
/// nothing else while the batch's script runs, so a batch stays a few
/// milliseconds of work.
pub const MAX_BATCH_PLACEMENTS: usize = 256;

/// One item of `POST /api/pixels`, the internal route a gateway sends the
/// placements of its WebSockets to, many per request. Like
/// [`PlacePixelRequest`], plus the gateway's proof for this one item (what
/// [`HEADER_GATEWAY_PROOF`] carries for a single placement): an item
/// without a valid proof is an ordinary HTTP placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPlacement {
    pub x: i64,
    pub y: i64,
    pub color: String,
    #[serde(default)]
    pub username: String,
    /// Believed only with a valid `proof` that signs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

/// The answer to one item of `POST /api/pixels`, in the order of the
/// request: `{"placed":{..}}` (stored, and so announced) or
/// `{"failed":{"code",..}}` (nothing stored for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchResult {
    Placed(PlacePixelResponse),
    Failed(ErrorDetail),
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
    /// The pixel's recent placements, newest first (the first is this one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

/// One placement in a pixel's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub color: Color,
    pub username: String,
    pub timestamp: u64,
    pub seq: u64,
}

/// A rectangle of pixels, both corners included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rect {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl Rect {
    pub fn contains(&self, x: u32, y: u32) -> bool {
        (self.x0..=self.x1).contains(&x) && (self.y0..=self.y1).contains(&y)
    }

    pub fn area(&self) -> u64 {
        (u64::from(self.x1) - u64::from(self.x0) + 1)
            * (u64::from(self.y1) - u64::from(self.y0) + 1)
    }
}

/// `POST /api/admin/ban`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BanRequest {
    pub username: String,
    #[serde(default)]
    pub reason: Option<String>,
    /// How long the ban lasts; absent: until unbanned.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// The admin acting (for the audit log); default `admin`.
    #[serde(default)]
    pub by: Option<String>,
}

/// A ban as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BanInfo {
    pub username: String,
    #[serde(default)]
    pub reason: Option<String>,
    /// When it ends (ms since the epoch); absent: never.
    #[serde(default)]
    pub until: Option<u64>,
    pub by: String,
    pub at: u64,
}

/// `POST /api/admin/unban`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnbanRequest {
    pub username: String,
    #[serde(default)]
    pub by: Option<String>,
}

/// `POST /api/admin/rollback`: every pixel of `rect` back to what it showed
/// at `at` (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRequest {
    #[serde(flatten)]
    pub rect: Rect,
    pub at: u64,
    #[serde(default)]
    pub by: Option<String>,
}

/// `POST /api/admin/undo`: every pixel `username` placed since `since` (ms
/// since the epoch) back to what it showed before, unless someone else
/// placed there later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoRequest {
    pub username: String,
    pub since: u64,
    #[serde(default)]
    pub by: Option<String>,
}

/// `POST /api/admin/protect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectRequest {
    #[serde(flatten)]
    pub rect: Rect,
    #[serde(default)]
    pub by: Option<String>,
}

/// A protected rectangle, as listed by `GET /api/admin/protections`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    pub id: u64,
    #[serde(flatten)]
    pub rect: Rect,
    pub by: String,
    pub at: u64,
}

/// `POST /api/admin/unprotect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnprotectRequest {
    pub id: u64,
    #[serde(default)]
    pub by: Option<String>,
}

/// `POST /api/admin/clear`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearRequest {
    #[serde(default)]
    pub by: Option<String>,
}

/// What a moderation action did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModerationResult {
    /// Pixels rewritten (each one a seq'd `pixel_updated`).
    pub changed: u64,
    /// Pixels left as they are: already right, or placed on meanwhile.
    pub skipped: u64,
    /// Pixels whose history did not reach back far enough; they were set
    /// to the background color.
    pub unknown: u64,
    /// The canvas-wide `seq` after the action (0 on a Redis Cluster,
    /// which counts `seq` per chunk).
    pub seq: u64,
}

/// One line of the audit log, `GET /api/admin/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// ms since the epoch.
    pub at: u64,
    pub by: String,
    /// `ban`, `unban`, `rollback`, `undo`, `protect`, `unprotect`, `clear`.
    pub action: String,
    /// What it was done to, and what came of it, in words.
    pub detail: String,
}

/// `GET /api/admin/audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
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

/// The time of the archived board a history read returns
/// (`GET /api/history/board.png`): the last write it includes, in
/// milliseconds since the Unix epoch (with its `seq` in
/// [`HEADER_CANVAS_SEQ`]).
pub const HEADER_HISTORY_TIME: &str = "x-history-time";

/// `GET /api/history`: what the history archive covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryInfo {
    /// The earliest moment that can be shown (ms since the Unix epoch);
    /// `null` while the archive holds nothing.
    pub from: Option<u64>,
    /// The newest archived write's time.
    pub to: Option<u64>,
    /// The newest archived write's `seq`.
    pub last_seq: Option<u64>,
    /// Whole boards kept; showing a moment starts from the nearest.
    pub keyframes: u64,
}
