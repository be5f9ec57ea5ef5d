//! The embedded store: the board in memory, kept on disk in `DATA_DIR`, for
//! the single-process default (no Redis).
//!
//! Every write is appended to `pixels.log` (one `write` call) before it is
//! acknowledged, so a process crash loses nothing acknowledged; the log is
//! fsynced every second, so a power cut loses at most about a second, like
//! Redis with `appendfsync everysec`. `board.snap` holds the board at one
//! `seq`; start-up loads it, replays the log over it, and compacts both.
//! A `lock` file keeps a second process off the same folder. `epoch` names
//! this board: a new board (no snapshot, no log) gets a new one, so a client
//! holding a `seq` of a board that was deleted can tell.
//!
//! Pixel history (per pixel, `HISTORY_LEN` deep) is kept in memory and
//! written to `history.bin` with every snapshot; the log replays over it
//! like over the board. Moderation state (bans, protections, audit log) is
//! in `moderation.json`.

mod checksum;
mod history;
mod log;
mod moderation;
mod snapshot;

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use protocol::http::{AuditEntry, BanInfo, Protection, Rect};
use protocol::{Color, PixelUpdated};

use self::log::LogWriter;
use self::moderation::ModerationState;
use super::{
    AUDIT_LEN, Geometry, MAX_PROTECTIONS, PixelRecord, PlaceOutcome, ReplayPage, Rewrite, Snapshot,
    StoreError, USER_PIXELS_LEN, Updates, Write, ip_key,
};
use crate::clock::now_ms;

const SNAPSHOT_FILE: &str = "board.snap";
const LOG_FILE: &str = "pixels.log";
const LOCK_FILE: &str = "lock";
const EPOCH_FILE: &str = "epoch";
const MODERATION_FILE: &str = "moderation.json";

/// `HISTORY_LEN` when the caller does not say.
pub const DEFAULT_HISTORY_LEN: usize = 16;

const HISTORY_FILE: &str = "history.bin";

use self::history::{HistEntry, Histories};

/// Per user, `(timestamp, pixel index)` of their placements, oldest first.
type UserPixels = HashMap<Arc<str>, VecDeque<(u64, u32)>>;

/// The most writes kept in memory for `/api/updates`, whatever
/// `REPLAY_LOG_LEN` says, so memory stays bounded.
const MAX_RECENT: usize = 1_000_000;

/// Who placed a pixel; its color is on the board.
#[derive(Debug, Clone)]
pub(crate) struct PixelMeta {
    pub seq: u64,
    pub timestamp: u64,
    pub username: Arc<str>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("DATA_DIR {dir}: {source}")]
    Dir { dir: String, source: std::io::Error },
    #[error("DATA_DIR {0} is in use by another process (its lock file is held)")]
    Locked(String),
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    #[error(transparent)]
    Log(#[from] log::LogError),
    #[error("{0}")]
    Mismatch(String),
    #[error("{0}")]
    Moderation(String),
}

#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    geometry: Geometry,
    dir: PathBuf,
    epoch: String,
    recent_cap: usize,
    history_len: usize,
    /// The `seq` of the snapshot loaded at start-up: history entries at or
    /// below it are seeds, and what came before them is unknown.
    history_floor: u64,
    state: Mutex<State>,
    sync_file: Mutex<File>,
    _lock: File,
}

struct State {
    board: Vec<u8>,
    seq: u64,
    last_timestamp: u64,
    meta: HashMap<u32, PixelMeta>,
    recent: VecDeque<PixelUpdated>,
    cooldowns: HashMap<String, Instant>,
    cooldowns_pruned_at: usize,
    /// GCRA TATs (ms) of user pools and IP pools, pruned like cooldowns.
    pools: HashMap<String, u64>,
    ip_pools: HashMap<String, u64>,
    pools_pruned_at: usize,
    /// Per pixel index, newest last, at most `history_len`.
    history: Histories,
    /// Per user, `(timestamp, pixel index)` of their placements, oldest
    /// first, at most [`USER_PIXELS_LEN`].
    user_pixels: UserPixels,
    moderation: ModerationState,
    log: LogWriter,
    log_records: u64,
    /// The last I/O error writing the log: writes are refused until a
    /// compaction starts a new log, so nothing unlogged is acknowledged.
    broken: Option<String>,
    /// A write reached the log since the last fsync.
    unsynced: bool,
}

impl EmbeddedStore {
    pub fn open(dir: &Path, geometry: Geometry, log_len: u64) -> Result<Self, OpenError> {
        Self::open_with_history(dir, geometry, log_len, DEFAULT_HISTORY_LEN)
    }

