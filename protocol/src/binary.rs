//! Protocol v2: the binary WebSocket messages of the hot path, negotiated per
//! connection with `?protocol=2` ([`crate::messages::PROTOCOL_QUERY_PARAM`]).
//! Everything else on a v2 connection stays a protocol v1 JSON text frame.
//!
//! Every binary message starts with one type byte. The high bit says the
//! direction, so a message read on the wrong side is told apart from a
//! corrupt one and both directions can grow without sharing numbers:
//! `0x01..=0x7F` from the gateway, `0x81..=0xFF` from a client; `0x00` and
//! `0x80` are never used. Integers are little-endian. The byte layouts, with
//! an example, are in `protocol/PROTOCOL.md`.

use std::fmt;

use crate::{Color, ErrorCode};

/// The type byte of each binary message.
pub mod kind {
    /// Gateway → client: pixel events, in the order the fan-out sent them.
    pub const PIXELS: u8 = 0x01;
    /// Gateway → client, reserved: one chunk's pixels (the bytes of
    /// `GET /api/chunk/{cx}/{cy}.bin` with their `seq`). Not sent yet.
    pub const CHUNK_SNAPSHOT: u8 = 0x02;
    /// Client → gateway: place one pixel.
    pub const PLACE: u8 = 0x81;
    /// Client → gateway, reserved: subscribe to chunks (today the JSON
    /// `subscribe` message). Not accepted yet.
    pub const SUBSCRIBE: u8 = 0x82;
}

/// One stored pixel write, as a v2 client receives it. The username and the
/// timestamp of a `pixel_updated` are left out (they are most of its bytes);
/// a client that wants them asks `GET /api/pixel/{x}/{y}`, as the web
/// client's inspector does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelEvent {
    /// Boards are at most 65,536 pixels a side, so a coordinate fits 16 bits.
    pub x: u16,
    pub y: u16,
    pub color: Color,
    pub seq: u64,
}

/// A v2 placement: `pixel_update` in 12 bytes. `id` is echoed in the JSON
/// `ack` or `error` that answers it (placements are answered as they finish,
/// not in order), so it is always there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub id: u32,
    pub x: u16,
    pub y: u16,
    pub color: Color,
}

/// The length of a [`kind::PLACE`] message.
pub const PLACE_LEN: usize = 12;

/// Bytes of the first event of a [`kind::PIXELS`] message (seq u64, x, y,
/// rgb); each next one takes 8 when its `seq` follows the previous by 1..=63.
pub const FIRST_EVENT_LEN: usize = 15;

/// Why a binary message could not be read. The gateway answers a client's
/// malformed message with a JSON `error` of [`BinaryError::code`], as it
/// answers malformed JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryError {
    /// A message of zero bytes has no type.
    Empty,
    /// A type byte this side does not know (or one sent the other way).
    UnknownType(u8),
    /// A type that is reserved for a later version and not accepted yet.
    Reserved(u8),
    /// The message ends before its layout does.
    Truncated { kind: u8 },
    /// Bytes after the end of the layout.
    TrailingBytes { kind: u8, extra: usize },
    /// A varint longer than 10 bytes or above `u64::MAX`.
    BadVarint,
    /// A `PIXELS` message of no events.
    NoEvents,
}

impl fmt::Display for BinaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BinaryError::Empty => write!(f, "an empty binary message has no type byte"),
            BinaryError::UnknownType(t) => write!(
                f,
                "unknown binary message type 0x{t:02x}; a client sends 0x{:02x} (place)",
                kind::PLACE
            ),
            BinaryError::Reserved(t) => write!(
                f,
                "binary message type 0x{t:02x} is reserved and not supported yet"
            ),
            BinaryError::Truncated { kind } => {
                write!(f, "binary message 0x{kind:02x} ends before its layout does")
            }
            BinaryError::TrailingBytes { kind, extra } => write!(
                f,
                "binary message 0x{kind:02x} has {extra} bytes after its end"
            ),
            BinaryError::BadVarint => write!(f, "a varint is longer than 10 bytes or too large"),
            BinaryError::NoEvents => write!(f, "a pixels message holds at least one event"),
        }
    }
}

