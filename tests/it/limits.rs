//! Per-IP and hard limits: connections per IP (and who an IP is behind a
//! proxy), message floods, frame size, idle timeout, connections per
//! gateway, HTTP body and time limits, CORS.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use protocol::{ErrorCode, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::client::pixel_event;
use crate::harness::http::{client, expect_error, put_pixel};
use crate::harness::{Stack, WAIT, WsClient, single_process};

/// A WebSocket upgrade's HTTP status, with `X-Forwarded-For` when given.
async fn upgrade_status(ws: &str, forwarded_for: Option<&str>) -> Result<WsClient, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = ws.into_client_request().unwrap();
    if let Some(xff) = forwarded_for {
        request
            .headers_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(WsClient::from_stream(ws).await),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("upgrade failed without a status: {e}"),
    }
}

#[tokio::test]
async fn the_per_ip_connection_limit_triggers_and_releases() {
    let (server, _dir) = single_process("per-ip-conns", &[("MAX_CONNECTIONS_PER_IP", "2")]).await;
    let a = WsClient::connect(&server.ws(), Some("a")).await;
    let _b = WsClient::connect(&server.ws(), Some("b")).await;
    assert_eq!(upgrade_status(&server.ws(), None).await.err(), Some(429));
    // Another address is another client.
    let _other = WsClient::connect_from(&server.ws(), IpAddr::from([127, 0, 0, 2])).await;
    drop(a);
    // The slot comes back once the server has seen the close.
    let deadline = Instant::now() + WAIT;
    loop {
        match upgrade_status(&server.ws(), None).await {
            Ok(_) => break,
            Err(429) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(status) => panic!("the slot was never released: {status}"),
        }
    }
}