    pub fn open_with_history(
        dir: &Path,
        geometry: Geometry,
        log_len: u64,
        history_len: usize,
    ) -> Result<Self, OpenError> {
        let history_len = history_len.max(1);
        let dir_name = dir.display().to_string();
        let dir_err = |source| OpenError::Dir {
            dir: dir_name.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(dir_err)?;
        let lock = File::create(dir.join(LOCK_FILE)).map_err(dir_err)?;
        if lock.try_lock().is_err() {
            return Err(OpenError::Locked(dir_name));
        }

        let snap_path = dir.join(SNAPSHOT_FILE);
        let log_path = dir.join(LOG_FILE);
        let epoch =
            read_or_new_epoch(dir, !snap_path.exists() && !log_path.exists()).map_err(dir_err)?;
        let (mut seq, mut board, mut meta) = if snap_path.exists() {
            let loaded = snapshot::read(&snap_path, geometry)?;
            (loaded.seq, loaded.board, loaded.meta)
        } else {
            (0, vec![0xFF; geometry.byte_len()], HashMap::new())
        };

        let moderation =
            ModerationState::load(&dir.join(MODERATION_FILE)).map_err(OpenError::Moderation)?;
        let (mut history, mut user_pixels, history_floor) =
            initial_history(dir, geometry, history_len, seq, &board, &meta);
        let recent_cap = (log_len as usize).min(MAX_RECENT);
        let mut recent = VecDeque::new();
        let mut last_timestamp = 0;
        if log_path.exists() {
            let replay = log::replay(&log_path)?;
            if replay.torn_bytes > 0 {
                tracing::warn!(
                    file = %log_path.display(),
                    bytes = replay.torn_bytes,
                    "cut a torn last record from the log (a crash interrupted its write; it was never acknowledged)"
                );
            }
            if replay.base_seq > seq {
                return Err(OpenError::Mismatch(format!(
                    "{} follows seq {} but {} holds only seq {seq}; a snapshot is missing",
                    log_path.display(),
                    replay.base_seq,
                    snap_path.display()
                )));
            }
            for event in replay.events {
                if event.seq <= seq {
                    continue; // Already in the snapshot (compaction was cut short).
                }
                if event.seq != seq + 1 {
                    return Err(OpenError::Mismatch(format!(
                        "{} jumps from seq {seq} to {}",
                        log_path.display(),
                        event.seq
                    )));
                }
                if event.x >= geometry.width || event.y >= geometry.height {
                    return Err(OpenError::Mismatch(format!(
                        "{} holds pixel ({}, {}) outside the {}x{} board",
                        log_path.display(),
                        event.x,
                        event.y,
                        geometry.width,
                        geometry.height
                    )));
                }
                apply(geometry, &mut board, &mut meta, &event);
                remember(
                    geometry,
                    history_len,
                    &mut history,
                    &mut user_pixels,
                    &event,
                );
                seq = event.seq;
                last_timestamp = last_timestamp.max(event.timestamp);
                recent.push_back(event);
                if recent.len() > recent_cap {
                    recent.pop_front();
                }
            }
        }

        // Compact: one snapshot with everything, and an empty log after it.
        snapshot::write(&snap_path, geometry, seq, &board, &meta).map_err(dir_err)?;
        history::write(&dir.join(HISTORY_FILE), seq, &history).map_err(dir_err)?;
        let log = LogWriter::create(&log_path, seq).map_err(dir_err)?;
        let sync_file = log.sync_handle().map_err(dir_err)?;

        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                geometry,
                dir: dir.to_owned(),
                epoch,
                recent_cap,
                history_len,
                history_floor,
                state: Mutex::new(State {
                    board,
                    seq,
                    last_timestamp,
                    meta,
                    recent,
                    cooldowns: HashMap::new(),
                    cooldowns_pruned_at: 0,
                    pools: HashMap::new(),
                    ip_pools: HashMap::new(),
                    pools_pruned_at: 0,
                    history,
                    user_pixels,
                    moderation,
                    log,
                    log_records: 0,
                    broken: None,
                    unsynced: false,
                }),
                sync_file: Mutex::new(sync_file),
                _lock: lock,
            }),
        })
    }

    pub fn geometry(&self) -> Geometry {
        self.inner.geometry
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state as consistent as
        // any single write leaves it; keep serving.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn place(&self, write: &Write) -> Result<PlaceOutcome, StoreError> {
        let mut guard = self.state();
        let state = &mut *guard;
        let now = Instant::now();
        let wall = now_ms().max(state.last_timestamp);
        // Every refusal is decided before anything changes.
        if state.moderation.is_banned(&write.username, wall) {
            return Ok(PlaceOutcome::Banned);
        }
        if state.moderation.is_protected(write.x, write.y) {
            return Ok(PlaceOutcome::Protected);
        }
        if write.cooldown_ms > 0 {
            if let Some(&until) = state.cooldowns.get(&write.username)
                && until > now
            {
                let left = until - now;
                return Ok(PlaceOutcome::Cooldown {
                    retry_after_ms: (left.as_millis() as u64).max(1),
                });
            }
            // Expired entries are pruned whenever the map doubles, so it
            // holds about as many users as placed within one cooldown.
            if state.cooldowns.len() >= 2 * state.cooldowns_pruned_at.max(1024) {
                state.cooldowns.retain(|_, until| *until > now);
                state.cooldowns_pruned_at = state.cooldowns.len();
            }
        }
        let pool_tat = match write.pool {
            Some(pool) => match pool.take(state.pools.get(&write.username).copied(), wall) {
                Ok(tat) => Some(tat),
                Err(wait) => {
                    return Ok(PlaceOutcome::PoolEmpty {
                        retry_after_ms: wait.max(1),
                    });
                }
            },
            None => None,
        };
        let ip_tat = match write.ip_pool {
            Some((ip, pool)) => {
                let key = ip_key(ip);
                match pool.take(state.ip_pools.get(&key).copied(), wall) {
                    Ok(tat) => Some((key, tat)),
                    Err(wait) => {
                        return Ok(PlaceOutcome::IpLimited {
                            retry_after_ms: wait.max(1),
                        });
                    }
                }
            }
            None => None,
        };
        if let Some(cause) = &state.broken {
            return Err(StoreError::Unavailable(format!(
                "the pixel log cannot be written: {cause}"
            )));
        }
        let event = PixelUpdated {
            x: write.x,
            y: write.y,
            color: write.color,
            username: write.username.clone(),
            timestamp: wall,
            seq: state.seq + 1,
        };
        self.append(state, &event)?;
        if write.cooldown_ms > 0 {
            state.cooldowns.insert(
                write.username.clone(),
                now + Duration::from_millis(write.cooldown_ms),
            );
        }
        if pool_tat.is_some() || ip_tat.is_some() {
            if state.pools.len() + state.ip_pools.len() >= 2 * state.pools_pruned_at.max(1024) {
                state.pools.retain(|_, tat| *tat > wall);
                state.ip_pools.retain(|_, tat| *tat > wall);
                state.pools_pruned_at = state.pools.len() + state.ip_pools.len();
            }
            if let Some(tat) = pool_tat {
                state.pools.insert(write.username.clone(), tat);
            }
            if let Some((key, tat)) = ip_tat {
                state.ip_pools.insert(key, tat);
            }
        }
        Ok(PlaceOutcome::Stored(event))
    }

    /// Logs and applies one write whose checks passed.
    fn append(&self, state: &mut State, event: &PixelUpdated) -> Result<(), StoreError> {
        if let Err(e) = state.log.append(event) {
            tracing::error!(error = %e, "writing the pixel log failed; refusing writes until it is rewritten");
            state.broken = Some(e.to_string());
            return Err(StoreError::Unavailable(format!(
                "the pixel log cannot be written: {e}"
            )));
        }
        state.seq = event.seq;
        state.last_timestamp = event.timestamp;
        state.log_records += 1;
        state.unsynced = true;
        let g = self.inner.geometry;
        apply(g, &mut state.board, &mut state.meta, event);
        remember(
            g,
            self.inner.history_len,
            &mut state.history,
            &mut state.user_pixels,
            event,
        );
        state.recent.push_back(event.clone());
        if state.recent.len() > self.inner.recent_cap {
            state.recent.pop_front();
        }
        Ok(())
    }

    pub fn history(&self, x: u32, y: u32) -> Vec<PixelRecord> {
        let index = self.inner.geometry.index(x, y) as u32;
        let state = self.state();
        state.history.get(&index).map_or_else(Vec::new, |h| {
            h.iter()
                .rev()
                .map(|e| PixelRecord {
                    color: e.color,
                    username: e.username.to_string(),
                    timestamp: e.timestamp,
                    seq: e.seq,
                })
                .collect()
        })
    }

    pub fn history_floor(&self) -> u64 {
        self.inner.history_floor
    }

    pub fn user_pixels_since(&self, username: &str, since: u64) -> Vec<(u32, u32)> {
        let state = self.state();
        let Some(placed) = state.user_pixels.get(username) else {
            return Vec::new();
        };
        let w = self.inner.geometry.width;
        let mut seen = std::collections::HashSet::new();
        placed
            .iter()
            .filter(|(ts, index)| *ts >= since && seen.insert(*index))
            .map(|(_, index)| (index % w, index / w))
            .collect()
    }

    pub fn cleared(&self) -> Option<(u64, u64)> {
        self.state().moderation.cleared
    }

    pub fn rewrite(
        &self,
        writes: &[Rewrite],
        username: &str,
    ) -> Result<Vec<PixelUpdated>, StoreError> {
        let mut guard = self.state();
        let state = &mut *guard;
        if let Some(cause) = &state.broken {
            return Err(StoreError::Unavailable(format!(
                "the pixel log cannot be written: {cause}"
            )));
        }
        let mut written = Vec::new();
        for w in writes {
            let index = self.inner.geometry.index(w.x, w.y) as u32;
            let current = state.meta.get(&index).map_or(0, |m| m.seq);
            if current != w.expected_seq {
                continue; // Placed on meanwhile: the later pixel stays.
            }
            let event = PixelUpdated {
                x: w.x,
                y: w.y,
                color: w.color,
                username: username.to_owned(),
                timestamp: now_ms().max(state.last_timestamp),
                seq: state.seq + 1,
            };
            self.append(state, &event)?;
            written.push(event);
        }
        Ok(written)
    }

    /// Writes the cleared board as a snapshot at the next `seq` with an
    /// empty log after it: nothing can replay across the clear.
    pub fn clear(&self) -> Result<(u64, u64), StoreError> {
        let mut guard = self.state();
        let state = &mut *guard;
        let fail = |e: std::io::Error| StoreError::Unavailable(format!("clearing failed: {e}"));
        let seq = state.seq + 1;
        let timestamp = now_ms().max(state.last_timestamp);
        let g = self.inner.geometry;
        let dir = &self.inner.dir;
        let white = vec![0xFF; g.byte_len()];
        snapshot::write(&dir.join(SNAPSHOT_FILE), g, seq, &white, &HashMap::new()).map_err(fail)?;
        // Histories stay across a clear, for a rollback to before it.
        history::write(&dir.join(HISTORY_FILE), seq, &state.history).map_err(fail)?;
        self.start_new_log(state, seq).map_err(fail)?;
        state.broken = None;
        state.board = white;
        state.meta.clear();
        state.recent.clear();
        state.seq = seq;
        state.last_timestamp = timestamp;
        state.moderation.cleared = Some((seq, timestamp));
        self.save_moderation(state)?;
        Ok((seq, timestamp))
    }

    fn save_moderation(&self, state: &State) -> Result<(), StoreError> {
        state
            .moderation
            .save(&self.inner.dir.join(MODERATION_FILE))
            .map_err(|e| StoreError::Unavailable(format!("writing {MODERATION_FILE}: {e}")))
    }

    pub fn ban(&self, ban: &BanInfo) -> Result<(), StoreError> {
        let mut state = self.state();
        state
            .moderation
            .bans
            .insert(ban.username.clone(), ban.clone());
        self.save_moderation(&state)
    }

    pub fn unban(&self, username: &str) -> Result<bool, StoreError> {
        let mut state = self.state();
        let now = now_ms();
        let was = state.moderation.is_banned(username, now);
        state.moderation.bans.remove(username);
        self.save_moderation(&state)?;
        Ok(was)
    }

    pub fn bans(&self, now: u64) -> Vec<BanInfo> {
        let state = self.state();
        state
            .moderation
            .bans
            .values()
            .filter(|b| b.until.is_none_or(|u| u > now))
            .cloned()
            .collect()
    }

    pub fn protect(&self, rect: Rect, by: &str, at: u64) -> Result<Option<Protection>, StoreError> {
        let mut state = self.state();
        if state.moderation.protections.len() >= MAX_PROTECTIONS {
            return Ok(None);
        }
        state.moderation.last_protection_id += 1;
        let protection = Protection {
            id: state.moderation.last_protection_id,
            rect,
            by: by.to_owned(),
            at,
        };
        state.moderation.protections.push(protection.clone());
        self.save_moderation(&state)?;
        Ok(Some(protection))
    }

    pub fn unprotect(&self, id: u64) -> Result<bool, StoreError> {
        let mut state = self.state();
        let before = state.moderation.protections.len();
        state.moderation.protections.retain(|p| p.id != id);
        let removed = state.moderation.protections.len() < before;
        self.save_moderation(&state)?;
        Ok(removed)
    }

    pub fn protections(&self) -> Vec<Protection> {
        self.state().moderation.protections.clone()
    }

    pub fn audit_push(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut state = self.state();
        state.moderation.audit.push_front(entry.clone());
        state.moderation.audit.truncate(AUDIT_LEN);
        self.save_moderation(&state)
    }

    pub fn audit(&self, limit: usize) -> Vec<AuditEntry> {
        let state = self.state();
        state.moderation.audit.iter().take(limit).cloned().collect()
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.state();
        Snapshot {
            seq: state.seq,
            rgb: Bytes::copy_from_slice(&state.board),
            epoch: self.inner.epoch.clone(),
        }
    }

    pub fn pixel(&self, x: u32, y: u32) -> Option<PixelRecord> {
        let index = self.inner.geometry.index(x, y);
        let state = self.state();
        let m = state.meta.get(&(index as u32))?;
        let rgb = &state.board[index * 3..index * 3 + 3];
        Some(PixelRecord {
            color: Color([rgb[0], rgb[1], rgb[2]]),
            username: m.username.to_string(),
            timestamp: m.timestamp,
            seq: m.seq,
        })
    }

    pub fn updates_since(&self, since: u64, limit: usize, epoch: Option<&str>) -> Updates {
        let state = self.state();
        let latest_seq = state.seq;
        if epoch.is_some_and(|e| e != self.inner.epoch) {
            return Updates::Gone { latest_seq };
        }
        let epoch = self.inner.epoch.clone();
        if since == latest_seq {
            return Updates::Page(ReplayPage {
                events: Vec::new(),
                latest_seq,
                has_more: false,
                epoch,
            });
        }
        let oldest = state.recent.front().map(|e| e.seq);
        match oldest {
            Some(oldest) if since < latest_seq && oldest <= since + 1 => {
                let skip = (since + 1 - oldest) as usize;
                let events: Vec<_> = state
                    .recent
                    .iter()
                    .skip(skip)
                    .take(limit)
                    .cloned()
                    .collect();
                let last = events.last().map_or(since, |e| e.seq);
                Updates::Page(ReplayPage {
                    events,
                    latest_seq,
                    has_more: last < latest_seq,
                    epoch,
                })
            }
            _ => Updates::Gone { latest_seq },
        }
    }

    pub fn latest_seq(&self) -> u64 {
        self.state().seq
    }

    pub fn ping(&self) -> Result<(), StoreError> {
        match &self.state().broken {
            Some(cause) => Err(StoreError::Unavailable(format!(
                "the pixel log cannot be written: {cause}"
            ))),
            None => Ok(()),
        }
    }

    /// Fsyncs the log if anything was written since the last call. Runs
    /// outside the store's lock, so writes go on meanwhile.
    pub fn flush(&self) -> Result<(), StoreError> {
        let unsynced = std::mem::take(&mut self.state().unsynced);
        if !unsynced {
            return Ok(());
        }
        let file = self
            .inner
            .sync_file
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        file.sync_data()
            .map_err(|e| StoreError::Unavailable(format!("fsync of the pixel log failed: {e}")))
    }

    /// Starts an empty log after `seq` (a snapshot at `seq` is already on
    /// disk) and makes it the one writes and fsyncs go to.
    fn start_new_log(&self, state: &mut State, seq: u64) -> std::io::Result<()> {
        let log = LogWriter::create(&self.inner.dir.join(LOG_FILE), seq)?;
        *self
            .inner
            .sync_file
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = log.sync_handle()?;
        state.log = log;
        state.log_records = 0;
        state.unsynced = false;
        Ok(())
    }

    /// Writes a snapshot and starts an empty log when the log has grown past
    /// `threshold` records (or cannot be written). Blocks writes meanwhile:
    /// call it from a blocking thread.
    pub fn compact_if_larger_than(&self, threshold: u64) -> Result<bool, StoreError> {
        let mut state = self.state();
        if state.log_records < threshold && state.broken.is_none() {
            return Ok(false);
        }
        let fail = |e: std::io::Error| StoreError::Unavailable(format!("compaction failed: {e}"));
        let dir = &self.inner.dir;
        snapshot::write(
            &dir.join(SNAPSHOT_FILE),
            self.inner.geometry,
            state.seq,
            &state.board,
            &state.meta,
        )
        .map_err(fail)?;
        history::write(&dir.join(HISTORY_FILE), state.seq, &state.history).map_err(fail)?;
        let seq = state.seq;
        self.start_new_log(&mut state, seq).map_err(fail)?;
        if state.broken.take().is_some() {
            tracing::info!("pixel log rewritten; accepting writes again");
        }
        Ok(true)
    }
}

