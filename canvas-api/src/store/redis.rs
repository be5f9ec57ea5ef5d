//! The board in Redis, the source of truth of a multi-replica deploy.
//!
//! Layout (key names in `protocol::names::canvas`): a board of at most
//! 300 MB is one string of `width * height * 3` bytes, a larger one a string
//! per 256² chunk ([`BoardLayout`]); each holds `255 - value` for each color
//! byte, so a missing key or a short string reads as the white background
//! and nothing needs initialising; `SETRANGE` writes one pixel. Writes go through one Lua
//! script ([`place.lua`](place.lua)), snapshots through `MULTI`/`EXEC`, so a
//! snapshot's bytes, its `seq` and its epoch always agree. Every read that
//! hands out a `seq` first sets the epoch if there is none (`SET NX` of a
//! new random id): a Redis that lost its data lost the epoch with it.
//!
//! Pixel history is one list per pixel (`canvas:history:<index>`), each
//! user's placed pixels one sorted set, each ban one key: nothing a
//! moderation action reads is board-wide, so a chunked layout over a Redis
//! Cluster can keep them beside their chunk. Moderation writes go through
//! [`rewrite.lua`](rewrite.lua), a clear through [`clear.lua`](clear.lua).

use bytes::Bytes;
use protocol::names::PIXEL_UPDATES_CHANNEL;
use protocol::names::canvas as keys;
use protocol::{Color, PixelUpdated};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script, Value};

use protocol::http::{AuditEntry, BanInfo, Protection, Rect};

use super::chunk::{CHUNK_BYTES, CHUNK_SIZE, ChunkId};
use super::redis_layout::BoardLayout;
use super::redis_moderation::{self as moderation, ModerationKeys};
use super::{
    ChunkSnapshot, Geometry, PixelRecord, PlaceOutcome, ReplayPage, Rewrite, Snapshot, StoreError,
    USER_PIXELS_LEN, Updates, Write, ip_key, pixel_updated_prefix,
};
use crate::metrics::Counter;

/// Where a single node keeps bans, protections and the audit log: the
/// names every board before the cluster used.
static MODERATION_KEYS: std::sync::LazyLock<ModerationKeys> =
    std::sync::LazyLock::new(|| ModerationKeys {
        ban: |username| format!("{}{username}", keys::BAN_PREFIX),
        bans: keys::BANS.to_owned(),
        protections: keys::PROTECTIONS.to_owned(),
        protection_id: keys::PROTECTION_ID.to_owned(),
        audit: keys::AUDIT.to_owned(),
        one_slot: true,
    });

/// Moderation writes per `rewrite.lua` call: Redis serves nothing else
/// while a script runs, so a big rollback goes in slices.
pub(super) const REWRITE_BATCH: usize = 500;
/// History reads per pipelined round trip.
const HISTORY_BATCH: usize = 2000;

#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    geometry: Geometry,
    /// Decided from `geometry` alone, so a stored board is always read the
    /// way it was written.
    layout: BoardLayout,
    log_len: u64,
    history_len: usize,
    place: std::sync::Arc<Script>,
    updates: std::sync::Arc<Script>,
    rewrite: std::sync::Arc<Script>,
    clear: std::sync::Arc<Script>,
    /// Stored writes whose `PUBLISH` (inside the write's script) failed.
    announce_failures: std::sync::Arc<Counter>,
}

impl RedisStore {
    /// Connects and checks that Redis holds a board of this geometry (or
    /// none yet). A board of another size is refused rather than misread.
    pub async fn connect(
        info: redis::ConnectionInfo,
        geometry: Geometry,
        log_len: u64,
        history_len: usize,
    ) -> Result<Self, StoreError> {
        let conn = plumbing::redis::connect_manager(info)
            .await
            .map_err(unavailable)?;
        let store = RedisStore {
            conn,
            geometry,
            layout: BoardLayout::of(geometry),
            log_len,
            history_len: history_len.max(1),
            place: std::sync::Arc::new(Script::new(include_str!("place.lua"))),
            updates: std::sync::Arc::new(Script::new(include_str!("updates.lua"))),
            rewrite: std::sync::Arc::new(Script::new(include_str!("rewrite.lua"))),
            clear: std::sync::Arc::new(Script::new(include_str!("clear.lua"))),
            announce_failures: std::sync::Arc::default(),
        };
        store.claim_dimensions().await?;
        Ok(store)
    }

