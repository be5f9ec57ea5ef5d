//! Protocol v2 (`?protocol=2`, `protocol/PROTOCOL.md`) from a raw client:
//! binary pixel events and placements beside v1 clients on the same
//! gateway, malformed binary frames, and the negotiation.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{SinkExt, StreamExt};
use protocol::binary::{PixelEvent, Place, decode_pixels, encode_place};
use protocol::{Color, ErrorCode, ServerMessage};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{WAIT, WsClient, single_process};

/// Pixels placed in one burst: far more than one fan-out window holds.
const BURST: u32 = 100;

/// Two palette colors, alternated so a wrong color byte shows.
const COLORS: [[u8; 3]; 2] = [[0xFF, 0x45, 0x00], [0x00, 0x00, 0x00]];

/// A client that reads protocol v2 by hand: binary messages decoded with
/// the protocol crate's codec, text as v1 JSON.
struct V2Client {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// What a v2 client read.
#[derive(Default)]
struct Heard {
    /// Pixel events, in arrival order.
    pixels: Vec<PixelEvent>,
    /// Binary messages, with how many events each carried.
    binary_messages: Vec<usize>,
    /// Text messages (v1 JSON), in arrival order.
    texts: Vec<ServerMessage>,
}

impl Heard {
    fn acks(&self) -> BTreeMap<u64, u64> {
        self.texts
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Ack { id: Some(id), seq } => Some((*id, *seq)),
                _ => None,
            })
            .collect()
    }
}

impl V2Client {
    /// Connects with `?protocol=2` (and `extra` query pairs) and waits for
    /// `connected`, which is JSON text.
    async fn connect(url: &str, extra: &str) -> V2Client {
        let url = format!("{url}?protocol=2{extra}");
        let (ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        let mut client = V2Client { ws };
        let heard = client.read_until(|h| !h.texts.is_empty()).await;
        assert!(
            matches!(heard.texts[0], ServerMessage::Connected { .. }),
            "{:?}",
            heard.texts[0]
        );
        client
    }

    async fn send(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// Reads until `done` says so, within [`WAIT`].
    async fn read_until(&mut self, done: impl Fn(&Heard) -> bool) -> Heard {
        let mut heard = Heard::default();
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(&heard) {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "not done within {WAIT:?}: {} pixels, texts {:?}",
                        heard.pixels.len(),
                        heard.texts
                    )
                });
            match frame {
                Some(Ok(Message::Binary(bytes))) => {
                    let before = heard.pixels.len();
                    decode_pixels(&bytes, &mut heard.pixels)
                        .unwrap_or_else(|e| panic!("unreadable binary message: {e}"));
                    heard.binary_messages.push(heard.pixels.len() - before);
                }
                Some(Ok(Message::Text(text))) => heard.texts.push(
                    serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("unreadable text {text}: {e}")),
                ),
                Some(Ok(_)) => {}
                other => panic!("the connection ended: {other:?}"),
            }
        }
        heard
    }
}

fn pixel_of(id: u32) -> (u16, u16, Color) {
    (
        (id % 100) as u16,
        (id / 100) as u16,
        Color(COLORS[id as usize % 2]),
    )
}

