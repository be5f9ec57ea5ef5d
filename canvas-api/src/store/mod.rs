//! The board's storage behind one type, [`CanvasStore`].
//!
//! Callers see pixel coordinates, a canvas-wide `seq` and whole-board
//! snapshots; how the board is laid out (on Redis one string up to 300 MB,
//! a string per chunk above it, per-chunk everything on a Redis Cluster
//! tomorrow; files on disk for the embedded default) stays in
//! here. Every store makes a write atomic: the pixel, its metadata, `seq`, the
//! replay-log entry and the cooldown change together or not at all, and a
//! write is acknowledged only once stored.
//!
//! Every store also keeps each pixel's recent history (`HISTORY_LEN`
//! placements, keyed per pixel, never one board-wide structure that a
//! moderation action would scan), the pixels each user placed, and the
//! moderation state (bans, protected rectangles, the audit log) that a
//! placement is checked against in the same atomic step.

pub mod chunk;
pub mod cluster;
pub mod embedded;
pub mod gcra;
pub mod redis;
pub mod redis_layout;
mod redis_moderation;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use protocol::http::{AuditEntry, BanInfo, Protection, Rect};
use protocol::{Color, PixelUpdated, ServerMessage};

use crate::clock::now_ms;
use crate::metrics::Counter;

pub use self::gcra::Gcra;

pub use self::cluster::ClusterStore;
pub use self::embedded::EmbeddedStore;
pub use self::redis::RedisStore;

/// The board's size, and the mapping from coordinates to a pixel index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub width: u32,
    pub height: u32,
}

impl Geometry {
    pub fn pixel_count(self) -> usize {
        self.width as usize * self.height as usize
    }

    pub fn byte_len(self) -> usize {
        self.pixel_count() * 3
    }

    /// Row-major index of an in-bounds pixel.
    pub fn index(self, x: u32, y: u32) -> usize {
        debug_assert!(x < self.width && y < self.height);
        y as usize * self.width as usize + x as usize
    }

    pub fn contains(self, x: i64, y: i64) -> bool {
        (0..i64::from(self.width)).contains(&x) && (0..i64::from(self.height)).contains(&y)
    }
}

/// A validated pixel write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub x: u32,
    pub y: u32,
    pub color: Color,
    pub username: String,
    /// The cooldown this write starts for `username`; 0 for none.
    pub cooldown_ms: u64,
    /// The user's pixel pool, when there is one.
    pub pool: Option<Gcra>,
    /// The placing client's address and its pool, when per-IP placement
    /// limits are on.
    pub ip_pool: Option<(IpAddr, Gcra)>,
}

/// What became of a write. Every refusal changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    Stored(PixelUpdated),
    /// Refused: the user's cooldown has this long to run.
    Cooldown {
        retry_after_ms: u64,
    },
    /// Refused: the user's pixel pool is empty; the next pixel comes back
    /// in this long.
    PoolEmpty {
        retry_after_ms: u64,
    },
    /// Refused: the client's IP has placed its share; retry in this long.
    IpLimited {
        retry_after_ms: u64,
    },
    /// Refused: the user is banned.
    Banned,
    /// Refused: the pixel is in a protected rectangle.
    Protected,
}

/// A moderation write: set (x, y) to `color`, but only if the pixel's last
/// write is still `expected_seq` (0: nobody placed since the board began or
/// was cleared), so a placement made meanwhile stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrite {
    pub x: u32,
    pub y: u32,
    pub color: Color,
    pub expected_seq: u64,
}

