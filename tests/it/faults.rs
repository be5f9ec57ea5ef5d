//! Faults on real processes: the store path or the subscription breaks
//! mid-traffic, and nothing acknowledged may be lost to any client.

use std::collections::BTreeSet;
use std::time::Duration;

use protocol::{ErrorCode, ServerMessage};

use crate::harness::http::{self, canvas_bin, pixel_at};
use crate::harness::{Process, Stack, WsClient};

const NO_COOLDOWN: &[(&str, &str)] = &[("COOLDOWN_MS", "0"), ("GAP_GRACE_MS", "100")];

/// Every `seq` a client was sent, until it has seen `upto`.
async fn seqs_until(client: &mut WsClient, upto: u64) -> BTreeSet<u64> {
    let mut seen = BTreeSet::new();
    while seen.last().is_none_or(|&s| s < upto) || seen.len() < upto as usize {
        match client
            .expect("pixels", |m| matches!(m, ServerMessage::PixelUpdated(_)))
            .await
        {
            ServerMessage::PixelUpdated(e) => {
                seen.insert(e.seq);
            }
            _ => unreachable!(),
        }
    }
    seen
}

#[tokio::test]
async fn a_killed_subscription_is_resubscribed_and_its_gap_repaired() {
    let stack = Stack::start(2, NO_COOLDOWN).await;
    let mut writer = WsClient::connect(&stack.gateways[0].ws(), Some("writer")).await;
    let mut watcher = WsClient::connect(&stack.gateways[1].ws(), Some("watcher")).await;
    let mut redis = stack.redis.conn().await;
    let mut acked = 0u64;
    for i in 0..60u64 {
        if i == 20 {
            // Both gateways lose their subscriptions mid-traffic.
            let killed: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query_async(&mut redis)
                .await
                .unwrap();
            assert!(killed >= 2, "killed {killed}");
        }
        writer.place(i as i64, 3, "#000000", i).await;
        match writer.reply_to(i).await {
            ServerMessage::Ack { seq, .. } => acked = acked.max(seq),
            other => panic!("placement {i}: {other:?}"),
        }
    }
    assert_eq!(acked, 60);
    let seen = seqs_until(&mut watcher, 60).await;
    assert_eq!(seen, (1..=60).collect::<BTreeSet<_>>());
}

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
