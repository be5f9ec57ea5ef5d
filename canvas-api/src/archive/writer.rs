//! The archive's one writer: follows the store's replay log page by page,
//! appends each write to the current segment and to its copy of the board,
//! and starts a new keyframe every `ARCHIVE_KEYFRAME_EVERY` writes (or from
//! the store's board when the log no longer reaches back).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::time::Duration;

use protocol::PixelUpdated;
use tokio_util::sync::CancellationToken;

use super::files::{Keyframe, read_keyframe, segment_path, write_keyframe};
use super::record::{Record, Tail, read_segment};
use super::{Shared, paint};
use crate::clock::now_ms;
use crate::store::{CanvasStore, Updates};

/// Writes read from the log per request.
const PAGE: usize = 1000;
/// How soon a writer that has caught up asks again on a quiet board: a
/// timelapse needs no sub-second freshness, and the store feels four small
/// reads a second.
const POLL_QUIET: Duration = Duration::from_millis(250);
/// How soon it asks again while writes are coming (and for a while after
/// the last): the replay log must not let a write go before the archive has
/// it, or there is a gap. Only the first writes after a quiet spell wait up
/// to [`POLL_QUIET`], so `REPLAY_LOG_LEN` must exceed a quarter second of
/// writes (the default holds 100,000).
const POLL_BUSY: Duration = Duration::from_millis(20);
/// How long the board stays "busy" after its last write.
const BUSY_FOR: Duration = Duration::from_secs(2);
/// How long to wait after the store or the disk failed.
const RETRY: Duration = Duration::from_secs(2);

pub(super) struct Writer {
    store: CanvasStore,
    shared: Arc<Shared>,
    keyframe_every: u64,
    /// The board after the last archived write.
    board: Vec<u8>,
    /// The store's epoch the archive follows; `None` until known.
    epoch: Option<String>,
    last_seq: u64,
    /// When a page last brought writes.
    last_busy: Option<std::time::Instant>,
    /// The newest archived write's `seq` and time.
    last: (u64, u64),
    /// A keyframe being written, and the task writing it.
    pending: Option<(Keyframe, tokio::task::JoinHandle<std::io::Result<()>>)>,
    /// The current keyframe's ordinal and its segment, open for appending.
    current: Option<(u64, BufWriter<File>)>,
    in_segment: u64,
}

impl Writer {
    pub(super) fn new(store: CanvasStore, shared: Arc<Shared>, keyframe_every: u64) -> Writer {
        Writer {
            store,
            shared,
            keyframe_every,
            board: Vec::new(),
            epoch: None,
            last_seq: 0,
            last_busy: None,
            last: (0, 0),
            pending: None,
            current: None,
            in_segment: 0,
        }
    }

    pub(super) async fn run(mut self, stop: CancellationToken) {
        if let Err(e) = self.resume() {
            tracing::warn!(error = %e, "history archive: starting a new keyframe");
        }
        loop {
            let wait = match self.step().await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = %e, "history archive: cannot follow the store; retrying");
                    RETRY
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if let Err(e) = self.finish_keyframe().await {
            tracing::warn!(error = %e, "history archive: the last keyframe was not written");
        }
        if let Some((_, segment)) = &mut self.current
            && let Err(e) = segment.flush().and_then(|()| segment.get_ref().sync_data())
        {
            tracing::warn!(error = %e, "history archive: final flush failed");
        }
    }

