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

mod checksum;
mod log;
mod snapshot;

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use protocol::{Color, PixelUpdated};

use self::log::LogWriter;
use super::{Geometry, PixelRecord, PlaceOutcome, Snapshot, StoreError, Updates, Write, now_ms};

const SNAPSHOT_FILE: &str = "board.snap";
const LOG_FILE: &str = "pixels.log";
const LOCK_FILE: &str = "lock";
const EPOCH_FILE: &str = "epoch";

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
        let log = LogWriter::create(&log_path, seq).map_err(dir_err)?;
        let sync_file = log.sync_handle().map_err(dir_err)?;

        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                geometry,
                dir: dir.to_owned(),
                epoch,
                recent_cap,
                state: Mutex::new(State {
                    board,
                    seq,
                    last_timestamp,
                    meta,
                    recent,
                    cooldowns: HashMap::new(),
                    cooldowns_pruned_at: 0,
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
        let mut state = self.state();
        let State {
            cooldowns,
            cooldowns_pruned_at,
            ..
        } = &mut *state;
        let now = Instant::now();
        if write.cooldown_ms > 0 {
            if let Some(&until) = cooldowns.get(&write.username)
                && until > now
            {
                let left = until - now;
                return Ok(PlaceOutcome::Cooldown {
                    retry_after_ms: (left.as_millis() as u64).max(1),
                });
            }
            // Expired entries are pruned whenever the map doubles, so it
            // holds about as many users as placed within one cooldown.
            if cooldowns.len() >= 2 * (*cooldowns_pruned_at).max(1024) {
                cooldowns.retain(|_, until| *until > now);
                *cooldowns_pruned_at = cooldowns.len();
            }
        }
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
            timestamp: now_ms().max(state.last_timestamp),
            seq: state.seq + 1,
        };
        if let Err(e) = state.log.append(&event) {
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
        let State {
            board,
            meta,
            recent,
            ..
        } = &mut *state;
        apply(self.inner.geometry, board, meta, &event);
        recent.push_back(event.clone());
        if recent.len() > self.inner.recent_cap {
            recent.pop_front();
        }
        if write.cooldown_ms > 0 {
            state.cooldowns.insert(
                write.username.clone(),
                now + Duration::from_millis(write.cooldown_ms),
            );
        }
        Ok(PlaceOutcome::Stored(event))
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
            return Updates::Page {
                events: Vec::new(),
                latest_seq,
                has_more: false,
                epoch,
            };
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
                Updates::Page {
                    events,
                    latest_seq,
                    has_more: last < latest_seq,
                    epoch,
                }
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
        let log = LogWriter::create(&dir.join(LOG_FILE), state.seq).map_err(fail)?;
        *self
            .inner
            .sync_file
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = log.sync_handle().map_err(fail)?;
        state.log = log;
        state.log_records = 0;
        state.unsynced = false;
        if state.broken.take().is_some() {
            tracing::info!("pixel log rewritten; accepting writes again");
        }
        Ok(true)
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
            Updates::Page { events, .. } => assert_eq!(events, vec![a, b]),
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
            Updates::Page {
                events,
                latest_seq,
                has_more,
                ..
            } => {
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
            matches!(store.updates_since(5, 2, None), Updates::Page { ref events, .. } if events.is_empty())
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
            Updates::Page { .. }
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
}
