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

use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes};
use protocol::binary::{PixelEvent, encode_pixels};
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
    /// Protocol v2 (`?protocol=2`): the events of a frame as one binary
    /// `PIXELS` message; every other frame as JSON text, as in v1.
    Binary,
}

/// One entry of the ring.
#[derive(Clone)]
pub enum HubFrame {
    /// One message, the same for every connection: `stats`, `user_list`,
    /// `resync`.
    Message(Utf8Bytes),
    /// The `pixel_updated`s of one fan-out window (one or more), in order.
    Events(Arc<EventRun>),
}

/// Events that went out together. Each event is encoded once; the `batch`
/// message joining them, and the binary `PIXELS` message holding them, are
/// each built by the first connection that wants it, so a gateway whose
/// clients all take single events never builds either.
pub struct EventRun {
    events: Box<[Utf8Bytes]>,
    /// The same events, in the same order, as protocol v2 carries them.
    pixels: Box<[PixelEvent]>,
    batch: OnceLock<Utf8Bytes>,
    binary: OnceLock<Bytes>,
}

impl EventRun {
    /// At least one event: the fan-out never sends an empty run.
    pub fn new(events: impl IntoIterator<Item = (PixelEvent, Utf8Bytes)>) -> Self {
        let (pixels, events): (Vec<_>, Vec<_>) = events.into_iter().unzip();
        assert!(!events.is_empty(), "a run holds at least one event");
        EventRun {
            events: events.into_boxed_slice(),
            pixels: pixels.into_boxed_slice(),
            batch: OnceLock::new(),
            binary: OnceLock::new(),
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

    /// The events as one binary `PIXELS` message (protocol v2).
    pub fn binary(&self) -> Bytes {
        self.binary
            .get_or_init(|| Bytes::from(encode_pixels(&self.pixels)))
            .clone()
    }
}

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

impl HubFrame {
    /// What a connection following only `viewport` gets of this frame: the
    /// pixel events inside it, framed as `framing` asks (a run that kept
    /// every event is the shared message; one that lost some is encoded for
    /// this connection), and every other message as it is.
    pub fn messages_within(self, framing: Framing, viewport: &Viewport, out: &mut Vec<Message>) {
        let run = match self {
            HubFrame::Message(message) => return out.push(Message::Text(message)),
            HubFrame::Events(run) => run,
        };
        let inside = |p: &PixelEvent| viewport.contains(p.x.into(), p.y.into());
        let kept = run.pixels.iter().filter(|p| inside(p)).count();
        if kept == run.events.len() {
            return out.extend(HubFrame::Events(run).into_messages(framing));
        }
        let events = || {
            run.events
                .iter()
                .zip(run.pixels.iter())
                .filter(|(_, p)| inside(p))
        };
        match (framing, kept) {
            (_, 0) => {}
            (Framing::Binary, _) => {
                let pixels: Vec<PixelEvent> = events().map(|(_, p)| *p).collect();
                out.push(Message::Binary(Bytes::from(encode_pixels(&pixels))));
            }
            (Framing::Single, _) | (Framing::Batched, 1) => {
                out.extend(events().map(|(e, _)| Message::Text(e.clone())))
            }
            (Framing::Batched, _) => out.push(Message::Text(join_batch(events().map(|(e, _)| e)))),
        }
    }

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
            (HubFrame::Message(bytes), _) => Messages::One(Some(Message::Text(bytes))),
            (HubFrame::Events(run), Framing::Binary) => {
                Messages::One(Some(Message::Binary(run.binary())))
            }
            // A lone event is itself, not a batch of one: v1 clients get
            // exactly what they got when a lone event was a `Message`.
            (HubFrame::Events(run), Framing::Batched) if run.events.len() > 1 => {
                Messages::One(Some(Message::Text(run.batch())))
            }
            (HubFrame::Events(run), Framing::Single | Framing::Batched) => {
                Messages::Each { run, next: 0 }
            }
        }
    }
}

/// The messages of one [`HubFrame`], without collecting them.
pub enum Messages {
    One(Option<Message>),
    Each { run: Arc<EventRun>, next: usize },
}

