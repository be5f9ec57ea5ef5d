//! Placements go from a gateway to the store in batches (`POST
//! /api/pixels`, one script call or lock per batch), yet each pixel keeps
//! its own rules, its own `seq`, its own announcement and its own answer.

use std::collections::BTreeSet;
use std::net::IpAddr;

use futures_util::StreamExt;
use protocol::http::{BatchResult, ErrorBody, MAX_BATCH_PLACEMENTS};
use protocol::{ErrorCode, ServerMessage};
use serde_json::{Value, json};

use crate::harness::http::{TEST_SECRET, canvas_bin, client, metric, pixel_at};
use crate::harness::{Process, Stack, WsClient, single_process, temp_dir};

const ADMIN_TOKEN: &str = "batch-admin-token";

/// A burst from one test process: every client is 127.0.0.1, so the
/// per-IP limits would measure themselves.
const BURST_ENV: &[(&str, &str)] = &[
    ("COOLDOWN_MS", "0"),
    ("MESSAGES_PER_SEC_PER_IP", "0"),
    ("MAX_CONNECTIONS_PER_IP", "0"),
];

/// One batch item as a gateway sends it: with its proof for `ip`, signed
/// with [`TEST_SECRET`].
fn proven(x: i64, y: i64, color: &str, username: &str, ip: IpAddr) -> Value {
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
    json!({"x": x, "y": y, "color": color, "username": username, "ip": ip.to_string(), "proof": proof})
}

async fn post_batch(base: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{base}/api/pixels"))
        .json(body)
        .send()
        .await
        .expect("POST /api/pixels")
}

