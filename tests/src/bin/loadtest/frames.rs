//! Cheap decoding of the gateway's frames on the receive hot path.
//!
//! An observer of a busy board reads thousands of events a second, so this
//! parses only the fields the load test uses (borrowing strings, skipping the
//! rest) instead of building full [`protocol::ServerMessage`] values, and
//! flattens `batch` frames into the events they carry, in order — unless the
//! client plays the prototype's, which knows no `batch`. Protocol v2's
//! binary `PIXELS` messages are decoded with the protocol crate's codec.

use std::borrow::Cow;

use protocol::binary::{BinaryError, PixelEvent, decode_pixels};
use serde::Deserialize;

/// The fields of a server message the load test reads. Every other field is
/// skipped without being built.
#[derive(Debug, Deserialize)]
struct Lite<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    x: Option<u32>,
    #[serde(default)]
    y: Option<u32>,
    #[serde(default, borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    events: Vec<Lite<'a>>,
}

/// One event, as the load test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Pixel {
        seq: u64,
        x: u32,
        y: u32,
    },
    Ack {
        id: Option<u64>,
        seq: u64,
    },
    Error {
        id: Option<u64>,
        code: String,
    },
    /// The gateway gave up on delivering some updates.
    Resync {
        seq: u64,
    },
    /// A `batch` that a [`Framing::Single`] client cannot read: the
    /// prototype's clients ignore types they do not know, and with it every
    /// pixel inside.
    UnreadBatch,
    /// A JSON pixel event (or `batch`) on a protocol v2 connection, whose
    /// pixel events must come binary: the gateway did not speak v2.
    WrongProtocol,
    /// `stats`, `user_list`, `pong`, `connected`: nothing to count.
    Other,
}

/// How the client asked the gateway to frame events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `?batch=1`: several events per `batch` message.
    Batched,
    /// No `?batch`: one event per message, as the prototype's clients
    /// expect; a `batch` is not understood.
    Single,
    /// `?protocol=2`: pixel events in binary `PIXELS` messages, placements
    /// as binary `PLACE` messages; the rest JSON as in v1.
    Binary,
}

/// Batches never nest today; the bound only keeps a hostile frame from
/// recursing deeply.
const MAX_DEPTH: usize = 4;

/// Decodes one text frame, appending its events (a batch's in order, when
/// the client reads batches) to `out`.
pub fn decode(text: &str, out: &mut Vec<Event>, framing: Framing) -> Result<(), serde_json::Error> {
    let frame: Lite<'_> = serde_json::from_str(text)?;
    if framing == Framing::Single && frame.kind == "batch" {
        out.push(Event::UnreadBatch);
    } else if framing == Framing::Binary && matches!(frame.kind.as_ref(), "batch" | "pixel_updated")
    {
        out.push(Event::WrongProtocol);
    } else {
        flatten(frame, out, 0);
    }
    Ok(())
}

/// Decodes one binary message (protocol v2), appending its pixel events in
/// order to `out`; `scratch` is reused so the hot path allocates nothing.
pub fn decode_binary(
    bytes: &[u8],
    scratch: &mut Vec<PixelEvent>,
    out: &mut Vec<Event>,
) -> Result<(), BinaryError> {
    scratch.clear();
    decode_pixels(bytes, scratch)?;
    out.extend(scratch.drain(..).map(|p| Event::Pixel {
        seq: p.seq,
        x: u32::from(p.x),
        y: u32::from(p.y),
    }));
    Ok(())
}

