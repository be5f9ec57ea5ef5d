//! The Kubernetes shape on one machine (`scripts/cluster.sh`: Redis, two
//! canvas-api, three gateways, nginx round robin), reached only through the
//! load balancer: clients spread over every gateway see every pixel and are
//! all counted; a gateway stopped with SIGTERM mid-traffic hands its
//! clients to the others without losing an acknowledged pixel; a gateway
//! killed outright drops out of the count when its presence key expires.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use protocol::http::UpdatesPage;
use protocol::{ServerMessage, close};
use tokio::sync::Notify;

use crate::harness::client::Ended;
use crate::harness::cluster::Cluster;
use crate::harness::http::{canvas_bin, client, pixel_at};
use crate::harness::{WAIT, WsClient};

fn pod_of(c: &WsClient) -> String {
    match &c.hello {
        ServerMessage::Connected { pod_id, .. } => pod_id.clone(),
        _ => unreachable!(),
    }
}

fn color_for(i: u32) -> String {
    format!("#{:06X}", (i.wrapping_mul(2_654_435_761)) & 0xFF_FFFF)
}

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

/// A player that places pixels and keeps its own view of the board, and on
/// losing its socket reconnects through the load balancer and catches up
/// from `/api/updates`, as the web client does.
struct Player {
    index: u32,
    ws_url: String,
    api_url: String,
    ws: WsClient,
    /// Pods connected to, in order.
    pods: Vec<String>,
    /// Close codes of the connections that ended.
    closes: Vec<Option<u16>>,
    /// Highest seq per pixel, and its color.
    view: HashMap<(u32, u32), (u64, String)>,
    /// Every seq up to this one has been applied. Events arrive in any
    /// order (gateways pass them on at once), so the highest seq seen is
    /// not a safe place to catch up from; this is, as in the web client.
    seen_upto: u64,
    /// Seqs applied above `seen_upto + 1`.
    ahead: BTreeSet<u64>,
    /// The last `stats` count.
    active_users: Option<u64>,
    /// What each reconnect did, for failure messages.
    catch_ups: Vec<String>,
    /// (x, y) -> (seq, color) of each acknowledged placement.
    acked: BTreeMap<(u32, u32), (u64, String)>,
}

impl Player {
    async fn join(index: u32, ws_url: &str, api_url: &str) -> Player {
        let ws = WsClient::connect(ws_url, Some(&format!("player-{index}"))).await;
        let mut p = Player {
            index,
            ws_url: ws_url.to_owned(),
            api_url: api_url.to_owned(),
            pods: vec![pod_of(&ws)],
            ws,
            closes: Vec::new(),
            view: HashMap::new(),
            seen_upto: 0,
            ahead: BTreeSet::new(),
            active_users: None,
            catch_ups: Vec::new(),
            acked: BTreeMap::new(),
        };
        p.seen_upto = connected_seq(&p.ws);
        p
    }

    fn apply(&mut self, m: &ServerMessage) {
        match m {
            ServerMessage::PixelUpdated(e) => {
                let slot = self.view.entry((e.x, e.y)).or_insert((0, String::new()));
                if e.seq > slot.0 {
                    *slot = (e.seq, e.color.to_string());
                }
                if e.seq > self.seen_upto {
                    self.ahead.insert(e.seq);
                }
                while self.ahead.remove(&(self.seen_upto + 1)) {
                    self.seen_upto += 1;
                }
            }
            ServerMessage::Stats { active_users, .. } => self.active_users = Some(*active_users),
            ServerMessage::Resync { .. } => panic!("unexpected resync: {m:?}"),
            _ => {}
        }
    }