async fn batch_ok(base: &str, body: &Value) -> Vec<BatchResult> {
    let r = post_batch(base, body).await;
    let status = r.status();
    let text = r.text().await.expect("a body");
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The code of a failed item (panics on a placed one).
fn failed(result: &BatchResult) -> ErrorCode {
    match result {
        BatchResult::Failed(detail) => detail.code,
        BatchResult::Placed(p) => panic!("placed at seq {}", p.seq),
    }
}

fn placed_seq(result: &BatchResult) -> u64 {
    match result {
        BatchResult::Placed(p) => p.seq,
        BatchResult::Failed(detail) => panic!("failed: {detail:?}"),
    }
}

/// Many connections over two gateways place at once: every pixel is acked
/// once with its own `seq`, is on the board, and is announced on
/// `pixel-updates` exactly once, in `seq` order; and the gateways sent
/// fewer batches than placements, canvas-api ran fewer store steps.
#[tokio::test]
async fn a_burst_over_two_gateways_is_batched_and_every_pixel_is_acked_stored_and_announced_once() {
    const CONNECTIONS: u64 = 16;
    const EACH: u64 = 32;
    const TOTAL: u64 = CONNECTIONS * EACH;
    let stack = Stack::start(2, BURST_ENV).await;
    let redis = redis::Client::open(stack.redis.url()).expect("redis URL");
    let mut channel = redis.get_async_pubsub().await.expect("subscribe");
    channel
        .subscribe(protocol::names::PIXEL_UPDATES_CHANNEL)
        .await
        .expect("subscribe");

    let mut writers = Vec::new();
    for c in 0..CONNECTIONS {
        let url = stack.gateways[(c % 2) as usize].ws();
        writers.push(tokio::spawn(async move {
            let mut ws = WsClient::connect(&url, Some(&format!("burst{c}"))).await;
            // All of this connection's placements at once (its 32 in
            // flight), then every answer.
            for i in 0..EACH {
                ws.place(i as i64, c as i64, "#2450A4", i).await;
            }
            let mut seqs = Vec::new();
            for i in 0..EACH {
                match ws.reply_to(i).await {
                    ServerMessage::Ack { seq, .. } => seqs.push(seq),
                    other => panic!("placement {i} of connection {c}: {other:?}"),
                }
            }
            seqs
        }));
    }
    let mut acked = BTreeSet::new();
    for w in writers {
        for seq in w.await.expect("writer") {
            assert!(acked.insert(seq), "seq {seq} acked twice");
        }
    }
    assert_eq!(acked, (1..=TOTAL).collect(), "one ack, one seq per pixel");

    let mut messages = channel.on_message();
    let mut announced = Vec::new();
    tokio::time::timeout(crate::harness::WAIT, async {
        while (announced.len() as u64) < TOTAL {
            let m = messages.next().await.expect("the channel stays open");
            let payload: String = m.get_payload().expect("text");
            match serde_json::from_str::<ServerMessage>(&payload).expect("protocol v1") {
                ServerMessage::PixelUpdated(e) => announced.push(e.seq),
                other => panic!("pixel-updates carried {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} of {TOTAL} writes announced", announced.len()));
    assert_eq!(
        announced,
        (1..=TOTAL).collect::<Vec<_>>(),
        "announced out of seq order, or twice"
    );

    let (w, _, seq, rgb) = canvas_bin(&stack.api.http()).await;
    assert_eq!(seq, TOTAL);
    for c in 0..CONNECTIONS as u32 {
        for x in 0..EACH as u32 {
            assert_eq!(pixel_at(&rgb, w, x, c), [0x24, 0x50, 0xA4], "({x}, {c})");
        }
    }

    let api = stack.api.http();
    assert_eq!(metric(&api, "canvas_placements_stored_total").await, TOTAL);
    let store_steps = metric(&api, "canvas_place_batches_total").await;
    let mut requests = 0;
    for g in &stack.gateways {
        requests += metric(&g.http(), "gateway_placement_batches_total").await;
    }
    assert!(
        requests < TOTAL && store_steps < TOTAL,
        "no batching: {requests} requests, {store_steps} store steps for {TOTAL} placements"
    );
    assert_eq!(store_steps, requests, "one store step per request");
}

/// One batch mixing valid and refused placements: each is answered on its
/// own, and only the valid ones are stored, with consecutive `seq`s.
async fn assert_a_mixed_batch_is_answered_item_by_item(base: &str, items: Vec<Value>) {
    let (_, _, before, _) = canvas_bin(base).await;
    let results = batch_ok(base, &Value::Array(items)).await;
    assert_eq!(results.len(), 7);
    let first = placed_seq(&results[0]);
    assert_eq!(first, before + 1);
    assert_eq!(
        failed(&results[1]),
        ErrorCode::Cooldown,
        "the same user again"
    );
    assert_eq!(failed(&results[2]), ErrorCode::Protected);
    assert_eq!(failed(&results[3]), ErrorCode::InvalidColor);
    assert_eq!(failed(&results[4]), ErrorCode::OutOfBounds);
    assert_eq!(failed(&results[5]), ErrorCode::InvalidUsername);
    assert_eq!(
        placed_seq(&results[6]),
        first + 1,
        "refusals take no seq, and do not stop the items after them"
    );

    let (w, _, seq, rgb) = canvas_bin(base).await;
    assert_eq!(seq, first + 1, "only the two valid placements were stored");
    assert_eq!(pixel_at(&rgb, w, 1, 1), [0x24, 0x50, 0xA4]);
    assert_eq!(pixel_at(&rgb, w, 3, 3), [0xFF, 0x45, 0x00]);
    for (x, y) in [(2, 2), (11, 11), (4, 4)] {
        assert_eq!(pixel_at(&rgb, w, x, y), [0xFF; 3], "({x}, {y}) untouched");
    }
}

/// The items of the mixed batch; `item` makes one (with or without a
/// gateway proof).
fn mixed_items(item: impl Fn(i64, i64, &str, &str) -> Value) -> Vec<Value> {
    vec![
        item(1, 1, "#2450A4", "alice"),
        item(2, 2, "#2450A4", "alice"),
        item(11, 11, "#2450A4", "bob"),
        item(4, 4, "#12345", "carol"),
        item(500, 4, "#2450A4", "dave"),
        item(4, 4, "#2450A4", "not a name!"),
        item(3, 3, "#FF4500", "erin"),
    ]
}

async fn protect_10_to_12(base: &str) {
    let r = client()
        .post(format!("{base}/api/admin/protect"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"x0": 10, "y0": 10, "x1": 12, "y1": 12}))
        .send()
        .await
        .expect("protect");
    assert!(r.status().is_success(), "protect: {}", r.status());
}

const MIXED_ENV: &[(&str, &str)] = &[
    ("COOLDOWN_MS", "60000"),
    ("CANVAS_WIDTH", "32"),
    ("CANVAS_HEIGHT", "32"),
    ("ADMIN_TOKEN", ADMIN_TOKEN),
    ("AUTH_SECRET", TEST_SECRET),
    ("HTTP_PLACEMENTS_PER_SEC_PER_IP", "0"),
];

#[tokio::test]
async fn a_batch_mixing_valid_and_refused_placements_stores_only_the_valid_ones_on_redis() {
    let stack = Stack::start(0, MIXED_ENV).await;
    let api = stack.api.http();
    protect_10_to_12(&api).await;
    let ip = IpAddr::from([10, 3, 3, 3]);
    let items = mixed_items(|x, y, color, user| proven(x, y, color, user, ip));
    assert_a_mixed_batch_is_answered_item_by_item(&api, items).await;
}

#[tokio::test]
async fn a_batch_mixing_valid_and_refused_placements_stores_only_the_valid_ones_embedded() {
    let (server, _dir) = single_process("batch-mixed", MIXED_ENV).await;
    let base = server.http();
    protect_10_to_12(&base).await;
    // The single process's public route takes no proofs: plain items.
    let items =
        mixed_items(|x, y, color, user| json!({"x": x, "y": y, "color": color, "username": user}));
    assert_a_mixed_batch_is_answered_item_by_item(&base, items).await;
}

#[tokio::test]
async fn the_batch_route_refuses_oversized_and_malformed_bodies_clearly() {
    let stack = Stack::start(0, &[("COOLDOWN_MS", "0")]).await;
    let api = stack.api.http();
    let item = json!({"x": 1, "y": 1, "color": "#000000", "username": "u"});
    let too_many = Value::Array(vec![item.clone(); MAX_BATCH_PLACEMENTS + 1]);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, ErrorCode, &str)> = vec![
        (
            "not JSON",
            client()
                .post(format!("{api}/api/pixels"))
                .header("content-type", "application/json")
                .body("[{"),
            400,
            ErrorCode::BadRequest,
            "JSON array",
        ),
        (
            "an object, not an array",
            client().post(format!("{api}/api/pixels")).json(&item),
            400,
            ErrorCode::BadRequest,
            "JSON array",
        ),
        (
            "an item of the wrong shape",
            client()
                .post(format!("{api}/api/pixels"))
                .json(&json!([{"x": "1", "y": 1, "color": "#000000"}])),
            400,
            ErrorCode::BadRequest,
            "JSON array",
        ),
        (
            "no placements",
            client().post(format!("{api}/api/pixels")).json(&json!([])),
            400,
            ErrorCode::BadRequest,
            "1 to 256 placements, got 0",
        ),
        (
            "too many placements",
            client().post(format!("{api}/api/pixels")).json(&too_many),
            400,
            ErrorCode::BadRequest,
            "1 to 256 placements, got 257",
        ),
        (
            "a body past the limit",
            client()
                .post(format!("{api}/api/pixels"))
                .header("content-type", "application/json")
                .body(format!("[{}]", " ".repeat(70 * 1024))),
            413,
            ErrorCode::PayloadTooLarge,
            "larger than",
        ),
        (
            "not JSON by its type",
            client()
                .post(format!("{api}/api/pixels"))
                .header("content-type", "text/plain")
                .body(item.to_string()),
            415,
            ErrorCode::BadRequest,
            "",
        ),
    ];
    for (what, request, status, code, says) in cases {
        let r = request.send().await.expect("POST /api/pixels");
        assert_eq!(r.status(), status, "{what}");
        let body: ErrorBody = r.json().await.expect("an error body");
        assert_eq!(body.error.code, code, "{what}");
        assert!(
            body.error.message.contains(says),
            "{what}: {:?} does not say {says:?}",
            body.error.message
        );
    }
    assert_eq!(
        metric(&api, "canvas_placements_stored_total").await,
        0,
        "nothing refused was stored"
    );
}

/// An item without a valid proof is an HTTP placement: its `ip` buys
/// nothing (it is counted by the caller's address), and a made-up proof is
/// refused for that item alone; a gateway's proof counts its client.
#[tokio::test]
async fn a_batch_item_without_a_valid_proof_is_counted_by_its_peer_not_its_ip() {
    let stack = Stack::start(
        0,
        &[
            ("COOLDOWN_MS", "0"),
            ("IP_POOL_SIZE", "2"),
            ("IP_POOL_REFILL_MS", "600000"),
            ("AUTH_SECRET", TEST_SECRET),
            ("HTTP_PLACEMENTS_PER_SEC_PER_IP", "0"),
        ],
    )
    .await;
    let api = stack.api.http();
    let forged = |x: i64| json!({"x": x, "y": 0, "color": "#FF4500", "username": format!("u{x}"), "ip": format!("10.0.0.{x}")});
    let mut made_up = proven(5, 0, "#FF4500", "eve", IpAddr::from([10, 5, 5, 5]));
    made_up["proof"] = json!("g1.99999999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let mut replayed = proven(6, 0, "#FF4500", "eve", IpAddr::from([10, 5, 5, 5]));
    replayed["x"] = json!(7);
    let results = batch_ok(
        &api,
        &json!([
            forged(0),
            made_up,
            forged(1),
            replayed,
            forged(2),
            proven(4, 0, "#FF4500", "carol", IpAddr::from([10, 2, 2, 2])),
        ]),
    )
    .await;
    placed_seq(&results[0]);
    assert_eq!(
        failed(&results[1]),
        ErrorCode::Unauthorized,
        "a made-up proof"
    );
    placed_seq(&results[2]);
    assert_eq!(
        failed(&results[3]),
        ErrorCode::Unauthorized,
        "a proof for another pixel"
    );
    assert_eq!(
        failed(&results[4]),
        ErrorCode::RateLimited,
        "the caller's own pool is spent, whatever `ip` says"
    );
    placed_seq(&results[5]);
}

/// The single process batches its connections' placements through the
/// same store step, and every acknowledged pixel of a batch is on disk: a
/// crash right after the acks loses none.
#[tokio::test]
async fn the_embedded_stores_batched_placements_survive_a_crash() {
    const CONNECTIONS: u64 = 8;
    const EACH: u64 = 32;
    const TOTAL: u64 = CONNECTIONS * EACH;
    let dir = temp_dir("batch-crash");
    let mut env = vec![("DATA_DIR", dir.display().to_string())];
    env.extend(BURST_ENV.iter().map(|(k, v)| (*k, v.to_string())));
    let server = Process::spawn("server", &env).await;
    let mut writers = Vec::new();
    for c in 0..CONNECTIONS {
        let url = server.ws();
        writers.push(tokio::spawn(async move {
            let mut ws = WsClient::connect(&url, Some(&format!("crash{c}"))).await;
            for i in 0..EACH {
                ws.place(i as i64, c as i64, "#2450A4", i).await;
            }
            for i in 0..EACH {
                let reply = ws.reply_to(i).await;
                assert!(matches!(reply, ServerMessage::Ack { .. }), "{reply:?}");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let steps = metric(&server.http(), "canvas_place_batches_total").await;
    assert!(
        steps < TOTAL,
        "no batching: {steps} store steps for {TOTAL} placements"
    );
    // No chance to flush anything: acknowledged means already written.
    server.kill9().await;

    let server = Process::spawn("server", &env).await;
    let (w, _, seq, rgb) = canvas_bin(&server.http()).await;
    assert_eq!(seq, TOTAL);
    for c in 0..CONNECTIONS as u32 {
        for x in 0..EACH as u32 {
            assert_eq!(pixel_at(&rgb, w, x, c), [0x24, 0x50, 0xA4], "({x}, {c})");
        }
    }
}

/// A batch is one request: when canvas-api is gone, every placement of
/// every batch is answered `unavailable`: none is left unanswered, none
/// acknowledged.
#[tokio::test]
async fn with_canvas_api_gone_every_batched_placement_is_answered_unavailable() {
    const CONNECTIONS: u64 = 8;
    const EACH: u64 = 8;
    let mut stack = Stack::start(1, BURST_ENV).await;
    let mut clients = Vec::new();
    for c in 0..CONNECTIONS {
        clients.push(WsClient::connect(&stack.gateways[0].ws(), Some(&format!("gone{c}"))).await);
    }
    stack.api.kill9_in_place().await;
    for (c, ws) in clients.iter_mut().enumerate() {
        for i in 0..EACH {
            ws.place(i as i64, c as i64, "#000000", i).await;
        }
    }
    for ws in &mut clients {
        for i in 0..EACH {
            match ws.reply_to(i).await {
                ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::Unavailable),
                other => panic!("placement {i}: {other:?}"),
            }
        }
    }
    assert_eq!(
        metric(&stack.gateways[0].http(), "gateway_placements_acked_total").await,
        0
    );
}
