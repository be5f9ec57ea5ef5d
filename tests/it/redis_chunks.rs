//! Boards on Redis by size: one `canvas:board` key up to 300 MB (as every
//! board was stored before chunk keys, so old data reads as it was), one
//! `canvas:{c:CX:CY}:board` key per written chunk above it, up to 65,536².

use std::collections::BTreeSet;

use protocol::http::{ModerationResult, PlacePixelResponse};
use protocol::names::canvas as keys;
use protocol::{ErrorCode, ServerMessage};
use serde_json::json;

use crate::harness::http::{
    CHUNK_SIZE, canvas_bin, chunk_bin, client, expect_error, pixel_at, pixel_in_chunk, put_pixel,
};
use crate::harness::redis_server::RedisServer;
use crate::harness::{Process, Stack, WsClient};

const TOKEN: &str = "redis-chunks-admin-token";

async fn paint(base: &str, x: i64, y: i64, color: &str, username: &str) -> PlacePixelResponse {
    let r = put_pixel(base, x, y, color, username).await;
    let status = r.status();
    let text = r.text().await.expect("body");
    assert_eq!(status, 200, "PUT ({x}, {y}) as {username}: {text}");
    serde_json::from_str(&text).expect("PUT body")
}

async fn admin(base: &str, path: &str, body: serde_json::Value) -> ModerationResult {
    let r = client()
        .post(format!("{base}/api/admin/{path}"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("admin POST");
    let status = r.status();
    let text = r.text().await.expect("body");
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {text}: {e}"))
}

/// The chunk keys Redis holds (a test may scan the keyspace; the store
/// never does).
async fn chunk_keys(redis: &RedisServer) -> BTreeSet<String> {
    let mut conn = redis.conn().await;
    let found: Vec<String> = redis::cmd("KEYS")
        .arg("canvas:{c:*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    found.into_iter().collect()
}

async fn board_key_exists(redis: &RedisServer) -> bool {
    let mut conn = redis.conn().await;
    redis::cmd("EXISTS")
        .arg(keys::BOARD)
        .query_async::<u64>(&mut conn)
        .await
        .expect("EXISTS")
        == 1
}

/// Waits until the wall clock is past `t`, so later writes are stamped
/// after it (all processes share this machine's clock).
async fn clock_past(t: u64) {
    while plumbing::clock::now_ms() <= t {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn a_65536_square_board_on_redis_keeps_one_key_per_written_chunk() {
    let env = [
        ("COOLDOWN_MS", "0"),
        ("PALETTE", "any"),
        ("CANVAS_WIDTH", "65536"),
        ("CANVAS_HEIGHT", "65536"),
        ("ADMIN_TOKEN", TOKEN),
    ];
    let stack = Stack::start(1, &env).await;
    let api = stack.api.http();
    let gateway = stack.gateways[0].http();

    // Over HTTP, then three at once over a WebSocket: the gateway sends
    // placements in flight together as one batch.
    let far = paint(&api, 65_535, 65_535, "#010203", "far").await;
    assert_eq!(far.seq, 1);
    let mut ws = WsClient::connect(&stack.gateways[0].ws(), Some("walker")).await;
    let placed = [
        (0, 0, "#070809"),
        (300, 10, "#040506"),
        (65_535, 0, "#0A0B0C"),
    ];
    for (id, (x, y, color)) in placed.iter().enumerate() {
        ws.place(*x, *y, color, id as u64).await;
    }
    let mut seqs = BTreeSet::new();
    for id in 0..placed.len() as u64 {
        match ws.reply_to(id).await {
            ServerMessage::Ack { seq, .. } => seqs.insert(seq),
            other => panic!("placement {id}: {other:?}"),
        };
    }
    assert_eq!(seqs, (2..=4).collect());

    for base in [&api, &gateway] {
        let (corner, seq, _) = chunk_bin(base, 255, 255).await;
        assert_eq!(corner.len(), (CHUNK_SIZE * CHUNK_SIZE * 3) as usize);
        assert_eq!(seq, 4);
        assert_eq!(pixel_in_chunk(&corner, 65_535, 65_535), [1, 2, 3]);
        assert_eq!(pixel_in_chunk(&corner, 65_534, 65_535), [0xFF; 3]);
    }
    assert_eq!(
        pixel_in_chunk(&chunk_bin(&api, 0, 0).await.0, 0, 0),
        [7, 8, 9]
    );
    assert_eq!(
        pixel_in_chunk(&chunk_bin(&api, 1, 0).await.0, 300, 10),
        [4, 5, 6]
    );
    assert_eq!(
        pixel_in_chunk(&chunk_bin(&api, 255, 0).await.0, 65_535, 0),
        [10, 11, 12]
    );
    let (empty, _, _) = chunk_bin(&api, 100, 100).await;
    assert!(
        empty.iter().all(|&b| b == 0xFF),
        "a chunk nobody wrote is white"
    );

    let (status, body) = expect_error(
        client()
            .get(format!("{api}/api/canvas.bin"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.error.code), (422, ErrorCode::BoardTooLarge));

    // Only the chunks written exist; the 12 GiB board key never does.
    let written: BTreeSet<String> = [(0, 0), (1, 0), (255, 0), (255, 255)]
        .into_iter()
        .map(|(cx, cy)| keys::board_chunk(cx, cy))
        .collect();
    assert_eq!(chunk_keys(&stack.redis).await, written);
    assert!(!board_key_exists(&stack.redis).await);
    let mut conn = stack.redis.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .expect("INFO memory");
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    assert!(used < 32 << 20, "Redis uses {used} bytes for four chunks");

    // A moderation rollback writes through the chunk key too.
    clock_past(far.timestamp).await;
    let vandal = paint(&api, 65_535, 65_535, "#000000", "vandal").await;
    let back = admin(
        &api,
        "rollback",
        json!({"x0": 65_400, "y0": 65_400, "x1": 65_535, "y1": 65_535, "at": far.timestamp}),
    )
    .await;
    assert_eq!(back.changed, 1, "{back:?}");
    let (corner, seq, _) = chunk_bin(&api, 255, 255).await;
    assert_eq!(
        (pixel_in_chunk(&corner, 65_535, 65_535), seq),
        ([1, 2, 3], vandal.seq + 1)
    );

    // Everything is in Redis: a new canvas-api reads it all back.
    let Stack {
        redis,
        api: old_api,
        gateways,
    } = stack;
    drop(gateways);
    old_api.terminate().await;
    let mut api_env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
    api_env.push(("REDIS_URL", redis.url()));
    let api_process = Process::spawn("canvas-api", &api_env).await;
    let api = api_process.http();
    let (corner, seq, _) = chunk_bin(&api, 255, 255).await;
    assert_eq!(
        (pixel_in_chunk(&corner, 65_535, 65_535), seq),
        ([1, 2, 3], vandal.seq + 1)
    );
    assert_eq!(
        pixel_in_chunk(&chunk_bin(&api, 1, 0).await.0, 300, 10),
        [4, 5, 6]
    );

    // A clear deletes every chunk key, as one seq.
    let cleared = admin(&api, "clear", json!({})).await;
    assert_eq!(cleared.seq, vandal.seq + 2);
    assert!(chunk_keys(&redis).await.is_empty());
    let (corner, seq, _) = chunk_bin(&api, 255, 255).await;
    assert_eq!(seq, cleared.seq);
    assert!(
        corner.iter().all(|&b| b == 0xFF),
        "the cleared chunk is white"
    );
}

/// A board of at most 300 MB keeps `canvas:board` exactly as before chunk
/// keys: a board written the old way is read as it was, and new writes land
/// in the same key at `index * 3`, inverted.
#[tokio::test]
async fn a_board_of_todays_size_on_redis_keeps_the_one_board_key() {
    let redis = RedisServer::start().await;
    {
        // What an older canvas-api left: (5, 3) set to #123456.
        let mut conn = redis.conn().await;
        let _: () = redis::pipe()
            .set(keys::DIMENSIONS, "1000x1000")
            .cmd("SETRANGE")
            .arg(keys::BOARD)
            .arg((3 * 1000 + 5) * 3)
            .arg(&[0xFF - 0x12_u8, 0xFF - 0x34, 0xFF - 0x56][..])
            .set(keys::SEQ, 1)
            .query_async(&mut conn)
            .await
            .expect("seed the old board");
    }
    let stack = Stack::start_on(
        redis,
        0,
        &[
            ("COOLDOWN_MS", "0"),
            ("PALETTE", "any"),
            ("CANVAS_WIDTH", "1000"),
            ("CANVAS_HEIGHT", "1000"),
        ],
    )
    .await;
    let api = stack.api.http();
    let (w, _, seq, board) = canvas_bin(&api).await;
    assert_eq!((pixel_at(&board, w, 5, 3), seq), ([0x12, 0x34, 0x56], 1));
    assert_eq!(
        pixel_in_chunk(&chunk_bin(&api, 0, 0).await.0, 5, 3),
        [0x12, 0x34, 0x56]
    );

    assert_eq!(paint(&api, 999, 999, "#ABCDEF", "new").await.seq, 2);
    let mut conn = stack.redis.conn().await;
    let start = (999 * 1000 + 999) * 3;
    let stored: Vec<u8> = redis::cmd("GETRANGE")
        .arg(keys::BOARD)
        .arg(start)
        .arg(start + 2)
        .query_async(&mut conn)
        .await
        .expect("GETRANGE");
    assert_eq!(stored, [0xFF - 0xAB, 0xFF - 0xCD, 0xFF - 0xEF]);
    assert!(chunk_keys(&stack.redis).await.is_empty());
    let (_, _, _, board) = canvas_bin(&api).await;
    assert_eq!(pixel_at(&board, w, 999, 999), [0xAB, 0xCD, 0xEF]);
}
