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
//!
//! One job per file: `recovery` opens the folder, `rules` places a
//! pixel (the twin of `place.lua`), `moderation_ops` serves moderation,
//! `rotation` fsyncs and compacts; this file holds the state and the
//! reads.

mod board;
mod history;
mod log;
mod moderation;
mod moderation_ops;
mod recovery;
mod rotation;
mod rules;
mod snapshot;

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use protocol::{Color, PixelUpdated};

use self::board::Board;
use self::log::LogWriter;
use self::moderation::ModerationState;
use super::chunk::ChunkId;
use super::{
    Announce, ChunkSnapshot, Geometry, PixelRecord, ReplayPage, Snapshot, StoreError, Updates,
};
use crate::metrics::Counter;

const SNAPSHOT_FILE: &str = "board.snap";
const LOG_FILE: &str = "pixels.log";
const LOCK_FILE: &str = "lock";
const EPOCH_FILE: &str = "epoch";
const MODERATION_FILE: &str = "moderation.json";

/// `HISTORY_LEN` when the caller does not say.
pub const DEFAULT_HISTORY_LEN: usize = 16;

const HISTORY_FILE: &str = "history.bin";

use self::history::Histories;

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
    /// Where each stored write is announced (the single process's
    /// fan-out); unset: nobody listens.
    announce: OnceLock<Announce>,
    announce_failures: Arc<Counter>,
    sync_file: Mutex<File>,
    _lock: File,
}

struct State {
    board: Board,
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
    /// Announces every write stored from now on to `announce`, in `seq`
    /// order (set once; a second call is ignored).
    pub fn announce_to(&self, announce: Announce) {
        let _ = self.inner.announce.set(announce);
    }

    pub fn announce_failures(&self) -> Arc<Counter> {
        self.inner.announce_failures.clone()
    }

    pub fn geometry(&self) -> Geometry {
        self.inner.geometry
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state as consistent as
        // any single write leaves it; keep serving.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The whole board; the caller checks it is small enough to read
    /// whole ([`super::CanvasStore::snapshot`]).
    pub fn snapshot(&self) -> Snapshot {
        let state = self.state();
        Snapshot {
            seq: state.seq,
            rgb: Bytes::from(state.board.dense()),
            epoch: self.inner.epoch.clone(),
        }
    }

    /// One chunk (copied: 192 KiB under the lock, a memcpy).
    pub fn chunk(&self, id: ChunkId) -> ChunkSnapshot {
        let state = self.state();
        ChunkSnapshot {
            seq: state.seq,
            rgb: state.board.chunk(id).map(Bytes::copy_from_slice),
            epoch: self.inner.epoch.clone(),
        }
    }

    pub fn pixel(&self, x: u32, y: u32) -> Option<PixelRecord> {
        let index = self.inner.geometry.index(x, y);
        let state = self.state();
        let m = state.meta.get(&(index as u32))?;
        let rgb = state.board.get(x, y);
        Some(PixelRecord {
            color: Color(rgb),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::http::{BanInfo, Rect};

    use crate::store::{PlaceOutcome, Rewrite, Write};

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
    fn a_batch_the_log_refuses_fails_whole_and_takes_back_its_cooldowns_and_pools() {
        let d = dir("batch-refused");
        let store = EmbeddedStore::open(&d, G, 100).unwrap();
        stored(store.place(&write(0, "ann", 0)).unwrap());
        let pooled = Write {
            pool: Some(crate::store::Gcra {
                size: 1,
                refill_ms: 60_000,
            }),
            ..write(2, "bob", 0)
        };
        let batch = [write(1, "cat", 60_000), pooled, write(3, "cat", 60_000)];
        store.state().log = LogWriter::failing(&d.join(LOG_FILE)).unwrap();
        assert!(matches!(
            store.place_many(&batch),
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(store.latest_seq(), 1, "nothing of the batch was stored");
        // With a log that writes again, the batch meets no cooldown or
        // pool of its own failed attempt: only its own second `cat`.
        {
            let mut state = store.state();
            state.log = LogWriter::create(&d.join("replacement.log"), 1).unwrap();
            state.broken = None;
        }
        let outcomes = store.place_many(&batch).unwrap();
        assert_eq!(stored(outcomes[0].clone()).seq, 2);
        assert_eq!(stored(outcomes[1].clone()).seq, 3);
        assert!(matches!(outcomes[2], PlaceOutcome::Cooldown { .. }));
        assert_eq!(store.latest_seq(), 3);
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
