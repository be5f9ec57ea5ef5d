//! [`PlacementBatcher`]: the placements of every connection of this
//! gateway, sent to the store together. One task takes whatever is waiting
//! (up to [`MAX_BATCH`]) as one batch — one request to canvas-api, one
//! script call or lock in the store — with at most [`MAX_BATCHES_IN_FLIGHT`]
//! batches on their way. Nothing waits for company: a lone placement leaves
//! at once, and batches grow only while the store is busy with earlier ones.
//! Each placement still gets its own answer, after it is stored.

use std::sync::Arc;

use canvas_api::ApiError;
use protocol::PixelUpdated;
use protocol::http::MAX_BATCH_PLACEMENTS;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::{CanvasBackend, PixelPlacement};
use crate::metrics::GatewayMetrics;

/// The most placements in one batch: what canvas-api takes in one request.
pub const MAX_BATCH: usize = MAX_BATCH_PLACEMENTS;
/// Batches on their way to the store at once. A few, so one slow request
/// does not stall the rest, yet few enough that placements arriving
/// meanwhile gather into the next batches.
pub const MAX_BATCHES_IN_FLIGHT: usize = 4;
/// The body a batch may grow to, as bounded by [`encoded_size`]: under
/// canvas-api's body limit (64 KiB), whatever colors clients send.
const MAX_BATCH_BYTES: usize = 60 * 1024;
const _: () = assert!(MAX_BATCH_BYTES <= canvas_api::batch_routes::MAX_PIXELS_BODY);

/// A placement waiting for its batch, and where its answer goes.
struct Queued {
    placement: PixelPlacement,
    answer: oneshot::Sender<Result<PixelUpdated, ApiError>>,
}

/// Where connections hand their placements; cheap to clone.
#[derive(Clone)]
pub struct PlacementBatcher {
    queue: mpsc::Sender<Queued>,
}

impl PlacementBatcher {
    /// Starts the batching task. `capacity` bounds the queue; it is the
    /// gateway's `MAX_PLACEMENTS_IN_FLIGHT`, whose slots every queued
    /// placement holds, so the queue never refuses one.
    pub fn start(
        backend: CanvasBackend,
        capacity: usize,
        metrics: Arc<GatewayMetrics>,
        tracker: &TaskTracker,
        stop: CancellationToken,
    ) -> PlacementBatcher {
        let (queue, rx) = mpsc::channel(capacity.max(1));
        tracker.spawn(run(backend, rx, metrics, tracker.clone(), stop));
        PlacementBatcher { queue }
    }

    /// Stores one placement with the others waiting now: `Ok` means stored,
    /// and so announced.
    pub async fn place(&self, placement: PixelPlacement) -> Result<PixelUpdated, ApiError> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Queued { placement, answer })
            .await
            .map_err(|_| ApiError::Unavailable("the placement batcher has stopped".into()))?;
        answered.await.unwrap_or_else(|_| {
            Err(ApiError::Unavailable(
                "the placement batcher stopped before the store answered".into(),
            ))
        })
    }
}

/// Takes a batch whenever a batch slot is free and a placement waits.
async fn run(
    backend: CanvasBackend,
    mut rx: mpsc::Receiver<Queued>,
    metrics: Arc<GatewayMetrics>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_BATCHES_IN_FLIGHT));
    // A placement taken from the queue that did not fit the last batch.
    let mut held: Option<Queued> = None;
    loop {
        let slot = tokio::select! {
            () = stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let first = match held.take() {
            Some(first) => first,
            None => tokio::select! {
                () = stop.cancelled() => break,
                first = rx.recv() => match first {
                    Some(first) => first,
                    None => break,
                },
            },
        };
        let mut bytes = encoded_size(&first.placement);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            let Ok(next) = rx.try_recv() else { break };
            let size = encoded_size(&next.placement);
            if bytes + size > MAX_BATCH_BYTES {
                held = Some(next);
                break;
            }
            bytes += size;
            batch.push(next);
        }
        metrics.placement_batches.inc();
        let backend = backend.clone();
        tracker.spawn(async move {
            // Held until every placement of the batch is answered.
            let _slot = slot;
            send(&backend, batch).await;
        });
    }
    // Stopping: whatever still waits is answered (unavailable) by dropping
    // its sender.
}

/// One batch to the store, and each answer to its placement.
async fn send(backend: &CanvasBackend, batch: Vec<Queued>) {
    let (placements, answers): (Vec<_>, Vec<_>) =
        batch.into_iter().map(|q| (q.placement, q.answer)).unzip();
    let results = backend.place_many(&placements).await;
    for (answer, result) in answers.into_iter().zip(results) {
        // A connection that went away does not want its answer.
        let _ = answer.send(result);
    }
}