fn flatten(frame: Lite<'_>, out: &mut Vec<Event>, depth: usize) {
    match frame.kind.as_ref() {
        "batch" if depth < MAX_DEPTH => {
            for inner in frame.events {
                flatten(inner, out, depth + 1);
            }
        }
        "pixel_updated" => match (frame.seq, frame.x, frame.y) {
            (Some(seq), Some(x), Some(y)) => out.push(Event::Pixel { seq, x, y }),
            _ => out.push(Event::Other),
        },
        "ack" => match frame.seq {
            Some(seq) => out.push(Event::Ack { id: frame.id, seq }),
            None => out.push(Event::Other),
        },
        "error" => out.push(Event::Error {
            id: frame.id,
            code: frame.code.map(Cow::into_owned).unwrap_or_default(),
        }),
        "resync" => out.push(Event::Resync {
            seq: frame.seq.unwrap_or(0),
        }),
        _ => out.push(Event::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<Event> {
        let mut out = Vec::new();
        decode(text, &mut out, Framing::Batched).unwrap();
        out
    }

    #[test]
    fn a_single_framing_client_does_not_read_a_batch() {
        let mut out = Vec::new();
        let batch = r#"{"type":"batch","events":[{"type":"ack","seq":1}]}"#;
        decode(batch, &mut out, Framing::Single).unwrap();
        assert_eq!(out, vec![Event::UnreadBatch]);
        out.clear();
        decode(r#"{"type":"ack","seq":2}"#, &mut out, Framing::Single).unwrap();
        assert_eq!(out, vec![Event::Ack { id: None, seq: 2 }]);
    }

    #[test]
    fn a_pixel_keeps_seq_and_coordinates() {
        let e = events(
            r##"{"type":"pixel_updated","x":3,"y":4,"color":"#FF0000","username":"a","timestamp":1,"seq":9}"##,
        );
        assert_eq!(e, vec![Event::Pixel { seq: 9, x: 3, y: 4 }]);
    }

    #[test]
    fn a_batch_is_flattened_in_order() {
        let e = events(
            r##"{"type":"batch","events":[
                {"type":"pixel_updated","x":0,"y":0,"color":"#000000","username":"a","timestamp":1,"seq":5},
                {"type":"ack","id":2,"seq":6},
                {"type":"pixel_updated","x":1,"y":1,"color":"#000000","username":"a","timestamp":1,"seq":4},
                {"type":"stats","activeUsers":3,"timestamp":1}
            ]}"##,
        );
        assert_eq!(
            e,
            vec![
                Event::Pixel { seq: 5, x: 0, y: 0 },
                Event::Ack {
                    id: Some(2),
                    seq: 6
                },
                Event::Pixel { seq: 4, x: 1, y: 1 },
                Event::Other,
            ]
        );
    }

    #[test]
    fn nested_batches_are_flattened_too() {
        let e = events(
            r#"{"type":"batch","events":[{"type":"batch","events":[{"type":"ack","seq":1}]},{"type":"pong"}]}"#,
        );
        assert_eq!(e, vec![Event::Ack { id: None, seq: 1 }, Event::Other]);
    }

    #[test]
    fn errors_keep_their_code_and_id() {
        let e = events(
            r#"{"type":"error","id":7,"code":"cooldown","message":"wait","retryAfterMs":1200}"#,
        );
        assert_eq!(
            e,
            vec![Event::Error {
                id: Some(7),
                code: "cooldown".into()
            }]
        );
    }

    #[test]
    fn unknown_fields_and_types_are_skipped() {
        let e = events(r#"{"type":"user_list","users":["a","b"],"total":2,"timestamp":1}"#);
        assert_eq!(e, vec![Event::Other]);
        let e = events(r#"{"type":"resync","seq":40,"reason":"gone"}"#);
        assert_eq!(e, vec![Event::Resync { seq: 40 }]);
    }

    #[test]
    fn a_v2_client_takes_json_pixel_events_for_a_wrong_protocol() {
        let mut out = Vec::new();
        let pixel = r##"{"type":"pixel_updated","x":3,"y":4,"color":"#FF0000","username":"a","timestamp":1,"seq":9}"##;
        decode(pixel, &mut out, Framing::Binary).unwrap();
        decode(
            r#"{"type":"ack","id":1,"seq":2}"#,
            &mut out,
            Framing::Binary,
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                Event::WrongProtocol,
                Event::Ack {
                    id: Some(1),
                    seq: 2
                }
            ]
        );
    }

    #[test]
    fn binary_pixels_become_pixel_events_in_order() {
        use protocol::Color;
        use protocol::binary::encode_pixels;
        let pixels = [
            PixelEvent {
                x: 65535,
                y: 1,
                color: Color([1, 2, 3]),
                seq: 8,
            },
            PixelEvent {
                x: 2,
                y: 3,
                color: Color([0, 0, 0]),
                seq: 9,
            },
        ];
        let mut out = Vec::new();
        decode_binary(&encode_pixels(&pixels), &mut Vec::new(), &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                Event::Pixel {
                    seq: 8,
                    x: 65535,
                    y: 1
                },
                Event::Pixel { seq: 9, x: 2, y: 3 },
            ]
        );
        assert!(decode_binary(&[0x01], &mut Vec::new(), &mut out).is_err());
    }

    #[test]
    fn not_json_is_an_error() {
        assert!(decode("nope", &mut Vec::new(), Framing::Batched).is_err());
    }
}
