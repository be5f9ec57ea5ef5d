//! Per-user delivery across pods: events addressed to one user (the answer
//! to an HTTP placement, `cooldown_over`, a moderation notice) reach that
//! user's WebSocket and SSE connections on whichever gateway holds them,
//! through Redis `user:<key>` channels — and no one else's.

use std::time::{Duration, Instant};

use protocol::{ErrorCode, NoticeCode, PlacementSource, ServerMessage};

use crate::harness::http::{self, put_pixel};
use crate::harness::{Process, SseStream, Stack, WAIT, WsClient, single_process};

const NO_COOLDOWN: &[(&str, &str)] = &[("COOLDOWN_MS", "0")];

/// How many clients are subscribed to `channel`.
async fn subscribers(redis: &mut redis::aio::MultiplexedConnection, channel: &str) -> i64 {
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(redis)
        .await
        .expect("PUBSUB NUMSUB");
    n
}

/// Waits until `n` clients (gateways) are subscribed to `channel`.
async fn await_subscribers(stack: &Stack, channel: &str, n: i64) {
    let mut redis = stack.redis.conn().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = subscribers(&mut redis, channel).await;
        if now == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{channel} has {now} subscribers, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The value of a counter or gauge on a gateway's `/metrics`.
async fn metric(gateway: &Process, name: &str) -> u64 {
    http::metric(&gateway.http(), name).await
}

/// Waits until a gateway's metric reads `value`.
async fn await_metric(gateway: &Process, name: &str, value: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(gateway, name).await != value {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never became {value}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_addressed_to_a_user(m: &ServerMessage) -> bool {
    matches!(
        m,
        ServerMessage::Placed { .. }
            | ServerMessage::PlacementFailed { .. }
            | ServerMessage::CooldownOver
            | ServerMessage::Notice { .. }
    )
}

/// The next message addressed to the client's user.
async fn next_personal(client: &mut WsClient) -> ServerMessage {
    client
        .expect("a message addressed to the user", is_addressed_to_a_user)
        .await
}

/// Places over HTTP and returns the stored `seq`.
async fn place_over_http(base: &str, x: i64, y: i64, username: &str) -> u64 {
    let r = put_pixel(base, x, y, "#000000", username).await;
    assert_eq!(r.status(), 200, "PUT as {username}");
    r.json::<protocol::http::PlacePixelResponse>()
        .await
        .expect("PUT body")
        .seq
}

fn placed_seq(m: &ServerMessage) -> u64 {
    match m {
        ServerMessage::Placed {
            source: PlacementSource::Http,
            seq,
            ..
        } => *seq,
        other => panic!("expected placed over HTTP, got {other:?}"),
    }
}

#[tokio::test]
async fn an_http_placement_reaches_its_users_connections_on_another_gateway_and_no_one_elses() {
    let stack = Stack::start(2, NO_COOLDOWN).await;
    let (a, b) = (&stack.gateways[0], &stack.gateways[1]);
    let mut ursula_ws = WsClient::connect(&b.ws(), Some("ursula")).await;
    let mut ursula_sse = SseStream::open(&b.http(), "?username=ursula", None).await;
    let mut victor_b = WsClient::connect(&b.ws(), Some("victor")).await;
    let mut victor_a = WsClient::connect(&a.ws(), Some("victor")).await;
    await_subscribers(&stack, "user:ursula", 1).await;
    await_subscribers(&stack, "user:victor", 2).await;
    // A holds only victor: one user channel, and it is victor's.
    assert_eq!(metric(a, "gateway_user_channels").await, 1);
    assert_eq!(metric(b, "gateway_user_channels").await, 2);

    // Ursula places through A's /api (passed on to canvas-api).
    let seq = place_over_http(&a.http(), 3, 4, "ursula").await;
    let placed = next_personal(&mut ursula_ws).await;
    assert_eq!(placed_seq(&placed), seq);
    assert!(matches!(placed, ServerMessage::Placed { x: 3, y: 4, .. }));
    assert_eq!(placed_seq(&ursula_sse.next_named("placed").await), seq);

    // Victor's connections, on both gateways: the first message addressed to
    // him is his own, published after ursula's — so hers never came.
    let victor_seq = place_over_http(&stack.api.http(), 5, 6, "victor").await;
    assert_eq!(placed_seq(&next_personal(&mut victor_b).await), victor_seq);
    assert_eq!(placed_seq(&next_personal(&mut victor_a).await), victor_seq);
    // A never heard ursula's event at all: it did no work for her.
    assert_eq!(metric(a, "gateway_user_events_total").await, 1);
    assert_eq!(metric(a, "gateway_user_frames_total").await, 1);
    assert_eq!(metric(b, "gateway_user_frames_total").await, 3);
}

#[tokio::test]
async fn a_gateway_follows_a_users_channel_only_while_it_holds_a_connection_of_theirs() {
    let stack = Stack::start(2, NO_COOLDOWN).await;
    let (a, b) = (&stack.gateways[0], &stack.gateways[1]);
    let ws = WsClient::connect(&b.ws(), Some("ulla")).await;
    let sse = SseStream::open(&b.http(), "?username=ulla", None).await;
    await_subscribers(&stack, "user:ulla", 1).await;
    assert_eq!(metric(a, "gateway_user_channels").await, 0);

    // One of two connections leaves: the channel stays. The subscriber
    // handles changes in order, so once a later arrival is subscribed the
    // departure has been handled too.
    drop(ws);
    await_metric(b, "gateway_connections", 0).await;
    let _marker = WsClient::connect(&b.ws(), Some("marker")).await;
    await_subscribers(&stack, "user:marker", 1).await;
    let mut redis = stack.redis.conn().await;
    assert_eq!(subscribers(&mut redis, "user:ulla").await, 1);

    // The last one leaves: so does the subscription.
    drop(sse);
    await_subscribers(&stack, "user:ulla", 0).await;
    await_metric(b, "gateway_user_channels", 1).await;
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg("user:*")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(channels, vec!["user:marker".to_owned()]);
}

#[tokio::test]
async fn a_refused_http_placement_is_reported_to_its_user_with_the_reason() {
    let stack = Stack::start(2, &[("COOLDOWN_MS", "60000")]).await;
    let mut ws = WsClient::connect(&stack.gateways[1].ws(), Some("rita")).await;
    await_subscribers(&stack, "user:rita", 1).await;
    let base = stack.gateways[0].http();

    let seq = place_over_http(&base, 1, 1, "rita").await;
    assert_eq!(placed_seq(&next_personal(&mut ws).await), seq);
    let r = put_pixel(&base, 2, 2, "#000000", "rita").await;
    assert_eq!(r.status(), 429);
    match next_personal(&mut ws).await {
        ServerMessage::PlacementFailed {
            source: PlacementSource::Http,
            x: 2,
            y: 2,
            code: ErrorCode::Cooldown,
            retry_after_ms: Some(wait),
            ..
        } => assert!(wait > 0 && wait <= 60_000, "{wait}"),
        other => panic!("{other:?}"),
    }
    let r = put_pixel(&base, -1, 2, "#000000", "rita").await;
    assert_eq!(r.status(), 400);
    assert!(matches!(
        next_personal(&mut ws).await,
        ServerMessage::PlacementFailed {
            x: -1,
            code: ErrorCode::OutOfBounds,
            ..
        }
    ));
}

#[tokio::test]
async fn cooldown_over_reaches_every_connection_of_the_user_when_the_cooldown_ends() {
    let cooldown = Duration::from_millis(400);
    let stack = Stack::start(2, &[("COOLDOWN_MS", "400")]).await;
    let (a, b) = (&stack.gateways[0], &stack.gateways[1]);
    let mut placer = WsClient::connect(&a.ws(), Some("carla")).await;
    let mut other_tab = WsClient::connect(&b.ws(), Some("carla")).await;
    let mut stream = SseStream::open(&b.http(), "?username=carla", None).await;
    await_subscribers(&stack, "user:carla", 2).await;

    // A WebSocket placement on A: its gateway schedules the notice.
    let sent = Instant::now();
    placer.place(7, 7, "#000000", 1).await;
    assert!(matches!(
        placer.reply_to(1).await,
        ServerMessage::Ack { .. }
    ));
    assert_eq!(
        next_personal(&mut other_tab).await,
        ServerMessage::CooldownOver
    );
    assert!(sent.elapsed() >= cooldown, "early: {:?}", sent.elapsed());
    assert_eq!(
        stream.next_named("cooldown_over").await,
        ServerMessage::CooldownOver
    );
    assert_eq!(
        next_personal(&mut placer).await,
        ServerMessage::CooldownOver
    );

    // An HTTP placement: canvas-api answers, then ends the cooldown.
    let sent = Instant::now();
    let seq = place_over_http(&stack.api.http(), 8, 8, "carla").await;
    assert_eq!(placed_seq(&next_personal(&mut other_tab).await), seq);
    assert_eq!(
        next_personal(&mut other_tab).await,
        ServerMessage::CooldownOver
    );
    assert!(sent.elapsed() >= cooldown, "early: {:?}", sent.elapsed());
}

#[tokio::test]
async fn a_notice_on_a_users_channel_reaches_their_connections_and_garbage_does_not() {
    let stack = Stack::start(1, NO_COOLDOWN).await;
    let base = stack.gateways[0].http();
    let mut ws = WsClient::connect(&stack.gateways[0].ws(), Some("nina")).await;
    let mut stream = SseStream::open(&base, "?username=nina", None).await;
    await_subscribers(&stack, "user:nina", 1).await;

    // What moderation will publish (canvas_api::UserNotices::notice).
    let mut redis = stack.redis.conn().await;
    let publish = |payload: &'static str| {
        redis::cmd("PUBLISH")
            .arg("user:nina")
            .arg(payload)
            .to_owned()
    };
    let _: i64 = publish("not json").query_async(&mut redis).await.unwrap();
    let _: i64 = publish(r#"{"type":"notice","code":"banned","message":"bye"}"#)
        .query_async(&mut redis)
        .await
        .unwrap();
    // The harness fails on a frame it cannot read, so the garbage was never
    // passed on; the notice was.
    let expected = ServerMessage::Notice {
        code: NoticeCode::Banned,
        message: "bye".into(),
    };
    assert_eq!(next_personal(&mut ws).await, expected);
    assert_eq!(stream.next_named("notice").await, expected);
}

#[tokio::test]
async fn a_renamed_connection_gets_the_events_of_its_new_name() {
    let stack = Stack::start(1, NO_COOLDOWN).await;
    let mut ws = WsClient::connect(&stack.gateways[0].ws(), Some("before")).await;
    await_subscribers(&stack, "user:before", 1).await;
    ws.send_json(serde_json::json!({"type": "set_username", "username": "after"}))
        .await;
    await_subscribers(&stack, "user:after", 1).await;
    await_subscribers(&stack, "user:before", 0).await;
    let seq = place_over_http(&stack.api.http(), 1, 1, "after").await;
    assert_eq!(placed_seq(&next_personal(&mut ws).await), seq);
}

#[tokio::test]
async fn after_the_subscription_is_killed_the_users_channels_are_subscribed_again() {
    let stack = Stack::start(1, NO_COOLDOWN).await;
    let gateway = &stack.gateways[0];
    let mut ws = WsClient::connect(&gateway.ws(), Some("kim")).await;
    await_subscribers(&stack, "user:kim", 1).await;
    let before = metric(gateway, "gateway_subscriber_reconnects_total").await;

    let mut redis = stack.redis.conn().await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(killed, 1);
    await_metric(gateway, "gateway_subscriber_reconnects_total", before + 1).await;
    await_subscribers(&stack, "user:kim", 1).await;
    let seq = place_over_http(&stack.api.http(), 2, 2, "kim").await;
    assert_eq!(placed_seq(&next_personal(&mut ws).await), seq);
}

#[tokio::test]
async fn in_the_single_process_an_http_placement_reaches_the_users_websocket_and_stream() {
    let (server, _dir) = single_process("user-delivery", &[]).await;
    let mut ws = WsClient::connect(&server.ws(), Some("solo")).await;
    let mut other = WsClient::connect(&server.ws(), Some("other")).await;
    let mut stream = SseStream::open(&server.http(), "?username=solo", None).await;
    // Mailboxes are open once `connected` (or the stream's response) is in.
    let seq = place_over_http(&server.http(), 1, 2, "solo").await;
    assert_eq!(placed_seq(&next_personal(&mut ws).await), seq);
    assert_eq!(placed_seq(&stream.next_named("placed").await), seq);
    let other_seq = place_over_http(&server.http(), 1, 3, "other").await;
    assert_eq!(placed_seq(&next_personal(&mut other).await), other_seq);
}

#[tokio::test]
async fn a_stream_for_an_invalid_username_is_refused_with_a_typed_error() {
    let stack = Stack::start(1, NO_COOLDOWN).await;
    let r = http::client()
        .get(format!(
            "{}/api/events?username=no%20spaces",
            stack.gateways[0].http()
        ))
        .send()
        .await
        .unwrap();
    let (status, body) = http::expect_error(r).await;
    assert_eq!(status, 400);
    assert_eq!(body.error.code, ErrorCode::InvalidUsername);
}
