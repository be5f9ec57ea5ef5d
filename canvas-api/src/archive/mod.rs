//! The history archive: every stored write, kept after the replay log has
//! let it go, so that the board can be shown as it was at any moment
//! (`GET /api/history/board.png?at=`) and played back
//! (`GET /api/timelapse`).
//!
//! It follows the store the way any reader does — pages of the replay log
//! after the last `seq` it holds — so it works the same over Redis and the
//! embedded store, and it never slows a placement down. On disk it is a
//! folder of keyframes (the whole board as a PNG) each followed by a
//! segment of fixed-size write records ([`files`], [`record`]); showing a
//! moment costs one keyframe and at most `ARCHIVE_KEYFRAME_EVERY` records.
//! When the log no longer reaches back to the archive's last `seq` (the
//! archive was stopped too long, or the store started over), the archive
//! takes the board from the store as a new keyframe: the writes between
//! are missing from it, and nothing else is.

pub mod files;
pub mod record;
pub mod timelapse;
mod writer;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use protocol::http::HistoryInfo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::files::{Keyframe, list_keyframes, read_keyframe, segment_path};
use self::record::read_segment;
use crate::error::ApiError;
use crate::store::{CanvasStore, Geometry};

/// Reads the archive; cheap to clone. The one writer is a background task
/// of the process that started it.
#[derive(Clone)]
pub struct Archive {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    geometry: Geometry,
    index: Mutex<Index>,
}

impl Shared {
    fn last_keyframe(&self) -> Option<Keyframe> {
        self.index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keyframes
            .last()
            .copied()
    }
}

/// What readers need to find a moment.
#[derive(Debug, Default, Clone)]
struct Index {
    keyframes: Vec<Keyframe>,
    /// The newest archived write: its `seq` and time.
    last: Option<(u64, u64)>,
}

/// The board at one moment.
pub struct BoardAt {
    pub rgb: Vec<u8>,
    /// The last write it includes, and that write's time.
    pub seq: u64,
    pub ts: u64,
}

impl Archive {
    /// Opens (or creates) the archive in `dir` and starts following
    /// `store`. Fails at once when the folder cannot be used.
    pub fn start(
        store: CanvasStore,
        dir: PathBuf,
        keyframe_every: u64,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> anyhow::Result<Archive> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("ARCHIVE_DIR {}: {e}", dir.display()))?;
        let keyframes = list_keyframes(&dir)
            .map_err(|e| anyhow::anyhow!("ARCHIVE_DIR {}: {e}", dir.display()))?;
        let shared = Arc::new(Shared {
            dir,
            geometry: store.geometry(),
            index: Mutex::new(Index {
                keyframes,
                last: None,
            }),
        });
        let writer = writer::Writer::new(store, shared.clone(), keyframe_every);
        tracker.spawn(writer.run(stop));
        Ok(Archive { shared })
    }

    fn index(&self) -> Index {
        self.shared
            .index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What the archive covers.
    pub fn info(&self) -> HistoryInfo {
        let index = self.index();
        HistoryInfo {
            from: index.keyframes.first().map(|k| k.ts),
            to: index
                .last
                .map(|(_, ts)| ts)
                .or(index.keyframes.last().map(|k| k.ts)),
            last_seq: index.last.map(|(seq, _)| seq),
            keyframes: index.keyframes.len() as u64,
        }
    }

    /// The board as it was at `at` (milliseconds since the Unix epoch):
    /// after every archived write up to that moment.
    pub async fn board_at(&self, at: u64) -> Result<BoardAt, ApiError> {
        let index = self.index();
        let Some(k) = index.keyframes.iter().rev().find(|k| k.ts <= at).copied() else {
            return Err(ApiError::NotFound(match index.keyframes.first() {
                Some(first) => format!(
                    "the archive starts at {} (ms since the epoch); nothing earlier is kept",
                    first.ts
                ),
                None => "the archive holds nothing yet".to_owned(),
            }));
        };
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || -> Result<BoardAt, ApiError> {
            let mut board = BoardAt {
                rgb: read_keyframe(&shared.dir, k, shared.geometry).map_err(internal)?,
                seq: k.seq,
                ts: k.ts,
            };
            let records = read_records(&shared, k.n)?;
            for r in records.iter().take_while(|r| r.ts <= at) {
                paint(&mut board.rgb, shared.geometry, r);
                board.seq = r.seq;
                board.ts = r.ts;
            }
            Ok(board)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("archive read task: {e}")))?
    }

    pub fn geometry(&self) -> Geometry {
        self.shared.geometry
    }
}

/// The good records of a keyframe's segment (none when it has no segment
/// yet). A torn or damaged end only shortens what is read.
fn read_records(shared: &Shared, n: u64) -> Result<Vec<record::Record>, ApiError> {
    match read_segment(&segment_path(&shared.dir, n)) {
        Ok((records, _tail)) => Ok(records),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(internal(e)),
    }
}

/// Applies one write to an RGB board; a write outside it is skipped (the
/// archive never holds one, but a reader must not trust a file blindly).
fn paint(rgb: &mut [u8], geometry: Geometry, r: &record::Record) {
    if r.x < geometry.width && r.y < geometry.height {
        let i = (r.y as usize * geometry.width as usize + r.x as usize) * 3;
        rgb[i..i + 3].copy_from_slice(&r.rgb);
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("history archive: {e}"))
}
