//! The board on a Redis Cluster ([`ClusterStore`]): every key carries a
//! hash tag naming its chunk, its user, its IP or the board as a whole
//! (`protocol::names::canvas::cluster`), so each script runs on one slot
//! and the chunks, their writes and their announcements spread over the
//! masters.
//!
//! What differs from one node ([`super::RedisStore`]), and why
//! (ARCHITECTURE.md, "Growing past one Redis"):
//! - `seq` is per chunk, under the chunk's own epoch: a canvas-wide counter
//!   would be one key on one master, touched by every write. A chunk's
//!   events, replay log (`chunk_updates_since`) and snapshot (`chunk`) all
//!   carry the chunk's `seq`, so a client's rule stays the same: apply a
//!   chunk's events newer than the `seq` its bytes came with.
//! - A placement goes in steps ([`place`]): the user's rules on the user's
//!   slot, the IP's on the IP's, then the pixel on its chunk's slot. The
//!   user's and IP's shares are taken before the pixel is written and given
//!   back if it is not; a crash between the steps costs the user one
//!   cooldown, never a pixel stored unacknowledged.
//! - Each write is announced on its chunk's sharded channel
//!   (`SPUBLISH pixel-updates:{c:CX:CY}`), heard only by the shard's nodes
//!   and by whoever follows that chunk, and on the whole-board
//!   `pixel-updates` for prototype clients and SSE.
//!
//! Not built yet, refused with [`StoreError::Unsupported`]: whole-board
//! reads (they need a `seq` per chunk), the canvas-wide replay log and
//! `seq`, and clears (their one `seq` marks which history entries came
//! before; on a cluster that needs a mark per chunk).

mod place;
mod rewrite;

use std::sync::Arc;

use bytes::Bytes;
use protocol::http::{AuditEntry, BanInfo, Protection, Rect};
use protocol::names::canvas::cluster as keys;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncCommands, Script};

use super::chunk::{CHUNK_BYTES, ChunkId, offset_in_chunk};
use super::redis::{new_epoch, parse_meta, parse_updates, unavailable};
use super::redis_moderation::{self as moderation, ModerationKeys};
use super::{ChunkSnapshot, Geometry, PixelRecord, StoreError, Updates};
use crate::metrics::Counter;

/// Pixel histories read at once.
const HISTORY_BATCH: usize = 500;

/// Where a cluster keeps bans, protections and the audit log: a user's ban
/// on the user's slot (the placement script reads it there), the lists on
/// the board's.
static MODERATION_KEYS: std::sync::LazyLock<ModerationKeys> =
    std::sync::LazyLock::new(|| ModerationKeys {
        ban: |username| keys::user(username, "ban"),
        bans: keys::board("bans"),
        protections: keys::board("protections"),
        protection_id: keys::board("protection-id"),
        audit: keys::board("audit"),
        one_slot: false,
    });

/// The scripts, each run on one slot.
struct Scripts {
    reserve: Script,
    refund: Script,
    ip_pool: Script,
    write: Script,
    read_chunk: Script,
    /// The single node's moderation writer, on one chunk's keys.
    rewrite: Script,
    /// The single node's replay-log reader, on one chunk's keys.
    updates: Script,
}

#[derive(Clone)]
pub struct ClusterStore {
    conn: ClusterConnection,
    geometry: Geometry,
    log_len: u64,
    history_len: usize,
    scripts: Arc<Scripts>,
    /// Stored writes whose announcement (inside the write's script) failed.
    announce_failures: Arc<Counter>,
}

/// A chunk's key.
fn chunk_key(id: ChunkId, what: &str) -> String {
    keys::chunk(id.cx, id.cy, what)
}

