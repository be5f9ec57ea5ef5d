//! WebSocket close codes the gateway sends, and what a client should do on
//! each. 1000–1015 are RFC 6455's; 4000–4999 are ours.

/// The gateway is shutting down (deploy, scale-down): reconnect, to another
/// replica, after a short jittered delay. Nothing acknowledged is lost.
pub const GOING_AWAY: u16 = 1001;
/// A text frame that is not UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// The connection broke the protocol in a way that cannot be answered with an
/// `error` frame.
pub const POLICY_VIOLATION: u16 = 1008;
/// A frame over `MAX_FRAME_BYTES` (a frame between the protocol's 4 KiB and
/// that gets an `error` frame instead).
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The gateway holds as many connections as it is allowed: try another
/// replica or retry later.
pub const TRY_AGAIN_LATER: u16 = 1013;
/// The client did not read its updates fast enough and its queue overflowed:
/// reconnect and refetch the board (or catch up from `/api/updates`).
pub const TOO_SLOW_RESYNC: u16 = 4008;
/// The `?token=` is not a valid session token (forged, for another secret,
/// expired, or malformed): drop it, get a new one from `POST /api/session`,
/// reconnect. The reason says which.
pub const UNAUTHORIZED: u16 = 4001;
/// Nothing was heard from the client (no message, no pong) for
/// `IDLE_TIMEOUT_SECS`: reconnect when needed.
pub const IDLE_TIMEOUT: u16 = 4002;
/// The client's IP kept sending far past `MESSAGES_PER_SEC_PER_IP` after
/// being told `rate_limited`: reconnect later, and slower.
pub const RATE_LIMITED: u16 = 4029;
