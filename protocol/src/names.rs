//! Redis channel and key names. Every process that touches Redis takes its
//! names from here, so a rename cannot split the cluster in two.

/// Pub/sub channel carrying every `pixel_updated` event as its JSON text.
pub const PIXEL_UPDATES_CHANNEL: &str = "pixel-updates";
/// The sharded pub/sub channel (`SPUBLISH`/`SSUBSCRIBE`) of one 256² chunk
/// on a Redis Cluster, carrying the chunk's `pixel_updated` events like
/// [`PIXEL_UPDATES_CHANNEL`]. The `{c:CX:CY}` hash tag is the chunk's keys'
/// tag, so the chunk's write script publishes on its own shard.
pub fn chunk_channel(cx: u32, cy: u32) -> String {
    format!("{PIXEL_UPDATES_CHANNEL}:{{c:{cx}:{cy}}}")
}
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
    /// The board of at most 300 MB: `width * height * 3` bytes, each byte
    /// stored as `255 - value`, so a missing key or a short string reads as
    /// white. A larger board keeps one [`board_chunk`] key per chunk instead.
    pub const BOARD: &str = "canvas:board";

    /// The key of one 256² chunk of a board over 300 MB (too big for one
    /// string): the chunk's 256 × 256 × 3 bytes, row-major, inverted like
    /// [`BOARD`]. The `{c:CX:CY}` hash tag keeps a chunk's keys in one slot
    /// of a future Redis Cluster.
    pub fn board_chunk(cx: u32, cy: u32) -> String {
        format!("canvas:{{c:{cx}:{cy}}}:board")
    }
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
    /// Prefix of per-pixel history lists (`canvas:history:<pixel index>`),
    /// newest first, each entry `"<seq>:<timestamp>:<#RRGGBB>:<username>"`,
    /// trimmed to `HISTORY_LEN`. Keyed per pixel so a chunked board can
    /// place them beside their chunk.
    pub const HISTORY_PREFIX: &str = "canvas:history:";
    /// Prefix of per-user sorted sets of the pixel indexes a user placed
    /// (`canvas:user-pixels:<username>`, scored by timestamp), bounded: what
    /// "undo a user" reads instead of scanning the board.
    pub const USER_PIXELS_PREFIX: &str = "canvas:user-pixels:";
    /// Prefix of per-user ban keys (`canvas:ban:<username>`), a JSON
    /// [`crate::http::BanInfo`] with the ban's expiry as the key's TTL.
    pub const BAN_PREFIX: &str = "canvas:ban:";
    /// Hash from username to the same JSON, for listing bans without a
    /// keyspace scan; entries past their expiry are dropped when listed.
    pub const BANS: &str = "canvas:bans";
    /// Hash from protection id to a JSON [`crate::http::Protection`].
    pub const PROTECTIONS: &str = "canvas:protections";
    /// The id of the last protection made.
    pub const PROTECTION_ID: &str = "canvas:protection-id";
    /// List of JSON [`crate::http::AuditEntry`], newest first, bounded.
    pub const AUDIT: &str = "canvas:audit";
    /// `"<seq>:<timestamp>"` of the last board clear.
    pub const CLEARED: &str = "canvas:cleared";
    /// Prefix of per-user pixel-pool keys (`pool:<username>`): the GCRA
    /// "theoretical arrival time" in ms, expiring when the pool is full.
    pub const POOL_PREFIX: &str = "pool:";
    /// Prefix of per-IP pixel-pool keys (`ip-pool:<ip>`), as above.
    pub const IP_POOL_PREFIX: &str = "ip-pool:";
    /// The secret that signs session tokens, when `AUTH_SECRET` is not
    /// configured: the first process to start sets it (`SET NX`), every
    /// other one reads it, so all pods agree.
    pub const AUTH_SECRET: &str = "canvas:auth-secret";
    /// Prefix of username claims (`canvas:session:<username>` = the id of
    /// the session holding the name, expiring with its token).
    pub const SESSION_CLAIM_PREFIX: &str = "canvas:session:";

    /// Keys of a board kept on a Redis Cluster. Every key carries a hash
    /// tag naming what it belongs to (a chunk, a user, an IP, or the board
    /// as a whole), so each script touches one slot and the chunks spread
    /// over the masters.
    pub mod cluster {
        /// One of a chunk's keys: `board` (as [`super::board_chunk`]),
        /// `seq` (the chunk's last write), `epoch`, `log` (its replay log,
        /// entry id `<seq>-0`), `meta` (hash from the pixel's offset in the
        /// chunk to `"<seq>:<timestamp>:<#RRGGBB>:<username>"`).
        pub fn chunk(cx: u32, cy: u32, what: &str) -> String {
            format!("canvas:{{c:{cx}:{cy}}}:{what}")
        }

        /// One pixel's history list, beside its chunk.
        pub fn pixel_history(cx: u32, cy: u32, index: usize) -> String {
            format!("canvas:{{c:{cx}:{cy}}}:history:{index}")
        }

        /// One of a user's keys: `cooldown`, `pool`, `ban`, `pixels`.
        pub fn user(username: &str, what: &str) -> String {
            format!("canvas:{{u:{username}}}:{what}")
        }

        /// An IP's pixel pool (the key of `ip_key`).
        pub fn ip_pool(ip_key: &str) -> String {
            format!("canvas:{{ip:{ip_key}}}:pool")
        }

        /// One of the board-wide keys, all on one slot and rarely written:
        /// `dimensions`, `bans`, `protections`, `protection-id`, `audit`.
        pub fn board(what: &str) -> String {
            format!("canvas:{{board}}:{what}")
        }
    }
}
