//! Redis channel and key names. Every process that touches Redis takes its
//! names from here, so a rename cannot split the cluster in two.

/// Pub/sub channel carrying every `pixel_updated` event as its JSON text.
pub const PIXEL_UPDATES_CHANNEL: &str = "pixel-updates";
/// Pub/sub channel announcing that a pod's user list changed.
pub const USER_EVENTS_CHANNEL: &str = "user-events";

/// Prefix of the per-user pub/sub channels, `user:<key>`: protocol v1
/// messages addressed to one user (the answer to a placement made over HTTP,
/// `cooldown_over`, moderation notices). A gateway subscribes to a user's
/// channel only while it holds a connection of that user.
pub const USER_CHANNEL_PREFIX: &str = "user:";

/// The channel of the user with this key (today the username).
pub fn user_channel(user_key: &str) -> String {
    format!("{USER_CHANNEL_PREFIX}{user_key}")
}

/// The key holding one gateway's presence record (a [`crate::presence::PodUsers`]
/// JSON, with a TTL).
pub fn pod_users_key(pod_id: &str) -> String {
    format!("pod:{pod_id}:users")
}

/// A set naming every pod that may hold a presence key. Aggregation reads it
/// instead of scanning the keyspace (`KEYS` blocks Redis).
pub const PODS_SET: &str = "pods";

/// Keys owned by canvas-api. Nothing else writes them.
pub mod canvas {
    /// The board: `width * height * 3` bytes, each byte stored as
    /// `255 - value`, so a missing key or a short string reads as white.
    pub const BOARD: &str = "canvas:board";
    /// The board's dimensions, `"<width>x<height>"`, set on first start.
    pub const DIMENSIONS: &str = "canvas:dimensions";
    /// The canvas-wide sequence number of the last accepted write.
    pub const SEQ: &str = "canvas:seq";
    /// Hash from pixel index to `"<seq>:<timestamp>:<username>"`.
    pub const PIXEL_META: &str = "canvas:pixel-meta";
    /// Stream (entry id `<seq>-0`) of accepted writes: the replay log.
    pub const LOG: &str = "canvas:log";
    /// Prefix of per-user cooldown keys (`cooldown:<username>`).
    pub const COOLDOWN_PREFIX: &str = "cooldown:";
    /// The board's epoch: a random id set (`SET NX`) by the first read that
    /// finds none. A Redis that lost its data (restarted without it,
    /// `FLUSHALL`) lost this key too, so the next read sets a new one and
    /// every `seq` a client holds from before is recognisably stale.
    pub const EPOCH: &str = "canvas:epoch";
    /// The secret that signs session tokens, when `AUTH_SECRET` is not
    /// configured: the first process to start sets it (`SET NX`), every
    /// other one reads it, so all pods agree.
    pub const AUTH_SECRET: &str = "canvas:auth-secret";
    /// Prefix of username claims (`canvas:session:<username>` = the id of
    /// the session holding the name, expiring with its token).
    pub const SESSION_CLAIM_PREFIX: &str = "canvas:session:";
}