/// The key the per-IP pool counts under in the store: the address of
/// [`crate::client_ip::limit_key`] (IPv4 alone, IPv6 by its /64), written
/// as it always was.
pub fn ip_key(ip: IpAddr) -> String {
    match crate::client_ip::limit_key(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Where the embedded store announces each write it stores: called in
/// `seq` order, under the store's lock, right after the write is logged.
/// False when it could not be taken (a full queue): receivers repair the
/// gap from the replay log.
pub type Announce = Arc<dyn Fn(&PixelUpdated) -> bool + Send + Sync>;

/// The JSON of the `pixel_updated` a write becomes, up to its timestamp's
/// value. The write scripts append `<timestamp>,"seq":<seq>}` once they know
/// both, so what they publish is byte for byte what serde encodes from the
/// protocol's types.
pub fn pixel_updated_prefix(x: u32, y: u32, color: Color, username: &str) -> String {
    const TAIL: &str = r#"0,"seq":0}"#;
    let mut json = serde_json::to_string(&ServerMessage::PixelUpdated(PixelUpdated {
        x,
        y,
        color,
        username: username.to_owned(),
        timestamp: 0,
        seq: 0,
    }))
    .expect("a pixel event always encodes");
    debug_assert!(json.ends_with(r#""timestamp":0,"seq":0}"#), "{json}");
    json.truncate(json.len() - TAIL.len());
    json
}

/// The whole board at one `seq`.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The last write the bytes include.
    pub seq: u64,
    /// `width * height * 3` bytes of RGB, row-major.
    pub rgb: Bytes,
    /// The board's epoch: `seq`s compare only within one epoch.
    pub epoch: String,
}

/// One chunk at one `seq` ([`chunk`]'s geometry).
#[derive(Debug, Clone)]
pub struct ChunkSnapshot {
    /// The last write the bytes include (canvas-wide).
    pub seq: u64,
    /// [`chunk::CHUNK_BYTES`] of RGB, row-major, padded white outside the
    /// board; `None` when nothing in the chunk was ever written (white).
    pub rgb: Option<Bytes>,
    /// The board's epoch, read in the same step.
    pub epoch: String,
}

/// Who last placed a pixel, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PixelRecord {
    pub color: Color,
    pub username: String,
    pub timestamp: u64,
    pub seq: u64,
}

/// A page of writes from the replay log, as every reader inside the
/// services sees it (the wire's is `protocol::http::UpdatesPage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayPage {
    /// Writes after the asked `seq`, in `seq` order.
    pub events: Vec<PixelUpdated>,
    /// The canvas-wide `seq` when the page was read.
    pub latest_seq: u64,
    /// True when more writes follow the last event.
    pub has_more: bool,
    /// The board's epoch, read in the same step.
    pub epoch: String,
}

/// Writes after a `seq`, from the replay log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updates {
    Page(ReplayPage),
    /// The log no longer reaches back to the asked `seq`, the asked `seq` is
    /// ahead of the store, or the asked epoch is not the board's: the store
    /// lost its data since the caller's `seq` was read.
    Gone {
        latest_seq: u64,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or did not answer; nothing was changed by
    /// this call that the caller could rely on.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with something it should never hold.
    #[error("store holds unexpected data: {0}")]
    Corrupt(String),
    /// A whole-board read of a board larger than [`MAX_WHOLE_READ_BYTES`]:
    /// it is read by chunks.
    #[error("the {width}x{height} board is too large to read whole; read it by chunks")]
    TooLargeToReadWhole { width: u32, height: u32 },
    /// An operation the Redis Cluster store does not have yet
    /// (ARCHITECTURE.md, "Growing past one Redis").
    #[error("{0} are not available on a Redis Cluster yet")]
    Unsupported(&'static str),
}

/// The largest board read whole (`canvas.bin`, PNG, keyframes): a 300 MB
/// download is already more than any client should take; larger boards
/// are read by chunks.
pub const MAX_WHOLE_READ_BYTES: u64 = crate::config::MAX_BOARD_BYTES;

/// The one board store of a process.
///
/// An enum rather than a trait object: dispatch is a match, and a new layout
/// (chunked, clustered) is one more variant that every caller gets for free.
#[derive(Clone)]
pub enum CanvasStore {
    Redis(RedisStore),
    Cluster(ClusterStore),
    Embedded(EmbeddedStore),
}

impl CanvasStore {
    /// Stored writes whose announcement failed (receivers repair them from
    /// the replay log), for `canvas_publish_failures_total`.
    pub fn announce_failures(&self) -> Arc<Counter> {
        match self {
            CanvasStore::Redis(s) => s.announce_failures(),
            CanvasStore::Cluster(s) => s.announce_failures(),
            CanvasStore::Embedded(s) => s.announce_failures(),
        }
    }

    /// The Redis the store is on, for what shares it (session claims, user
    /// channels); `None` for the embedded store.
    pub fn connection(&self) -> Option<plumbing::redis::Connection> {
        match self {
            CanvasStore::Redis(s) => Some(plumbing::redis::Connection::Node(s.connection())),
            CanvasStore::Cluster(s) => Some(plumbing::redis::Connection::Cluster(s.connection())),
            CanvasStore::Embedded(_) => None,
        }
    }

    /// Where the embedded store announces what it stores (the single
    /// process's fan-out). Redis announces on `pixel-updates` by itself.
    pub fn announce_to(&self, announce: Announce) {
        if let CanvasStore::Embedded(s) = self {
            s.announce_to(announce);
        }
    }

    pub fn geometry(&self) -> Geometry {
        match self {
            CanvasStore::Redis(s) => s.geometry(),
            CanvasStore::Cluster(s) => s.geometry(),
            CanvasStore::Embedded(s) => s.geometry(),
        }
    }

    pub async fn place(&self, write: &Write) -> Result<PlaceOutcome, StoreError> {
        let mut outcomes = self.place_many(std::slice::from_ref(write)).await?;
        outcomes
            .pop()
            .ok_or_else(|| StoreError::Corrupt("a write got no outcome".into()))
    }

    /// Stores each write on its own, in order, in one atomic step (one
    /// script call, one lock): one outcome per write, and a refused write
    /// changes nothing for the others. An error means the step failed as a
    /// whole.
    pub async fn place_many(&self, writes: &[Write]) -> Result<Vec<PlaceOutcome>, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.place_many(writes).await,
            CanvasStore::Cluster(s) => s.place_many(writes).await,
            CanvasStore::Embedded(s) => s.place_many(writes),
        }
    }

    /// The whole board, for boards of at most [`MAX_WHOLE_READ_BYTES`].
    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let g = self.geometry();
        if g.byte_len() as u64 > MAX_WHOLE_READ_BYTES {
            return Err(StoreError::TooLargeToReadWhole {
                width: g.width,
                height: g.height,
            });
        }
        match self {
            CanvasStore::Redis(s) => s.snapshot().await,
            CanvasStore::Cluster(_) => Err(StoreError::Unsupported("whole-board reads")),
            CanvasStore::Embedded(s) => Ok(s.snapshot()),
        }
    }

    /// One chunk of the board; the caller checks the chunk is on it.
    pub async fn chunk(&self, id: chunk::ChunkId) -> Result<ChunkSnapshot, StoreError> {
        debug_assert!(self.geometry().has_chunk(id));
        match self {
            CanvasStore::Redis(s) => s.chunk(id).await,
            CanvasStore::Cluster(s) => s.chunk(id).await,
            CanvasStore::Embedded(s) => Ok(s.chunk(id)),
        }
    }

    pub async fn pixel(&self, x: u32, y: u32) -> Result<Option<PixelRecord>, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.pixel(x, y).await,
            CanvasStore::Cluster(s) => s.pixel(x, y).await,
            CanvasStore::Embedded(s) => Ok(s.pixel(x, y)),
        }
    }

    /// Writes after `since`, at most `limit`; with `epoch`, [`Updates::Gone`]
    /// unless it is still the board's epoch (checked atomically with the read).
    pub async fn updates_since(
        &self,
        since: u64,
        limit: usize,
        epoch: Option<&str>,
    ) -> Result<Updates, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.updates_since(since, limit, epoch).await,
            CanvasStore::Cluster(_) => Err(StoreError::Unsupported("the canvas-wide replay log")),
            CanvasStore::Embedded(s) => Ok(s.updates_since(since, limit, epoch)),
        }
    }

    /// The `seq` of the last stored write.
    pub async fn latest_seq(&self) -> Result<u64, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.latest_seq().await,
            CanvasStore::Cluster(_) => Err(StoreError::Unsupported("the canvas-wide seq")),
            CanvasStore::Embedded(s) => Ok(s.latest_seq()),
        }
    }

    /// Fails when the store cannot take writes now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            CanvasStore::Redis(s) => s.ping().await,
            CanvasStore::Cluster(s) => s.ping().await,
            CanvasStore::Embedded(s) => s.ping(),
        }
    }

    /// The pixel's recent placements, newest first.
    pub async fn history(&self, x: u32, y: u32) -> Result<Vec<PixelRecord>, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.history(x, y).await,
            CanvasStore::Cluster(s) => s.history(x, y).await,
            CanvasStore::Embedded(s) => Ok(s.history(x, y)),
        }
    }

    /// History entries at or below this `seq` may have had older ones that
    /// were not kept (the embedded store's history starts at its last
    /// start-up); 0 when histories are complete up to `HISTORY_LEN`.
    pub fn history_floor(&self) -> u64 {
        match self {
            CanvasStore::Redis(_) | CanvasStore::Cluster(_) => 0,
            CanvasStore::Embedded(s) => s.history_floor(),
        }
    }

    /// The histories of every pixel of `rect`, row by row.
    pub async fn histories(
        &self,
        rect: Rect,
    ) -> Result<Vec<((u32, u32), Vec<PixelRecord>)>, StoreError> {
        let mut pixels = Vec::with_capacity(rect.area() as usize);
        for y in rect.y0..=rect.y1 {
            for x in rect.x0..=rect.x1 {
                pixels.push((x, y));
            }
        }
        self.histories_of(&pixels).await
    }

    /// The histories of these pixels.
    pub async fn histories_of(
        &self,
        pixels: &[(u32, u32)],
    ) -> Result<Vec<((u32, u32), Vec<PixelRecord>)>, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.histories_of(pixels).await,
            CanvasStore::Cluster(s) => s.histories_of(pixels).await,
            CanvasStore::Embedded(s) => Ok(pixels
                .iter()
                .map(|&(x, y)| ((x, y), s.history(x, y)))
                .collect()),
        }
    }

    /// The pixels `username` placed at or after `since` (ms), as far as
    /// the bounded per-user index reaches.
    pub async fn user_pixels_since(
        &self,
        username: &str,
        since: u64,
    ) -> Result<Vec<(u32, u32)>, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.user_pixels_since(username, since).await,
            CanvasStore::Cluster(s) => s.user_pixels_since(username, since).await,
            CanvasStore::Embedded(s) => Ok(s.user_pixels_since(username, since)),
        }
    }

    /// `(seq, timestamp)` of the last board clear.
    pub async fn cleared(&self) -> Result<Option<(u64, u64)>, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.cleared().await,
            CanvasStore::Cluster(_) => Err(StoreError::Unsupported("board clears")),
            CanvasStore::Embedded(s) => Ok(s.cleared()),
        }
    }

    /// Applies moderation writes as ordinary seq'd writes attributed to
    /// `username`, skipping those whose pixel changed meanwhile. Returns the
    /// events written, in `seq` order.
    pub async fn rewrite(
        &self,
        writes: &[Rewrite],
        username: &str,
    ) -> Result<Vec<PixelUpdated>, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.rewrite(writes, username).await,
            CanvasStore::Cluster(s) => s.rewrite(writes, username).await,
            CanvasStore::Embedded(s) => s.rewrite(writes, username),
        }
    }

    /// Every pixel back to white, as one `seq` that the replay log cannot
    /// serve across, so every receiver refetches the board. Returns the
    /// clear's `(seq, timestamp)`.
    pub async fn clear(&self) -> Result<(u64, u64), StoreError> {
        match self {
            CanvasStore::Redis(s) => s.clear().await,
            CanvasStore::Cluster(_) => Err(StoreError::Unsupported("board clears")),
            // Writes and syncs a whole snapshot: off the async threads.
            CanvasStore::Embedded(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.clear())
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("clearing: {e}")))?
            }
        }
    }

    pub async fn ban(&self, ban: &BanInfo) -> Result<(), StoreError> {
        match self {
            CanvasStore::Redis(s) => s.ban(ban).await,
            CanvasStore::Cluster(s) => s.ban(ban).await,
            CanvasStore::Embedded(s) => s.ban(ban),
        }
    }

    /// Lifts a ban; false when there was none.
    pub async fn unban(&self, username: &str) -> Result<bool, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.unban(username).await,
            CanvasStore::Cluster(s) => s.unban(username).await,
            CanvasStore::Embedded(s) => s.unban(username),
        }
    }

    /// The bans in force, by username.
    pub async fn bans(&self) -> Result<Vec<BanInfo>, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.bans(now_ms()).await,
            CanvasStore::Cluster(s) => s.bans(now_ms()).await,
            CanvasStore::Embedded(s) => Ok(s.bans(now_ms())),
        }
    }

    /// Adds a protected rectangle; refused past [`MAX_PROTECTIONS`].
    pub async fn protect(
        &self,
        rect: Rect,
        by: &str,
        at: u64,
    ) -> Result<Option<Protection>, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.protect(rect, by, at).await,
            CanvasStore::Cluster(s) => s.protect(rect, by, at).await,
            CanvasStore::Embedded(s) => s.protect(rect, by, at),
        }
    }

    /// Removes a protection; false when there was none.
    pub async fn unprotect(&self, id: u64) -> Result<bool, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.unprotect(id).await,
            CanvasStore::Cluster(s) => s.unprotect(id).await,
            CanvasStore::Embedded(s) => s.unprotect(id),
        }
    }

    pub async fn protections(&self) -> Result<Vec<Protection>, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.protections().await,
            CanvasStore::Cluster(s) => s.protections().await,
            CanvasStore::Embedded(s) => Ok(s.protections()),
        }
    }

    /// Records a moderation action; the log keeps the last [`AUDIT_LEN`].
    pub async fn audit_push(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        match self {
            CanvasStore::Redis(s) => s.audit_push(entry).await,
            CanvasStore::Cluster(s) => s.audit_push(entry).await,
            CanvasStore::Embedded(s) => s.audit_push(entry),
        }
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.audit(limit).await,
            CanvasStore::Cluster(s) => s.audit(limit).await,
            CanvasStore::Embedded(s) => Ok(s.audit(limit)),
        }
    }

    /// Makes what was acknowledged durable before the process exits.
    pub async fn flush(&self) -> Result<(), StoreError> {
        match self {
            CanvasStore::Redis(_) | CanvasStore::Cluster(_) => Ok(()),
            CanvasStore::Embedded(s) => s.flush(),
        }
    }
}

