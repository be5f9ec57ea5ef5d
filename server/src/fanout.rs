//! The fan-out task: takes every incoming event, drops duplicates, repairs
//! gaps from the replay log, gathers what is ready into one [`HubFrame`] and
//! hands it to the [`Hub`]. The only task that touches the [`SeqTracker`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use protocol::ServerMessage;
use protocol::binary::PixelEvent;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backend::CanvasBackend;
use crate::hub::{EventRun, Hub, HubFrame};
use crate::incoming::{Incoming, compact_stored, encode_pixel};
use crate::metrics::GatewayMetrics;
use crate::seq_tracker::SeqTracker;

/// The most events put in one hub frame (one `batch` message).
pub const MAX_BATCH: usize = 512;
/// After this long without an event, the replay log is asked whether
/// anything came after the last `seq` seen: a write whose publish was lost
/// leaves no gap until a later write arrives, and on a quiet board none may.
pub const IDLE_CHECK: Duration = Duration::from_secs(1);
/// A duplicate is normal now and then (a repaired event arriving late); a
/// stream of them means the store started over below what was delivered
/// (Redis emptied while the subscription stayed up, e.g. `FLUSHALL`). So a
/// duplicate asks the store, at most this often, where its `seq` is.
pub const DUPLICATE_CHECK: Duration = Duration::from_secs(1);
/// Events fetched per replay-log request while repairing.
const REPAIR_PAGE: usize = 1000;

pub struct Fanout {
    pub rx: mpsc::Receiver<Incoming>,
    pub hub: Arc<Hub>,
    pub backend: CanvasBackend,
    pub grace: Duration,
    /// How long to gather events into one frame after the first arrives.
    pub window: Duration,
    pub metrics: Arc<GatewayMetrics>,
}