#[tokio::test]
async fn v2_clients_place_and_hear_binary_events_while_a_v1_client_hears_json() {
    // A wide window, so the burst is sure to share frames.
    let (server, _dir) = single_process("protocol-v2", &[("FANOUT_WINDOW_MS", "200")]).await;
    let mut observer = V2Client::connect(&server.ws(), "").await;
    let mut writer = V2Client::connect(&server.ws(), "&username=binary").await;
    let mut v1 = WsClient::connect(&server.ws(), Some("jsonclient")).await;

    for id in 1..=BURST {
        let (x, y, color) = pixel_of(id);
        writer
            .send(Message::Binary(
                encode_place(&Place { id, x, y, color }).to_vec().into(),
            ))
            .await;
    }
    // Exactly one answer per placement: every one an ack.
    let heard = writer
        .read_until(|h| {
            h.texts
                .iter()
                .filter(|m| matches!(m, ServerMessage::Ack { .. } | ServerMessage::Error { .. }))
                .count()
                >= BURST as usize
        })
        .await;
    let acks = heard.acks();
    assert_eq!(
        acks.keys().copied().collect::<Vec<_>>(),
        (1..=u64::from(BURST)).collect::<Vec<_>>(),
        "texts: {:?}",
        heard.texts
    );
    let answers = heard
        .texts
        .iter()
        .filter(|m| matches!(m, ServerMessage::Ack { .. } | ServerMessage::Error { .. }))
        .count();
    assert_eq!(
        answers, BURST as usize,
        "an answer too many: {:?}",
        heard.texts
    );

    // The observer hears exactly the placed pixels, in seq order, in binary
    // messages of several events.
    let heard = observer
        .read_until(|h| h.pixels.len() >= BURST as usize)
        .await;
    assert_eq!(heard.pixels.len(), BURST as usize);
    assert!(
        heard.pixels.windows(2).all(|w| w[0].seq < w[1].seq),
        "not in seq order: {:?}",
        heard.pixels.iter().map(|p| p.seq).collect::<Vec<_>>()
    );
    let placed_by_seq: BTreeMap<u64, (u16, u16, Color)> = acks
        .iter()
        .map(|(&id, &seq)| (seq, pixel_of(id as u32)))
        .collect();
    for pixel in &heard.pixels {
        assert_eq!(
            Some(&(pixel.x, pixel.y, pixel.color)),
            placed_by_seq.get(&pixel.seq),
            "seq {}",
            pixel.seq
        );
    }
    assert!(
        heard.binary_messages.iter().any(|&n| n > 1),
        "no binary message of several events: {:?}",
        heard.binary_messages
    );
    assert!(
        !heard.texts.iter().any(|m| matches!(
            m,
            ServerMessage::PixelUpdated(_) | ServerMessage::Batch { .. }
        )),
        "a v2 client got pixel events as JSON: {:?}",
        heard.texts
    );

    // The v1 client on the same gateway gets the same pixels as JSON, each
    // its own message (it did not ask for batches).
    let mut seqs = BTreeSet::new();
    while seqs.len() < BURST as usize {
        match v1
            .expect("a pixel_updated", |m| {
                matches!(
                    m,
                    ServerMessage::PixelUpdated(_) | ServerMessage::Batch { .. }
                )
            })
            .await
        {
            ServerMessage::PixelUpdated(e) => {
                assert_eq!(
                    Some(&(e.x as u16, e.y as u16, e.color)),
                    placed_by_seq.get(&e.seq)
                );
                seqs.insert(e.seq);
            }
            other => panic!("a v1 client got {other:?}"),
        }
    }
    assert_eq!(seqs, placed_by_seq.keys().copied().collect());
}

