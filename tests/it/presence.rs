//! Presence across gateways: `pod:<id>:users` keys with a TTL, `stats` and
//! `user_list` aggregated over every pod.

use protocol::ServerMessage;
use protocol::presence::PodUsers;
use redis::AsyncCommands;

use crate::harness::{Process, Stack, WsClient};

/// Waits for a `stats` frame counting `n` users.
async fn expect_active(client: &mut WsClient, n: u64) {
    client
        .expect(
            &format!("stats with {n} users"),
            |m| matches!(m, ServerMessage::Stats { active_users, .. } if *active_users == n),
        )
        .await;
}

#[tokio::test]
async fn presence_keys_carry_a_ttl_and_stats_count_users_of_both_gateways() {
    let stack = Stack::start(2, &[("PRESENCE_TTL_SECS", "30")]).await;
    let mut on_a = WsClient::connect(&stack.gateways[0].ws(), Some("ann")).await;
    let _also_a = WsClient::connect(&stack.gateways[0].ws(), Some("ann")).await;
    let mut on_b = WsClient::connect(&stack.gateways[1].ws(), Some("ben")).await;
    expect_active(&mut on_a, 3).await;
    expect_active(&mut on_b, 3).await;
    let list = on_b
        .expect(
            "user_list with both names",
            |m| matches!(m, ServerMessage::UserList { users, .. } if users.len() == 2),
        )
        .await;
    match list {
        ServerMessage::UserList { users, total, .. } => {
            assert_eq!(users, vec!["ann".to_owned(), "ben".to_owned()]);
            assert_eq!(total, 2);
        }
        _ => unreachable!(),
    }

    let mut redis = stack.redis.conn().await;
    let raw: String = redis.get("pod:gw-0:users").await.unwrap();
    let record: PodUsers = serde_json::from_str(&raw).unwrap();
    assert_eq!(record.count, 2);
    assert_eq!(record.usernames, vec!["ann".to_owned()]);
    let ttl: i64 = redis.pttl("pod:gw-0:users").await.unwrap();
    assert!(ttl > 0 && ttl <= 30_000, "pttl {ttl}");
    let pods: Vec<String> = redis.smembers("pods").await.unwrap();
    assert_eq!(pods.len(), 2);
}

#[tokio::test]
async fn a_killed_gateways_users_disappear_once_its_key_expires() {
    let mut stack = Stack::start(1, &[("PRESENCE_TTL_SECS", "2")]).await;
    let doomed = Process::spawn(
        "server",
        &stack.gateway_env("gw-doomed", &[("PRESENCE_TTL_SECS", "2")]),
    )
    .await;
    crate::harness::http::wait_ready(&doomed.http()).await;
    let mut watcher = WsClient::connect(&stack.gateways[0].ws(), Some("watcher")).await;
    let _victim1 = WsClient::connect(&doomed.ws(), Some("v1")).await;
    let _victim2 = WsClient::connect(&doomed.ws(), Some("v2")).await;
    expect_active(&mut watcher, 3).await;

    doomed.kill9().await;
    // No goodbye was said: the count corrects when the key expires.
    expect_active(&mut watcher, 1).await;
    let mut redis = stack.redis.conn().await;
    let exists: bool = redis.exists("pod:gw-doomed:users").await.unwrap();
    assert!(!exists);
    stack.gateways.clear();
}

#[tokio::test]
async fn a_gateway_stopped_with_sigterm_removes_its_key_at_once_and_closes_with_1001() {
    let mut stack = Stack::start(2, &[("PRESENCE_TTL_SECS", "60")]).await;
    let leaving = stack.gateways.pop().unwrap();
    let mut stays = WsClient::connect(&stack.gateways[0].ws(), Some("stays")).await;
    let mut goes = WsClient::connect(&leaving.ws(), Some("goes")).await;
    expect_active(&mut stays, 2).await;

    let stopping = tokio::spawn(leaving.terminate());
    let frame = goes.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), protocol::close::GOING_AWAY);
    let status = stopping.await.unwrap();
    assert!(status.success(), "exit status {status:?}");

    let mut redis = stack.redis.conn().await;
    let exists: bool = redis.exists("pod:gw-1:users").await.unwrap();
    assert!(!exists, "the key outlived a graceful stop");
    // Well inside the 60 s TTL, the others already count one user.
    expect_active(&mut stays, 1).await;
}
