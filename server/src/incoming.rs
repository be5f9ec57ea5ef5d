//! [`Incoming`]: what enters the fan-out — stored pixels heard on
//! `pixel-updates` (announced by the store's own write script), or, in the
//! single process, handed over by the embedded store as it stores them.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use canvas_api::store::Announce;
use protocol::{PixelUpdated, ServerMessage};
use tokio::sync::mpsc;

/// An event entering the fan-out.
#[derive(Debug)]
pub enum Incoming {
    /// A `pixel_updated` with its encoded JSON, passed on byte for byte.
    Pixel { seq: u64, json: Utf8Bytes },
    /// The subscription was (re-)established: anything published meanwhile
    /// was missed, so check the replay log now.
    Resubscribed,
}

/// Depth of the queue into the fan-out task.
pub const INGEST_CAPACITY: usize = 16 * 1024;

/// Encodes a `pixel_updated` once; every later hop passes these bytes on.
pub fn encode_pixel(event: &PixelUpdated) -> Utf8Bytes {
    let json = serde_json::to_string(&ServerMessage::PixelUpdated(event.clone()))
        .expect("a pixel event always encodes");
    Utf8Bytes::from(json)
}

/// Hands a stored pixel to the fan-out without waiting: false when its
/// queue is full (the fan-out then repairs the gap from the replay log).
pub fn hand_over(ingest: &mpsc::Sender<Incoming>, event: &PixelUpdated) -> bool {
    ingest
        .try_send(Incoming::Pixel {
            seq: event.seq,
            json: encode_pixel(event),
        })
        .is_ok()
}

/// The embedded store's announcements, into this process's fan-out.
pub fn fanout_announce(ingest: mpsc::Sender<Incoming>) -> Announce {
    Arc::new(move |event| hand_over(&ingest, event))
}
