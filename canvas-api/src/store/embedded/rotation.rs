//! Keeping the pixel log bounded and durable: the once-a-second fsync, and
//! compaction into a snapshot and a new, empty log.

use super::history::{self};
use super::log::LogWriter;
use super::snapshot;
use super::{EmbeddedStore, HISTORY_FILE, LOG_FILE, SNAPSHOT_FILE, State};
use crate::store::StoreError;

impl EmbeddedStore {
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
    pub(super) fn start_new_log(&self, state: &mut State, seq: u64) -> std::io::Result<()> {
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
