//! Opening the embedded store: the folder's lock, the epoch, the snapshot
//! and the pixel log replayed over it (with the pixel histories), checked
//! record by record, then compacted into a fresh snapshot and empty log.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use protocol::Color;

use super::board::Board;
use super::history::{self, HistEntry, Histories};
use super::log::{self, LogWriter};
use super::moderation::ModerationState;
use super::rules::{apply, remember};
use super::snapshot;
use super::{
    DEFAULT_HISTORY_LEN, EPOCH_FILE, EmbeddedStore, HISTORY_FILE, Inner, LOCK_FILE, LOG_FILE,
    MAX_RECENT, MODERATION_FILE, OpenError, PixelMeta, SNAPSHOT_FILE, State, UserPixels,
};
use crate::store::{Geometry, USER_PIXELS_LEN};

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
            (0, Board::new(geometry), HashMap::new())
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
                announce: OnceLock::new(),
                announce_failures: Arc::default(),
                sync_file: Mutex::new(sync_file),
                _lock: lock,
            }),
        })
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
    board: &Board,
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
                let (x, y) = (index % geometry.width, index / geometry.width);
                seeded.entry(index).or_default().push_back(HistEntry {
                    seq: m.seq,
                    timestamp: m.timestamp,
                    color: Color(board.get(x, y)),
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