impl Iterator for Messages {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        match self {
            Messages::One(one) => one.take(),
            Messages::Each { run, next } => {
                let event = run.events.get(*next)?.clone();
                *next += 1;
                Some(Message::Text(event))
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
    use protocol::Color;
    use protocol::binary::decode_pixels;

    use super::*;

    fn pixel(seq: u64) -> PixelEvent {
        PixelEvent {
            x: seq as u16,
            y: 2,
            color: Color([1, 2, 3]),
            seq,
        }
    }

    fn run(events: &[&'static str]) -> HubFrame {
        HubFrame::Events(Arc::new(EventRun::new(
            events
                .iter()
                .enumerate()
                .map(|(i, e)| (pixel(i as u64 + 1), Utf8Bytes::from_static(e))),
        )))
    }

    fn texts(messages: Messages) -> Vec<String> {
        messages
            .map(|m| match m {
                Message::Text(t) => t.as_str().to_owned(),
                other => panic!("not text: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn single_framing_sends_each_event_as_its_own_message_in_order() {
        let frame = run(&[r#"{"seq":1}"#, r#"{"seq":2}"#, r#"{"seq":3}"#]);
        assert_eq!(frame.message_count(Framing::Single), 3);
        let out = texts(frame.into_messages(Framing::Single));
        assert_eq!(out, [r#"{"seq":1}"#, r#"{"seq":2}"#, r#"{"seq":3}"#]);
    }

    #[test]
    fn batched_framing_joins_the_events_into_one_batch_message() {
        let frame = run(&[r#"{"seq":1}"#, r#"{"seq":2}"#]);
        assert_eq!(frame.message_count(Framing::Batched), 1);
        let out = texts(frame.clone().into_messages(Framing::Batched));
        assert_eq!(out, [r#"{"type":"batch","events":[{"seq":1},{"seq":2}]}"#]);
        // Built once: a second connection gets the same bytes.
        let [Some(Message::Text(first)), Some(Message::Text(again))] =
            [0, 1].map(|_| frame.clone().into_messages(Framing::Batched).next())
        else {
            panic!("not text")
        };
        assert_eq!(first.as_str().as_ptr(), again.as_str().as_ptr());
    }

    #[test]
    fn a_lone_event_is_itself_for_v1_framings() {
        for framing in [Framing::Single, Framing::Batched] {
            let frame = run(&[r#"{"seq":1}"#]);
            assert_eq!(frame.message_count(framing), 1);
            assert_eq!(texts(frame.into_messages(framing)), [r#"{"seq":1}"#]);
        }
    }

    #[test]
    fn binary_framing_encodes_the_run_once_as_one_pixels_message() {
        for events in [&[r#"{"seq":1}"#][..], &[r#"{"seq":1}"#, r#"{"seq":2}"#]] {
            let frame = run(events);
            assert_eq!(frame.message_count(Framing::Binary), 1);
            let out: Vec<_> = frame.clone().into_messages(Framing::Binary).collect();
            let [Message::Binary(bytes)] = &out[..] else {
                panic!("not one binary message: {out:?}")
            };
            let mut decoded = Vec::new();
            decode_pixels(bytes, &mut decoded).unwrap();
            let expected: Vec<_> = (1..=events.len() as u64).map(pixel).collect();
            assert_eq!(decoded, expected);
            // Built once: a second connection gets the same bytes.
            let Some(Message::Binary(again)) = frame.into_messages(Framing::Binary).next() else {
                panic!("not binary")
            };
            assert_eq!(bytes.as_ptr(), again.as_ptr());
        }
    }

    #[test]
    fn a_viewport_keeps_its_chunks_pixels_in_every_framing_and_every_other_message() {
        // Pixels 1..=3 are at x = 1, 2, 3 (chunk 0); 300 is in chunk 1.
        let at = |seq: u64, x: u16| {
            (
                PixelEvent { x, ..pixel(seq) },
                Utf8Bytes::from(format!("e{seq}")),
            )
        };
        let frame = HubFrame::Events(Arc::new(EventRun::new([at(1, 1), at(2, 300), at(3, 3)])));
        let first = Viewport::new(&[[0, 0]], 1000, 1000).unwrap();
        let within = |frame: &HubFrame, framing, viewport: &Viewport| {
            let mut out = Vec::new();
            frame.clone().messages_within(framing, viewport, &mut out);
            out
        };
        let text = |out: Vec<Message>| -> Vec<String> {
            out.into_iter()
                .map(|m| match m {
                    Message::Text(t) => t.as_str().to_owned(),
                    other => panic!("not text: {other:?}"),
                })
                .collect()
        };
        assert_eq!(text(within(&frame, Framing::Single, &first)), ["e1", "e3"]);
        assert_eq!(
            text(within(&frame, Framing::Batched, &first)),
            [r#"{"type":"batch","events":[e1,e3]}"#]
        );
        let [Message::Binary(bytes)] = &within(&frame, Framing::Binary, &first)[..] else {
            panic!("not one binary message")
        };
        let mut decoded = Vec::new();
        decode_pixels(bytes, &mut decoded).unwrap();
        assert_eq!(decoded.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 3]);
        // One event left is itself, not a batch; none, nothing.
        let second = Viewport::new(&[[1, 0]], 1000, 1000).unwrap();
        assert_eq!(text(within(&frame, Framing::Batched, &second)), ["e2"]);
        let far = Viewport::new(&[[3, 3]], 1000, 1000).unwrap();
        for framing in [Framing::Single, Framing::Batched, Framing::Binary] {
            assert!(within(&frame, framing, &far).is_empty());
        }
        // A run kept whole is the shared message; other messages pass.
        let both = Viewport::new(&[[0, 0], [1, 0]], 1000, 1000).unwrap();
        let [Message::Binary(whole)] = &within(&frame, Framing::Binary, &both)[..] else {
            panic!("not one binary message")
        };
        let HubFrame::Events(run) = &frame else {
            unreachable!()
        };
        assert_eq!(whole.as_ptr(), run.binary().as_ptr());
        let stats = HubFrame::Message(Utf8Bytes::from_static(r#"{"type":"stats"}"#));
        assert_eq!(
            text(within(&stats, Framing::Binary, &far)),
            [r#"{"type":"stats"}"#]
        );
    }

    #[test]
    fn a_lone_message_is_the_same_text_for_every_framing() {
        for framing in [Framing::Single, Framing::Batched, Framing::Binary] {
            let frame = HubFrame::Message(Utf8Bytes::from_static(r#"{"type":"stats"}"#));
            assert_eq!(frame.message_count(framing), 1);
            assert_eq!(texts(frame.into_messages(framing)), [r#"{"type":"stats"}"#]);
        }
    }
}