    /// Reconnects (the load balancer picks a live gateway), then fetches
    /// what happened since the last event seen. The socket comes first, so
    /// nothing between the two is missed.
    async fn reconnect(&mut self) {
        self.ws = WsClient::connect(&self.ws_url, Some(&format!("player-{}", self.index))).await;
        self.pods.push(pod_of(&self.ws));
        let http = client();
        let mut pages = Vec::new();
        let from = self.seen_upto;
        loop {
            let page: UpdatesPage = http
                .get(format!(
                    "{}/api/updates?since={}",
                    self.api_url, self.seen_upto
                ))
                .send()
                .await
                .expect("GET /api/updates")
                .error_for_status()
                .expect("updates page")
                .json()
                .await
                .expect("updates JSON");
            let seq = |m: Option<&ServerMessage>| match m {
                Some(ServerMessage::PixelUpdated(e)) => Some(e.seq),
                _ => None,
            };
            pages.push((
                seq(page.events.first()),
                seq(page.events.last()),
                page.latest_seq,
            ));
            for e in &page.events {
                self.apply(e);
            }
            if !page.has_more {
                break;
            }
        }
        self.catch_ups.push(format!(
            "from seq {from}, connected at {}, pages (first, last, latest) {pages:?}",
            connected_seq(&self.ws)
        ));
    }

    /// The next message, reconnecting first when the socket has ended.
    async fn step(&mut self, limit: Duration) -> Option<ServerMessage> {
        match self.ws.try_next_within(limit).await {
            Ok(Some(m)) => {
                self.apply(&m);
                Some(m)
            }
            Ok(None) => None,
            Err(Ended(frame)) => {
                self.closes.push(frame.map(|f| u16::from(f.code)));
                self.reconnect().await;
                None
            }
        }
    }

    /// Places `count` pixels in its own column, one every `every`, each
    /// retried until answered; `started` counts the ones answered.
    async fn play(&mut self, count: u32, every: Duration, answered: &AtomicUsize, tick: &Notify) {
        let mut pace = tokio::time::interval(every);
        for k in 0..count {
            pace.tick().await;
            let (x, y) = (self.index, k);
            let color = color_for(self.index * 10_000 + k);
            let id = u64::from(k);
            'answer: loop {
                if !self.ws.try_send_text(
                    serde_json::json!({"type": "pixel_update", "x": x, "y": y, "color": color, "id": id})
                        .to_string(),
                ).await {
                    self.step(WAIT).await;
                    continue;
                }
                let deadline = tokio::time::Instant::now() + WAIT;
                let connection = self.pods.len();
                while tokio::time::Instant::now() < deadline {
                    let left = deadline - tokio::time::Instant::now();
                    match self.step(left).await {
                        Some(ServerMessage::Ack {
                            id: Some(i), seq, ..
                        }) if i == id => {
                            self.acked.insert((x, y), (seq, color.clone()));
                            break 'answer;
                        }
                        Some(ServerMessage::Error {
                            id: Some(i),
                            code,
                            message,
                            ..
                        }) if i == id => {
                            panic!(
                                "placement {id} of player {} refused: {code:?} {message}",
                                self.index
                            )
                        }
                        // The socket ended before the answer: place again
                        // on the new one (same pixel, same color).
                        _ if self.pods.len() != connection => continue 'answer,
                        _ => {}
                    }
                }
                panic!(
                    "player {}: no answer to placement {id} within {WAIT:?}",
                    self.index
                );
            }
            answered.fetch_add(1, Ordering::SeqCst);
            tick.notify_waiters();
        }
    }

    /// Reads until every pixel in `expected` is in the view.
    async fn converge(&mut self, expected: &BTreeMap<(u32, u32), (u64, String)>) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let missing: Vec<_> = expected
                .iter()
                // A placement whose first try went unanswered may have been
                // stored after its retry too: the same color, a later seq.
                .filter(|(k, (seq, color))| {
                    self.view.get(k).is_none_or(|(s, c)| s < seq || c != color)
                })
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "player {} is missing {} acknowledged pixels, e.g. {:?}; it has {:?} there (pods {:?}, closes {:?}, seen up to {}, catch-ups {:?})",
                self.index,
                missing.len(),
                &missing[..missing.len().min(5)],
                missing
                    .iter()
                    .take(5)
                    .map(|(k, _)| self.view.get(k))
                    .collect::<Vec<_>>(),
                self.pods,
                self.closes,
                self.seen_upto,
                self.catch_ups
            );
            self.step(Duration::from_millis(200)).await;
        }
    }
}

