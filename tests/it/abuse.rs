//! What a hostile client, or a hostile page in a visitor's browser, can no
//! longer do: hold SSE streams past the connection limits, ask for the
//! whole replay log, flood pings, reach canvas-api's internals through the
//! gateway's pass-through, place over HTTP at any rate, post cross-site
//! text bodies, open WebSockets from another site, frame the page, or send
//! text frames that are not UTF-8 without being told.

use std::net::IpAddr;
use std::time::Instant;

use futures_util::{SinkExt, StreamExt};
use protocol::ServerMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::harness::http::{client, write_many};
use crate::harness::{SseStream, Stack, WAIT, WsClient, single_process};

/// `GET /api/events` from `source`; the response is kept open by the caller.
async fn open_events(base: &str, source: [u8; 4]) -> reqwest::Response {
    reqwest::Client::builder()
        .local_address(IpAddr::from(source))
        .build()
        .unwrap()
        .get(format!("{base}/api/events"))
        .send()
        .await
        .expect("GET /api/events")
}

#[tokio::test]
async fn sse_streams_count_in_the_per_ip_and_the_gateway_connection_limits() {
    let (server, _dir) = single_process(
        "sse-limits",
        &[("MAX_CONNECTIONS_PER_IP", "2"), ("MAX_CONNECTIONS", "3")],
    )
    .await;
    let base = server.http();
    let first = open_events(&base, [127, 0, 0, 1]).await;
    assert_eq!(first.status(), 200);
    let _ws = WsClient::connect(&server.ws(), None).await;
    let third = open_events(&base, [127, 0, 0, 1]).await;
    assert_eq!(third.status(), 429, "a stream past MAX_CONNECTIONS_PER_IP");
    let other = open_events(&base, [127, 0, 0, 2]).await;
    assert_eq!(other.status(), 200);
    let full = open_events(&base, [127, 0, 0, 3]).await;
    assert_eq!(full.status(), 503, "a stream past MAX_CONNECTIONS");
}

#[tokio::test]
async fn a_last_event_id_replay_is_bounded() {
    let (server, _dir) = single_process("sse-replay", &[("SSE_MAX_REPLAY", "20")]).await;
    let base = server.http();
    write_many(&base, 30, 3).await;
    let mut far = SseStream::open(&base, "", Some(0)).await;
    let first = far.next().await;
    assert_eq!(
        first.event, "resync",
        "30 behind is past SSE_MAX_REPLAY: {first:?}"
    );
    // Within the bound, the replay is exact.
    let mut near = SseStream::open(&base, "", Some(15)).await;
    for seq in 16..=30u64 {
        let (_, pixel) = near.next_pixel().await;
        assert_eq!(pixel.seq, seq);
    }
}

#[tokio::test]
async fn websocket_pings_count_against_the_message_rate() {
    let (server, _dir) = single_process("ping-flood", &[("MESSAGES_PER_SEC_PER_IP", "20")]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws()).await.unwrap();
    // Bounded: far more than 5 seconds' worth, as fast as possible.
    for _ in 0..2000 {
        if ws.send(Message::Ping(Default::default())).await.is_err() {
            break;
        }
    }
    let code = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .expect("the ping flood was not closed");
    assert_eq!(code, Some(protocol::close::RATE_LIMITED));
}

/// A raw request line to `addr`; the status and the whole response.
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut response))
        .await
        .expect("a response")
        .unwrap();
    let status = response[9..12].parse().expect("a status");
    (status, response)
}

#[tokio::test]
async fn the_pass_through_refuses_paths_that_would_leave_api() {
    let stack = Stack::start(1, &[]).await;
    let gw = &stack.gateways[0];
    for path in [
        "/api/../metrics",
        "/api/%2e%2e/metrics",
        "/api/x/%2E%2E/../metrics",
    ] {
        let (status, response) = raw_get(gw.addr, path).await;
        assert_eq!(status, 400, "{path}: {response}");
        assert!(
            !response.contains("canvas_"),
            "{path} reached canvas-api's metrics"
        );
    }
    assert_eq!(raw_get(gw.addr, "/api/config").await.0, 200);
}