impl ClusterStore {
    /// Connects through any of the cluster's nodes and checks that the
    /// cluster holds a board of this geometry (or none yet).
    pub async fn connect(
        nodes: Vec<redis::ConnectionInfo>,
        geometry: Geometry,
        log_len: u64,
        history_len: usize,
    ) -> Result<Self, StoreError> {
        let conn = plumbing::redis::connect_cluster(nodes)
            .await
            .map_err(unavailable)?;
        let store = ClusterStore {
            conn,
            geometry,
            log_len,
            history_len: history_len.max(1),
            scripts: Arc::new(Scripts {
                reserve: Script::new(include_str!("reserve.lua")),
                refund: Script::new(include_str!("refund.lua")),
                ip_pool: Script::new(include_str!("ip_pool.lua")),
                write: Script::new(include_str!("write.lua")),
                read_chunk: Script::new(include_str!("read_chunk.lua")),
                rewrite: Script::new(include_str!("../rewrite.lua")),
                updates: Script::new(include_str!("../updates.lua")),
            }),
            announce_failures: Arc::default(),
        };
        store.claim_dimensions().await?;
        Ok(store)
    }

    async fn claim_dimensions(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let key = keys::board("dimensions");
        let wanted = format!("{}x{}", self.geometry.width, self.geometry.height);
        let _: bool = conn.set_nx(&key, &wanted).await.map_err(unavailable)?;
        let stored: String = conn.get(&key).await.map_err(unavailable)?;
        if stored != wanted {
            return Err(StoreError::Corrupt(format!(
                "the Redis Cluster holds a {stored} board but CANVAS_WIDTH x CANVAS_HEIGHT is \
                 {wanted}; refusing to start so the stored board is not misread"
            )));
        }
        Ok(())
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// A clone of the cluster connection, for what shares the cluster.
    pub fn connection(&self) -> ClusterConnection {
        self.conn.clone()
    }

    /// Stored writes whose announcement failed.
    pub fn announce_failures(&self) -> Arc<Counter> {
        self.announce_failures.clone()
    }

    /// One chunk with its `seq` and epoch, read in one step on its slot.
    pub async fn chunk(&self, id: ChunkId) -> Result<ChunkSnapshot, StoreError> {
        let (seq, epoch, stored): (u64, String, Vec<u8>) = self
            .scripts
            .read_chunk
            .key(chunk_key(id, "board"))
            .key(chunk_key(id, "seq"))
            .key(chunk_key(id, "epoch"))
            .arg(new_epoch())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        if stored.len() > CHUNK_BYTES {
            return Err(StoreError::Corrupt(format!(
                "chunk key ({}, {}) holds {} bytes, more than {CHUNK_BYTES}",
                id.cx,
                id.cy,
                stored.len()
            )));
        }
        // The key holds `255 - byte`: what it lacks reads as white.
        let written = stored.iter().any(|&b| b != 0);
        let rgb = written.then(|| {
            let mut rgb = stored;
            rgb.resize(CHUNK_BYTES, 0);
            for byte in &mut rgb {
                *byte = !*byte;
            }
            Bytes::from(rgb)
        });
        Ok(ChunkSnapshot { seq, rgb, epoch })
    }

    /// Who last placed `(x, y)`; its `seq` is its chunk's.
    pub async fn pixel(&self, x: u32, y: u32) -> Result<Option<PixelRecord>, StoreError> {
        let id = self.geometry.chunk_of(x, y);
        let meta: Option<String> = self
            .conn
            .clone()
            .hget(chunk_key(id, "meta"), offset_in_chunk(x, y) / 3)
            .await
            .map_err(unavailable)?;
        meta.map(|m| parse_meta(&m)).transpose()
    }

    /// A chunk's writes after its `seq` `since`, from its replay log; `Gone`
    /// when the log no longer reaches back, or `epoch` is not the chunk's.
    pub async fn chunk_updates_since(
        &self,
        id: ChunkId,
        since: u64,
        limit: usize,
        epoch: Option<&str>,
    ) -> Result<Updates, StoreError> {
        let reply = self
            .scripts
            .updates
            .key(chunk_key(id, "seq"))
            .key(chunk_key(id, "log"))
            .key(chunk_key(id, "epoch"))
            .arg(since)
            .arg(limit)
            .arg(new_epoch())
            .arg(epoch.unwrap_or(""))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        parse_updates(reply, since, limit)
    }

    pub async fn history(&self, x: u32, y: u32) -> Result<Vec<PixelRecord>, StoreError> {
        Ok(self
            .histories_of(&[(x, y)])
            .await?
            .pop()
            .map(|(_, h)| h)
            .unwrap_or_default())
    }

    /// Each pixel's history, newest first; the lists live on many slots, so
    /// they are read concurrently, a slice at a time.
    pub async fn histories_of(
        &self,
        pixels: &[(u32, u32)],
    ) -> Result<Vec<((u32, u32), Vec<PixelRecord>)>, StoreError> {
        let mut out = Vec::with_capacity(pixels.len());
        for slice in pixels.chunks(HISTORY_BATCH) {
            let lists = futures_util::future::try_join_all(slice.iter().map(|&(x, y)| {
                let id = self.geometry.chunk_of(x, y);
                let key = keys::pixel_history(id.cx, id.cy, self.geometry.index(x, y));
                let mut conn = self.conn.clone();
                async move { conn.lrange::<_, Vec<String>>(key, 0, -1).await }
            }))
            .await
            .map_err(unavailable)?;
            for (&pixel, list) in slice.iter().zip(lists) {
                let history = list
                    .iter()
                    .map(|m| parse_meta(m))
                    .collect::<Result<Vec<_>, _>>()?;
                out.push((pixel, history));
            }
        }
        Ok(out)
    }

    /// The pixels `username` placed since `since` (ms).
    pub async fn user_pixels_since(
        &self,
        username: &str,
        since: u64,
    ) -> Result<Vec<(u32, u32)>, StoreError> {
        let indexes: Vec<u64> = self
            .conn
            .clone()
            .zrangebyscore(keys::user(username, "pixels"), since, "+inf")
            .await
            .map_err(unavailable)?;
        let w = u64::from(self.geometry.width);
        let count = self.geometry.pixel_count() as u64;
        indexes
            .into_iter()
            .map(|i| {
                if i >= count {
                    return Err(StoreError::Corrupt(format!(
                        "{username}'s pixel index {i} is off the board"
                    )));
                }
                Ok(((i % w) as u32, (i / w) as u32))
            })
            .collect()
    }

    pub async fn ban(&self, ban: &BanInfo) -> Result<(), StoreError> {
        moderation::ban(&mut self.conn.clone(), &MODERATION_KEYS, ban).await
    }

    pub async fn unban(&self, username: &str) -> Result<bool, StoreError> {
        moderation::unban(&mut self.conn.clone(), &MODERATION_KEYS, username).await
    }

    /// Bans in force at `now` (ms); expired ones are dropped from the list.
    pub async fn bans(&self, now: u64) -> Result<Vec<BanInfo>, StoreError> {
        moderation::bans(&mut self.conn.clone(), &MODERATION_KEYS, now).await
    }

    pub async fn protect(
        &self,
        rect: Rect,
        by: &str,
        at: u64,
    ) -> Result<Option<Protection>, StoreError> {
        moderation::protect(&mut self.conn.clone(), &MODERATION_KEYS, rect, by, at).await
    }

    pub async fn unprotect(&self, id: u64) -> Result<bool, StoreError> {
        moderation::unprotect(&mut self.conn.clone(), &MODERATION_KEYS, id).await
    }

    pub async fn protections(&self) -> Result<Vec<Protection>, StoreError> {
        moderation::protections(&mut self.conn.clone(), &MODERATION_KEYS).await
    }

    pub async fn audit_push(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        moderation::audit_push(&mut self.conn.clone(), &MODERATION_KEYS, entry).await
    }

    pub async fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        moderation::audit(&mut self.conn.clone(), &MODERATION_KEYS, limit).await
    }

    /// Every master answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: redis::Value = redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
