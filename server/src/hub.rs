//! [`Hub`]: in-memory fan-out of encoded frames to every connection of this
//! gateway.
//!
//! One `tokio::sync::broadcast` ring: each frame is encoded once and every
//! connection holds only a cursor into the ring, so the per-connection queue
//! is bounded by construction and costs no memory of its own. A connection
//! that falls a whole ring behind is told so (close code 4008) and resyncs;
//! it never silently misses an update.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;

use crate::viewport::Viewport;

/// Frames a connection may fall behind before it is closed as too slow.
/// Frames are batched, so this is thousands of pixels.
pub const RING_CAPACITY: usize = 4096;

/// How a connection wants the events of one fan-out window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One `pixel_updated` per WebSocket message: what the prototype's
    /// clients understand (they ignore a `batch` they do not know, and with
    /// it every pixel inside). The default.
    Single,
    /// Several events in one `batch` message (`?batch=1`): one message to
    /// parse per window instead of one per pixel.
    Batched,
}

/// One entry of the ring.
#[derive(Clone)]
pub enum HubFrame {
    /// One message, the same for every connection: a lone `pixel_updated`,
    /// `stats`, `user_list`, `resync`.
    Message(Utf8Bytes),
    /// The `pixel_updated`s of one fan-out window, in order.
    Events(Arc<EventRun>),
}

/// Events that went out together. Each event is encoded once; the `batch`
/// message joining them is built by the first connection that wants it, so
/// a gateway whose clients all take single events never builds one.
pub struct EventRun {
    events: Box<[Utf8Bytes]>,
    batch: OnceLock<Utf8Bytes>,
    /// Each event's pixel, read once by the first connection that follows
    /// only some chunks.
    positions: OnceLock<Box<[Option<Pixel>]>>,
}

impl EventRun {
    pub fn new(events: impl IntoIterator<Item = Utf8Bytes>) -> Self {
        EventRun {
            events: events.into_iter().collect(),
            batch: OnceLock::new(),
            positions: OnceLock::new(),
        }
    }

    pub fn events(&self) -> &[Utf8Bytes] {
        &self.events
    }

    /// The events as one `{"type":"batch","events":[…]}` message.
    pub fn batch(&self) -> Utf8Bytes {
        self.batch
            .get_or_init(|| join_batch(self.events.iter()))
            .clone()
    }

    fn positions(&self) -> &[Option<Pixel>] {
        self.positions
            .get_or_init(|| self.events.iter().map(|e| pixel_position(e)).collect())
    }
}

/// A pixel's `(x, y)`.
type Pixel = (u32, u32);

/// Events as one `{"type":"batch","events":[…]}` message.
fn join_batch<'a>(events: impl Iterator<Item = &'a Utf8Bytes> + Clone) -> Utf8Bytes {
    let len = events.clone().map(|e| e.len() + 1).sum::<usize>();
    let mut json = String::with_capacity(len + 32);
    json.push_str(r#"{"type":"batch","events":["#);
    for (i, event) in events.enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(event.as_str());
    }
    json.push_str("]}");
    Utf8Bytes::from(json)
}

