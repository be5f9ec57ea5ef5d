//! What the prototype's clients and deployments rely on: one `pixel_updated`
//! per WebSocket message unless a client asks for `batch`es, and the `PORT`
//! variable.

use std::collections::BTreeSet;

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Process, WAIT, WsClient, single_process};

/// Pixels placed in one burst: far more than one fan-out window holds.
const BURST: u64 = 100;

/// A client as the prototype's were written: it reads each message's
/// `type`, counts `pixel_updated`, and ignores every type it does not know
/// (a `batch` among them).
struct PrototypeClient {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// What a client read while waiting for pixels.
#[derive(Default)]
struct Heard {
    /// `seq`s of top-level `pixel_updated` messages, in arrival order.
    pixels: Vec<u64>,
    /// `batch` messages, with how many events each carried.
    batches: Vec<usize>,
    /// `seq`s of the pixels inside those batches.
    batched_pixels: Vec<u64>,
}

impl PrototypeClient {
    async fn connect(url: &str) -> PrototypeClient {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        PrototypeClient { ws }
    }

    /// Reads until `want` pixels were heard, in messages or in batches.
    async fn read_pixels(&mut self, want: usize) -> Heard {
        let mut heard = Heard::default();
        let deadline = tokio::time::Instant::now() + WAIT;
        while heard.pixels.len() + heard.batched_pixels.len() < want {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{} of {want} pixels within {WAIT:?}",
                        heard.pixels.len() + heard.batched_pixels.len()
                    )
                });
            let Some(Ok(Message::Text(text))) = frame else {
                match frame {
                    Some(Ok(_)) => continue,
                    other => panic!("the connection ended: {other:?}"),
                }
            };
            let message: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            match message["type"].as_str() {
                Some("pixel_updated") => heard.pixels.push(message["seq"].as_u64().expect("seq")),
                Some("batch") => {
                    let events = message["events"].as_array().expect("events");
                    heard.batches.push(events.len());
                    heard.batched_pixels.extend(
                        events
                            .iter()
                            .filter(|e| e["type"] == "pixel_updated")
                            .map(|e| e["seq"].as_u64().expect("seq")),
                    );
                }
                _ => {}
            }
        }
        heard
    }
}

/// Places [`BURST`] pixels on one connection as fast as it takes them;
/// returns the acknowledged `seq`s.
async fn place_burst(url: &str) -> BTreeSet<u64> {
    let mut writer = WsClient::connect(url, Some("burst")).await;
    for id in 1..=BURST {
        writer
            .place((id % 100) as i64, (id / 100) as i64, "#FF4500", id)
            .await;
    }
    let mut acked = BTreeSet::new();
    for id in 1..=BURST {
        match writer.reply_to(id).await {
            protocol::ServerMessage::Ack { seq, .. } => {
                acked.insert(seq);
            }
            other => panic!("placement {id}: {other:?}"),
        }
    }
    acked
}

#[tokio::test]
async fn a_client_that_asks_nothing_gets_each_pixel_as_its_own_message_in_order() {
    // A wide window, so the burst is sure to share frames.
    let (server, _dir) = single_process("single-framing", &[("FANOUT_WINDOW_MS", "200")]).await;
    let mut prototype = PrototypeClient::connect(&server.ws()).await;
    let mut batched = PrototypeClient::connect(&format!("{}?batch=1", server.ws())).await;

    let acked = place_burst(&server.ws()).await;

    let heard = prototype.read_pixels(BURST as usize).await;
    assert!(
        heard.batches.is_empty(),
        "a client that did not ask got batches: {:?}",
        heard.batches
    );
    assert!(
        heard.pixels.windows(2).all(|w| w[0] < w[1]),
        "not in seq order: {:?}",
        heard.pixels
    );
    assert_eq!(heard.pixels.iter().copied().collect::<BTreeSet<_>>(), acked);

    // The same events, batched, for the client that asked.
    let heard = batched.read_pixels(BURST as usize).await;
    let mut all: Vec<u64> = heard.pixels.clone();
    all.extend(&heard.batched_pixels);
    assert_eq!(all.iter().copied().collect::<BTreeSet<_>>(), acked);
    assert!(
        heard.batches.iter().any(|&n| n > 1),
        "?batch=1 got no batch of several events: {} single messages, batches {:?}",
        heard.pixels.len(),
        heard.batches
    );
}

#[tokio::test]
async fn a_batch_parameter_other_than_1_or_0_is_refused_before_the_upgrade() {
    let (server, _dir) = single_process("batch-param", &[]).await;
    let refused = tokio_tungstenite::connect_async(format!("{}?batch=yes", server.ws())).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default());
            assert!(body.contains("batch"), "{body}");
        }
        other => panic!("expected HTTP 400, got {other:?}"),
    }
    for accepted in ["?batch=0", "?batch=false", "?batch=true"] {
        let url = format!("{}{accepted}", server.ws());
        tokio_tungstenite::connect_async(&url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

#[tokio::test]
async fn port_is_read_by_both_binaries_and_listen_addr_wins_over_it() {
    // `PORT` alone means 0.0.0.0:PORT (a unit test of `ListenArgs` checks
    // that); here, with LISTEN_ADDR set to loopback as the harness does,
    // the process must still listen there and not on PORT.
    for bin in ["server", "canvas-api"] {
        let dir = crate::harness::temp_dir("port");
        let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = busy.local_addr().expect("addr").port();
        let env = [
            ("DATA_DIR", dir.display().to_string()),
            ("PORT", port.to_string()),
        ];
        let p = Process::spawn(bin, &env).await;
        assert!(p.addr.ip().is_loopback(), "{bin}: {}", p.addr);
        assert_ne!(p.addr.port(), port, "{bin} took PORT over LISTEN_ADDR");

        let (status, log) =
            Process::spawn_expecting_failure(bin, &[("PORT", "eighty".to_owned())]).await;
        assert!(!status.success(), "{bin} started with PORT=eighty");
        assert!(log.contains("PORT"), "{bin}: {log}");
    }
}