impl Fanout {
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut seq = self.start(&cancel).await;
        let mut batch: Vec<(PixelEvent, Utf8Bytes)> = Vec::with_capacity(MAX_BATCH);
        let mut last_frame = tokio::time::Instant::now() - self.window;
        let mut checks = DuplicateChecks::default();
        loop {
            let due = seq.repair_due(self.grace);
            let idle_check = last_frame + IDLE_CHECK;
            tokio::select! {
                item = self.rx.recv() => {
                    let Some(item) = item else { break };
                    let mut repair_now = self.take(item, &mut seq, &mut batch, &mut checks);
                    // Frames go out at most once per window: an event that
                    // follows a quiet spell leaves at once, while under load
                    // everything arriving within the window shares one frame,
                    // so each client costs one write for many events (one
                    // message too, for clients that asked for batches).
                    let deadline = last_frame + self.window;
                    while batch.len() < MAX_BATCH {
                        match self.rx.try_recv() {
                            Ok(item) => repair_now |= self.take(item, &mut seq, &mut batch, &mut checks),
                            Err(mpsc::error::TryRecvError::Empty) if tokio::time::Instant::now() < deadline => {
                                match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                                    Ok(Some(item)) => repair_now |= self.take(item, &mut seq, &mut batch, &mut checks),
                                    Ok(None) | Err(_) => break,
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    self.flush(&mut batch, &seq);
                    last_frame = tokio::time::Instant::now();
                    if repair_now {
                        self.metrics.gap_repairs.inc();
                        self.repair(&mut seq, &mut batch, &cancel).await;
                    }
                }
                () = sleep_until(due), if due.is_some() => {
                    self.metrics.gap_repairs.inc();
                    self.repair(&mut seq, &mut batch, &cancel).await;
                }
                () = tokio::time::sleep_until(idle_check), if seq.is_started() => {
                    self.metrics.tail_checks.inc();
                    self.repair(&mut seq, &mut batch, &cancel).await;
                    last_frame = tokio::time::Instant::now();
                }
                () = cancel.cancelled() => break,
            }
        }
    }

    /// Learns the store's current `seq`, so the first gap is noticed too.
    /// Events queue meanwhile; after a few tries the first event decides.
    async fn start(&self, cancel: &CancellationToken) -> SeqTracker {
        for attempt in 0..20u32 {
            match self.backend.config().await {
                Ok(config) => return SeqTracker::starting_after(config.seq),
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "cannot read the canvas seq yet");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(250)) => {}
                        () = cancel.cancelled() => break,
                    }
                }
            }
        }
        SeqTracker::default()
    }

    /// Queues one event; true when a repair should run at once.
    fn take(
        &self,
        item: Incoming,
        seq: &mut SeqTracker,
        batch: &mut Vec<(PixelEvent, Utf8Bytes)>,
        checks: &mut DuplicateChecks,
    ) -> bool {
        match item {
            Incoming::Pixel { event, json } => {
                let now = Instant::now();
                if seq.accept(event.seq, now) {
                    batch.push((event, json));
                    false
                } else {
                    self.metrics.duplicates_dropped.inc();
                    checks.due(now)
                }
            }
            Incoming::Resubscribed => seq.is_started(),
        }
    }

    fn flush(&self, batch: &mut Vec<(PixelEvent, Utf8Bytes)>, seq: &SeqTracker) {
        // A lone event is a run of one too: v2 connections get it as a
        // binary message, v1 connections as the event itself.
        match batch.len() {
            0 => {}
            n => {
                if n > 1 {
                    self.metrics.batched_events.add(n as u64);
                }
                self.hub
                    .send(HubFrame::Events(Arc::new(EventRun::new(batch.drain(..)))));
            }
        }
        self.hub.set_delivered_seq(seq.contiguous());
    }

    /// Fetches what came after the contiguous `seq` from the replay log and
    /// passes on whatever was not seen yet. When the log no longer
    /// has it, clients are told to resync.
    async fn repair(
        &self,
        seq: &mut SeqTracker,
        batch: &mut Vec<(PixelEvent, Utf8Bytes)>,
        cancel: &CancellationToken,
    ) {
        let started = Instant::now();
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let from = seq.contiguous();
            let page = match self.backend.updates_since(from, REPAIR_PAGE).await {
                Ok(page) => page,
                Err(e) if e.code() == protocol::ErrorCode::Gone => {
                    // The log does not reach back to `from`, or the store is
                    // behind it (it lost its data: Redis restarted without
                    // persistence). Either way, resume from the store's seq.
                    return match self.backend.config().await {
                        Ok(config) => {
                            self.resync(seq, config.seq, "updates were missed beyond repair")
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the store's seq; retrying");
                            seq.postpone_repair(Instant::now());
                        }
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, after = from, "gap repair failed; retrying");
                    seq.postpone_repair(Instant::now());
                    return;
                }
            };
            let mut repaired = 0u64;
            for event in &page.events {
                if seq.accept(event.seq, Instant::now()) {
                    batch.push((compact_stored(event), encode_pixel(event)));
                    repaired += 1;
                    if batch.len() >= MAX_BATCH {
                        self.flush(batch, seq);
                    }
                }
            }
            self.flush(batch, seq);
            self.metrics.repaired_events.add(repaired);
            if !page.has_more {
                break;
            }
        }
        if seq.is_overfull() {
            let latest = seq.contiguous();
            self.resync(seq, latest, "too many updates arrived out of order");
        }
        tracing::debug!(took = ?started.elapsed(), upto = seq.contiguous(), "gap repaired");
    }

    fn resync(&self, seq: &mut SeqTracker, latest: u64, reason: &str) {
        tracing::warn!(latest, reason, "telling clients to resync");
        self.metrics.resyncs.inc();
        if latest < seq.contiguous() {
            // The store starts over below what was delivered: without this,
            // every new write would look like an old duplicate.
            tracing::warn!(
                delivered = seq.contiguous(),
                latest,
                "the store's seq went back; starting over"
            );
            *seq = SeqTracker::starting_after(latest);
        } else {
            seq.skip_to(latest, Instant::now());
        }
        let frame = serde_json::to_string(&ServerMessage::Resync {
            seq: latest,
            reason: reason.to_owned(),
        })
        .expect("encodes");
        self.hub.send_message(Utf8Bytes::from(frame));
        self.hub.set_delivered_seq(seq.contiguous());
    }
}

/// When a duplicate last made the fan-out ask the store for its `seq`.
#[derive(Default)]
struct DuplicateChecks {
    last: Option<Instant>,
}

impl DuplicateChecks {
    /// True at most once per [`DUPLICATE_CHECK`].
    fn due(&mut self, now: Instant) -> bool {
        if self.last.is_some_and(|t| now < t + DUPLICATE_CHECK) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_ask_the_store_at_most_once_per_interval() {
        let mut checks = DuplicateChecks::default();
        let t = Instant::now();
        assert!(checks.due(t));
        assert!(!checks.due(t + Duration::from_millis(10)));
        assert!(!checks.due(t + DUPLICATE_CHECK - Duration::from_millis(1)));
        assert!(checks.due(t + DUPLICATE_CHECK));
    }
}
