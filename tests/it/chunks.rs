//! Chunks: `GET /api/chunk/{cx}/{cy}.bin` on both stores, and a 65,536²
//! board kept by the embedded store as the chunks someone painted.

use protocol::http::CanvasConfig;
use protocol::{ErrorCode, ServerMessage};

use crate::harness::http::{
    CHUNK_SIZE, canvas_bin, chunk_bin, client, expect_error, get_json, pixel_at, pixel_in_chunk,
    put_pixel,
};
use crate::harness::process::rss_bytes;
use crate::harness::{Process, Stack, WsClient, temp_dir};

#[tokio::test]
async fn a_65536_square_board_keeps_only_painted_chunks_and_is_read_by_chunks() {
    let dir = temp_dir("huge");
    let env = vec![
        ("DATA_DIR", dir.display().to_string()),
        ("COOLDOWN_MS", "0".to_owned()),
        ("PALETTE", "any".to_owned()),
        ("CANVAS_WIDTH", "65536".to_owned()),
        ("CANVAS_HEIGHT", "65536".to_owned()),
    ];
    let server = Process::spawn("server", &env).await;
    let base = server.http();
    let config: CanvasConfig = get_json(&format!("{base}/api/config")).await;
    assert_eq!(
        (config.width, config.chunk_size, config.whole_board),
        (65_536, 256, false)
    );

    for (x, y, color) in [
        (65_535, 65_535, "#010203"),
        (300, 10, "#040506"),
        (0, 0, "#070809"),
    ] {
        assert_eq!(put_pixel(&base, x, y, color, "far").await.status(), 200);
    }
    let (corner, seq, _) = chunk_bin(&base, 255, 255).await;
    assert_eq!(corner.len(), (CHUNK_SIZE * CHUNK_SIZE * 3) as usize);
    assert_eq!(seq, 3);
    assert_eq!(pixel_in_chunk(&corner, 65_535, 65_535), [1, 2, 3]);
    assert_eq!(pixel_in_chunk(&corner, 65_534, 65_535), [0xFF; 3]);
    let (first, _, _) = chunk_bin(&base, 1, 0).await;
    assert_eq!(pixel_in_chunk(&first, 300, 10), [4, 5, 6]);
    let (empty, _, _) = chunk_bin(&base, 100, 100).await;
    assert!(
        empty.iter().all(|&b| b == 0xFF),
        "a chunk nobody wrote is white"
    );

    // 12 GiB read whole would be the board dense in memory; it is refused.
    let (status, body) = expect_error(
        client()
            .get(format!("{base}/api/canvas.bin"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.error.code), (422, ErrorCode::BoardTooLarge));
    assert!(
        body.error.message.contains("/api/chunk/"),
        "{}",
        body.error.message
    );
    // A dense board would be 12 GiB; three painted chunks are 576 KiB.
    assert!(
        rss_bytes(server.pid()) < 200 << 20,
        "rss {}",
        rss_bytes(server.pid())
    );

    // The chunks survive a restart (the snapshot keeps painted chunks).
    server.terminate().await;
    let server = Process::spawn("server", &env).await;
    let (corner, seq, _) = chunk_bin(&server.http(), 255, 255).await;
    assert_eq!(
        (pixel_in_chunk(&corner, 65_535, 65_535), seq),
        ([1, 2, 3], 3)
    );
    let (first, _, _) = chunk_bin(&server.http(), 0, 0).await;
    assert_eq!(pixel_in_chunk(&first, 0, 0), [7, 8, 9]);
}

#[tokio::test]
async fn a_chunk_from_redis_is_the_same_rectangle_as_the_whole_board() {
    let stack = Stack::start(
        1,
        &[
            ("COOLDOWN_MS", "0"),
            ("PALETTE", "any"),
            ("CANVAS_WIDTH", "600"),
            ("CANVAS_HEIGHT", "300"),
        ],
    )
    .await;
    let api = stack.api.http();
    for (x, y) in [(512, 256), (599, 299), (550, 280), (0, 0), (511, 255)] {
        let color = format!("#{:02X}{:02X}{:02X}", x % 256, y % 256, 7);
        assert_eq!(put_pixel(&api, x, y, &color, "r").await.status(), 200);
    }
    let (w, _, whole_seq, whole) = canvas_bin(&api).await;
    // Through the gateway's pass-through too: the edge chunk, 88x44 of the
    // board and white padding.
    let (edge, seq, _) = chunk_bin(&stack.gateways[0].http(), 2, 1).await;
    assert_eq!(seq, whole_seq);
    for y in 256..512 {
        for x in 512..768 {
            let expected = if x < 600 && y < 300 {
                pixel_at(&whole, w, x, y)
            } else {
                [0xFF; 3]
            };
            assert_eq!(pixel_in_chunk(&edge, x, y), expected, "pixel ({x}, {y})");
        }
    }
}

#[tokio::test]
async fn a_chunk_is_revalidated_by_etag_and_bad_or_outside_paths_are_refused() {
    let (server, _dir) = crate::harness::single_process("etag", &[]).await;
    let base = server.http();
    assert_eq!(put_pixel(&base, 5, 5, "#000000", "e").await.status(), 200);
    let (_, seq, etag) = chunk_bin(&base, 0, 0).await;
    let revalidate = |etag: String| {
        let url = format!("{base}/api/chunk/0/0.bin");
        async move {
            client()
                .get(url)
                .header("if-none-match", etag)
                .send()
                .await
                .unwrap()
        }
    };
    let again = revalidate(etag.clone()).await;
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["x-canvas-seq"], seq.to_string().as_str());
    assert!(again.bytes().await.unwrap().is_empty());
    // A write in another chunk leaves this one's bytes, so its tag holds:
    // 304 again, with the `seq` the cached bytes are now exact for.
    assert_eq!(put_pixel(&base, 300, 5, "#000000", "e").await.status(), 200);
    let elsewhere = revalidate(etag.clone()).await;
    assert_eq!(elsewhere.status(), 304);
    assert_eq!(
        elsewhere.headers()["x-canvas-seq"],
        (seq + 1).to_string().as_str()
    );
    // A write in this chunk changes its bytes, and so its tag.
    assert_eq!(put_pixel(&base, 6, 5, "#000000", "e").await.status(), 200);
    let changed = revalidate(etag.clone()).await;
    assert_eq!(changed.status(), 200);
    assert_eq!(
        changed.headers()["x-canvas-seq"],
        (seq + 2).to_string().as_str()
    );
    assert_ne!(changed.headers()["etag"], etag.as_str());

    for (path, status) in [
        ("/api/chunk/4/0.bin", 404),
        ("/api/chunk/0/4.bin", 404),
        ("/api/chunk/0/0.png", 400),
        ("/api/chunk/-1/0.bin", 400),
        ("/api/chunk/x/0.bin", 400),
    ] {
        let r = client().get(format!("{base}{path}")).send().await.unwrap();
        let (got, body) = expect_error(r).await;
        assert_eq!(got, status, "{path}: {}", body.error.message);
    }
}