impl std::error::Error for BinaryError {}

impl BinaryError {
    /// The `code` of the `error` that answers it: a message of no type, or
    /// of a type not taken here, is `unknown_type`; a known type with the
    /// wrong bytes is `bad_request`.
    pub fn code(&self) -> ErrorCode {
        match self {
            BinaryError::Empty | BinaryError::UnknownType(_) | BinaryError::Reserved(_) => {
                ErrorCode::UnknownType
            }
            BinaryError::Truncated { .. }
            | BinaryError::TrailingBytes { .. }
            | BinaryError::BadVarint
            | BinaryError::NoEvents => ErrorCode::BadRequest,
        }
    }
}

/// A binary message from a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientBinary {
    Place(Place),
}

/// Encodes a [`Place`] message.
pub fn encode_place(place: &Place) -> [u8; PLACE_LEN] {
    let mut out = [0u8; PLACE_LEN];
    out[0] = kind::PLACE;
    out[1..5].copy_from_slice(&place.id.to_le_bytes());
    out[5..7].copy_from_slice(&place.x.to_le_bytes());
    out[7..9].copy_from_slice(&place.y.to_le_bytes());
    out[9..12].copy_from_slice(&place.color.0);
    out
}

/// Reads a binary message from a client. Never panics, whatever the bytes.
pub fn decode_client(bytes: &[u8]) -> Result<ClientBinary, BinaryError> {
    let (&kind, body) = bytes.split_first().ok_or(BinaryError::Empty)?;
    match kind {
        kind::PLACE => {
            if bytes.len() < PLACE_LEN {
                return Err(BinaryError::Truncated { kind });
            }
            if bytes.len() > PLACE_LEN {
                return Err(BinaryError::TrailingBytes {
                    kind,
                    extra: bytes.len() - PLACE_LEN,
                });
            }
            Ok(ClientBinary::Place(Place {
                id: u32::from_le_bytes([body[0], body[1], body[2], body[3]]),
                x: u16::from_le_bytes([body[4], body[5]]),
                y: u16::from_le_bytes([body[6], body[7]]),
                color: Color([body[8], body[9], body[10]]),
            }))
        }
        kind::SUBSCRIBE => Err(BinaryError::Reserved(kind)),
        _ => Err(BinaryError::UnknownType(kind)),
    }
}

/// Encodes a [`kind::PIXELS`] message: the type, the event count (varint),
/// the first event with its whole `seq`, then each next event with its
/// `seq` as the zigzag varint of the difference to the previous one (one
/// byte for the usual +1, and any order still encodes).
///
/// Panics on no events: the fan-out never sends an empty frame.
pub fn encode_pixels(events: &[PixelEvent]) -> Vec<u8> {
    let (first, rest) = events.split_first().expect("at least one event");
    let mut out = Vec::with_capacity(1 + 3 + FIRST_EVENT_LEN + rest.len() * 8);
    out.push(kind::PIXELS);
    put_varint(&mut out, events.len() as u64);
    out.extend_from_slice(&first.seq.to_le_bytes());
    put_pixel(&mut out, first);
    let mut previous = first.seq;
    for event in rest {
        put_varint(&mut out, zigzag(event.seq.wrapping_sub(previous) as i64));
        put_pixel(&mut out, event);
        previous = event.seq;
    }
    out
}