/// The histories at start-up, before the log is replayed over them:
/// `history.bin` when it was written with the snapshot; otherwise (an older
/// folder, or a crash between the two files) each pixel's last write from
/// the snapshot, with the snapshot's `seq` as the floor below which older
/// writes count as unknown. Also returns the pixels each user placed, as
/// far as the histories tell.
fn initial_history(
    dir: &Path,
    geometry: Geometry,
    history_len: usize,
    seq: u64,
    board: &[u8],
    meta: &HashMap<u32, PixelMeta>,
) -> (Histories, UserPixels, u64) {
    let path = dir.join(HISTORY_FILE);
    let (mut histories, floor) = match history::read(&path, geometry.pixel_count()) {
        Ok(Some((at, h))) if at == seq => (h, 0),
        found => {
            match found {
                Ok(Some((at, _))) => tracing::warn!(
                    file = %path.display(), history_seq = at, snapshot_seq = seq,
                    "pixel histories do not match the snapshot; each pixel keeps only its last write"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    "pixel histories unreadable; each pixel keeps only its last write"
                ),
                Ok(None) => {}
            }
            let mut seeded = Histories::new();
            for (&index, m) in meta {
                let i = index as usize * 3;
                seeded.entry(index).or_default().push_back(HistEntry {
                    seq: m.seq,
                    timestamp: m.timestamp,
                    color: Color([board[i], board[i + 1], board[i + 2]]),
                    username: m.username.clone(),
                });
            }
            (seeded, seq)
        }
    };
    let mut placed: Vec<(u64, u32, Arc<str>)> = Vec::new();
    for (&index, entries) in &mut histories {
        while entries.len() > history_len {
            entries.pop_front();
        }
        for e in entries.iter().filter(|e| !e.username.starts_with('~')) {
            placed.push((e.timestamp, index, e.username.clone()));
        }
    }
    placed.sort_by_key(|(ts, _, _)| *ts);
    let mut user_pixels = UserPixels::new();
    for (ts, index, username) in placed {
        let mine = user_pixels.entry(username).or_default();
        mine.push_back((ts, index));
        if mine.len() > USER_PIXELS_LEN {
            mine.pop_front();
        }
    }
    (histories, user_pixels, floor)
}