/// An upper bound on a placement's bytes in a `POST /api/pixels` body: the
/// numbers (20 digits each at most), the IP, the proof, the field names and
/// punctuation fit the fixed part; a string byte escaped as JSON takes at
/// most six.
fn encoded_size(p: &PixelPlacement) -> usize {
    const FIXED: usize = 232;
    let escaped = |s: &str| {
        s.bytes()
            .map(|b| {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    6
                } else {
                    1
                }
            })
            .sum::<usize>()
    };
    FIXED + escaped(&p.color) + escaped(&p.username)
}

#[cfg(test)]
mod tests {
    use super::*;

    use canvas_api::Canvas;
    use canvas_api::palette::Palette;
    use canvas_api::store::{CanvasStore, EmbeddedStore, Geometry};

    /// A batcher in front of an embedded board in a fresh folder.
    fn batcher(name: &str) -> (PlacementBatcher, Arc<GatewayMetrics>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "placement-batch-{name}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        let store = EmbeddedStore::open(
            &dir,
            Geometry {
                width: 64,
                height: 64,
            },
            1000,
        )
        .expect("open a board");
        let canvas = Canvas::new(CanvasStore::Embedded(store), Palette::rplace_2022(), 0);
        let metrics = Arc::new(GatewayMetrics::default());
        let batcher = PlacementBatcher::start(
            CanvasBackend::InProcess(canvas),
            64,
            metrics.clone(),
            &TaskTracker::new(),
            CancellationToken::new(),
        );
        (batcher, metrics, dir)
    }

    fn pixel(x: i64, username: &str) -> PixelPlacement {
        PixelPlacement {
            x,
            y: 1,
            color: "#FF4500".into(),
            username: username.into(),
            ip: None,
        }
    }

    /// No waiting for company: on a paused clock, which jumps ahead to any
    /// timer the batcher would set, a lone placement is stored without the
    /// clock moving.
    #[tokio::test(start_paused = true)]
    async fn a_lone_placement_leaves_at_once() {
        let (batcher, metrics, dir) = batcher("lone");
        let started = tokio::time::Instant::now();
        let event = batcher.place(pixel(3, "alone")).await.expect("stored");
        assert_eq!(started.elapsed(), std::time::Duration::ZERO);
        assert_eq!((event.x, event.seq), (3, 1));
        assert_eq!(metrics.placement_batches.get(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Placements waiting together leave together, and each gets its own
    /// answer: its own seq, or its own refusal.
    #[tokio::test]
    async fn waiting_placements_leave_as_one_batch_with_an_answer_each() {
        let (batcher, metrics, dir) = batcher("together");
        let mut answers = Vec::new();
        for x in 0..40 {
            let batcher = batcher.clone();
            // x = 39 is off the board: refused on its own.
            answers.push(tokio::spawn(async move {
                batcher
                    .place(pixel(if x == 39 { 64 } else { x }, "many"))
                    .await
            }));
        }
        let mut seqs = Vec::new();
        for (x, answer) in answers.into_iter().enumerate() {
            match answer.await.expect("answered") {
                Ok(event) => seqs.push(event.seq),
                Err(e) => assert_eq!((x, e.code()), (39, protocol::ErrorCode::OutOfBounds)),
            }
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=39).collect::<Vec<_>>());
        assert!(metrics.placement_batches.get() < 40, "no batching");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_batch_of_ordinary_placements_fits_the_byte_budget_and_the_body_limit() {
        let p = PixelPlacement {
            x: i64::MIN,
            y: i64::MIN,
            color: "#FFFFFF".into(),
            username: "u".repeat(32),
            ip: Some(
                "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                    .parse()
                    .unwrap(),
            ),
        };
        // The estimate bounds what the body really holds.
        let item = protocol::http::BatchPlacement {
            x: p.x,
            y: p.y,
            color: p.color.clone(),
            username: p.username.clone(),
            ip: p.ip.map(|ip| ip.to_string()),
            proof: Some(format!("g1.{}.{}", u64::MAX, "A".repeat(43))),
        };
        let json = serde_json::to_string(&item).unwrap();
        assert!(
            json.len() < encoded_size(&p),
            "{} > {}",
            json.len(),
            encoded_size(&p)
        );
        // The worst ordinary item still batches by the hundreds.
        assert!(MAX_BATCH_BYTES / encoded_size(&p) >= 200);
        let quoted = PixelPlacement {
            color: "\"".repeat(10),
            ..p.clone()
        };
        assert_eq!(encoded_size(&quoted), encoded_size(&p) - 7 + 60);
    }
}