fn connected_seq(c: &WsClient) -> u64 {
    match &c.hello {
        ServerMessage::Connected { seq, .. } => *seq,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_gateway_stopped_mid_traffic_hands_its_clients_over_without_losing_a_pixel() {
    let cluster = Cluster::up(&[
        ("COOLDOWN_MS", "0"),
        ("PALETTE", "any"),
        ("SHUTDOWN_DRAIN_MS", "1000"),
    ])
    .await;
    let redis = redis::Client::open(cluster.redis_url()).expect("redis URL");
    let mut user_events = redis.get_async_pubsub().await.expect("subscribe");
    user_events
        .subscribe(protocol::names::USER_EVENTS_CHANNEL)
        .await
        .expect("subscribe");

    const PLAYERS: u32 = 6;
    const PLACEMENTS: u32 = 60;
    let answered = Arc::new(AtomicUsize::new(0));
    let tick = Arc::new(Notify::new());
    // Everyone joins before the first placement, so each view starts empty
    // like the board.
    let mut joined = Vec::new();
    for i in 0..PLAYERS {
        joined.push(Player::join(i, &cluster.ws(), &cluster.url()).await);
    }
    let mut tasks = Vec::new();
    for mut p in joined {
        let (answered, tick) = (answered.clone(), tick.clone());
        tasks.push(tokio::spawn(async move {
            p.play(PLACEMENTS, Duration::from_millis(25), &answered, &tick)
                .await;
            p
        }));
    }

    // A third of the way in, stop gateway-2 the way Kubernetes does.
    let third = (PLAYERS * PLACEMENTS / 3) as usize;
    while answered.load(Ordering::SeqCst) < third {
        let notified = tick.notified();
        if answered.load(Ordering::SeqCst) >= third {
            break;
        }
        tokio::time::timeout(WAIT, notified)
            .await
            .expect("placements go on");
    }
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

    let mut players = Vec::new();
    for t in tasks {
        players.push(t.await.expect("player task"));
    }
    let mut acked = BTreeMap::new();
    for p in &players {
        acked.extend(p.acked.iter().map(|(k, v)| (*k, v.clone())));
    }
    assert_eq!(acked.len(), (PLAYERS * PLACEMENTS) as usize);

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

    // Every acknowledged pixel is on every player's view and on the board.
    for p in &mut players {
        p.converge(&acked).await;
    }
    let (width, _, _, rgb) = canvas_bin(&cluster.url()).await;
    for ((x, y), (_, color)) in &acked {
        let [r, g, b] = pixel_at(&rgb, width, *x, *y);
        assert_eq!(
            &format!("#{r:02X}{g:02X}{b:02X}"),
            color,
            "board at ({x}, {y})"
        );
    }

    // And every player is counted once more, on the two gateways left.
    let pods: BTreeSet<&str> = players
        .iter()
        .map(|p| p.pods.last().expect("connected").as_str())
        .collect();
    assert!(!pods.contains("gateway-2"));
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
async fn a_killed_gateway_drops_out_of_the_count_when_its_key_expires() {
    let cluster = Cluster::up(&[("PRESENCE_TTL_SECS", "2")]).await;
    let mut clients = Vec::new();
    for i in 0..6 {
        clients.push(WsClient::connect(&cluster.ws(), Some(&format!("count-{i}"))).await);
    }
    for c in &mut clients {
        await_active_users(c, 6).await;
    }
    let on_3 = clients.iter().filter(|c| pod_of(c) == "gateway-3").count();
    assert!(on_3 > 0, "round robin put someone on gateway-3");
    clients.retain(|c| pod_of(c) != "gateway-3");

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
    let left = (6 - on_3) as u64;
    for c in &mut clients {
        await_active_users(c, left).await;
    }
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("EXISTS");
    assert!(!exists, "the key expired");
}