#[tokio::test]
async fn http_placements_are_limited_per_ip_whatever_the_username() {
    let (server, _dir) =
        single_process("http-rate", &[("HTTP_PLACEMENTS_PER_SEC_PER_IP", "2")]).await;
    let base = server.http();
    let started = Instant::now();
    let mut statuses = Vec::new();
    for i in 0..10 {
        let r = client()
            .put(format!("{base}/api/pixel"))
            .json(&serde_json::json!({"x": i, "y": 0, "color": "#FF4500", "username": format!("bot{i}")}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    // Ten requests at 2/s with a burst of 2 take 4 s to be all allowed.
    if started.elapsed().as_secs() < 4 {
        assert_eq!(&statuses[..2], &[200, 200]);
        assert!(statuses.contains(&429), "{statuses:?}");
    }
    let other = reqwest::Client::builder()
        .local_address(IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap()
        .put(format!("{base}/api/pixel"))
        .json(&serde_json::json!({"x": 20, "y": 0, "color": "#FF4500", "username": "other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "another address has its own rate");
}

#[tokio::test]
async fn cross_site_text_bodies_are_refused() {
    let (server, _dir) = single_process("text-bodies", &[]).await;
    let base = server.http();
    let put = client()
        .put(format!("{base}/api/pixel"))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(r##"{"x":1,"y":1,"color":"#FF4500","username":"csrf"}"##)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 415);
    let session = client()
        .post(format!("{base}/api/session"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"username":"csrf"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), 415);
    let pixel = client()
        .get(format!("{base}/api/pixel/1/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(pixel.status(), 404, "nothing was placed");
}

/// A WebSocket upgrade with `origin`: its status (101 when upgraded).
async fn upgrade_with_origin(ws: &str, origin: Option<&str>) -> u16 {
    let mut request = ws.into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("upgrade failed without a status: {e}"),
    }
}

#[tokio::test]
async fn websockets_open_only_from_the_own_site_and_allowed_origins() {
    let (server, _dir) = single_process(
        "ws-origin",
        &[("CORS_ALLOWED_ORIGINS", "https://art.example")],
    )
    .await;
    let ws = server.ws();
    assert_eq!(
        upgrade_with_origin(&ws, Some("https://evil.example")).await,
        403
    );
    assert_eq!(
        upgrade_with_origin(&ws, None).await,
        101,
        "no Origin: a script"
    );
    let own = format!("http://{}", server.addr);
    assert_eq!(upgrade_with_origin(&ws, Some(&own)).await, 101);
    assert_eq!(
        upgrade_with_origin(&ws, Some("https://art.example")).await,
        101
    );
}

#[tokio::test]
async fn pages_may_not_be_framed() {
    let (server, _dir) = single_process("framing", &[]).await;
    for page in ["/", "/admin.html"] {
        let r = client()
            .get(format!("{}{page}", server.http()))
            .send()
            .await
            .unwrap();
        let h = r.headers();
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{page}"
        );
        assert_eq!(h["x-frame-options"], "DENY", "{page}");
    }
}

#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    let (server, _dir) = single_process("bad-utf8", &[]).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws()).await.unwrap();
    let frame = Frame::message(vec![b'{', 0xFF, 0xFE, b'}'], OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(frame)).await.unwrap();
    let code = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = ws.next().await {
            match message {
                Message::Close(frame) => return frame.map(|f| u16::from(f.code)),
                Message::Text(text) => {
                    let _: ServerMessage = serde_json::from_str(&text).expect("protocol v1");
                }
                _ => {}
            }
        }
        None
    })
    .await
    .expect("no close within the wait");
    assert_eq!(code, Some(protocol::close::INVALID_PAYLOAD));
}
