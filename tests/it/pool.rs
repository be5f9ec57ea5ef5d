//! Placement limits that hold across gateways: the per-user cooldown, the
//! pixel pool ("N pixels, one back every T", GCRA) and the per-IP pool,
//! each decided atomically in the store. Many concurrent attempts through
//! two gateways at once; the successes are counted.

use std::time::Duration;

use futures_util::future::join_all;
use protocol::{ErrorCode, ServerMessage};

use crate::harness::http::{expect_error, put_pixel};
use crate::harness::{Stack, WsClient};

/// Connections per gateway for the one user, and placements per connection.
const CONNECTIONS: usize = 3;
const EACH: u64 = 8;

/// Fires `EACH` placements on every client at once and tallies the
/// answers: (acks, refusals with `code`, shortest retry_after_ms).
async fn burst(clients: &mut [WsClient], code: ErrorCode) -> (usize, usize, u64) {
    for (c, client) in clients.iter_mut().enumerate() {
        for i in 0..EACH {
            let id = c as u64 * 100 + i;
            client.place(c as i64, i as i64, "#000000", id).await;
        }
    }
    let replies = join_all(
        clients
            .iter_mut()
            .enumerate()
            .map(|(c, client)| async move {
                let mut out = Vec::new();
                for i in 0..EACH {
                    out.push(client.reply_to(c as u64 * 100 + i).await);
                }
                out
            }),
    )
    .await;
    let (mut acks, mut refused, mut shortest) = (0, 0, u64::MAX);
    for reply in replies.into_iter().flatten() {
        match reply {
            ServerMessage::Ack { .. } => acks += 1,
            ServerMessage::Error {
                code: c,
                retry_after_ms,
                ..
            } if c == code => {
                refused += 1;
                let ms = retry_after_ms.expect("a refusal says when to retry");
                assert!(ms > 0);
                shortest = shortest.min(ms);
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
    (acks, refused, shortest)
}

/// `CONNECTIONS` clients on each of the stack's gateways; `user(i)` names
/// client i.
async fn clients(stack: &Stack, user: impl Fn(usize) -> String) -> Vec<WsClient> {
    let mut out = Vec::new();
    for i in 0..CONNECTIONS * stack.gateways.len() {
        let gw = &stack.gateways[i % stack.gateways.len()];
        out.push(WsClient::connect(&gw.ws(), Some(&user(i))).await);
    }
    out
}

#[tokio::test]
async fn a_user_cannot_exceed_the_cooldown_through_two_gateways_at_once() {
    let stack = Stack::start(2, &[("COOLDOWN_MS", "600000")]).await;
    let mut clients = clients(&stack, |_| "sam".into()).await;
    let (acks, refused, shortest) = burst(&mut clients, ErrorCode::Cooldown).await;
    assert_eq!(acks, 1);
    assert_eq!(refused, CONNECTIONS * 2 * EACH as usize - 1);
    assert!(shortest > 590_000, "{shortest}");
}

#[tokio::test]
async fn a_user_cannot_exceed_the_pool_through_two_gateways_at_once() {
    let stack = Stack::start(
        2,
        &[
            ("COOLDOWN_MS", "0"),
            ("POOL_SIZE", "5"),
            ("POOL_REFILL_MS", "600000"),
        ],
    )
    .await;
    let mut clients = clients(&stack, |_| "pia".into()).await;
    let (acks, refused, shortest) = burst(&mut clients, ErrorCode::Cooldown).await;
    assert_eq!(acks, 5);
    assert_eq!(refused, CONNECTIONS * 2 * EACH as usize - 5);
    // The next pixel is a whole refill away.
    assert!(shortest > 590_000, "{shortest}");
    // Another user has a pool of their own.
    let mut other = WsClient::connect(&stack.gateways[1].ws(), Some("ola")).await;
    other.place(30, 30, "#000000", 1).await;
    assert!(matches!(other.reply_to(1).await, ServerMessage::Ack { .. }));
    // The config tells clients of the pool.
    let config: protocol::http::CanvasConfig =
        crate::harness::http::get_json(&format!("{}/api/config", stack.api.http())).await;
    assert_eq!(
        (config.pool_size, config.pool_refill_ms),
        (Some(5), Some(600_000))
    );
}

#[tokio::test]
async fn the_pool_gives_a_pixel_back_after_each_refill() {
    let stack = Stack::start(
        1,
        &[
            ("COOLDOWN_MS", "0"),
            ("POOL_SIZE", "2"),
            // Long enough that the two placements after the refill cannot
            // straddle a second refill, even on a busy machine.
            ("POOL_REFILL_MS", "1500"),
        ],
    )
    .await;
    let base = stack.gateways[0].http();
    for x in 0..2 {
        assert_eq!(put_pixel(&base, x, 0, "#000000", "rae").await.status(), 200);
    }
    let (status, body) = expect_error(put_pixel(&base, 2, 0, "#000000", "rae").await).await;
    assert_eq!((status, body.error.code), (429, ErrorCode::Cooldown));
    let wait = body.error.retry_after_ms.expect("retry_after_ms");
    assert!(wait <= 1500, "{wait}");
    // After the time it names, exactly one pixel is back.
    tokio::time::sleep(Duration::from_millis(wait + 20)).await;
    assert_eq!(put_pixel(&base, 2, 0, "#000000", "rae").await.status(), 200);
    let (_, body) = expect_error(put_pixel(&base, 3, 0, "#000000", "rae").await).await;
    assert_eq!(body.error.code, ErrorCode::Cooldown);
}

#[tokio::test]
async fn the_ip_pool_holds_across_gateways_and_for_direct_http() {
    let stack = Stack::start(
        2,
        &[
            ("COOLDOWN_MS", "0"),
            ("IP_POOL_SIZE", "4"),
            ("IP_POOL_REFILL_MS", "600000"),
        ],
    )
    .await;
    // Every client is a different user from the same address (loopback).
    let mut clients = clients(&stack, |i| format!("user-{i}")).await;
    let (acks, refused, shortest) = burst(&mut clients, ErrorCode::RateLimited).await;
    assert_eq!(acks, 4);
    assert_eq!(refused, CONNECTIONS * 2 * EACH as usize - 4);
    assert!(shortest > 590_000, "{shortest}");
    let metrics = crate::harness::http::client()
        .get(format!("{}/metrics", stack.api.http()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("canvas_placements_ip_limited_total {refused}\n")),
        "{metrics}"
    );
    // A direct PUT to canvas-api is counted by its peer address: the same.
    let (status, body) =
        expect_error(put_pixel(&stack.api.http(), 9, 9, "#000000", "fresh").await).await;
    assert_eq!((status, body.error.code), (429, ErrorCode::RateLimited));
    // A gateway cannot be impersonated: an `ip` in a direct request is
    // ignored, so a made-up address does not get a fresh pool.
    let r = crate::harness::http::client()
        .put(format!("{}/api/pixel", stack.api.http()))
        .json(&serde_json::json!({"x": 9, "y": 9, "color": "#000000", "username": "fresh", "ip": "203.0.113.7"}))
        .send()
        .await
        .unwrap();
    let (_, body) = expect_error(r).await;
    assert_eq!(body.error.code, ErrorCode::RateLimited);
}

#[tokio::test]
async fn the_ip_pool_triggers_and_releases() {
    let stack = Stack::start(
        2,
        &[
            ("COOLDOWN_MS", "0"),
            ("IP_POOL_SIZE", "1"),
            ("IP_POOL_REFILL_MS", "300"),
        ],
    )
    .await;
    let mut a = WsClient::connect(&stack.gateways[0].ws(), Some("una")).await;
    let mut b = WsClient::connect(&stack.gateways[1].ws(), Some("uli")).await;
    a.place(1, 1, "#000000", 1).await;
    assert!(matches!(a.reply_to(1).await, ServerMessage::Ack { .. }));
    b.place(2, 2, "#000000", 1).await;
    let wait = match b.reply_to(1).await {
        ServerMessage::Error {
            code: ErrorCode::RateLimited,
            retry_after_ms: Some(ms),
            ..
        } => ms,
        other => panic!("expected rate_limited, got {other:?}"),
    };
    assert!(wait <= 300, "{wait}");
    // Released after the time it names, on the other gateway too.
    tokio::time::sleep(Duration::from_millis(wait + 20)).await;
    b.place(2, 2, "#000000", 2).await;
    assert!(matches!(b.reply_to(2).await, ServerMessage::Ack { .. }));
}

#[tokio::test]
async fn half_configured_pools_and_a_short_admin_token_stop_the_start() {
    use crate::harness::Process;
    for (bin, env, named) in [
        ("canvas-api", vec![("POOL_SIZE", "3")], "POOL_REFILL_MS"),
        ("server", vec![("IP_POOL_SIZE", "3")], "IP_POOL_REFILL_MS"),
        ("canvas-api", vec![("ADMIN_TOKEN", "short")], "ADMIN_TOKEN"),
        ("server", vec![("HISTORY_LEN", "0")], "HISTORY_LEN"),
    ] {
        let env: Vec<(&str, String)> = env.into_iter().map(|(k, v)| (k, v.to_owned())).collect();
        let (status, log) = Process::spawn_expecting_failure(bin, &env).await;
        assert!(!status.success(), "{bin} {env:?} started");
        assert!(log.contains(named), "{bin} {env:?}: {log}");
    }
}
