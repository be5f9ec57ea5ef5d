//! The Kubernetes shape on one machine (`scripts/cluster.sh`: Redis, two
//! canvas-api, three gateways, nginx round robin), reached only through the
//! load balancer: clients spread over every gateway see every pixel and are
//! all counted; a gateway stopped with SIGTERM, or killed, mid-traffic
//! hands its clients to the others without losing an acknowledged pixel; a
//! killed gateway drops out of the count when its presence key expires.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use protocol::{ServerMessage, close};

use crate::harness::cluster::Cluster;
use crate::harness::http::{canvas_bin, pixel_at};
use crate::harness::player::{
    Player, Traffic, color_for, join_players, pod_of, report_recovery, verify,
};
use crate::harness::{WAIT, WsClient};

/// Reads `c` until a `stats` message counts `users`.
async fn await_active_users(c: &mut WsClient, users: u64) {
    c.expect(
        &format!("stats with {users} active users"),
        |m| matches!(m, ServerMessage::Stats { active_users, .. } if *active_users == users),
    )
    .await;
}

#[tokio::test]
async fn clients_spread_over_every_gateway_see_every_pixel_and_are_all_counted() {
    let cluster = Cluster::up(&[("COOLDOWN_MS", "0"), ("PALETTE", "any")]).await;
    let mut clients = Vec::new();
    for i in 0..9 {
        clients.push(WsClient::connect(&cluster.ws(), Some(&format!("spread-{i}"))).await);
    }
    let mut per_pod: BTreeMap<String, usize> = BTreeMap::new();
    for c in &clients {
        *per_pod.entry(pod_of(c)).or_default() += 1;
    }
    assert_eq!(
        per_pod.keys().cloned().collect::<Vec<_>>(),
        ["gateway-1", "gateway-2", "gateway-3"],
        "round robin reaches every gateway: {per_pod:?}"
    );

    for c in &mut clients {
        await_active_users(c, 9).await;
    }

    for (i, c) in clients.iter_mut().enumerate() {
        c.place(i as i64, 7, &color_for(i as u32), i as u64).await;
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let reply = c.reply_to(i as u64).await;
        assert!(matches!(reply, ServerMessage::Ack { .. }), "{reply:?}");
    }
    for c in &mut clients {
        for i in 0..9u32 {
            let m = c
                .expect(
                    "a placed pixel",
                    |m| matches!(m, ServerMessage::PixelUpdated(e) if e.x == i && e.y == 7),
                )
                .await;
            let ServerMessage::PixelUpdated(e) = m else {
                unreachable!()
            };
            assert_eq!(e.color.to_string(), color_for(i));
        }
    }
    let (width, _, _, rgb) = canvas_bin(&cluster.url()).await;
    for i in 0..9u32 {
        let [r, g, b] = pixel_at(&rgb, width, i, 7);
        assert_eq!(format!("#{r:02X}{g:02X}{b:02X}"), color_for(i));
    }
}

/// A small board: the players' views are compared with it pixel by pixel.
const SMALL_BOARD: [(&str, &str); 4] = [
    ("COOLDOWN_MS", "0"),
    ("PALETTE", "any"),
    ("CANVAS_WIDTH", "64"),
    ("CANVAS_HEIGHT", "64"),
];

