//! [`Hub`]: in-memory fan-out of encoded frames to every connection of this
//! gateway.
//!
//! One `tokio::sync::broadcast` ring: each frame is encoded once and every
//! connection holds only a cursor into the ring, so the per-connection queue
//! is bounded by construction and costs no memory of its own. A connection
//! that falls a whole ring behind is told so (close code 4008) and resyncs;
//! it never silently misses an update.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;

/// Frames a connection may fall behind before it is closed as too slow.
/// Frames are batched, so this is thousands of pixels.
pub const RING_CAPACITY: usize = 4096;

pub struct Hub {
    tx: broadcast::Sender<Utf8Bytes>,
    presence: Mutex<Option<PresenceFrames>>,
    delivered_seq: AtomicU64,
}

/// The latest `stats` and `user_list` frames, sent to each new connection.
#[derive(Clone)]
pub struct PresenceFrames {
    pub stats: Utf8Bytes,
    pub user_list: Utf8Bytes,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: broadcast::channel(RING_CAPACITY).0,
            presence: Mutex::new(None),
            delivered_seq: AtomicU64::new(0),
        }
    }
}

impl Hub {
    pub fn subscribe(&self) -> broadcast::Receiver<Utf8Bytes> {
        self.tx.subscribe()
    }

    /// Sends a frame to every connection.
    pub fn send(&self, frame: Utf8Bytes) {
        // An error only means nobody is connected.
        let _ = self.tx.send(frame);
    }

    pub fn set_presence(&self, frames: PresenceFrames) {
        *self.presence.lock().unwrap_or_else(|e| e.into_inner()) = Some(frames.clone());
        self.send(frames.stats);
        self.send(frames.user_list);
    }

    pub fn presence(&self) -> Option<PresenceFrames> {
        self.presence
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The highest `seq` up to which every event was fanned out.
    pub fn delivered_seq(&self) -> u64 {
        self.delivered_seq.load(Ordering::Relaxed)
    }

    pub fn set_delivered_seq(&self, seq: u64) {
        self.delivered_seq.store(seq, Ordering::Relaxed);
    }
}