    async fn claim_dimensions(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let wanted = format!("{}x{}", self.geometry.width, self.geometry.height);
        let _: bool = conn
            .set_nx(keys::DIMENSIONS, &wanted)
            .await
            .map_err(unavailable)?;
        let stored: String = conn.get(keys::DIMENSIONS).await.map_err(unavailable)?;
        if stored != wanted {
            return Err(StoreError::Corrupt(format!(
                "Redis holds a {stored} board but CANVAS_WIDTH x CANVAS_HEIGHT is {wanted}; \
                 refusing to start so the stored board is not misread"
            )));
        }
        Ok(())
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// A clone of the connection, for publishing beside the store.
    /// Stored writes whose announcement failed.
    pub fn announce_failures(&self) -> std::sync::Arc<Counter> {
        self.announce_failures.clone()
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Stores each write on its own, in order, in one script call (see
    /// [`place.lua`](place.lua)): one outcome per write.
    pub async fn place_many(&self, writes: &[Write]) -> Result<Vec<PlaceOutcome>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self.place.prepare_invoke();
        call.key(keys::SEQ)
            .key(keys::PIXEL_META)
            .key(keys::LOG)
            .key(keys::PROTECTIONS)
            .arg(self.log_len)
            .arg(self.history_len)
            .arg(USER_PIXELS_LEN)
            .arg(PIXEL_UPDATES_CHANNEL);
        for write in writes {
            let index = self.geometry.index(write.x, write.y);
            let (pixels_key, offset) = self.layout.pixel_slot(self.geometry, write.x, write.y);
            let [r, g, b] = write.color.rgb();
            let stored = [255 - r, 255 - g, 255 - b];
            let (pool_size, pool_refill) = write.pool.map_or((0, 0), |p| (p.size, p.refill_ms));
            let (ip, ip_size, ip_refill) = match write.ip_pool {
                Some((ip, p)) => (ip_key(ip), p.size, p.refill_ms),
                None => (String::new(), 0, 0),
            };
            call.key(format!("{}{}", keys::COOLDOWN_PREFIX, write.username))
                .key(format!("{}{}", keys::BAN_PREFIX, write.username))
                .key(format!("{}{index}", keys::HISTORY_PREFIX))
                .key(format!("{}{}", keys::USER_PIXELS_PREFIX, write.username))
                .key(format!("{}{}", keys::POOL_PREFIX, write.username))
                .key(format!("{}{ip}", keys::IP_POOL_PREFIX))
                .key(pixels_key)
                .arg(offset)
                .arg(&stored[..])
                .arg(write.x)
                .arg(write.y)
                .arg(write.color.to_string())
                .arg(&write.username)
                .arg(write.cooldown_ms)
                .arg(index)
                .arg(pool_size)
                .arg(pool_refill)
                .arg(ip_size)
                .arg(ip_refill)
                .arg(pixel_updated_prefix(
                    write.x,
                    write.y,
                    write.color,
                    &write.username,
                ));
        }
        let mut conn = self.conn.clone();
        let replies: Vec<Vec<i64>> = call.invoke_async(&mut conn).await.map_err(unavailable)?;
        if replies.len() != writes.len() {
            return Err(StoreError::Corrupt(format!(
                "place script answered {} replies for {} writes",
                replies.len(),
                writes.len()
            )));
        }
        writes
            .iter()
            .zip(replies)
            .map(|(write, reply)| self.outcome(write, &reply))
            .collect()
    }

    /// One write's outcome from its reply in `place.lua`.
    fn outcome(&self, write: &Write, reply: &[i64]) -> Result<PlaceOutcome, StoreError> {
        match reply {
            [1, seq, ts, announced] => {
                if *announced == 0 {
                    self.announce_failures.inc();
                    tracing::warn!(
                        seq,
                        "publishing a stored pixel failed; receivers repair the gap from the log"
                    );
                }
                Ok(PlaceOutcome::Stored(PixelUpdated {
                    x: write.x,
                    y: write.y,
                    color: write.color,
                    username: write.username.clone(),
                    timestamp: *ts as u64,
                    seq: *seq as u64,
                }))
            }
            [0, ttl] => Ok(PlaceOutcome::Cooldown {
                retry_after_ms: (*ttl).max(1) as u64,
            }),
            [2, ms] => Ok(PlaceOutcome::PoolEmpty {
                retry_after_ms: (*ms).max(1) as u64,
            }),
            [3, ms] => Ok(PlaceOutcome::IpLimited {
                retry_after_ms: (*ms).max(1) as u64,
            }),
            [4] => Ok(PlaceOutcome::Banned),
            [5] => Ok(PlaceOutcome::Protected),
            other => Err(StoreError::Corrupt(format!(
                "place script answered {other:?}"
            ))),
        }
    }

    pub async fn snapshot(&self) -> Result<Snapshot, StoreError> {
        if self.layout == BoardLayout::Chunks {
            // `CanvasStore::snapshot` refuses it first; this keeps a chunked
            // board from ever being read as an empty single key.
            return Err(StoreError::TooLargeToReadWhole {
                width: self.geometry.width,
                height: self.geometry.height,
            });
        }
        let mut conn = self.conn.clone();
        let (seq, stored, epoch): (Option<u64>, Option<Vec<u8>>, String) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(keys::EPOCH)
            .arg(new_epoch())
            .arg("NX")
            .ignore()
            .get(keys::SEQ)
            .get(keys::BOARD)
            .get(keys::EPOCH)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let len = self.geometry.byte_len();
        let mut rgb = stored.unwrap_or_default();
        if rgb.len() > len {
            return Err(StoreError::Corrupt(format!(
                "board key holds {} bytes, more than {len}",
                rgb.len()
            )));
        }
        // Bytes past the end of the stored string were never written: white.
        rgb.resize(len, 0);
        for byte in &mut rgb {
            *byte = !*byte;
        }
        Ok(Snapshot {
            seq: seq.unwrap_or(0),
            rgb: Bytes::from(rgb),
            epoch,
        })
    }

    /// One chunk: a `GETRANGE` per row of it, with `seq` and the epoch, in
    /// one `MULTI`, so the bytes and the `seq` agree like `snapshot`'s.
    pub async fn chunk(&self, id: ChunkId) -> Result<ChunkSnapshot, StoreError> {
        if self.layout == BoardLayout::Chunks {
            return self.chunk_key(id).await;
        }
        let g = self.geometry;
        let (x0, y0, w, h) = g.chunk_rect(id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(keys::EPOCH)
            .arg(new_epoch())
            .arg("NX")
            .ignore()
            .get(keys::SEQ)
            .get(keys::EPOCH);
        let row_bytes = w as usize * 3;
        for y in y0..y0 + h {
            let start = (y as usize * g.width as usize + x0 as usize) * 3;
            pipe.cmd("GETRANGE")
                .arg(keys::BOARD)
                .arg(start)
                .arg(start + row_bytes - 1);
        }
        let mut conn = self.conn.clone();
        let answer: Vec<Value> = pipe.query_async(&mut conn).await.map_err(unavailable)?;
        let mut answer = answer.into_iter();
        let seq: Option<u64> = from_value(answer.next())?;
        let epoch: String = from_value(answer.next())?;
        let mut rgb = vec![0xFF; CHUNK_BYTES];
        let mut written = false;
        for (dy, row) in answer.enumerate() {
            let row: Vec<u8> = from_value(Some(row))?;
            if row.len() > row_bytes {
                return Err(StoreError::Corrupt(format!(
                    "GETRANGE of a {row_bytes}-byte row answered {} bytes",
                    row.len()
                )));
            }
            // The key holds `255 - byte`: what it lacks reads as white.
            let dst = dy * CHUNK_SIZE as usize * 3;
            for (out, stored) in rgb[dst..].iter_mut().zip(&row) {
                *out = !*stored;
                written |= *stored != 0;
            }
        }
        Ok(ChunkSnapshot {
            seq: seq.unwrap_or(0),
            rgb: written.then(|| Bytes::from(rgb)),
            epoch,
        })
    }

    /// One chunk of a board kept by chunks: a `GET` of its key, with `seq`
    /// and the epoch, in one `MULTI`.
    async fn chunk_key(&self, id: ChunkId) -> Result<ChunkSnapshot, StoreError> {
        let mut conn = self.conn.clone();
        let (seq, epoch, stored): (Option<u64>, String, Option<Vec<u8>>) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(keys::EPOCH)
            .arg(new_epoch())
            .arg("NX")
            .ignore()
            .get(keys::SEQ)
            .get(keys::EPOCH)
            .get(keys::board_chunk(id.cx, id.cy))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let stored = stored.unwrap_or_default();
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
        Ok(ChunkSnapshot {
            seq: seq.unwrap_or(0),
            rgb,
            epoch,
        })
    }

    pub async fn pixel(&self, x: u32, y: u32) -> Result<Option<PixelRecord>, StoreError> {
        let index = self.geometry.index(x, y);
        let mut conn = self.conn.clone();
        let meta: Option<String> = conn
            .hget(keys::PIXEL_META, index)
            .await
            .map_err(unavailable)?;
        meta.map(|m| parse_meta(&m)).transpose()
    }

    pub async fn updates_since(
        &self,
        since: u64,
        limit: usize,
        epoch: Option<&str>,
    ) -> Result<Updates, StoreError> {
        let mut conn = self.conn.clone();
        let reply: Value = self
            .updates
            .key(keys::SEQ)
            .key(keys::LOG)
            .key(keys::EPOCH)
            .arg(since)
            .arg(limit)
            .arg(new_epoch())
            .arg(epoch.unwrap_or(""))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        parse_updates(reply, since, limit)
    }

    pub async fn latest_seq(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let seq: Option<u64> = conn.get(keys::SEQ).await.map_err(unavailable)?;
        Ok(seq.unwrap_or(0))
    }

    pub async fn history(&self, x: u32, y: u32) -> Result<Vec<PixelRecord>, StoreError> {
        Ok(self
            .histories_of(&[(x, y)])
            .await?
            .pop()
            .map(|(_, h)| h)
            .unwrap_or_default())
    }

    pub async fn histories_of(
        &self,
        pixels: &[(u32, u32)],
    ) -> Result<Vec<((u32, u32), Vec<PixelRecord>)>, StoreError> {
        let mut conn = self.conn.clone();
        let mut out = Vec::with_capacity(pixels.len());
        for slice in pixels.chunks(HISTORY_BATCH) {
            let mut pipe = redis::pipe();
            for &(x, y) in slice {
                let index = self.geometry.index(x, y);
                pipe.lrange(format!("{}{index}", keys::HISTORY_PREFIX), 0, -1);
            }
            let lists: Vec<Vec<String>> = pipe.query_async(&mut conn).await.map_err(unavailable)?;
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

    pub async fn user_pixels_since(
        &self,
        username: &str,
        since: u64,
    ) -> Result<Vec<(u32, u32)>, StoreError> {
        let mut conn = self.conn.clone();
        let indexes: Vec<u64> = conn
            .zrangebyscore(
                format!("{}{username}", keys::USER_PIXELS_PREFIX),
                since,
                "+inf",
            )
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

    pub async fn cleared(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<String> = conn.get(keys::CLEARED).await.map_err(unavailable)?;
        raw.map(|r| {
            let bad = || StoreError::Corrupt(format!("{} holds {r:?}", keys::CLEARED));
            let (seq, ts) = r.split_once(':').ok_or_else(bad)?;
            Ok((
                seq.parse().map_err(|_| bad())?,
                ts.parse().map_err(|_| bad())?,
            ))
        })
        .transpose()
    }

    pub async fn rewrite(
        &self,
        writes: &[Rewrite],
        username: &str,
    ) -> Result<Vec<PixelUpdated>, StoreError> {
        let mut conn = self.conn.clone();
        let mut events = Vec::new();
        for slice in writes.chunks(REWRITE_BATCH) {
            let mut call = self.rewrite.prepare_invoke();
            call.key(keys::SEQ)
                .key(keys::PIXEL_META)
                .key(keys::LOG)
                .arg(self.log_len)
                .arg(username)
                .arg(self.history_len)
                .arg(PIXEL_UPDATES_CHANNEL)
                .arg("");
            for w in slice {
                let index = self.geometry.index(w.x, w.y);
                let (pixels_key, offset) = self.layout.pixel_slot(self.geometry, w.x, w.y);
                call.key(format!("{}{index}", keys::HISTORY_PREFIX))
                    .key(pixels_key)
                    .arg(index)
                    .arg(w.x)
                    .arg(w.y)
                    .arg(w.color.to_string())
                    .arg(w.expected_seq)
                    .arg(pixel_updated_prefix(w.x, w.y, w.color, username))
                    .arg(offset);
            }
            let reply: Vec<u64> = call.invoke_async(&mut conn).await.map_err(unavailable)?;
            let [timestamp, failed, seqs @ ..] = reply.as_slice() else {
                return Err(StoreError::Corrupt(
                    "rewrite script answered nothing".into(),
                ));
            };
            let timestamp = *timestamp;
            if *failed > 0 {
                self.announce_failures.add(*failed);
                tracing::warn!(
                    failed,
                    "publishing moderation writes failed; receivers repair the gap from the log"
                );
            }
            for (w, &seq) in slice.iter().zip(seqs) {
                if seq > 0 {
                    events.push(PixelUpdated {
                        x: w.x,
                        y: w.y,
                        color: w.color,
                        username: username.to_owned(),
                        timestamp,
                        seq,
                    });
                }
            }
        }
        Ok(events)
    }

    pub async fn clear(&self) -> Result<(u64, u64), StoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.clear.prepare_invoke();
        call.key(keys::SEQ)
            .key(keys::PIXEL_META)
            .key(keys::LOG)
            .key(keys::CLEARED);
        for key in self.layout.board_keys(self.geometry) {
            call.key(key);
        }
        let reply: (u64, u64) = call.invoke_async(&mut conn).await.map_err(unavailable)?;
        Ok(reply)
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

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// A candidate epoch, kept only when the board has none.
pub(super) fn new_epoch() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// One value of a pipeline's answer as `T` (a missing value is `Nil`).
fn from_value<T: redis::FromRedisValue>(value: Option<Value>) -> Result<T, StoreError> {
    redis::from_redis_value(value.unwrap_or(Value::Nil))
        .map_err(|e| StoreError::Corrupt(format!("a chunk read answered {e}")))
}

pub(super) fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Parses `"<seq>:<timestamp>:<#RRGGBB>:<username>"`.
pub(super) fn parse_meta(meta: &str) -> Result<PixelRecord, StoreError> {
    let bad = || StoreError::Corrupt(format!("pixel metadata {meta:?}"));
    let mut parts = meta.splitn(4, ':');
    let seq = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let timestamp = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let color: Color = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let username = parts.next().ok_or_else(bad)?.to_owned();
    Ok(PixelRecord {
        color,
        username,
        timestamp,
        seq,
    })
}

pub(super) fn parse_updates(reply: Value, since: u64, limit: usize) -> Result<Updates, StoreError> {
    let bad = |what: &str| StoreError::Corrupt(format!("updates script answered {what}"));
    let Value::Array(parts) = reply else {
        return Err(bad("a non-array"));
    };
    let latest_seq = match parts.first() {
        Some(Value::Int(n)) => *n as u64,
        _ => return Err(bad("no latest seq")),
    };
    match parts.get(1) {
        Some(Value::Int(1)) => {}
        Some(Value::Int(0)) => return Ok(Updates::Gone { latest_seq }),
        _ => return Err(bad("no status")),
    }
    let epoch = match parts.get(2) {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => return Err(bad("no epoch")),
    };
    let entries = match parts.get(3) {
        Some(Value::Array(entries)) => entries.as_slice(),
        _ => &[],
    };
    let mut events = Vec::with_capacity(entries.len());
    for (expected, entry) in (since + 1..).zip(entries) {
        let event = parse_entry(entry)?;
        if event.seq != expected {
            // Entries are written with consecutive seqs; a hole means the
            // log was tampered with, and a page must never skip silently.
            return Err(StoreError::Corrupt(format!(
                "replay log jumps from seq {} to {}",
                expected - 1,
                event.seq
            )));
        }
        events.push(event);
    }
    let last = events.last().map_or(since, |e| e.seq);
    Ok(Updates::Page(ReplayPage {
        has_more: events.len() == limit && last < latest_seq,
        events,
        latest_seq,
        epoch,
    }))
}

/// Parses one stream entry `[id, [field, value, ...]]`.
fn parse_entry(entry: &Value) -> Result<PixelUpdated, StoreError> {
    let bad = || StoreError::Corrupt(format!("replay log entry {entry:?}"));
    let Value::Array(pair) = entry else {
        return Err(bad());
    };
    let [id, Value::Array(fields)] = pair.as_slice() else {
        return Err(bad());
    };
    let text = |v: &Value| -> Option<String> {
        match v {
            Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        }
    };
    let id = text(id).ok_or_else(bad)?;
    let seq: u64 = id
        .split('-')
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let (mut x, mut y, mut color, mut username, mut timestamp) = (None, None, None, None, None);
    for kv in fields.chunks(2) {
        let [k, v] = kv else { return Err(bad()) };
        let (k, v) = (text(k).ok_or_else(bad)?, text(v).ok_or_else(bad)?);
        match k.as_str() {
            "x" => x = v.parse().ok(),
            "y" => y = v.parse().ok(),
            "c" => color = v.parse().ok(),
            "u" => username = Some(v),
            "t" => timestamp = v.parse().ok(),
            _ => {}
        }
    }
    Ok(PixelUpdated {
        x: x.ok_or_else(bad)?,
        y: y.ok_or_else(bad)?,
        color: color.ok_or_else(bad)?,
        username: username.ok_or_else(bad)?,
        timestamp: timestamp.ok_or_else(bad)?,
        seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_round_trip() {
        let r = parse_meta("12:1700000000000:#FF4500:alice").unwrap();
        assert_eq!(r.seq, 12);
        assert_eq!(r.timestamp, 1_700_000_000_000);
        assert_eq!(r.color, Color([0xFF, 0x45, 0]));
        assert_eq!(r.username, "alice");
        assert!(parse_meta("12:x:#FF4500:alice").is_err());
        assert!(parse_meta("12:1").is_err());
    }
}