#[tokio::test]
async fn a_gateway_stopped_mid_traffic_hands_its_clients_over_without_losing_a_pixel() {
    let mut env = SMALL_BOARD.to_vec();
    env.push(("SHUTDOWN_DRAIN_MS", "1000"));
    let cluster = Cluster::up(&env).await;
    let redis = redis::Client::open(cluster.redis_url()).expect("redis URL");
    let mut user_events = redis.get_async_pubsub().await.expect("subscribe");
    user_events
        .subscribe(protocol::names::USER_EVENTS_CHANNEL)
        .await
        .expect("subscribe");

    const PLAYERS: u32 = 6;
    // Everyone joins before the first placement, through the one URL.
    let players = join_players(PLAYERS, &[cluster.ws()], &cluster.url()).await;
    let traffic = Traffic::start(players, 60, Duration::from_millis(25));

    // A third of the way in, stop gateway-2 the way Kubernetes does.
    traffic.acked_at_least(traffic.total / 3).await;
    cluster
        .stop("gateway-2", "TERM", Duration::from_secs(15))
        .await;
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let exists: bool = redis::cmd("EXISTS")
        .arg(protocol::names::pod_users_key("gateway-2"))
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert!(!exists, "gateway-2's presence key outlived it");
    let mut messages = user_events.on_message();
    tokio::time::timeout(WAIT, async {
        while let Some(m) = messages.next().await {
            let payload: String = m.get_payload().expect("text");
            if payload.contains("gateway-2") {
                return;
            }
        }
    })
    .await
    .expect("gateway-2 announced its leaving on user-events");
    drop(messages);

    let mut players = traffic.finish().await;
    let moved: Vec<&Player> = players
        .iter()
        .filter(|p| p.pods[0] == "gateway-2")
        .collect();
    assert!(!moved.is_empty(), "round robin put someone on gateway-2");
    for p in &moved {
        assert_eq!(
            p.closes.first(),
            Some(&Some(close::GOING_AWAY)),
            "player {} was told to reconnect",
            p.index
        );
        assert!(
            p.pods[1..].iter().all(|pod| pod != "gateway-2"),
            "player {} came back elsewhere: {:?}",
            p.index,
            p.pods
        );
    }

    // Every acknowledged pixel is on the board and every view equals it.
    let acked = verify(&mut players, &cluster.url()).await;
    assert_eq!(acked.len(), (PLAYERS * 60) as usize);
    report_recovery(
        "gateway stopped (SIGTERM, 1 s drain) behind nginx",
        &players,
    );

    // And every player is counted once more, on the two gateways left.
    let p = &mut players[0];
    let deadline = tokio::time::Instant::now() + WAIT;
    while p.active_users != Some(u64::from(PLAYERS)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stats never counted {PLAYERS} users again (last {:?})",
            p.active_users
        );
        p.step(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_gateway_killed_mid_traffic_loses_no_acknowledged_pixel() {
    let cluster = Cluster::up(&SMALL_BOARD).await;
    let players = join_players(6, &[cluster.ws()], &cluster.url()).await;
    let traffic = Traffic::start(players, 60, Duration::from_millis(25));
    traffic.acked_at_least(traffic.total / 3).await;
    cluster.stop("gateway-1", "KILL", WAIT).await;
    let mut players = traffic.finish().await;
    let moved: Vec<&Player> = players
        .iter()
        .filter(|p| p.pods[0] == "gateway-1")
        .collect();
    assert!(!moved.is_empty(), "round robin put someone on gateway-1");
    for p in &moved {
        // No close frame: the process died.
        assert_eq!(p.closes.first(), Some(&None), "player {}", p.index);
        assert!(
            p.pods[1..].iter().all(|pod| pod != "gateway-1"),
            "{:?}",
            p.pods
        );
    }
    let acked = verify(&mut players, &cluster.url()).await;
    assert_eq!(acked.len(), 6 * 60);
    report_recovery("gateway killed (kill -9) behind nginx", &players);
}

#[tokio::test]
async fn a_killed_gateway_drops_out_of_the_count_when_its_key_expires() {
    let cluster = Cluster::up(&[("PRESENCE_TTL_SECS", "2")]).await;
    let mut clients = Vec::new();
    for i in 0..6 {
        clients.push(WsClient::connect(&cluster.ws(), Some(&format!("count-{i}"))).await);
    }
    for c in &mut clients {
        await_active_users(c, 6).await;
    }
    // Gateway-3's clients stay connected until the kill: closing them first
    // would let gateway-3 lower its own count, and the others would reach
    // the expected total without the key ever expiring.
    let (on_3, mut clients): (Vec<WsClient>, Vec<WsClient>) =
        clients.into_iter().partition(|c| pod_of(c) == "gateway-3");
    assert!(!on_3.is_empty(), "round robin put someone on gateway-3");

    cluster.stop("gateway-3", "KILL", WAIT).await;
    let redis = redis::Client::open(cluster.redis_url()).expect("redis URL");
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let key = protocol::names::pod_users_key("gateway-3");
    // Refreshed every third of its TTL, the key outlives a SIGKILL...
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert!(exists, "a killed gateway cannot delete its own key");
    // ...until it expires, and the others correct the count.
    let left = (6 - on_3.len()) as u64;
    for c in &mut clients {
        await_active_users(c, left).await;
    }
    drop(on_3);
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert!(!exists, "the key expired");
}