#[tokio::test]
async fn x_forwarded_for_counts_only_from_trusted_proxies() {
    let limit = ("MAX_CONNECTIONS_PER_IP", "1");
    // Untrusted: the header is ignored, both are 127.0.0.1.
    let (plain, _d1) = single_process("xff-plain", &[limit]).await;
    let _first = upgrade_status(&plain.ws(), Some("1.1.1.1")).await.unwrap();
    assert_eq!(
        upgrade_status(&plain.ws(), Some("2.2.2.2")).await.err(),
        Some(429)
    );
    // Trusted: each forwarded address is its own client.
    let (behind, _d2) =
        single_process("xff-trusted", &[limit, ("TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let _one = upgrade_status(&behind.ws(), Some("1.1.1.1")).await.unwrap();
    let _two = upgrade_status(&behind.ws(), Some("6.6.6.6, 2.2.2.2"))
        .await
        .unwrap();
    assert_eq!(
        upgrade_status(&behind.ws(), Some("9.9.9.9, 1.1.1.1"))
            .await
            .err(),
        Some(429),
        "the right-most untrusted entry is the client, whatever is left of it"
    );
}

#[tokio::test]
async fn a_message_flood_is_rate_limited_then_closed_while_others_keep_receiving() {
    let (server, _dir) = single_process("flood", &[("MESSAGES_PER_SEC_PER_IP", "20")]).await;
    let mut bystander = WsClient::connect_from(&server.ws(), IpAddr::from([127, 0, 0, 3])).await;
    let mut flooder = WsClient::connect(&server.ws(), Some("flooder")).await;
    // Bounded: far more than 5 seconds' worth, sent as fast as possible.
    let mut sent = 0;
    for _ in 0..2000 {
        if !flooder.try_send_text(r#"{"type":"ping"}"#).await {
            break;
        }
        sent += 1;
    }
    assert!(sent > 100, "sent {sent}");
    let mut limited = 0;
    let close = loop {
        match flooder.try_next_within(WAIT).await {
            Ok(Some(ServerMessage::Error {
                code: ErrorCode::RateLimited,
                retry_after_ms,
                ..
            })) => {
                assert!(retry_after_ms.is_some_and(|ms| ms > 0));
                limited += 1;
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("the flood was not closed within {WAIT:?}"),
            Err(ended) => break ended.0.expect("a close frame"),
        }
    };
    assert!(limited > 0, "no rate_limited before the close");
    assert_eq!(u16::from(close.code), protocol::close::RATE_LIMITED);

    // The other client (another IP) was never limited and still gets pixels.
    let r = put_pixel(&server.http(), 4, 4, "#000000", "painter").await;
    assert_eq!(r.status(), 200);
    bystander
        .expect("the pixel", |m| pixel_event(m, 4, 4).is_some())
        .await;
    bystander
        .send_json(serde_json::json!({"type": "ping"}))
        .await;
    bystander
        .expect("pong", |m| matches!(m, ServerMessage::Pong))
        .await;
    // The flooder's IP is served again once it stops.
    let mut again = WsClient::connect(&server.ws(), Some("flooder")).await;
    again.send_json(serde_json::json!({"type": "ping"})).await;
    let deadline = Instant::now() + WAIT;
    loop {
        match again.next_within(WAIT).await {
            Some(ServerMessage::Pong) => break,
            Some(ServerMessage::Error {
                code: ErrorCode::RateLimited,
                retry_after_ms: Some(ms),
                ..
            }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                again.send_json(serde_json::json!({"type": "ping"})).await;
            }
            Some(_) => {}
            None => panic!("no pong"),
        }
    }
}

#[tokio::test]
async fn a_frame_over_max_frame_bytes_closes_with_1009_and_others_are_unaffected() {
    let (server, _dir) = single_process("max-frame", &[("MAX_FRAME_BYTES", "4096")]).await;
    let mut bystander = WsClient::connect(&server.ws(), Some("bystander")).await;
    let mut sender = WsClient::connect(&server.ws(), Some("sender")).await;
    let _ = sender.try_send_text("x".repeat(5000)).await;
    let frame = sender.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), protocol::close::MESSAGE_TOO_BIG);
    let r = put_pixel(&server.http(), 8, 8, "#000000", "painter").await;
    assert_eq!(r.status(), 200);
    bystander
        .expect("the pixel", |m| pixel_event(m, 8, 8).is_some())
        .await;
}

/// A WebSocket opened by hand that never answers a ping.
struct DeafClient {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl DeafClient {
    async fn connect(addr: std::net::SocketAddr) -> DeafClient {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            format!(
                "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut client = DeafClient {
            tcp,
            buf: Vec::new(),
        };
        let end = loop {
            if let Some(i) = client.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            client.fill().await;
        };
        assert!(client.buf.starts_with(b"HTTP/1.1 101"), "not upgraded");
        client.buf.drain(..end);
        client
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT * 2, self.tcp.read(&mut chunk))
            .await
            .expect("the server wrote nothing")
            .unwrap();
        assert!(n > 0, "closed without a close frame");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// The next frame the server sent: (opcode, payload).
    async fn frame(&mut self) -> (u8, Vec<u8>) {
        loop {
            if self.buf.len() >= 2 {
                let opcode = self.buf[0] & 0x0f;
                let (len, header) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= header + len {
                    let payload = self.buf[header..header + len].to_vec();
                    self.buf.drain(..header + len);
                    return (opcode, payload);
                }
            }
            self.fill().await;
        }
    }
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed_with_4002_and_others_stay() {
    let (server, _dir) = single_process("idle", &[("IDLE_TIMEOUT_SECS", "2")]).await;
    let started = Instant::now();
    let mut deaf = DeafClient::connect(server.addr).await;
    // A client that reads (tungstenite answers pings as it reads) stays.
    let mut alive = WsClient::connect(&server.ws(), Some("alive")).await;
    // Meanwhile a client that reads (tungstenite answers pings as it reads)
    // stays past the timeout (a close would fail `next_within`).
    let until = started + Duration::from_millis(5000);
    let keep_reading = async {
        while Instant::now() < until {
            let _ = alive.next_within(until - Instant::now()).await;
        }
    };
    let until_closed = async {
        let mut pings = 0;
        loop {
            match deaf.frame().await {
                (0x9, _) => pings += 1,
                (0x8, payload) => {
                    break (
                        u16::from_be_bytes([payload[0], payload[1]]),
                        pings,
                        started.elapsed(),
                    );
                }
                _ => {}
            }
        }
    };
    let ((code, pings, elapsed), ()) = tokio::join!(until_closed, keep_reading);
    assert_eq!(code, protocol::close::IDLE_TIMEOUT);
    assert!(pings >= 1, "closed without being pinged");
    assert!(
        // Not before the timeout; and not long after it (the bound leaves
        // a busy machine room, and stays well under the reader's 5 s).
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_millis(4500),
        "closed after {elapsed:?}"
    );
    alive.send_json(serde_json::json!({"type": "ping"})).await;
    alive
        .expect("pong", |m| matches!(m, ServerMessage::Pong))
        .await;
}

#[tokio::test]
async fn past_max_connections_a_gateway_closes_new_sockets_with_1013() {
    let (server, _dir) = single_process("max-conns", &[("MAX_CONNECTIONS", "1")]).await;
    let _first = WsClient::connect(&server.ws(), Some("first")).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws()).await.unwrap();
    use futures_util::StreamExt;
    let closed = loop {
        match tokio::time::timeout(WAIT, socket.next()).await.unwrap() {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        closed.map(|f| u16::from(f.code)),
        Some(protocol::close::TRY_AGAIN_LATER)
    );
}

#[tokio::test]
async fn oversized_bodies_get_413_and_slow_requests_408_but_streams_live_on() {
    let (server, _dir) = single_process("http-limits", &[("REQUEST_TIMEOUT_SECS", "1")]).await;
    let base = server.http();
    // Over the route's own limit, and over the global one on a GET route.
    let r = client()
        .post(format!("{base}/api/session"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"username":"{}"}}"#, "a".repeat(10_000)))
        .send()
        .await
        .unwrap();
    let (status, body) = expect_error(r).await;
    assert_eq!((status, body.error.code), (413, ErrorCode::PayloadTooLarge));
    let r = client()
        .get(format!("{base}/api/config"))
        .body(vec![b'x'; 100_000])
        .send()
        .await
        .unwrap();
    let (status, body) = expect_error(r).await;
    assert_eq!((status, body.error.code), (413, ErrorCode::PayloadTooLarge));

    // A body that never finishes arriving: 408 once the time is up.
    let started = Instant::now();
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"PUT /api/pixel HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n{\"x\":1",
    )
    .await
    .unwrap();
    let mut response = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&response).contains("request_timeout") {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut chunk))
            .await
            .expect("answered within the wait")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&response));
        response.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() >= Duration::from_secs(1));

    // The SSE stream and the WebSocket outlive the request timeout.
    let mut sse = crate::harness::SseStream::open(&base, "", None).await;
    let mut ws = WsClient::connect(&server.ws(), Some("watcher")).await;
    // The subject of the test is time passing beyond the limit.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        put_pixel(&base, 9, 9, "#000000", "painter").await.status(),
        200
    );
    let (_, event) = sse.next_pixel().await;
    assert_eq!((event.x, event.y), (9, 9));
    ws.expect("the pixel", |m| pixel_event(m, 9, 9).is_some())
        .await;
}