/// The pixel of a `pixel_updated` message, read from its first bytes:
/// every producer writes `{"type":"pixel_updated","x":X,"y":Y,` first
/// (serde's field order, which the store's `pixel_updated_prefix` matches
/// byte for byte). `None` for every other message.
pub fn pixel_position(json: &str) -> Option<(u32, u32)> {
    let rest = json.strip_prefix(r#"{"type":"pixel_updated","x":"#)?;
    let (x, rest) = leading_number(rest)?;
    let (y, _) = leading_number(rest.strip_prefix(r#","y":"#)?)?;
    Some((x, y))
}

fn leading_number(s: &str) -> Option<(u32, &str)> {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    Some((s[..end].parse().ok()?, &s[end..]))
}

impl HubFrame {
    /// How many WebSocket messages this frame becomes for `framing`.
    pub fn message_count(&self, framing: Framing) -> usize {
        match (self, framing) {
            (HubFrame::Events(run), Framing::Single) => run.events.len(),
            _ => 1,
        }
    }

    /// The WebSocket messages this frame becomes for `framing`, in order:
    /// shared bytes, never re-encoded per connection.
    pub fn into_messages(self, framing: Framing) -> Messages {
        match (self, framing) {
            (HubFrame::Message(bytes), _) => Messages::One(Some(bytes)),
            (HubFrame::Events(run), Framing::Batched) => Messages::One(Some(run.batch())),
            (HubFrame::Events(run), Framing::Single) => Messages::Each { run, next: 0 },
        }
    }
}

impl HubFrame {
    /// What a connection following only `viewport` gets of this frame:
    /// the pixel events inside it, framed as `framing` asks, and every
    /// other message as it is. Built per connection (only these pay).
    pub fn messages_within(self, framing: Framing, viewport: &Viewport, out: &mut Vec<Utf8Bytes>) {
        let inside = |p: Option<(u32, u32)>| p.is_none_or(|(x, y)| viewport.contains(x, y));
        match self {
            HubFrame::Message(message) => {
                if inside(pixel_position(&message)) {
                    out.push(message);
                }
            }
            HubFrame::Events(run) => {
                let kept = || {
                    run.events
                        .iter()
                        .zip(run.positions())
                        .filter(|(_, p)| inside(**p))
                        .map(|(e, _)| e)
                };
                match (framing, kept().count()) {
                    (_, 0) => {}
                    (Framing::Single, _) | (Framing::Batched, 1) => out.extend(kept().cloned()),
                    (Framing::Batched, n) if n == run.events.len() => out.push(run.batch()),
                    (Framing::Batched, _) => out.push(join_batch(kept())),
                }
            }
        }
    }
}

/// The messages of one [`HubFrame`], without collecting them.
pub enum Messages {
    One(Option<Utf8Bytes>),
    Each { run: Arc<EventRun>, next: usize },
}

impl Iterator for Messages {
    type Item = Utf8Bytes;

    fn next(&mut self) -> Option<Utf8Bytes> {
        match self {
            Messages::One(one) => one.take(),
            Messages::Each { run, next } => {
                let event = run.events.get(*next)?.clone();
                *next += 1;
                Some(event)
            }
        }
    }
}

pub struct Hub {
    tx: broadcast::Sender<HubFrame>,
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
    pub fn subscribe(&self) -> broadcast::Receiver<HubFrame> {
        self.tx.subscribe()
    }

    /// Sends a frame to every connection.
    pub fn send(&self, frame: HubFrame) {
        // An error only means nobody is connected.
        let _ = self.tx.send(frame);
    }

    /// Sends one message to every connection.
    pub fn send_message(&self, message: Utf8Bytes) {
        self.send(HubFrame::Message(message));
    }

    pub fn set_presence(&self, frames: PresenceFrames) {
        *self.presence.lock().unwrap_or_else(|e| e.into_inner()) = Some(frames.clone());
        self.send_message(frames.stats);
        self.send_message(frames.user_list);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: &[&'static str]) -> HubFrame {
        HubFrame::Events(Arc::new(EventRun::new(
            events.iter().map(|e| Utf8Bytes::from_static(e)),
        )))
    }

    #[test]
    fn single_framing_sends_each_event_as_its_own_message_in_order() {
        let frame = run(&[r#"{"seq":1}"#, r#"{"seq":2}"#, r#"{"seq":3}"#]);
        assert_eq!(frame.message_count(Framing::Single), 3);
        let out: Vec<_> = frame.into_messages(Framing::Single).collect();
        assert_eq!(out, [r#"{"seq":1}"#, r#"{"seq":2}"#, r#"{"seq":3}"#]);
    }

    #[test]
    fn batched_framing_joins_the_events_into_one_batch_message() {
        let frame = run(&[r#"{"seq":1}"#, r#"{"seq":2}"#]);
        assert_eq!(frame.message_count(Framing::Batched), 1);
        let out: Vec<_> = frame.clone().into_messages(Framing::Batched).collect();
        assert_eq!(out, [r#"{"type":"batch","events":[{"seq":1},{"seq":2}]}"#]);
        // Built once: a second connection gets the same bytes.
        let again: Vec<_> = frame.into_messages(Framing::Batched).collect();
        assert_eq!(out[0].as_str().as_ptr(), again[0].as_str().as_ptr());
    }

    const A: &str = r##"{"type":"pixel_updated","x":3,"y":300,"color":"#000000","username":"a","timestamp":1,"seq":1}"##;
    const B: &str = r##"{"type":"pixel_updated","x":700,"y":4,"color":"#000000","username":"b","timestamp":1,"seq":2}"##;
    const C: &str = r##"{"type":"pixel_updated","x":5,"y":260,"color":"#000000","username":"c","timestamp":1,"seq":3}"##;

    #[test]
    fn a_pixel_position_is_read_from_the_first_bytes_of_pixel_events_only() {
        assert_eq!(pixel_position(A), Some((3, 300)));
        assert_eq!(pixel_position(B), Some((700, 4)));
        assert_eq!(pixel_position(r#"{"type":"stats","activeUsers":1}"#), None);
        assert_eq!(
            pixel_position(r#"{"type":"pixel_updated","x":-1,"y":2}"#),
            None
        );
        assert_eq!(
            pixel_position(r#"{"type":"pixel_updated","x":99999999999,"y":2}"#),
            None
        );
    }

    #[test]
    fn a_viewport_keeps_its_chunks_pixels_and_every_other_message() {
        let viewport = Viewport::new(&[[0, 1]], 1000, 1000).unwrap();
        let mut out = Vec::new();
        run(&[A, B, C]).messages_within(Framing::Single, &viewport, &mut out);
        assert_eq!(out, [A, C]);
        out.clear();
        run(&[A, B, C]).messages_within(Framing::Batched, &viewport, &mut out);
        assert_eq!(out, [format!(r#"{{"type":"batch","events":[{A},{C}]}}"#)]);
        out.clear();
        run(&[A, B]).messages_within(Framing::Batched, &viewport, &mut out);
        assert_eq!(out, [A], "one event left goes as itself");
        out.clear();
        run(&[B, B]).messages_within(Framing::Batched, &viewport, &mut out);
        assert!(out.is_empty());
        for (message, kept) in [(B, false), (A, true), (r#"{"type":"stats"}"#, true)] {
            let mut out = Vec::new();
            HubFrame::Message(Utf8Bytes::from_static(message)).messages_within(
                Framing::Single,
                &viewport,
                &mut out,
            );
            assert_eq!(out.len(), usize::from(kept), "{message}");
        }
    }

    #[test]
    fn a_lone_message_is_the_same_for_both_framings() {
        for framing in [Framing::Single, Framing::Batched] {
            let frame = HubFrame::Message(Utf8Bytes::from_static(r#"{"type":"stats"}"#));
            assert_eq!(frame.message_count(framing), 1);
            let out: Vec<_> = frame.into_messages(framing).collect();
            assert_eq!(out, [r#"{"type":"stats"}"#]);
        }
    }
}