#[tokio::test]
async fn a_malformed_binary_frame_on_v2_is_answered_like_malformed_json() {
    let (server, _dir) = single_process("protocol-v2-malformed", &[]).await;
    let mut client = V2Client::connect(&server.ws(), "").await;
    let cases: [(&[u8], ErrorCode); 5] = [
        (&[0x81, 1, 2], ErrorCode::BadRequest),
        (&[0x81; 13], ErrorCode::BadRequest),
        (&[], ErrorCode::UnknownType),
        (&[0x01, 0x01], ErrorCode::UnknownType),
        (&[0x82, 0, 0], ErrorCode::UnknownType),
    ];
    for (bytes, code) in cases {
        client.send(Message::Binary(bytes.to_vec().into())).await;
        let heard = client
            .read_until(|h| {
                h.texts
                    .iter()
                    .any(|m| matches!(m, ServerMessage::Error { .. }))
            })
            .await;
        match heard
            .texts
            .iter()
            .find(|m| matches!(m, ServerMessage::Error { .. }))
        {
            Some(ServerMessage::Error {
                id,
                code: got,
                message,
                ..
            }) => {
                assert_eq!((*got, *id), (code, None), "{bytes:02x?}: {message}");
                assert!(!message.is_empty());
            }
            _ => unreachable!(),
        }
    }
    // Still open, and JSON still works on v2.
    client.send(Message::text(r#"{"type":"ping"}"#)).await;
    client
        .read_until(|h| h.texts.contains(&ServerMessage::Pong))
        .await;
    client
        .send(Message::text(
            r##"{"type":"pixel_update","x":1,"y":1,"color":"#FF4500","id":5}"##,
        ))
        .await;
    let heard = client
        .read_until(|h| h.acks().contains_key(&5) && !h.pixels.is_empty())
        .await;
    assert_eq!((heard.pixels[0].x, heard.pixels[0].y), (1, 1));
    assert_eq!(Some(&heard.pixels[0].seq), heard.acks().get(&5));
}

#[tokio::test]
async fn a_protocol_parameter_other_than_1_or_2_is_refused_before_the_upgrade() {
    let (server, _dir) = single_process("protocol-param", &[]).await;
    for bad in ["3", "v2", ""] {
        let refused =
            tokio_tungstenite::connect_async(format!("{}?protocol={bad}", server.ws())).await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 400, "protocol={bad}");
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default());
                assert!(body.contains("protocol"), "{body}");
            }
            other => panic!("protocol={bad}: expected HTTP 400, got {other:?}"),
        }
    }
    for accepted in ["?protocol=1", "?protocol=2", "?protocol=2&batch=1"] {
        let url = format!("{}{accepted}", server.ws());
        tokio_tungstenite::connect_async(&url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

#[tokio::test]
async fn a_v2_client_following_a_viewport_gets_binary_events_of_its_chunks_only() {
    // A wide window, so inside and outside pixels share runs that the
    // filter must split.
    let (server, _dir) =
        single_process("protocol-v2-viewport", &[("FANOUT_WINDOW_MS", "200")]).await;
    let mut viewer = V2Client::connect(&server.ws(), "").await;
    viewer
        .send(Message::Text(
            r#"{"type":"subscribe","chunks":[[1,1]]}"#.into(),
        ))
        .await;
    viewer
        .read_until(|h| {
            h.texts
                .iter()
                .any(|m| matches!(m, ServerMessage::Subscribed { chunks: 1, .. }))
        })
        .await;
    let mut writer = V2Client::connect(&server.ws(), "&username=painter").await;
    // Every other pixel in chunk [1, 1] (256..512 both ways), the rest in
    // chunk [0, 0]; the last one inside.
    let inside = |id: u32| id.is_multiple_of(2);
    let place = |id: u32| {
        let (x, y) = if inside(id) {
            (256 + id as u16, 300)
        } else {
            (id as u16, 7)
        };
        Place {
            id,
            x,
            y,
            color: Color(COLORS[0]),
        }
    };
    for id in 1..=BURST {
        writer
            .send(Message::Binary(encode_place(&place(id)).to_vec().into()))
            .await;
    }
    let last = place(BURST);
    let heard = viewer
        .read_until(|h| h.pixels.iter().any(|p| (p.x, p.y) == (last.x, last.y)))
        .await;
    let expected: BTreeSet<(u16, u16)> = (1..=BURST)
        .filter(|&id| inside(id))
        .map(|id| (place(id).x, place(id).y))
        .collect();
    let got: Vec<(u16, u16)> = heard.pixels.iter().map(|p| (p.x, p.y)).collect();
    assert_eq!(got.len(), expected.len(), "each inside pixel once: {got:?}");
    assert_eq!(got.iter().copied().collect::<BTreeSet<_>>(), expected);
    assert!(
        heard.pixels.windows(2).all(|w| w[0].seq < w[1].seq),
        "in seq order"
    );
}
