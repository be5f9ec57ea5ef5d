//! WebSocket close codes the gateway sends, and what a client should do on
//! each. 1000–1015 are RFC 6455's; 4000–4999 are ours.

/// The gateway is shutting down (deploy, scale-down): reconnect, to another
/// replica, after a short jittered delay. Nothing acknowledged is lost.
pub const GOING_AWAY: u16 = 1001;
/// The connection broke the protocol in a way that cannot be answered with an
/// `error` frame.
pub const POLICY_VIOLATION: u16 = 1008;
/// A frame far over the size limit (small excess gets an `error` frame).
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The gateway holds as many connections as it is allowed: try another
/// replica or retry later.
pub const TRY_AGAIN_LATER: u16 = 1013;
/// The client did not read its updates fast enough and its queue overflowed:
/// reconnect and refetch the board (or catch up from `/api/updates`).
pub const TOO_SLOW_RESYNC: u16 = 4008;