/// Adds a write to its pixel's history and, for a player, to the pixels
/// that player placed. Moderation users (`~...`) are not indexed: nobody
/// undoes the moderators.
fn remember(
    geometry: Geometry,
    history_len: usize,
    history: &mut Histories,
    user_pixels: &mut UserPixels,
    event: &PixelUpdated,
) {
    let index = geometry.index(event.x, event.y) as u32;
    let username: Arc<str> = Arc::from(event.username.as_str());
    let h = history.entry(index).or_default();
    h.push_back(HistEntry {
        seq: event.seq,
        timestamp: event.timestamp,
        color: event.color,
        username: username.clone(),
    });
    while h.len() > history_len {
        h.pop_front();
    }
    if !event.username.starts_with('~') {
        let placed = user_pixels.entry(username).or_default();
        placed.push_back((event.timestamp, index));
        if placed.len() > USER_PIXELS_LEN {
            placed.pop_front();
        }
    }
}

fn apply(
    geometry: Geometry,
    board: &mut [u8],
    meta: &mut HashMap<u32, PixelMeta>,
    event: &PixelUpdated,
) {
    let index = geometry.index(event.x, event.y);
    board[index * 3..index * 3 + 3].copy_from_slice(&event.color.rgb());
    meta.insert(
        index as u32,
        PixelMeta {
            seq: event.seq,
            timestamp: event.timestamp,
            username: Arc::from(event.username.as_str()),
        },
    );
}

