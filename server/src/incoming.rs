//! [`Incoming`]: what enters the fan-out — stored pixels heard on
//! `pixel-updates` (announced by the store's own write script), or, in the
//! single process, handed over by the embedded store as it stores them.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use canvas_api::store::Announce;
use protocol::binary::PixelEvent;
use protocol::{PixelUpdated, ServerMessage};
use tokio::sync::mpsc;

/// An event entering the fan-out.
#[derive(Debug)]
pub enum Incoming {
    /// A `pixel_updated` with its encoded JSON, passed on byte for byte
    /// (protocol v1), and the fields protocol v2 sends of it.
    Pixel { event: PixelEvent, json: Utf8Bytes },
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

// Protocol v2 sends coordinates as 16 bits; a board of a larger side could
// not be told to its v2 clients.
const _: () = assert!(canvas_api::config::MAX_SIDE <= 1 << 16);

/// The fields of a `pixel_updated` that protocol v2 sends. `None` only for
/// coordinates past any board's side (a foreign publisher's event).
pub fn compact(event: &PixelUpdated) -> Option<PixelEvent> {
    Some(PixelEvent {
        x: u16::try_from(event.x).ok()?,
        y: u16::try_from(event.y).ok()?,
        color: event.color,
        seq: event.seq,
    })
}

/// A stored pixel of this board, compacted: its coordinates are within the
/// board, so within 16 bits.
pub fn compact_stored(event: &PixelUpdated) -> PixelEvent {
    compact(event).expect("a stored pixel lies within a board of at most 65536 a side")
}

/// Hands a stored pixel to the fan-out without waiting: false when its
/// queue is full (the fan-out then repairs the gap from the replay log).
pub fn hand_over(ingest: &mpsc::Sender<Incoming>, event: &PixelUpdated) -> bool {
    ingest
        .try_send(Incoming::Pixel {
            event: compact_stored(event),
            json: encode_pixel(event),
        })
        .is_ok()
}

/// The embedded store's announcements, into this process's fan-out.
pub fn fanout_announce(ingest: mpsc::Sender<Incoming>) -> Announce {
    Arc::new(move |event| hand_over(&ingest, event))
}