/// Every pixel event a client has heard, in order, up to and including
/// the one at `(x, y)`.
async fn heard_until(client: &mut WsClient, x: u32, y: u32) -> Vec<(u32, u32)> {
    let mut heard = Vec::new();
    loop {
        let m = client
            .next_within(std::time::Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no pixel ({x}, {y}) within 10 s; heard {heard:?}"));
        if let ServerMessage::PixelUpdated(e) = m {
            heard.push((e.x, e.y));
            if (e.x, e.y) == (x, y) {
                return heard;
            }
        }
    }
}

#[tokio::test]
async fn a_subscribed_connection_hears_only_its_chunks_across_gateways() {
    let stack = Stack::start(
        2,
        &[
            ("COOLDOWN_MS", "0"),
            ("CANVAS_WIDTH", "1000"),
            ("CANVAS_HEIGHT", "1000"),
        ],
    )
    .await;
    let mut viewer = WsClient::connect(&stack.gateways[0].ws(), Some("viewer")).await;
    let mut whole = WsClient::connect(&stack.gateways[0].ws(), Some("whole")).await;
    let mut painter = WsClient::connect(&stack.gateways[1].ws(), Some("painter")).await;

    viewer
        .send_json(serde_json::json!({"type": "subscribe", "chunks": [[1, 0], [3, 3]]}))
        .await;
    let answer = viewer
        .expect("subscribed", |m| {
            matches!(m, ServerMessage::Subscribed { .. })
        })
        .await;
    assert!(
        matches!(answer, ServerMessage::Subscribed { chunks: 2, .. }),
        "{answer:?}"
    );

    // Outside, inside, outside, inside: the viewer hears the insides only,
    // in order; the whole-board client hears all four.
    let pixels: [(u32, u32); 4] = [(10, 10), (300, 20), (999, 700), (999, 999)];
    for (i, (x, y)) in pixels.into_iter().enumerate() {
        painter.place(x.into(), y.into(), "#FF4500", i as u64).await;
        assert!(matches!(
            painter.reply_to(i as u64).await,
            ServerMessage::Ack { .. }
        ));
    }
    assert_eq!(
        heard_until(&mut viewer, 999, 999).await,
        [(300, 20), (999, 999)]
    );
    assert_eq!(heard_until(&mut whole, 999, 999).await, pixels);

    // Chunks off the board, or too many, are refused and change nothing.
    viewer
        .send_json(serde_json::json!({"type": "subscribe", "chunks": [[4, 0]]}))
        .await;
    let refused = viewer
        .expect("error", |m| matches!(m, ServerMessage::Error { .. }))
        .await;
    assert!(
        matches!(&refused, ServerMessage::Error { code: ErrorCode::OutOfBounds, message, .. } if message.contains("4x4 chunks")),
        "{refused:?}"
    );
    let many: Vec<[u32; 2]> = (0..1025).map(|i| [i % 4, (i / 4) % 4]).collect();
    viewer
        .send_json(serde_json::json!({"type": "subscribe", "chunks": many}))
        .await;
    let refused = viewer
        .expect("error", |m| matches!(m, ServerMessage::Error { .. }))
        .await;
    assert!(
        matches!(
            refused,
            ServerMessage::Error {
                code: ErrorCode::BadRequest,
                ..
            }
        ),
        "{refused:?}"
    );
    painter.place(0, 0, "#FF4500", 10).await;
    painter.place(256, 0, "#FF4500", 11).await;
    assert_eq!(heard_until(&mut viewer, 256, 0).await, [(256, 0)]);

    // Without chunks: the whole board again.
    viewer
        .send_json(serde_json::json!({"type": "subscribe"}))
        .await;
    viewer
        .expect("subscribed", |m| {
            matches!(m, ServerMessage::Subscribed { chunks: 0, .. })
        })
        .await;
    painter.place(1, 1, "#FF4500", 12).await;
    assert_eq!(heard_until(&mut viewer, 1, 1).await, [(1, 1)]);
}