/// The most protected rectangles at once: every placement is checked
/// against each of them.
pub const MAX_PROTECTIONS: usize = 64;
/// Audit-log entries kept.
pub const AUDIT_LEN: usize = 1000;
/// Pixels remembered per user for "undo a user" (the newest are kept).
pub const USER_PIXELS_LEN: usize = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_with_the_scripts_tail_is_what_serde_encodes() {
        for (user, ts, seq) in [
            ("alice", 1_733_300_000_123, 1),
            ("~moderation", 7, 99_999_999),
        ] {
            let color: Color = "#00A368".parse().unwrap();
            let tail = format!("{ts},\"seq\":{seq}}}");
            let event = ServerMessage::PixelUpdated(PixelUpdated {
                x: 65_535,
                y: 3,
                color,
                username: user.to_owned(),
                timestamp: ts,
                seq,
            });
            assert_eq!(
                pixel_updated_prefix(65_535, 3, color, user) + &tail,
                serde_json::to_string(&event).unwrap()
            );
        }
    }

    #[test]
    fn ip_keys_count_a_v6_host_by_its_64_and_unwrap_mapped_v4() {
        let key = |s: &str| ip_key(s.parse().unwrap());
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:bbbb::9"), key("2001:db8:1:2:aaaa::1"));
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
    }
}
