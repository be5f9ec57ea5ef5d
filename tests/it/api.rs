//! canvas-api's HTTP contract, on a real Redis.

use protocol::http::{CanvasConfig, LegacyCanvas, PixelInfo, UpdatesPage};
use protocol::{ErrorCode, ServerMessage};

use crate::harness::http::{self, canvas_bin, expect_error, get_json, pixel_at, put_pixel};
use crate::harness::{Process, RedisServer};

async fn api(redis: &RedisServer, extra: &[(&str, &str)]) -> Process {
    let mut env = vec![("REDIS_URL", redis.url())];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    Process::spawn("canvas-api", &env).await
}

#[tokio::test]
async fn config_reports_the_board_the_palette_and_the_cooldown() {
    let redis = RedisServer::start().await;
    let p = api(
        &redis,
        &[
            ("CANVAS_WIDTH", "64"),
            ("CANVAS_HEIGHT", "32"),
            ("PALETTE", "#000000,#ff0000"),
            ("COOLDOWN_MS", "1234"),
        ],
    )
    .await;
    let c: CanvasConfig = get_json(&format!("{}/api/config", p.http())).await;
    assert_eq!(
        (c.width, c.height, c.cooldown_ms, c.any_color),
        (64, 32, 1234, false)
    );
    assert_eq!(
        c.palette,
        vec!["#000000".parse().unwrap(), "#FF0000".parse().unwrap()]
    );
}

#[tokio::test]
async fn palette_any_accepts_every_color() {
    let redis = RedisServer::start().await;
    let p = api(&redis, &[("PALETTE", "any"), ("COOLDOWN_MS", "0")]).await;
    let c: CanvasConfig = get_json(&format!("{}/api/config", p.http())).await;
    assert!(c.any_color && c.palette.is_empty());
    assert_eq!(
        put_pixel(&p.http(), 1, 1, "#123456", "any").await.status(),
        200
    );
}

#[tokio::test]
async fn bad_configuration_is_refused_naming_the_variable() {
    let redis = RedisServer::start().await;
    let (status, log) = Process::spawn_expecting_failure(
        "canvas-api",
        &[
            ("REDIS_URL", redis.url()),
            ("PALETTE", "#000000,blue".into()),
        ],
    )
    .await;
    assert!(!status.success());
    assert!(log.contains("PALETTE") || log.contains("palette"), "{log}");
    let (status, log) =
        Process::spawn_expecting_failure("canvas-api", &[("CANVAS_WIDTH", "0".into())]).await;
    assert!(!status.success());
    assert!(
        log.contains("canvas-width") || log.contains("CANVAS_WIDTH"),
        "{log}"
    );
    let (status, log) =
        Process::spawn_expecting_failure("canvas-api", &[("REDIS_URL", "nonsense://x".into())])
            .await;
    assert!(!status.success());
    assert!(log.contains("REDIS_URL"), "{log}");
}

#[tokio::test]
async fn a_stored_board_of_another_size_is_refused_and_kept() {
    let redis = RedisServer::start().await;
    let p = api(
        &redis,
        &[
            ("CANVAS_WIDTH", "100"),
            ("CANVAS_HEIGHT", "100"),
            ("COOLDOWN_MS", "0"),
        ],
    )
    .await;
    assert_eq!(
        put_pixel(&p.http(), 99, 99, "#000000", "keeper")
            .await
            .status(),
        200
    );
    drop(p);
    let (status, log) = Process::spawn_expecting_failure(
        "canvas-api",
        &[
            ("REDIS_URL", redis.url()),
            ("CANVAS_WIDTH", "50".into()),
            ("CANVAS_HEIGHT", "50".into()),
        ],
    )
    .await;
    assert!(!status.success());
    assert!(log.contains("100x100") && log.contains("50x50"), "{log}");
    let p = api(&redis, &[("CANVAS_WIDTH", "100"), ("CANVAS_HEIGHT", "100")]).await;
    let (w, _, seq, rgb) = canvas_bin(&p.http()).await;
    assert_eq!(seq, 1);
    assert_eq!(pixel_at(&rgb, w, 99, 99), [0, 0, 0]);
}