/// Reads a [`kind::PIXELS`] message, appending its events to `out` in order.
/// Never panics, whatever the bytes; on an error `out` may hold the events
/// read before it.
pub fn decode_pixels(bytes: &[u8], out: &mut Vec<PixelEvent>) -> Result<(), BinaryError> {
    let (&kind, body) = bytes.split_first().ok_or(BinaryError::Empty)?;
    if kind != kind::PIXELS {
        return Err(if kind == kind::CHUNK_SNAPSHOT {
            BinaryError::Reserved(kind)
        } else {
            BinaryError::UnknownType(kind)
        });
    }
    let mut reader = Reader { bytes: body, kind };
    let count = reader.varint()?;
    if count == 0 {
        return Err(BinaryError::NoEvents);
    }
    // Every event takes at least 8 bytes: a hostile count reserves nothing
    // the message does not hold.
    out.reserve((count as usize).min(reader.bytes.len() / 8 + 1));
    let mut seq = u64::from_le_bytes(reader.take::<8>()?);
    out.push(reader.pixel(seq)?);
    for _ in 1..count {
        seq = seq.wrapping_add(unzigzag(reader.varint()?) as u64);
        out.push(reader.pixel(seq)?);
    }
    if !reader.bytes.is_empty() {
        return Err(BinaryError::TrailingBytes {
            kind,
            extra: reader.bytes.len(),
        });
    }
    Ok(())
}

fn put_pixel(out: &mut Vec<u8>, event: &PixelEvent) {
    out.extend_from_slice(&event.x.to_le_bytes());
    out.extend_from_slice(&event.y.to_le_bytes());
    out.extend_from_slice(&event.color.0);
}

