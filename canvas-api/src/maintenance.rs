//! Background upkeep of the embedded store: fsync the log every second and
//! compact it into a snapshot when it grows past the board's size.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::CanvasStore;

/// How often acknowledged writes are fsynced (the most a power cut loses).
pub const FSYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the upkeep task for `store` (nothing to do for Redis). It makes a
/// last fsync when `cancel` fires.
pub fn spawn(store: CanvasStore, tracker: &TaskTracker, cancel: CancellationToken) {
    let CanvasStore::Embedded(embedded) = store else {
        return;
    };
    // Compaction is O(board); doing it once per board-sized run of writes
    // keeps its cost per write constant.
    let threshold = (embedded.geometry().pixel_count() as u64).max(100_000);
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(FSYNC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = cancel.cancelled() => break,
            }
            let store = embedded.clone();
            let result = tokio::task::spawn_blocking(move || {
                store.flush()?;
                store.compact_if_larger_than(threshold)
            })
            .await;
            match result {
                Ok(Ok(true)) => tracing::info!("compacted the pixel log into board.snap"),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "embedded store upkeep failed"),
                Err(e) => tracing::error!(error = %e, "embedded store upkeep panicked"),
            }
        }
        let store = embedded.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.flush()).await {
            tracing::error!(error = %e, "final fsync failed");
        }
    });
}