#[tokio::test]
async fn put_pixel_stores_or_says_exactly_what_was_wrong() {
    let redis = RedisServer::start().await;
    let p = api(&redis, &[("COOLDOWN_MS", "0")]).await;
    let base = p.http();
    let r = put_pixel(&base, 3, 4, "#ff4500", "alice").await;
    assert_eq!(r.status(), 200);
    let body: protocol::http::PlacePixelResponse = r.json().await.unwrap();
    assert_eq!(
        (body.seq, body.x, body.y, body.color.to_string().as_str()),
        (1, 3, 4, "#FF4500")
    );
    assert!(body.timestamp > 1_600_000_000_000);

    let cases = [
        (
            put_pixel(&base, -1, 0, "#FF4500", "a").await,
            400,
            ErrorCode::OutOfBounds,
        ),
        (
            put_pixel(&base, 0, 1000, "#FF4500", "a").await,
            400,
            ErrorCode::OutOfBounds,
        ),
        (
            put_pixel(&base, 0, 0, "#FF450", "a").await,
            400,
            ErrorCode::InvalidColor,
        ),
        (
            put_pixel(&base, 0, 0, "#010203", "a").await,
            400,
            ErrorCode::InvalidColor,
        ),
        (
            put_pixel(&base, 0, 0, "#FF4500", "bad name").await,
            400,
            ErrorCode::InvalidUsername,
        ),
    ];
    for (response, status, code) in cases {
        let (got_status, body) = expect_error(response).await;
        assert_eq!(
            (got_status, body.error.code),
            (status, code),
            "{}",
            body.error.message
        );
    }
    let client = http::client();
    let not_json = client
        .put(format!("{base}/api/pixel"))
        .body("x=1&y=2")
        .send()
        .await
        .unwrap();
    let (status, body) = expect_error(not_json).await;
    assert_eq!((status, body.error.code), (415, ErrorCode::BadRequest));
    let wrong_types = client
        .put(format!("{base}/api/pixel"))
        .header("content-type", "application/json")
        .body(r##"{"x":"1","y":2,"color":"#FF4500","username":"a"}"##)
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_error(wrong_types).await.1.error.code,
        ErrorCode::BadRequest
    );
    // Its own client: the server answers before reading the whole body and
    // then closes the connection, which a pooled client would reuse.
    let huge = http::client()
        .put(format!("{base}/api/pixel"))
        .body(vec![b' '; 100_000])
        .send()
        .await
        .unwrap();
    let (status, body) = expect_error(huge).await;
    assert_eq!((status, body.error.code), (413, ErrorCode::PayloadTooLarge));
    let unknown = client
        .get(format!("{base}/api/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_error(unknown).await.1.error.code,
        ErrorCode::NotFound
    );

    // Only the first write was stored.
    let (_, _, seq, _) = canvas_bin(&base).await;
    assert_eq!(seq, 1);
}

#[tokio::test]
async fn cooldown_over_http_says_when_to_retry() {
    let redis = RedisServer::start().await;
    let p = api(&redis, &[("COOLDOWN_MS", "30000")]).await;
    assert_eq!(
        put_pixel(&p.http(), 1, 1, "#000000", "frank")
            .await
            .status(),
        200
    );
    let r = put_pixel(&p.http(), 2, 2, "#000000", "frank").await;
    assert_eq!(r.headers()["retry-after"].to_str().unwrap(), "30");
    let (status, body) = expect_error(r).await;
    assert_eq!((status, body.error.code), (429, ErrorCode::Cooldown));
    let ms = body.error.retry_after_ms.unwrap();
    assert!(ms > 25_000 && ms <= 30_000, "{ms}");
}

#[tokio::test]
async fn the_board_is_served_as_bytes_png_and_the_prototypes_json_consistently() {
    let redis = RedisServer::start().await;
    let p = api(
        &redis,
        &[
            ("COOLDOWN_MS", "0"),
            ("CANVAS_WIDTH", "40"),
            ("CANVAS_HEIGHT", "30"),
        ],
    )
    .await;
    let base = p.http();
    for (x, y, c) in [(0, 0, "#000000"), (39, 29, "#FF4500"), (10, 5, "#2450A4")] {
        assert_eq!(put_pixel(&base, x, y, c, "painter").await.status(), 200);
    }
    let (w, h, seq, rgb) = canvas_bin(&base).await;
    assert_eq!((w, h, seq), (40, 30, 3));
    assert_eq!(pixel_at(&rgb, w, 39, 29), [0xFF, 0x45, 0x00]);
    assert_eq!(pixel_at(&rgb, w, 1, 1), [0xFF, 0xFF, 0xFF]);

    // Compressed for a client that accepts it, and the same bytes.
    let gz = http::client()
        .get(format!("{base}/api/canvas.bin"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["x-canvas-seq"], "3");

    let png = http::client()
        .get(format!("{base}/api/canvas.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    let bytes = png.bytes().await.unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(
        (info.width, info.height, info.color_type),
        (40, 30, png::ColorType::Rgb)
    );
    assert_eq!(&buf[..info.buffer_size()], &rgb[..]);

    let legacy: LegacyCanvas = get_json(&format!("{base}/api/canvas")).await;
    assert_eq!((legacy.width, legacy.height, legacy.seq), (40, 30, 3));
    assert_eq!(legacy.pixels.len(), 3);
    assert_eq!(legacy.pixels["39,29"].to_string(), "#FF4500");
    assert_eq!(legacy.pixels["0,0"].to_string(), "#000000");
}

#[tokio::test]
async fn pixel_info_names_who_placed_it_or_404s() {
    let redis = RedisServer::start().await;
    let p = api(&redis, &[("COOLDOWN_MS", "0")]).await;
    let base = p.http();
    put_pixel(&base, 7, 8, "#FF4500", "first").await;
    put_pixel(&base, 7, 8, "#000000", "second").await;
    let info: PixelInfo = get_json(&format!("{base}/api/pixel/7/8")).await;
    assert_eq!(
        (info.x, info.y, info.username.as_str(), info.seq),
        (7, 8, "second", 2)
    );
    assert_eq!(info.color.to_string(), "#000000");
    let r = http::client()
        .get(format!("{base}/api/pixel/8/8"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_error(r).await,
        (
            404,
            expect_error_body(
                ErrorCode::NeverPlaced,
                "nobody has placed the pixel at (8, 8)"
            )
        )
    );
    let r = http::client()
        .get(format!("{base}/api/pixel/a/8"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_error(r).await.1.error.code, ErrorCode::BadRequest);
    let r = http::client()
        .get(format!("{base}/api/pixel/5000/8"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_error(r).await.1.error.code, ErrorCode::OutOfBounds);
}

fn expect_error_body(code: ErrorCode, message: &str) -> protocol::http::ErrorBody {
    protocol::http::ErrorBody {
        error: protocol::http::ErrorDetail {
            code,
            message: message.into(),
            retry_after_ms: None,
        },
    }
}

#[tokio::test]
async fn updates_since_pages_in_order_and_410s_beyond_the_log() {
    let redis = RedisServer::start().await;
    let p = api(&redis, &[("COOLDOWN_MS", "0"), ("REPLAY_LOG_LEN", "10")]).await;
    let base = p.http();
    for i in 0..5 {
        put_pixel(&base, i, 0, "#000000", "u").await;
    }
    let page: UpdatesPage = get_json(&format!("{base}/api/updates?since=1&limit=2")).await;
    let seqs: Vec<u64> = page
        .events
        .iter()
        .map(|m| match m {
            ServerMessage::PixelUpdated(e) => e.seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        (seqs, page.latest_seq, page.has_more),
        (vec![2, 3], 5, true)
    );
    let page: UpdatesPage = get_json(&format!("{base}/api/updates?since=5")).await;
    assert!(page.events.is_empty() && !page.has_more);

    // Ahead of the store: the client's view is from another life of it.
    let r = http::client()
        .get(format!("{base}/api/updates?since=99"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_error(r).await.0, 410);
    let r = http::client()
        .get(format!("{base}/api/updates?since=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_error(r).await.1.error.code, ErrorCode::BadRequest);

    http::write_many(&base, 300, 1).await;
    let r = http::client()
        .get(format!("{base}/api/updates?since=0"))
        .send()
        .await
        .unwrap();
    let (status, body) = expect_error(r).await;
    assert_eq!((status, body.error.code), (410, ErrorCode::Gone));
    let page: UpdatesPage = get_json(&format!("{base}/api/updates?since=300")).await;
    assert_eq!(page.events.len(), 5);
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let redis = RedisServer::start().await;
    let p = api(&redis, &[("COOLDOWN_MS", "0")]).await;
    let base = p.http();
    put_pixel(&base, 1, 1, "#000000", "m").await;
    let client = http::client();
    assert_eq!(
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("canvas_placements_stored_total 1"),
        "{metrics}"
    );
    drop(redis);
    // Redis gone: not ready, and writes fail as unavailable, not silently.
    let mut status = 0;
    for _ in 0..100 {
        status = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 503);
    let (status, body) = expect_error(put_pixel(&base, 2, 2, "#000000", "m").await).await;
    assert_eq!((status, body.error.code), (503, ErrorCode::Unavailable));
}

#[tokio::test]
async fn a_4096_square_board_is_stored_and_served_whole() {
    let redis = RedisServer::start().await;
    let p = api(
        &redis,
        &[
            ("COOLDOWN_MS", "0"),
            ("CANVAS_WIDTH", "4096"),
            ("CANVAS_HEIGHT", "4096"),
        ],
    )
    .await;
    let base = p.http();
    for (x, y, c) in [
        (0, 0, "#FF4500"),
        (4095, 4095, "#2450A4"),
        (4095, 0, "#000000"),
    ] {
        assert_eq!(put_pixel(&base, x, y, c, "corner").await.status(), 200);
    }
    let (w, h, seq, rgb) = canvas_bin(&base).await;
    assert_eq!((w, h, seq, rgb.len()), (4096, 4096, 3, 4096 * 4096 * 3));
    assert_eq!(pixel_at(&rgb, w, 0, 0), [0xFF, 0x45, 0x00]);
    assert_eq!(pixel_at(&rgb, w, 4095, 4095), [0x24, 0x50, 0xA4]);
    assert_eq!(pixel_at(&rgb, w, 4095, 0), [0, 0, 0]);
    assert_eq!(pixel_at(&rgb, w, 2048, 2048), [0xFF, 0xFF, 0xFF]);
    let (status, body) = expect_error(put_pixel(&base, 4096, 0, "#000000", "edge").await).await;
    assert_eq!((status, body.error.code), (400, ErrorCode::OutOfBounds));
}
