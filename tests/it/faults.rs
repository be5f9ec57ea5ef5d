//! Faults on real processes: the store path or the subscription breaks
//! mid-traffic, and nothing acknowledged may be lost to any client.
//!
//! Each drill runs steady placements from players spread over two
//! gateways, injects a fault, heals it, and checks with
//! [`verify`](crate::harness::player::verify) that every acknowledged pixel
//! is on the board and every player's own board equals it (so no player was
//! left with a gap it did not detect). Each prints how long the players'
//! boards stood still (`recovery:` lines, for BENCHMARKS.md).

use std::time::Duration;

use protocol::{ErrorCode, ServerMessage};

use crate::harness::http::{self, canvas_bin, canvas_bin_with_epoch, metric, pixel_at};
use crate::harness::player::{
    Player, Traffic, join_players, report_recovery, verify, verify_views,
};
use crate::harness::process::rss_bytes;
use crate::harness::{Process, RedisServer, Stack, WsClient, single_process, temp_dir};

const NO_COOLDOWN: &[(&str, &str)] = &[("COOLDOWN_MS", "0"), ("GAP_GRACE_MS", "100")];

#[tokio::test]
async fn with_canvas_api_down_placements_fail_as_unavailable_and_recover() {
    let mut stack = Stack::start(1, NO_COOLDOWN).await;
    let mut client = WsClient::connect(&stack.gateways[0].ws(), Some("patient")).await;
    client.place(1, 1, "#000000", 1).await;
    assert!(matches!(
        client.reply_to(1).await,
        ServerMessage::Ack { seq: 1, .. }
    ));

    let addr = stack.api.addr;
    stack.api.kill9_in_place().await;
    client.place(2, 2, "#000000", 2).await;
    match client.reply_to(2).await {
        ServerMessage::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::Unavailable, "{message}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }

    // canvas-api comes back on the same address.
    let env = [
        ("REDIS_URL", stack.redis.url()),
        ("COOLDOWN_MS", "0".to_owned()),
        ("LISTEN_ADDR", addr.to_string()),
    ];
    stack.api = spawn_on(&env).await;
    let mut id = 3;
    let seq = loop {
        client.place(3, 3, "#FF4500", id).await;
        match client.reply_to(id).await {
            ServerMessage::Ack { seq, .. } => break seq,
            ServerMessage::Error {
                code: ErrorCode::Unavailable,
                ..
            } if id < 50 => {
                id += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(seq, 2, "the refused placement must not have been stored");
    let (w, _, board_seq, rgb) = canvas_bin(&stack.api.http()).await;
    assert_eq!(board_seq, 2);
    assert_eq!(pixel_at(&rgb, w, 2, 2), [0xFF, 0xFF, 0xFF]);
    assert_eq!(pixel_at(&rgb, w, 3, 3), [0xFF, 0x45, 0x00]);
}

/// Starts canvas-api on a fixed address (LISTEN_ADDR in `env`), retrying
/// while the old socket lingers.
async fn spawn_on(env: &[(&str, String)]) -> Process {
    for _ in 0..50 {
        if let Some(p) = Process::try_spawn("canvas-api", env).await {
            http::wait_ready(&p.http()).await;
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("canvas-api could not listen again on its address");
}

/// Small boards (views are compared pixel by pixel), no cooldown, a short
/// gap grace.
const DRILL: &[(&str, &str)] = &[
    ("COOLDOWN_MS", "0"),
    ("PALETTE", "any"),
    ("CANVAS_WIDTH", "64"),
    ("CANVAS_HEIGHT", "64"),
    ("GAP_GRACE_MS", "100"),
];
const PLAYERS: u32 = 4;
const PLACEMENTS: u32 = 40;
const PACE: Duration = Duration::from_millis(20);

/// Four players, two on each gateway, reading `/api` through the first.
async fn players_on(stack: &Stack) -> Vec<Player> {
    let urls: Vec<String> = stack.gateways.iter().map(|g| g.ws()).collect();
    join_players(PLAYERS, &urls, &stack.gateways[0].http()).await
}

/// Ends a drill: waits for the players, checks the promises, reports.
async fn finish(traffic: Traffic, stack: &Stack, fault: &str) -> Vec<Player> {
    let mut players = traffic.finish().await;
    let acked = verify(&mut players, &stack.gateways[0].http()).await;
    assert_eq!(acked.len(), (PLAYERS * PLACEMENTS) as usize);
    report_recovery(fault, &players);
    players
}

#[tokio::test]
async fn drill_subscriptions_killed() {
    let stack = Stack::start(2, DRILL).await;
    let traffic = Traffic::start(players_on(&stack).await, PLACEMENTS, PACE);
    traffic.acked_at_least(traffic.total / 3).await;
    let mut redis = stack.redis.conn().await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(killed >= 2, "killed {killed}");
    finish(traffic, &stack, "pub/sub connections killed").await;
}

#[tokio::test]
async fn drill_subscriptions_evicted_by_the_output_buffer_limit() {
    let stack = Stack::start(2, DRILL).await;
    let traffic = Traffic::start(players_on(&stack).await, PLACEMENTS, PACE);
    traffic.acked_at_least(traffic.total / 3).await;
    let mut redis = stack.redis.conn().await;
    const RECONNECTS: &str = "gateway_subscriber_reconnects_total";
    let before = metric(&stack.gateways[1].http(), RECONNECTS).await;
    // Any message queued for a subscriber now overflows its buffer.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("pubsub 1 1 0")
        .query_async(&mut redis)
        .await
        .unwrap();
    // A message larger than a subscriber's 16 KiB static buffer has to be
    // queued, which the limit no longer allows: every subscriber is cut.
    let big = serde_json::json!({"type": "user_update", "podId": "x".repeat(64 * 1024)});
    let _: i64 = redis::cmd("PUBLISH")
        .arg(protocol::names::USER_EVENTS_CHANNEL)
        .arg(big.to_string())
        .query_async(&mut redis)
        .await
        .unwrap();
    traffic.acked_at_least(traffic.total / 2).await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("pubsub 33554432 8388608 60")
        .query_async(&mut redis)
        .await
        .unwrap();
    // Evicted, then subscribed again: awaited on the gateway's counter.
    let deadline = tokio::time::Instant::now() + crate::harness::WAIT;
    while metric(&stack.gateways[1].http(), RECONNECTS).await <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscriber was never evicted and resubscribed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    finish(
        traffic,
        &stack,
        "pub/sub evicted (client-output-buffer-limit)",
    )
    .await;
}

#[tokio::test]
async fn drill_canvas_api_restarted() {
    let mut stack = Stack::start(2, DRILL).await;
    let traffic = Traffic::start(players_on(&stack).await, PLACEMENTS, PACE);
    traffic.acked_at_least(traffic.total / 3).await;
    let addr = stack.api.addr;
    stack.api.kill9_in_place().await;
    // Down for a moment while the players keep placing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut env: Vec<(&str, String)> = DRILL.iter().map(|(k, v)| (*k, v.to_string())).collect();
    env.push(("REDIS_URL", stack.redis.url()));
    env.push(("LISTEN_ADDR", addr.to_string()));
    stack.api = spawn_on(&env).await;
    let players = finish(traffic, &stack, "canvas-api killed, back after 0.5 s").await;
    assert!(
        players.iter().any(|p| p.refused > 0),
        "no placement met the outage"
    );
}

#[tokio::test]
async fn drill_redis_crashed_and_restarted() {
    let dir = temp_dir("redis-aof");
    let redis = RedisServer::start_durable(&dir).await;
    let mut stack = Stack::start_on(redis, 2, DRILL).await;
    let traffic = Traffic::start(players_on(&stack).await, PLACEMENTS, PACE);
    traffic.acked_at_least(traffic.total / 3).await;
    stack.redis.kill9().await;
    // The gateways notice: not ready while their subscription is gone.
    let http = http::client();
    let gateway = stack.gateways[1].http();
    let deadline = tokio::time::Instant::now() + crate::harness::WAIT;
    loop {
        let status = http
            .get(format!("{gateway}/readyz"))
            .send()
            .await
            .map(|r| r.status());
        if matches!(status, Ok(s) if s == 503) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz stayed {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.redis.start_again().await;
    let players = finish(traffic, &stack, "Redis killed, restarted from its AOF").await;
    assert!(
        players.iter().all(|p| p.closes.is_empty()),
        "the gateways kept every WebSocket through the outage"
    );
    assert!(
        players.iter().any(|p| p.refused > 0),
        "no placement met the outage"
    );
}

#[tokio::test]
async fn drill_redis_emptied_while_subscribed() {
    let stack = Stack::start(2, DRILL).await;
    let traffic = Traffic::start(players_on(&stack).await, PLACEMENTS, PACE);
    traffic.acked_at_least(traffic.total / 3).await;
    // The operator empties Redis; the subscriptions stay up, so only the
    // seqs starting over (each looks like a duplicate) can tell.
    let mut redis = stack.redis.conn().await;
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut redis)
        .await
        .unwrap();
    let mut players = traffic.finish().await;
    // What was stored before is gone, so only the views are checked: each
    // player was told to refetch and holds the board as it is now.
    verify_views(&mut players, &stack.gateways[0].http()).await;
    assert!(
        players.iter().all(|p| p.refetches > 0),
        "every player was told to resync"
    );
    report_recovery("Redis emptied (FLUSHALL) while subscribed", &players);
}

/// A client away while Redis was emptied, back after the new seqs passed
/// its own: the seq alone cannot tell it, the epoch does.
#[tokio::test]
async fn a_client_away_while_redis_was_emptied_is_told_by_the_epoch() {
    let stack = Stack::start(1, NO_COOLDOWN).await;
    let api = stack.api.http();
    http::write_many(&api, 5, 0).await;
    let (_, _, seq, _, before) = canvas_bin_with_epoch(&api).await;
    assert_eq!(seq, 5);
    let updates = |since: u64, epoch: &str| {
        let url = format!("{api}/api/updates?since={since}&epoch={epoch}");
        async move {
            http::client()
                .get(url)
                .send()
                .await
                .expect("GET /api/updates")
        }
    };
    assert_eq!(updates(5, &before).await.status(), 200);

    let mut redis = stack.redis.conn().await;
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut redis)
        .await
        .unwrap();
    http::write_many(&api, 8, 1).await;

    // Without the epoch, seqs 6..=8 of the new board pass for the rest of
    // the old one...
    let blind: protocol::http::UpdatesPage = http::client()
        .get(format!("{api}/api/updates?since=5"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(blind.latest_seq, 8);
    assert_ne!(blind.epoch, before, "emptied Redis, new epoch");
    // ...with it, the client is told to fetch the board again.
    let (status, body) = http::expect_error(updates(5, &before).await).await;
    assert_eq!(status, 410, "{body:?}");
    let (_, _, seq, rgb, after) = canvas_bin_with_epoch(&api).await;
    assert_eq!((seq, after.as_str()), (8, blind.epoch.as_str()));
    // Row 0 went with the old board; row 1 is the new one's.
    assert_eq!(pixel_at(&rgb, 1000, 0, 0), [0xFF; 3]);
    assert_eq!(pixel_at(&rgb, 1000, 0, 1), [0, 0, 0]);
    assert_eq!(updates(8, &after).await.status(), 200);
    // A malformed epoch is a client error, not a reset.
    let (status, _) = http::expect_error(updates(8, "not%20one").await).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn drill_redis_frozen() {
    let stack = Stack::start(2, DRILL).await;
    let traffic = Traffic::start(players_on(&stack).await, PLACEMENTS, PACE);
    traffic.acked_at_least(traffic.total / 3).await;
    let pid = stack.redis.pid().to_string();
    let stop = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status();
    assert!(stop.expect("kill").success());
    // Unreachable for 3 s: longer than the store's 2 s response timeout.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cont = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    assert!(cont.expect("kill").success());
    let players = finish(traffic, &stack, "Redis frozen (SIGSTOP) for 3 s").await;
    assert!(
        players.iter().all(|p| p.closes.is_empty()),
        "the gateways kept every WebSocket through the outage"
    );
    assert!(
        players.iter().any(|p| p.refused > 0),
        "placements waiting on a frozen Redis were answered `unavailable`"
    );
}

#[tokio::test]
async fn clients_that_stop_reading_cost_bounded_memory_and_are_told_to_resync() {
    let (server, _dir) = single_process(
        "slow",
        &[
            // One frame per event where it can: the fastest lag.
            ("FANOUT_WINDOW_MS", "0"),
            // 32 KiB in the kernel per stalled client, then it waits.
            ("SEND_BUFFER_BYTES", "16384"),
            // Their 4008 waits in the gateway until they read again, however
            // long a busy machine makes the writing below take.
            (
                "WRITE_TIMEOUT_SECS",
                &STALLED_WRITE_TIMEOUT.as_secs().to_string(),
            ),
            // The writer places as fast as acks come, far past a person's
            // message rate, from the same address as everyone here.
            ("MESSAGES_PER_SEC_PER_IP", "0"),
        ],
    )
    .await;
    const STALLED: usize = 100;
    const WRITES: u32 = 6_000;
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        stalled.push(stalled_client(&server).await);
    }
    let mut watcher = WsClient::connect(&server.ws(), Some("watcher")).await;
    let before = rss_bytes(server.pid());

    // 6,000 events, one at a time so that each is a frame of its own: more
    // than the hub's ring of 4,096 frames plus what the kernel holds.
    let mut writer = WsClient::connect(&server.ws(), Some("writer")).await;
    let writing = tokio::spawn(async move {
        for n in 0..WRITES {
            writer
                .place(
                    i64::from(n % 1000),
                    i64::from(n / 1000),
                    "#000000",
                    u64::from(n),
                )
                .await;
            let reply = writer.reply_to(u64::from(n)).await;
            assert!(matches!(reply, ServerMessage::Ack { .. }), "{reply:?}");
        }
    });
    // A client that reads keeps up the whole time.
    let mut seen = 0;
    while seen < WRITES {
        if let ServerMessage::PixelUpdated(_) = watcher
            .expect("pixels", |m| matches!(m, ServerMessage::PixelUpdated(_)))
            .await
        {
            seen += 1;
        }
    }
    writing.await.expect("writer");
    let grown = rss_bytes(server.pid()).saturating_sub(before);
    eprintln!(
        "{STALLED} stalled clients: the gateway grew {} KiB",
        grown / 1024
    );
    // Queued per client, the frames would be ~100 MB; the ring is shared
    // and a stalled socket holds at most its write buffer.
    assert!(
        grown < 24 * 1024 * 1024,
        "the gateway grew {} MB for {STALLED} stalled clients",
        grown / (1024 * 1024)
    );

    // When they read again, all at once, what they find ends with "too
    // slow, resync". How soon depends on the kernel, not the gateway: the
    // gateway's side learns that a stalled window opened again from its
    // next zero-window probe, and the probes' interval doubles for as long
    // as the client stayed stalled (up to two minutes; read one after the
    // other, the clients waited 3 s, 7 s, 14 s, 28 s, ... on a busy
    // machine). Each gateway task waits in one write, which ends within the
    // write timeout: with the close, or by dropping the socket (`None`).
    let started = tokio::time::Instant::now();
    let within = STALLED_WRITE_TIMEOUT + crate::harness::WAIT;
    let ends =
        futures_util::future::join_all(stalled.into_iter().map(|ws| close_code_at_end(ws, within)))
            .await;
    eprintln!(
        "the stalled clients' streams ended within {:?}",
        started.elapsed()
    );
    for (client, end) in ends.into_iter().enumerate() {
        assert_eq!(
            end,
            Some(protocol::close::TOO_SLOW_RESYNC),
            "stalled client {client}"
        );
    }
}

/// How long the gateway waits on a stalled client's write in
/// [`clients_that_stop_reading_cost_bounded_memory_and_are_told_to_resync`]:
/// longer than a busy machine takes for the writing, so every 4008 waits
/// for its client to read again.
const STALLED_WRITE_TIMEOUT: Duration = Duration::from_secs(300);

type RawClient = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A WebSocket that will read nothing until the test says so, with a small
/// receive buffer, like a slow phone's.
async fn stalled_client(server: &Process) -> RawClient {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(server.addr).await.expect("connect");
    let (ws, _) = tokio_tungstenite::client_async(server.ws(), stream)
        .await
        .expect("handshake");
    ws
}

/// Reads a client's stream to its end: the close code it ended with, or
/// `None` when it ended without a close frame. Panics after `within`.
async fn close_code_at_end(mut ws: RawClient, within: Duration) -> Option<u16> {
    tokio::time::timeout(within, async {
        while let Some(frame) = futures_util::StreamExt::next(&mut ws).await {
            match frame {
                Ok(tokio_tungstenite::tungstenite::Message::Close(f)) => {
                    return f.map(|f| u16::from(f.code));
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the client's stream ends")
}

/// A client that reads nothing at all, while its socket is full, is dropped
/// after `WRITE_TIMEOUT_SECS`: no close frame can reach it any more.
#[tokio::test]
async fn a_client_whose_socket_takes_nothing_is_dropped_after_the_write_timeout() {
    let (server, _dir) = single_process(
        "write-timeout",
        &[
            ("FANOUT_WINDOW_MS", "0"),
            ("SEND_BUFFER_BYTES", "4096"),
            ("WRITE_TIMEOUT_SECS", "1"),
            ("MESSAGES_PER_SEC_PER_IP", "0"),
        ],
    )
    .await;
    let stalled_since = tokio::time::Instant::now();
    let stalled = stalled_client(&server).await;
    let mut writer = WsClient::connect(&server.ws(), Some("writer")).await;
    assert_eq!(metric(&server.http(), "gateway_connections").await, 2);
    // ~150 KB of events: far more than the stalled socket's kernel buffers,
    // far less than the hub's ring (so it is not closed as too slow).
    for n in 0..1_000u32 {
        writer
            .place(
                i64::from(n % 1000),
                i64::from(n / 1000),
                "#000000",
                u64::from(n),
            )
            .await;
        let reply = writer.reply_to(u64::from(n)).await;
        assert!(matches!(reply, ServerMessage::Ack { .. }), "{reply:?}");
    }
    let deadline = tokio::time::Instant::now() + crate::harness::WAIT;
    while metric(&server.http(), "gateway_connections").await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled client was not dropped:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What it finds when it reads again: events, then the end, no close.
    // The kernel delivers what the dropped socket still held at its next
    // zero-window probe, whose interval is at most as long as the client
    // has been stalled.
    assert_eq!(
        close_code_at_end(stalled, stalled_since.elapsed() + crate::harness::WAIT).await,
        None,
        "no close frame could be written to it"
    );
}

#[tokio::test]
async fn an_overloaded_gateway_sheds_placements_at_once_and_stays_responsive() {
    let stack = Stack::start(
        1,
        &[
            ("COOLDOWN_MS", "0"),
            ("PALETTE", "any"),
            ("MAX_PLACEMENTS_IN_FLIGHT", "4"),
        ],
    )
    .await;
    let gateway = &stack.gateways[0];
    let mut clients = Vec::new();
    for i in 0..10 {
        clients.push(WsClient::connect(&gateway.ws(), Some(&format!("eager-{i}"))).await);
    }
    // The store stops answering: the first four placements take the
    // gateway's four slots and wait; every later one is shed.
    let pid = stack.redis.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .expect("kill")
            .success()
    );
    for (c, client) in clients.iter_mut().enumerate() {
        for k in 0..10 {
            client.place(c as i64, k, "#112233", k as u64).await;
        }
    }
    let mut replies: Vec<Vec<(u64, ServerMessage)>> = vec![Vec::new(); clients.len()];
    let mut shed = 0;
    let deadline = tokio::time::Instant::now() + crate::harness::WAIT;
    while shed < 96 {
        assert!(tokio::time::Instant::now() < deadline, "only {shed} shed");
        for (c, client) in clients.iter_mut().enumerate() {
            if let Some(m) = client.next_within(Duration::from_millis(10)).await
                && let ServerMessage::Error {
                    id: Some(id),
                    code,
                    retry_after_ms,
                    ..
                } = &m
            {
                assert_eq!(*code, ErrorCode::Unavailable, "{m:?}");
                assert!(
                    retry_after_ms.is_some(),
                    "a shed placement says when to retry"
                );
                shed += 1;
                replies[c].push((*id, m.clone()));
            }
        }
    }
    // Still responsive while its slots are taken.
    clients[0]
        .send_json(serde_json::json!({"type": "ping"}))
        .await;
    clients[0]
        .expect("pong", |m| matches!(m, ServerMessage::Pong))
        .await;
    assert_eq!(
        metric(&gateway.http(), "gateway_placements_shed_total").await,
        96
    );

    assert!(
        std::process::Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .expect("kill")
            .success()
    );
    // The four that waited are answered now.
    let mut acked = Vec::new();
    for (c, client) in clients.iter_mut().enumerate() {
        for k in 0..10u64 {
            if replies[c].iter().any(|(id, _)| *id == k) {
                continue;
            }
            match client.reply_to(k).await {
                ServerMessage::Ack { .. } => acked.push((c as u32, k as u32)),
                other => panic!("placement {k} of client {c}: {other:?}"),
            }
        }
    }
    assert_eq!(acked.len(), 4);
    let (width, _, seq, rgb) = canvas_bin(&gateway.http()).await;
    assert_eq!(seq, 4, "only the four that were not shed were stored");
    for (x, y) in acked {
        assert_eq!(pixel_at(&rgb, width, x, y), [0x11, 0x22, 0x33]);
    }
}
