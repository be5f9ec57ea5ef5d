//! The board's storage behind one type, [`CanvasStore`].
//!
//! Callers see pixel coordinates, a canvas-wide `seq` and whole-board
//! snapshots; how the board is laid out (one Redis string today, chunks over a
//! Redis Cluster tomorrow, files on disk for the embedded default) stays in
//! here. Every store makes a write atomic: the pixel, its metadata, `seq`, the
//! replay-log entry and the cooldown change together or not at all, and a
//! write is acknowledged only once stored.

pub mod embedded;
pub mod redis;

use bytes::Bytes;
use protocol::{Color, PixelUpdated};

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
}

/// What became of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceOutcome {
    Stored(PixelUpdated),
    /// Refused: the user's cooldown has this long to run. Nothing changed.
    Cooldown {
        retry_after_ms: u64,
    },
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

/// Who last placed a pixel, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PixelRecord {
    pub color: Color,
    pub username: String,
    pub timestamp: u64,
    pub seq: u64,
}

/// Writes after a `seq`, from the replay log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updates {
    Page {
        events: Vec<PixelUpdated>,
        latest_seq: u64,
        has_more: bool,
        epoch: String,
    },
    /// The log no longer reaches back to the asked `seq`, the asked `seq` is
    /// ahead of the store, or the asked epoch is not the board's: the store
    /// lost its data since the caller's `seq` was read.
    Gone { latest_seq: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or did not answer; nothing was changed by
    /// this call that the caller could rely on.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered with something it should never hold.
    #[error("store holds unexpected data: {0}")]
    Corrupt(String),
}

/// The one board store of a process.
///
/// An enum rather than a trait object: dispatch is a match, and a new layout
/// (chunked, clustered) is one more variant that every caller gets for free.
#[derive(Clone)]
pub enum CanvasStore {
    Redis(RedisStore),
    Embedded(EmbeddedStore),
}

impl CanvasStore {
    pub fn geometry(&self) -> Geometry {
        match self {
            CanvasStore::Redis(s) => s.geometry(),
            CanvasStore::Embedded(s) => s.geometry(),
        }
    }

    pub async fn place(&self, write: &Write) -> Result<PlaceOutcome, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.place(write).await,
            CanvasStore::Embedded(s) => s.place(write),
        }
    }

    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.snapshot().await,
            CanvasStore::Embedded(s) => Ok(s.snapshot()),
        }
    }

    pub async fn pixel(&self, x: u32, y: u32) -> Result<Option<PixelRecord>, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.pixel(x, y).await,
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
            CanvasStore::Embedded(s) => Ok(s.updates_since(since, limit, epoch)),
        }
    }

    /// The `seq` of the last stored write.
    pub async fn latest_seq(&self) -> Result<u64, StoreError> {
        match self {
            CanvasStore::Redis(s) => s.latest_seq().await,
            CanvasStore::Embedded(s) => Ok(s.latest_seq()),
        }
    }

    /// Fails when the store cannot take writes now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            CanvasStore::Redis(s) => s.ping().await,
            CanvasStore::Embedded(s) => s.ping(),
        }
    }

    /// Makes what was acknowledged durable before the process exits.
    pub async fn flush(&self) -> Result<(), StoreError> {
        match self {
            CanvasStore::Redis(_) => Ok(()),
            CanvasStore::Embedded(s) => s.flush(),
        }
    }
}

/// Milliseconds since the Unix epoch on this machine's clock.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
