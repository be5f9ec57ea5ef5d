//! The history archive: the board as it was at any moment, after the
//! replay log has let the writes go, across restarts and keyframes; and the
//! timelapse as an animated PNG.

use std::time::Duration;

use protocol::http::{HistoryInfo, PlacePixelResponse};

use crate::harness::http::{client, expect_error, get_json, put_pixel};
use crate::harness::{Process, RedisServer, Stack, WAIT, single_process};

/// A short replay log and frequent keyframes: the archive must hold what
/// the log drops, across several keyframes.
const ARCHIVE_ENV: &[(&str, &str)] =
    &[("REPLAY_LOG_LEN", "100"), ("ARCHIVE_KEYFRAME_EVERY", "100")];

async fn place(base: &str, x: i64, y: i64, color: &str) -> PlacePixelResponse {
    let r = put_pixel(base, x, y, color, "painter").await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("placement JSON")
}

/// Waits until the archive has taken every write up to `seq`.
async fn archived(base: &str, seq: u64) -> HistoryInfo {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let info: HistoryInfo = get_json(&format!("{base}/api/history")).await;
        if info.last_seq.is_some_and(|s| s >= seq) {
            return info;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the archive reached {:?} of seq {seq} within {WAIT:?}",
            info.last_seq
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /api/history/board.png?at=`: the decoded RGB, its `seq` header.
async fn board_at(base: &str, at: u64) -> (Vec<u8>, u32, u64) {
    let r = client()
        .get(format!("{base}/api/history/board.png?at={at}"))
        .send()
        .await
        .expect("GET board.png");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let seq: u64 = r.headers()["x-canvas-seq"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut rgb).unwrap();
    (rgb, info.width, seq)
}

fn pixel(rgb: &[u8], width: u32, x: u32, y: u32) -> [u8; 3] {
    let i = (y * width + x) as usize * 3;
    [rgb[i], rgb[i + 1], rgb[i + 2]]
}

/// Moves past the current millisecond, so the next write's time is later
/// than every earlier one's: moments are told apart by their times.
async fn next_millisecond() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

const RED: [u8; 3] = [0xFF, 0x45, 0x00];
const BLUE: [u8; 3] = [0x36, 0x90, 0xEA];
const WHITE: [u8; 3] = [0xFF, 0xFF, 0xFF];

#[tokio::test]
async fn the_board_at_any_moment_outlives_the_replay_log_and_a_restart() {
    let (server, dir) = single_process("history", ARCHIVE_ENV).await;
    let base = server.http();
    let red = place(&base, 1, 1, "#FF4500").await;
    // Once the archive has its first write it follows closely; only the
    // first writes after a quiet spell may wait a quarter second for it.
    archived(&base, red.seq).await;
    next_millisecond().await;
    // 250 more writes: far past the replay log, over two keyframes.
    for i in 0..250 {
        place(&base, 10 + i % 100, 10 + i / 100, "#000000").await;
    }
    next_millisecond().await;
    let blue = place(&base, 1, 1, "#3690EA").await;
    let info = archived(&base, blue.seq).await;
    assert!(info.keyframes >= 3, "{info:?}");
    // The replay log has let the first write go; the archive has not.
    let (status, _) = expect_error(
        client()
            .get(format!("{base}/api/updates?since={}", red.seq - 1))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 410);

    let (rgb, width, seq) = board_at(&base, red.timestamp).await;
    assert_eq!(seq, red.seq);
    assert_eq!(pixel(&rgb, width, 1, 1), RED);
    assert_eq!(pixel(&rgb, width, 10, 10), WHITE, "a later write shows");
    let (rgb, width, seq) = board_at(&base, blue.timestamp).await;
    assert_eq!(seq, blue.seq);
    assert_eq!(pixel(&rgb, width, 1, 1), BLUE);
    assert_eq!(pixel(&rgb, width, 10, 10), [0, 0, 0]);

    // The archive lives on disk: a restart keeps every moment, and a torn
    // last record (a crash mid-append) is cut off, not fatal.
    server.terminate().await;
    let segments: Vec<_> = std::fs::read_dir(dir.join("archive"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    let last = segments.iter().max().expect("a segment");
    let mut torn = std::fs::read(last).unwrap();
    torn.extend_from_slice(&[0xAB; 7]);
    std::fs::write(last, torn).unwrap();
    let env = [
        ("DATA_DIR", dir.display().to_string()),
        ("COOLDOWN_MS", "0".to_owned()),
    ];
    let server = Process::spawn("server", &env).await;
    let base = server.http();
    let (rgb, width, _) = board_at(&base, red.timestamp).await;
    assert_eq!(pixel(&rgb, width, 1, 1), RED);
    next_millisecond().await;
    let after = place(&base, 2, 2, "#3690EA").await;
    archived(&base, after.seq).await;
    let (rgb, width, seq) = board_at(&base, after.timestamp).await;
    assert_eq!(seq, after.seq);
    assert_eq!(pixel(&rgb, width, 2, 2), BLUE);
    assert_eq!(pixel(&rgb, width, 1, 1), BLUE);
    assert!(
        server.log().contains("torn"),
        "the cut is logged:\n{}",
        server.log()
    );

    let before = expect_error(
        client()
            .get(format!("{base}/api/history/board.png?at=1000"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(before.0, 404);
    assert!(before.1.error.message.contains("starts at"), "{before:?}");
}

#[tokio::test]
async fn a_timelapse_is_an_animated_png_from_the_first_board_to_the_last() {
    let (server, _dir) = single_process("timelapse", ARCHIVE_ENV).await;
    let base = server.http();
    let first = place(&base, 1, 1, "#FF4500").await;
    archived(&base, first.seq).await;
    next_millisecond().await;
    for i in 0..120 {
        place(&base, i % 100, 20, "#000000").await;
    }
    next_millisecond().await;
    let last = place(&base, 1, 1, "#3690EA").await;
    archived(&base, last.seq).await;

    let r = client()
        .get(format!(
            "{base}/api/timelapse?from={}&to={}&frames=5&fps=10&scale=2",
            first.timestamp, last.timestamp
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/apng");
    let bytes = r.bytes().await.unwrap();
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let control = reader.info().animation_control().expect("an animated PNG");
    assert_eq!(control.num_frames, 5);
    let mut frames = Vec::new();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    while frames.len() < 5 {
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (500, 500), "scale=2 halves");
        frames.push(buf[..info.buffer_size()].to_vec());
    }
    // Frame (0, 10) is board (0, 20) at scale 2: where the row of black
    // goes, after the first moment and before the last.
    assert_eq!(
        pixel(&frames[0], 500, 0, 10),
        WHITE,
        "the first frame is before the row"
    );
    assert_eq!(
        pixel(&frames[4], 500, 0, 10),
        [0, 0, 0],
        "the last frame has it"
    );

    for (query, says) in [
        ("frames=1", "frames"),
        ("fps=0", "fps"),
        ("from=5&to=4", "before"),
        ("frames=abc", "whole number"),
    ] {
        let (status, body) = expect_error(
            client()
                .get(format!("{base}/api/timelapse?{query}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 400, "{query}");
        assert!(body.error.message.contains(says), "{query}: {body:?}");
    }
}

#[tokio::test]
async fn canvas_api_on_redis_archives_when_given_a_folder_and_not_otherwise() {
    let dir = crate::harness::temp_dir("redis-archive");
    let archive_dir = dir.join("archive").display().to_string();
    let stack = Stack::start(
        1,
        &[("COOLDOWN_MS", "0"), ("ARCHIVE_DIR", archive_dir.as_str())],
    )
    .await;
    let api = stack.api.http();
    let first = place(&api, 3, 3, "#FF4500").await;
    archived(&api, first.seq).await;
    let (rgb, width, seq) = board_at(&api, first.timestamp).await;
    assert_eq!((seq, pixel(&rgb, width, 3, 3)), (first.seq, RED));
    // Through the gateway's /api pass-through too.
    let via_gateway: HistoryInfo =
        get_json(&format!("{}/api/history", stack.gateways[0].http())).await;
    assert_eq!(via_gateway.last_seq, Some(first.seq));

    let redis = RedisServer::start().await;
    let plain = Process::spawn("canvas-api", &[("REDIS_URL", redis.url())]).await;
    let (status, body) = expect_error(
        client()
            .get(format!("{}/api/history", plain.http()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(body.error.message.contains("ARCHIVE_DIR"), "{body:?}");
}
