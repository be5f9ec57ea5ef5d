//! HTTP helpers for canvas-api and gateway routes.

use std::time::Duration;

use protocol::http::ErrorBody;
use serde::de::DeserializeOwned;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

pub async fn get_json<T: DeserializeOwned>(url: &str) -> T {
    let r = client().get(url).send().await.expect("GET");
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().await.expect("JSON body")
}

/// An error response's status and body.
pub async fn expect_error(response: reqwest::Response) -> (u16, ErrorBody) {
    let status = response.status().as_u16();
    assert!(status >= 400, "expected an error, got {status}");
    let body = response.text().await.expect("body");
    let parsed = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("error body {body:?} is not the JSON error shape: {e}"));
    (status, parsed)
}

/// The board as (width, height, seq, rgb).
pub async fn canvas_bin(base: &str) -> (u32, u32, u64, Vec<u8>) {
    let (w, h, seq, rgb, _) = canvas_bin_with_epoch(base).await;
    (w, h, seq, rgb)
}

/// The board as (width, height, seq, rgb, epoch).
pub async fn canvas_bin_with_epoch(base: &str) -> (u32, u32, u64, Vec<u8>, String) {
    let r = client()
        .get(format!("{base}/api/canvas.bin"))
        .send()
        .await
        .expect("GET canvas.bin");
    assert!(r.status().is_success(), "canvas.bin: {}", r.status());
    let header = |name: &str| -> u64 {
        r.headers()
            .get(name)
            .unwrap_or_else(|| panic!("missing {name}"))
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (w, h, seq) = (
        header("x-canvas-width") as u32,
        header("x-canvas-height") as u32,
        header("x-canvas-seq"),
    );
    let epoch = r
        .headers()
        .get("x-canvas-epoch")
        .expect("missing x-canvas-epoch")
        .to_str()
        .expect("ASCII epoch")
        .to_owned();
    let bytes = r.bytes().await.expect("body").to_vec();
    assert_eq!(bytes.len(), (w * h * 3) as usize, "canvas.bin length");
    (w, h, seq, bytes, epoch)
}

pub fn pixel_at(rgb: &[u8], width: u32, x: u32, y: u32) -> [u8; 3] {
    let i = (y * width + x) as usize * 3;
    [rgb[i], rgb[i + 1], rgb[i + 2]]
}

/// Polls `/readyz` until it answers 200: readiness is the event awaited.
pub async fn wait_ready(base: &str) {
    let http = client();
    for _ in 0..400 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{base} never became ready");
}

pub async fn put_pixel(
    base: &str,
    x: i64,
    y: i64,
    color: &str,
    username: &str,
) -> reqwest::Response {
    client()
        .put(format!("{base}/api/pixel"))
        .json(&serde_json::json!({"x": x, "y": y, "color": color, "username": username}))
        .send()
        .await
        .expect("PUT /api/pixel")
}

/// Writes `count` pixels over one pooled connection (row `y`), so that a
/// short `REPLAY_LOG_LEN` gets trimmed: Redis trims a stream only in whole
/// nodes of 100 entries, so a few hundred writes are needed.
pub async fn write_many(base: &str, count: u32, y: u32) {
    let client = client();
    for i in 0..count {
        let r = client
            .put(format!("{base}/api/pixel"))
            .json(
                &serde_json::json!({"x": i % 1000, "y": y, "color": "#000000", "username": "bulk"}),
            )
            .send()
            .await
            .expect("PUT /api/pixel");
        assert_eq!(r.status(), 200, "write {i}");
    }
}

/// A counter or gauge from a process's `/metrics`.
pub async fn metric(base: &str, name: &str) -> u64 {
    let text = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("/metrics has no {name}"))
        .trim()
        .parse()
        .expect("a number")
}

/// The `AUTH_SECRET` tests give their processes when they mint proofs.
pub const TEST_SECRET: &str = "test-secret-0123456789abcdef-0123456789";

/// `PUT /api/pixel` as a gateway makes it: with its placement proof for
/// `ip`, signed with [`TEST_SECRET`], so canvas-api counts `ip`, not the
/// caller, and leaves the answer to the caller's client to the caller.
pub async fn put_as_gateway(
    base: &str,
    (x, y): (i64, i64),
    color: &str,
    username: &str,
    ip: std::net::IpAddr,
) -> reqwest::Response {
    let key = canvas_api::gateway_proof::GatewayKey::from_secret(TEST_SECRET.as_bytes());
    let proof = key.mint(
        &canvas_api::gateway_proof::PlacementClaim {
            username,
            ip: Some(ip),
            x,
            y,
            color,
        },
        plumbing::clock::now_ms(),
    );
    client()
        .put(format!("{base}/api/pixel"))
        .header(protocol::http::HEADER_GATEWAY_PROOF, proof)
        .json(&serde_json::json!({"x": x, "y": y, "color": color, "username": username, "ip": ip.to_string()}))
        .send()
        .await
        .expect("PUT /api/pixel")
}

/// Pixels along one side of a chunk (`/api/config`'s `chunkSize`).
pub const CHUNK_SIZE: u32 = 256;

/// One chunk as `GET /api/chunk/{cx}/{cy}.bin` answers it: its RGB,
/// `X-Canvas-Seq` and `ETag` (checking `X-Canvas-Chunk-Size` on the way).
pub async fn chunk_bin(base: &str, cx: u32, cy: u32) -> (Vec<u8>, u64, String) {
    let r = client()
        .get(format!("{base}/api/chunk/{cx}/{cy}.bin"))
        .send()
        .await
        .expect("GET chunk");
    assert_eq!(r.status(), 200, "chunk ({cx}, {cy})");
    assert_eq!(
        r.headers()["x-canvas-chunk-size"],
        CHUNK_SIZE.to_string().as_str()
    );
    let seq = r.headers()["x-canvas-seq"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    (r.bytes().await.unwrap().to_vec(), seq, etag)
}

/// Board pixel `(x, y)` in the RGB of the chunk that holds it.
pub fn pixel_in_chunk(rgb: &[u8], x: u32, y: u32) -> [u8; 3] {
    let i = (((y % CHUNK_SIZE) * CHUNK_SIZE + x % CHUNK_SIZE) * 3) as usize;
    [rgb[i], rgb[i + 1], rgb[i + 2]]
}
