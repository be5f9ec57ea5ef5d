//! A connection's placements: each one stored (and so announced), then
//! answered; at most [`MAX_IN_FLIGHT`] at once per connection and
//! `MAX_PLACEMENTS_IN_FLIGHT` per gateway. They reach the store through
//! the gateway's [`crate::placement_batch::PlacementBatcher`], batched with
//! the other connections' placements.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use protocol::{ErrorCode, ServerMessage};
use tokio::sync::OwnedSemaphorePermit;

use crate::Gateway;
use crate::backend::PixelPlacement;
use crate::replies::encode;

/// Placements of one connection in flight at once; past it the gateway stops
/// reading from that client until one finishes (backpressure, not a queue).
pub const MAX_IN_FLIGHT: usize = 32;
/// What a shed placement tells the client to wait before retrying.
const SHED_RETRY_AFTER_MS: u64 = 200;

/// One placement on its way: resolves to the answer for the client. Boxed
/// so that a connection can name its type; the store's round trip dwarfs
/// the allocation.
type Placement = Pin<Box<dyn Future<Output = Message> + Send>>;

/// The placements one connection has in flight.
#[derive(Default)]
pub struct Placements {
    /// Made on the first placement: an empty `FuturesUnordered` already
    /// holds a stub task, which most connections, idle viewers, would
    /// carry for nothing.
    set: Option<FuturesUnordered<Placement>>,
}

impl Placements {
    pub fn len(&self) -> usize {
        self.set.as_ref().map_or(0, FuturesUnordered::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Room for another: the connection reads its client only while true.
    pub fn has_room(&self) -> bool {
        self.len() < MAX_IN_FLIGHT
    }

    /// Starts a placement in one of the gateway's slots; with none free,
    /// the answer is `unavailable` at once (load shedding).
    pub fn start(
        &mut self,
        gw: &Gateway,
        pixel: (i64, i64, String),
        username: String,
        ip: IpAddr,
        id: Option<u64>,
    ) -> Option<Message> {
        match gw.placement_slots.clone().try_acquire_owned() {
            Ok(slot) => {
                self.set
                    .get_or_insert_with(FuturesUnordered::new)
                    .push(Box::pin(place(gw.clone(), pixel, username, ip, id, slot)));
                None
            }
            Err(_) => {
                gw.metrics.placements_shed.inc();
                Some(encode(&ServerMessage::Error {
                    id,
                    code: ErrorCode::Unavailable,
                    message: "the gateway is at capacity; nothing was stored, retry shortly".into(),
                    retry_after_ms: Some(SHED_RETRY_AFTER_MS),
                }))
            }
        }
    }

    /// The next answer (pending while none is in flight).
    pub async fn next(&mut self) -> Message {
        match &mut self.set {
            Some(set) if !set.is_empty() => set.next().await.expect("not empty"),
            _ => std::future::pending().await,
        }
    }

    /// Every answer still to come, waiting `limit` at most: a closing
    /// connection first tells its client which placements were stored.
    pub async fn finish(&mut self, limit: Duration) -> Vec<Message> {
        let mut answers = Vec::with_capacity(self.len());
        if let Some(set) = &mut self.set {
            let _ = tokio::time::timeout(limit, async {
                while let Some(answer) = set.next().await {
                    answers.push(answer);
                }
            })
            .await;
        }
        answers
    }
}

// One placement: store (which announces it, in the same step), then
// acknowledge. A pixel is never announced before it is stored, and never
// acknowledged before it is announced (or found unannounceable, in which
// case receivers repair the gap from the replay log).
async fn place(
    gw: Gateway,
    (x, y, color): (i64, i64, String),
    username: String,
    ip: IpAddr,
    id: Option<u64>,
    // Held until the answer is ready: one of the gateway's placement slots.
    _slot: OwnedSemaphorePermit,
) -> Message {
    let placing = std::time::Instant::now();
    let placement = PixelPlacement {
        x,
        y,
        color,
        username,
        ip: Some(ip),
    };
    let username = placement.username.clone();
    match gw.batcher.place(placement).await {
        Ok(event) => {
            let seq = event.seq;
            if let Some(ingest) = &gw.echo_placements {
                crate::incoming::hand_over(ingest, &event);
            }
            gw.metrics.placements_acked.inc();
            gw.metrics.placement_latency.observe(placing.elapsed());
            gw.notices.cooldown_started(&username);
            encode(&ServerMessage::Ack { id, seq })
        }
        Err(e) => {
            gw.metrics.placements_rejected.inc();
            if let canvas_api::ApiError::Unavailable(cause)
            | canvas_api::ApiError::Internal(cause) = &e
            {
                tracing::warn!(%cause, "placement failed");
            }
            encode(&ServerMessage::Error {
                id,
                code: e.code(),
                message: e.to_string(),
                retry_after_ms: e.retry_after_ms(),
            })
        }
    }
}