/// This board's epoch from `DATA_DIR/epoch`, or a new one written there when
/// the board is new or the file is missing or unreadable as an epoch (which
/// costs clients one board download, never a wrong one).
fn read_or_new_epoch(dir: &Path, new_board: bool) -> std::io::Result<String> {
    let path = dir.join(EPOCH_FILE);
    if !new_board {
        match std::fs::read_to_string(&path) {
            Ok(text) if is_epoch(text.trim()) => return Ok(text.trim().to_owned()),
            Ok(_) => tracing::warn!(file = %path.display(), "not an epoch; starting a new one"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let epoch = uuid::Uuid::new_v4().simple().to_string();
    let tmp = dir.join(format!("{EPOCH_FILE}.tmp"));
    std::fs::write(&tmp, format!("{epoch}\n"))?;
    File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(epoch)
}

fn is_epoch(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("canvas-embedded-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    const G: Geometry = Geometry {
        width: 8,
        height: 4,
    };

    fn write(x: u32, user: &str, cooldown_ms: u64) -> Write {
        Write {
            x,
            y: 1,
            color: Color([10, 20, 30]),
            username: user.into(),
            cooldown_ms,
            pool: None,
            ip_pool: None,
        }
    }

    fn stored(outcome: PlaceOutcome) -> PixelUpdated {
        match outcome {
            PlaceOutcome::Stored(e) => e,
            other => panic!("not stored: {other:?}"),
        }
    }

    #[test]
    fn writes_survive_reopening_and_keep_their_seq() {
        let d = dir("reopen");
        let store = EmbeddedStore::open(&d, G, 100).unwrap();
        let a = stored(store.place(&write(1, "a", 0)).unwrap());
        let b = stored(store.place(&write(2, "b", 0)).unwrap());
        assert_eq!((a.seq, b.seq), (1, 2));
        drop(store);
        let store = EmbeddedStore::open(&d, G, 100).unwrap();
        let snap = store.snapshot();
        assert_eq!(snap.seq, 2);
        let i = G.index(2, 1) * 3;
        assert_eq!(&snap.rgb[i..i + 3], &[10, 20, 30]);
        assert_eq!(&snap.rgb[0..3], &[255, 255, 255]);
        assert_eq!(store.pixel(2, 1).unwrap().username, "b");
        assert!(store.pixel(0, 0).is_none());
        // The replay log survived too.
        match store.updates_since(0, 10, None) {
            Updates::Page(page) => assert_eq!(page.events, vec![a, b]),
            gone => panic!("{gone:?}"),
        }
        let c = stored(store.place(&write(3, "c", 0)).unwrap());
        assert_eq!(c.seq, 3);
    }

    #[test]
    fn a_second_process_is_kept_off_the_folder() {
        let d = dir("lock");
        let _store = EmbeddedStore::open(&d, G, 100).unwrap();
        assert!(matches!(
            EmbeddedStore::open(&d, G, 100),
            Err(OpenError::Locked(_))
        ));
    }

    #[test]
    fn another_geometry_is_refused() {
        let d = dir("geometry");
        drop(EmbeddedStore::open(&d, G, 100).unwrap());
        let other = Geometry {
            width: 9,
            height: 4,
        };
        let err = EmbeddedStore::open(&d, other, 100)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("8x4"), "{err}");
    }

    #[test]
    fn cooldown_refuses_and_changes_nothing() {
        let d = dir("cooldown");
        let store = EmbeddedStore::open(&d, G, 100).unwrap();
        stored(store.place(&write(1, "a", 60_000)).unwrap());
        match store.place(&write(2, "a", 60_000)).unwrap() {
            PlaceOutcome::Cooldown { retry_after_ms } => assert!(retry_after_ms > 59_000),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.snapshot().seq, 1);
        stored(store.place(&write(2, "b", 60_000)).unwrap());
    }

    #[test]
    fn updates_since_pages_and_reports_gone() {
        let d = dir("updates");
        let store = EmbeddedStore::open(&d, G, 3).unwrap();
        for x in 0..5 {
            stored(store.place(&write(x, "a", 0)).unwrap());
        }
        // Only seqs 3..=5 are kept.
        assert_eq!(
            store.updates_since(1, 10, None),
            Updates::Gone { latest_seq: 5 }
        );
        match store.updates_since(2, 2, None) {
            Updates::Page(ReplayPage {
                events,
                latest_seq,
                has_more,
                ..
            }) => {
                assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
                assert_eq!(latest_seq, 5);
                assert!(has_more);
            }
            gone => panic!("{gone:?}"),
        }
        assert_eq!(
            store.updates_since(9, 2, None),
            Updates::Gone { latest_seq: 5 }
        );
        assert!(
            matches!(store.updates_since(5, 2, None), Updates::Page(ref page) if page.events.is_empty())
        );
    }

    #[test]
    fn the_epoch_survives_a_restart_and_a_new_board_gets_a_new_one() {
        let d = dir("epoch");
        let first = {
            let store = EmbeddedStore::open(&d, G, 10).unwrap();
            stored(store.place(&write(0, "a", 0)).unwrap());
            store.snapshot().epoch
        };
        let store = EmbeddedStore::open(&d, G, 10).unwrap();
        assert_eq!(store.snapshot().epoch, first);
        assert!(matches!(
            store.updates_since(0, 10, Some(&first)),
            Updates::Page(_)
        ));
        assert_eq!(
            store.updates_since(0, 10, Some("other")),
            Updates::Gone { latest_seq: 1 }
        );
        drop(store);
        std::fs::remove_file(d.join(SNAPSHOT_FILE)).unwrap();
        std::fs::remove_file(d.join(LOG_FILE)).unwrap();
        let store = EmbeddedStore::open(&d, G, 10).unwrap();
        assert_ne!(store.snapshot().epoch, first);
        assert_eq!(
            store.updates_since(0, 10, Some(&first)),
            Updates::Gone { latest_seq: 0 }
        );
    }

    #[test]
    fn compaction_keeps_everything() {
        let d = dir("compact");
        let store = EmbeddedStore::open(&d, G, 100).unwrap();
        for x in 0..4 {
            stored(store.place(&write(x, "a", 0)).unwrap());
        }
        assert!(store.compact_if_larger_than(2).unwrap());
        stored(store.place(&write(5, "z", 0)).unwrap());
        store.flush().unwrap();
        drop(store);
        let store = EmbeddedStore::open(&d, G, 100).unwrap();
        assert_eq!(store.snapshot().seq, 5);
        assert_eq!(store.pixel(5, 1).unwrap().username, "z");
        assert_eq!(store.pixel(0, 1).unwrap().seq, 1);
    }

    #[test]
    fn bans_protections_and_pools_refuse_atomically_and_survive_reopening() {
        let d = dir("moderation");
        let store = EmbeddedStore::open(&d, G, 100).unwrap();
        store
            .ban(&BanInfo {
                username: "eve".into(),
                reason: None,
                until: None,
                by: "admin".into(),
                at: 1,
            })
            .unwrap();
        let rect = Rect {
            x0: 0,
            y0: 0,
            x1: 1,
            y1: 3,
        };
        let p = store.protect(rect, "admin", 1).unwrap().unwrap();
        assert_eq!(
            store.place(&write(5, "eve", 0)).unwrap(),
            PlaceOutcome::Banned
        );
        assert_eq!(
            store.place(&write(1, "ann", 0)).unwrap(),
            PlaceOutcome::Protected
        );
        assert_eq!(store.snapshot().seq, 0);
        drop(store);
        let store = EmbeddedStore::open(&d, G, 100).unwrap();
        assert_eq!(
            store.place(&write(5, "eve", 0)).unwrap(),
            PlaceOutcome::Banned
        );
        assert!(store.unban("eve").unwrap());
        assert!(store.unprotect(p.id).unwrap());
        stored(store.place(&write(1, "eve", 0)).unwrap());
        // A pool of two, one back a minute: the third is refused.
        let pooled = |x| Write {
            pool: Some(crate::store::Gcra {
                size: 2,
                refill_ms: 60_000,
            }),
            ..write(x, "bob", 0)
        };
        stored(store.place(&pooled(2)).unwrap());
        stored(store.place(&pooled(3)).unwrap());
        match store.place(&pooled(4)).unwrap() {
            PlaceOutcome::PoolEmpty { retry_after_ms } => assert!(retry_after_ms > 59_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn history_and_rewrites_keep_later_placements() {
        let d = dir("rewrite");
        let store = EmbeddedStore::open_with_history(&d, G, 100, 2).unwrap();
        let a = stored(store.place(&write(1, "ann", 0)).unwrap());
        let b = stored(store.place(&write(1, "eve", 0)).unwrap());
        stored(store.place(&write(1, "bob", 0)).unwrap());
        // Two kept, newest first.
        let h = store.history(1, 1);
        assert_eq!(
            h.iter().map(|r| r.username.as_str()).collect::<Vec<_>>(),
            ["bob", "eve"]
        );
        assert_eq!(store.user_pixels_since("eve", b.timestamp), vec![(1, 1)]);
        assert!(
            store
                .user_pixels_since("eve", b.timestamp + 1_000_000)
                .is_empty()
        );
        // A rewrite planned from seq `a` is stale: bob placed since.
        let stale = Rewrite {
            x: 1,
            y: 1,
            color: Color([0, 0, 0]),
            expected_seq: a.seq,
        };
        assert!(store.rewrite(&[stale], "~moderation").unwrap().is_empty());
        let fresh = Rewrite {
            expected_seq: 3,
            ..stale
        };
        let written = store.rewrite(&[fresh], "~moderation").unwrap();
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].seq, 4);
        assert_eq!(store.pixel(1, 1).unwrap().username, "~moderation");
        // Moderators are not indexed as players.
        assert!(store.user_pixels_since("~moderation", 0).is_empty());
    }

    #[test]
    fn a_clear_is_one_seq_the_log_cannot_replay_across() {
        let d = dir("clear");
        let store = EmbeddedStore::open(&d, G, 100).unwrap();
        stored(store.place(&write(1, "ann", 0)).unwrap());
        let (seq, _) = store.clear().unwrap();
        assert_eq!(seq, 2);
        assert_eq!(
            store.updates_since(1, 10, None),
            Updates::Gone { latest_seq: 2 }
        );
        assert!(store.snapshot().rgb.iter().all(|&b| b == 0xFF));
        assert!(store.pixel(1, 1).is_none());
        // The history stays, for a rollback to before the clear.
        assert_eq!(store.history(1, 1).len(), 1);
        drop(store);
        let store = EmbeddedStore::open(&d, G, 100).unwrap();
        assert_eq!(store.snapshot().seq, 2);
        assert_eq!(store.cleared().map(|c| c.0), Some(2));
    }

    #[test]
    fn histories_survive_restarts_and_compaction() {
        let d = dir("histories");
        let store = EmbeddedStore::open(&d, G, 100).unwrap();
        stored(store.place(&write(1, "ann", 0)).unwrap());
        let eve = stored(store.place(&write(1, "eve", 0)).unwrap());
        assert!(store.compact_if_larger_than(0).unwrap());
        stored(store.place(&write(2, "eve", 0)).unwrap());
        drop(store);
        let store = EmbeddedStore::open(&d, G, 100).unwrap();
        let who: Vec<_> = store
            .history(1, 1)
            .into_iter()
            .map(|r| r.username)
            .collect();
        assert_eq!(who, ["eve", "ann"]);
        assert_eq!(store.history_floor(), 0);
        assert_eq!(store.user_pixels_since("ann", 0), vec![(1, 1)]);
        let mut mine = store.user_pixels_since("eve", 0);
        mine.sort();
        assert_eq!(mine, vec![(1, 1), (2, 1)]);
        drop(store);
        // Without the history file (an older folder), each pixel keeps its
        // last write, and the floor says older ones may have existed.
        std::fs::remove_file(d.join(HISTORY_FILE)).unwrap();
        let store = EmbeddedStore::open(&d, G, 100).unwrap();
        let h = store.history(1, 1);
        assert_eq!(h.len(), 1);
        assert_eq!((h[0].username.as_str(), h[0].seq), ("eve", eve.seq));
        assert_eq!(h[0].color, Color([10, 20, 30]));
        assert_eq!(store.history_floor(), 3);
    }
}