/// LEB128: seven bits a byte, low bits first, the high bit set on every
/// byte but the last.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// A cursor over a message's body.
struct Reader<'a> {
    bytes: &'a [u8],
    kind: u8,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], BinaryError> {
        let Some((head, rest)) = self.bytes.split_first_chunk::<N>() else {
            return Err(BinaryError::Truncated { kind: self.kind });
        };
        self.bytes = rest;
        Ok(*head)
    }

    fn pixel(&mut self, seq: u64) -> Result<PixelEvent, BinaryError> {
        let [x0, x1, y0, y1, r, g, b] = self.take::<7>()?;
        Ok(PixelEvent {
            x: u16::from_le_bytes([x0, x1]),
            y: u16::from_le_bytes([y0, y1]),
            color: Color([r, g, b]),
            seq,
        })
    }

    fn varint(&mut self) -> Result<u64, BinaryError> {
        let mut value = 0u64;
        for i in 0..10 {
            let [byte] = self.take::<1>()?;
            let bits = u64::from(byte & 0x7F);
            // The tenth byte holds only the top bit of a u64.
            if i == 9 && bits > 1 {
                return Err(BinaryError::BadVarint);
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(BinaryError::BadVarint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(x: u16, y: u16, rgb: [u8; 3], seq: u64) -> PixelEvent {
        PixelEvent {
            x,
            y,
            color: Color(rgb),
            seq,
        }
    }

    /// The example in PROTOCOL.md, byte for byte.
    #[test]
    fn the_documented_example_encodes_as_documented() {
        let events = [
            event(3, 4, [0xFF, 0x45, 0x00], 1000),
            event(65535, 0, [0, 0, 0], 1001),
        ];
        let bytes = encode_pixels(&events);
        assert_eq!(
            bytes,
            [
                0x01, 0x02, // PIXELS, 2 events
                0xE8, 0x03, 0, 0, 0, 0, 0, 0, // seq 1000
                0x03, 0x00, 0x04, 0x00, 0xFF, 0x45, 0x00, // (3, 4) #FF4500
                0x02, // seq +1 (zigzag)
                0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, // (65535, 0) #000000
            ]
        );
        assert_eq!(bytes.len(), FIRST_EVENT_LEN + 8 + 2);
        let mut back = Vec::new();
        decode_pixels(&bytes, &mut back).unwrap();
        assert_eq!(back, events);

        let place = Place {
            id: 7,
            x: 3,
            y: 4,
            color: Color([0xFF, 0x45, 0x00]),
        };
        assert_eq!(
            encode_place(&place),
            [0x81, 7, 0, 0, 0, 3, 0, 4, 0, 0xFF, 0x45, 0x00]
        );
    }

    #[test]
    fn each_malformed_client_message_has_its_error() {
        assert_eq!(decode_client(&[]), Err(BinaryError::Empty));
        assert_eq!(
            decode_client(&[0x81, 1, 2]),
            Err(BinaryError::Truncated { kind: 0x81 })
        );
        assert_eq!(
            decode_client(&[0x81; 13]),
            Err(BinaryError::TrailingBytes {
                kind: 0x81,
                extra: 1
            })
        );
        assert_eq!(decode_client(&[0x82]), Err(BinaryError::Reserved(0x82)));
        assert_eq!(decode_client(&[0x01]), Err(BinaryError::UnknownType(0x01)));
    }

    #[test]
    fn malformed_pixel_messages_have_their_error() {
        let mut out = Vec::new();
        assert_eq!(
            decode_pixels(&[0x01, 0x00], &mut out),
            Err(BinaryError::NoEvents)
        );
        assert_eq!(
            decode_pixels(&[0x01, 0x01, 1, 2], &mut out),
            Err(BinaryError::Truncated { kind: 0x01 })
        );
        assert_eq!(
            decode_pixels(
                &[
                    0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F
                ],
                &mut out
            ),
            Err(BinaryError::BadVarint)
        );
        assert_eq!(
            decode_pixels(&[0x02], &mut out),
            Err(BinaryError::Reserved(0x02))
        );
        let mut bytes = encode_pixels(&[event(1, 2, [3, 4, 5], 6)]);
        bytes.push(0);
        assert_eq!(
            decode_pixels(&bytes, &mut out),
            Err(BinaryError::TrailingBytes {
                kind: 0x01,
                extra: 1
            })
        );
    }
}

/// Property tests: every message round-trips, and any bytes decode to a
/// message or a typed error, never a panic.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn any_event() -> impl Strategy<Value = PixelEvent> {
        (any::<u16>(), any::<u16>(), any::<[u8; 3]>(), any::<u64>()).prop_map(|(x, y, rgb, seq)| {
            PixelEvent {
                x,
                y,
                color: Color(rgb),
                seq,
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn pixels_round_trip(events in prop::collection::vec(any_event(), 1..300)) {
            let mut back = Vec::new();
            decode_pixels(&encode_pixels(&events), &mut back).unwrap();
            prop_assert_eq!(back, events);
        }

        #[test]
        fn consecutive_seqs_cost_eight_bytes_an_event(
            first in any_event(),
            rest in prop::collection::vec(any_event(), 0..300),
        ) {
            let mut events = vec![first];
            for (i, e) in rest.into_iter().enumerate() {
                events.push(PixelEvent { seq: first.seq.wrapping_add(i as u64 + 1), ..e });
            }
            let bytes = encode_pixels(&events);
            let header = 1 + if events.len() < 128 { 1 } else { 2 };
            prop_assert_eq!(bytes.len(), header + FIRST_EVENT_LEN + (events.len() - 1) * 8);
        }

        #[test]
        fn places_round_trip(id in any::<u32>(), x in any::<u16>(), y in any::<u16>(), rgb in any::<[u8; 3]>()) {
            let place = Place { id, x, y, color: Color(rgb) };
            prop_assert_eq!(decode_client(&encode_place(&place)), Ok(ClientBinary::Place(place)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_client(&bytes);
            let _ = decode_pixels(&bytes, &mut Vec::new());
            // With a valid type byte, the body is what is tried.
            let mut pixels = vec![kind::PIXELS];
            pixels.extend_from_slice(&bytes);
            let _ = decode_pixels(&pixels, &mut Vec::new());
            let mut place = vec![kind::PLACE];
            place.extend_from_slice(&bytes);
            let _ = decode_client(&place);
        }

        #[test]
        fn truncated_pixels_say_why(events in prop::collection::vec(any_event(), 1..20), cut in 0usize..400) {
            let bytes = encode_pixels(&events);
            let cut = cut.min(bytes.len() - 1);
            let mut out = Vec::new();
            prop_assert!(decode_pixels(&bytes[..cut], &mut out).is_err());
        }
    }
}