/// The CORS headers of a GET and a preflight from `origin`.
async fn cors(base: &str, origin: &str) -> (Option<String>, Option<String>) {
    let r = client()
        .get(format!("{base}/api/config"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let get = r
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned());
    let r = client()
        .request(reqwest::Method::OPTIONS, format!("{base}/api/pixel"))
        .header("origin", origin)
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    let preflight = r
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned());
    (get, preflight)
}

#[tokio::test]
async fn cors_is_off_by_default_and_follows_the_allow_list_on_both_services() {
    let (plain, _d) = single_process("cors-off", &[]).await;
    assert_eq!(
        cors(&plain.http(), "https://elsewhere.example").await,
        (None, None)
    );

    let allowed = "https://allowed.example";
    let list = (
        "CORS_ALLOWED_ORIGINS",
        "https://allowed.example,http://localhost:3000",
    );
    let stack = Stack::start(1, &[list]).await;
    for base in [stack.api.http(), stack.gateways[0].http()] {
        assert_eq!(
            cors(&base, allowed).await,
            (Some(allowed.to_owned()), Some(allowed.to_owned())),
            "{base}"
        );
        assert_eq!(
            cors(&base, "https://evil.example").await,
            (None, None),
            "{base}"
        );
        // A request with no Origin (same origin, or no browser) gets no
        // CORS header at all.
        let r = client()
            .get(format!("{base}/api/config"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let cors_headers: Vec<_> = r
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .collect();
        assert!(cors_headers.is_empty(), "{base}: {cors_headers:?}");
    }
    // Not on the page or health routes: CORS is for /api.
    let r = client()
        .get(format!("{}/healthz", stack.gateways[0].http()))
        .header("origin", allowed)
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}