    /// Picks up where the archive on disk ends: the last keyframe plus its
    /// segment's good records. A torn last record is cut off; a damaged
    /// segment is set aside (renamed, never deleted) and the writer starts
    /// a new keyframe from the store.
    fn resume(&mut self) -> anyhow::Result<()> {
        let dir = self.shared.dir.clone();
        let Some(k) = self.shared.last_keyframe() else {
            return Ok(());
        };
        let board = read_keyframe(&dir, k, self.shared.geometry)?;
        let path = segment_path(&dir, k.n);
        let (records, tail) = match read_segment(&path) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), Tail::Clean),
            Err(e) => return Err(e.into()),
        };
        match tail {
            Tail::Clean => {}
            Tail::Torn { valid_len } => {
                tracing::warn!(file = %path.display(), offset = valid_len, "history archive: cutting a torn last record");
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(valid_len)?;
            }
            Tail::Damaged { offset } => {
                let aside = path.with_extension(format!("bin.damaged-{}", now_ms()));
                std::fs::rename(&path, &aside)?;
                anyhow::bail!(
                    "{} is damaged at byte {offset}; set aside as {}",
                    path.display(),
                    aside.display()
                );
            }
        }
        let epoch = std::fs::read_to_string(dir.join("epoch"))?;
        self.board = board;
        self.last_seq = k.seq;
        let mut last = (k.seq, k.ts);
        for r in &records {
            paint(&mut self.board, self.shared.geometry, r);
            last = (r.seq, r.ts);
        }
        self.last_seq = last.0;
        self.in_segment = records.len() as u64;
        self.epoch = Some(epoch.trim().to_owned());
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        self.current = Some((k.n, BufWriter::new(file)));
        self.set_last(last);
        Ok(())
    }

    /// Archives one page; says how soon to read again.
    async fn step(&mut self) -> anyhow::Result<Duration> {
        self.publish_finished_keyframe().await?;
        let Some(epoch) = self.epoch.clone() else {
            self.begin().await?;
            return Ok(Duration::ZERO);
        };
        match self
            .store
            .updates_since(self.last_seq, PAGE, Some(&epoch))
            .await?
        {
            Updates::Page(page) => {
                for event in &page.events {
                    self.append(event)?;
                    if self.in_segment >= self.keyframe_every {
                        self.roll(self.last_seq, event.timestamp).await?;
                    }
                }
                if let Some((_, segment)) = &mut self.current {
                    segment.flush()?;
                }
                let now = std::time::Instant::now();
                if !page.events.is_empty() {
                    self.last_busy = Some(now);
                }
                Ok(if page.has_more {
                    Duration::ZERO
                } else if self.last_busy.is_some_and(|t| now - t < BUSY_FOR) {
                    POLL_BUSY
                } else {
                    POLL_QUIET
                })
            }
            Updates::Gone { .. } => {
                tracing::warn!(
                    after = self.last_seq,
                    "history archive: the replay log no longer reaches back; taking the board from the store"
                );
                self.restart_from_snapshot().await?;
                Ok(Duration::ZERO)
            }
        }
    }

    /// The first keyframe: an empty board at `seq` 0 when the replay log
    /// still holds every write (the whole history is archived), else the
    /// store's board as it is now.
    async fn begin(&mut self) -> anyhow::Result<()> {
        // Read before the board: a keyframe's time must not be later than
        // the first write after it, or no moment would find that write.
        let taken = now_ms();
        let snapshot = self.store.snapshot().await?;
        let from_start = match self
            .store
            .updates_since(0, 1, Some(&snapshot.epoch))
            .await?
        {
            Updates::Page(page) => page.events.first().map(|e| (e.seq, e.timestamp)),
            Updates::Gone { .. } => None,
        };
        match from_start {
            Some((1, first_ts)) => {
                self.board = vec![255; self.shared.geometry.byte_len()];
                self.set_epoch(snapshot.epoch)?;
                self.roll(0, first_ts).await
            }
            None if snapshot.seq == 0 => {
                self.board = snapshot.rgb.to_vec();
                self.set_epoch(snapshot.epoch)?;
                self.roll(0, taken).await
            }
            _ => self.restart_from_snapshot().await,
        }
    }

    async fn restart_from_snapshot(&mut self) -> anyhow::Result<()> {
        // Read before the board, as in `begin`.
        let taken = now_ms();
        let snapshot = self.store.snapshot().await?;
        self.board = snapshot.rgb.to_vec();
        self.set_epoch(snapshot.epoch)?;
        self.roll(snapshot.seq, taken).await
    }

    fn set_epoch(&mut self, epoch: String) -> std::io::Result<()> {
        std::fs::write(self.shared.dir.join("epoch"), &epoch)?;
        self.epoch = Some(epoch);
        Ok(())
    }

    fn append(&mut self, event: &PixelUpdated) -> std::io::Result<()> {
        let record = Record {
            seq: event.seq,
            ts: event.timestamp,
            x: event.x,
            y: event.y,
            rgb: event.color.rgb(),
        };
        let (_, segment) = self.current.as_mut().expect("a segment is open once begun");
        segment.write_all(&record.encode())?;
        paint(&mut self.board, self.shared.geometry, &record);
        self.in_segment += 1;
        self.last_seq = event.seq;
        self.set_last((event.seq, event.timestamp));
        Ok(())
    }

    /// Ends the current segment and starts a keyframe of the board as it
    /// is, after `seq`, with an empty segment of its own. The keyframe is
    /// encoded in the background (a large board takes a while, and the
    /// replay log moves on meanwhile); readers see it, and the writes after
    /// it, once it is on disk.
    async fn roll(&mut self, seq: u64, ts: u64) -> anyhow::Result<()> {
        self.finish_keyframe().await?;
        let n = match self.current.take() {
            Some((n, mut segment)) => {
                segment.flush()?;
                segment.get_ref().sync_data()?;
                n + 1
            }
            None => self.shared.last_keyframe().map_or(0, |k| k.n + 1),
        };
        let k = Keyframe { n, seq, ts };
        let (dir, geometry, board) = (
            self.shared.dir.clone(),
            self.shared.geometry,
            self.board.clone(),
        );
        let encoding =
            tokio::task::spawn_blocking(move || write_keyframe(&dir, k, geometry, &board));
        let segment = File::create(segment_path(&self.shared.dir, n))?;
        self.current = Some((n, BufWriter::new(segment)));
        self.in_segment = 0;
        self.last_seq = seq;
        self.last = (seq, ts);
        self.pending = Some((k, encoding));
        Ok(())
    }

    /// Waits for the keyframe being written, then lets readers see it and
    /// the writes archived after it.
    async fn finish_keyframe(&mut self) -> anyhow::Result<()> {
        let Some((k, encoding)) = self.pending.take() else {
            return Ok(());
        };
        encoding.await??;
        let mut index = self.shared.index.lock().unwrap_or_else(|e| e.into_inner());
        index.keyframes.push(k);
        index.last = Some(self.last);
        Ok(())
    }

    /// Publishes a keyframe that has finished meanwhile, without waiting.
    async fn publish_finished_keyframe(&mut self) -> anyhow::Result<()> {
        if self
            .pending
            .as_ref()
            .is_some_and(|(_, encoding)| encoding.is_finished())
        {
            self.finish_keyframe().await?;
        }
        Ok(())
    }

    /// Notes the newest write; readers see it unless it follows a keyframe
    /// still being written.
    fn set_last(&mut self, last: (u64, u64)) {
        self.last = last;
        if self.pending.is_none() {
            self.shared
                .index
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .last = Some(last);
        }
    }
}
