//! The gateway in the Kubernetes shape: Redis, canvas-api, two gateways.

use protocol::{Color, ErrorCode, ServerMessage};

use crate::harness::client::pixel_event;
use crate::harness::http::{self, canvas_bin, pixel_at, put_pixel};
use crate::harness::redis_server::store_unannounced;
use crate::harness::{Stack, WsClient};

const NO_COOLDOWN: &[(&str, &str)] = &[("COOLDOWN_MS", "0")];

#[tokio::test]
async fn pixel_placed_on_one_gateway_reaches_clients_of_another_and_the_board() {
    let stack = Stack::start(2, NO_COOLDOWN).await;
    let (a, b) = (&stack.gateways[0], &stack.gateways[1]);
    let mut writer = WsClient::connect(&a.ws(), Some("alice")).await;
    let mut watcher = WsClient::connect(&b.ws(), Some("bob")).await;

    writer.place(12, 34, "#FF4500", 7).await;
    let seq = match writer.reply_to(7).await {
        ServerMessage::Ack { seq, .. } => seq,
        other => panic!("expected an ack, got {other:?}"),
    };
    let seen = watcher
        .expect("the pixel on gateway B", |m| {
            pixel_event(m, 12, 34).is_some()
        })
        .await;
    let event = pixel_event(&seen, 12, 34).unwrap();
    assert_eq!(event.seq, seq);
    assert_eq!(event.color, "#FF4500".parse::<Color>().unwrap());
    assert_eq!(event.username, "alice");

    let (w, _, board_seq, rgb) = canvas_bin(&stack.api.http()).await;
    assert!(board_seq >= seq);
    assert_eq!(pixel_at(&rgb, w, 12, 34), [0xFF, 0x45, 0x00]);
    // The gateway serves the same board through its /api pass-through.
    let (_, _, _, via_gateway) = canvas_bin(&b.http()).await;
    assert_eq!(via_gateway, rgb);
}

#[tokio::test]
async fn invalid_placements_change_nothing_and_tell_the_sender_why() {
    let stack = Stack::start(1, NO_COOLDOWN).await;
    let gw = &stack.gateways[0];
    let mut client = WsClient::connect(&gw.ws(), Some("mallory")).await;
    let (_, _, seq_before, board_before) = canvas_bin(&stack.api.http()).await;

    let cases: Vec<(String, ErrorCode)> = vec![
        ("{not json".into(), ErrorCode::BadRequest),
        ("[1,2,3]".into(), ErrorCode::BadRequest),
        (r#"{"type":"teleport"}"#.into(), ErrorCode::UnknownType),
        (r#"{"x":1}"#.into(), ErrorCode::UnknownType),
        (
            r##"{"type":"pixel_update","x":"1","y":2,"color":"#FF4500","id":1}"##.into(),
            ErrorCode::BadRequest,
        ),
        (
            r##"{"type":"pixel_update","x":1.5,"y":2,"color":"#FF4500","id":2}"##.into(),
            ErrorCode::BadRequest,
        ),
        (
            r##"{"type":"pixel_update","x":-1,"y":2,"color":"#FF4500","id":3}"##.into(),
            ErrorCode::OutOfBounds,
        ),
        (
            r##"{"type":"pixel_update","x":1000,"y":0,"color":"#FF4500","id":4}"##.into(),
            ErrorCode::OutOfBounds,
        ),
        (
            r##"{"type":"pixel_update","x":1,"y":2,"color":"red","id":5}"##.into(),
            ErrorCode::InvalidColor,
        ),
        (
            r##"{"type":"pixel_update","x":1,"y":2,"color":"#123456","id":6}"##.into(),
            ErrorCode::InvalidColor,
        ),
        (
            r#"{"type":"set_username","username":"<script>"}"#.into(),
            ErrorCode::InvalidUsername,
        ),
        (
            format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(5000)),
            ErrorCode::FrameTooLarge,
        ),
    ];
    for (frame, code) in &cases {
        client.send_text(frame.clone()).await;
        match client
            .expect("an error", |m| matches!(m, ServerMessage::Error { .. }))
            .await
        {
            ServerMessage::Error {
                code: got, message, ..
            } => {
                assert_eq!(got, *code, "frame {frame:.60} got {got:?}: {message}");
                assert!(!message.is_empty());
            }
            _ => unreachable!(),
        }
    }
    client.send_binary(vec![1, 2, 3]).await;
    match client
        .expect("an error", |m| matches!(m, ServerMessage::Error { .. }))
        .await
    {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::BinaryNotSupported),
        _ => unreachable!(),
    }
    // The id of a refused placement is echoed.
    client
        .send_text(r##"{"type":"pixel_update","x":-5,"y":2,"color":"#FF4500","id":99}"##)
        .await;
    assert!(matches!(
        client.reply_to(99).await,
        ServerMessage::Error {
            code: ErrorCode::OutOfBounds,
            ..
        }
    ));

    // The connection is still healthy, and nothing was stored.
    client.send_json(serde_json::json!({"type": "ping"})).await;
    client
        .expect("pong", |m| matches!(m, ServerMessage::Pong))
        .await;
    let (_, _, seq_after, board_after) = canvas_bin(&stack.api.http()).await;
    assert_eq!(seq_after, seq_before);
    assert!(board_after == board_before, "the board changed");
}

#[tokio::test]
async fn a_frame_far_over_the_limit_closes_with_1009_and_others_are_unaffected() {
    let stack = Stack::start(1, NO_COOLDOWN).await;
    let gw = &stack.gateways[0];
    let mut bystander = WsClient::connect(&gw.ws(), Some("bystander")).await;
    let mut attacker = WsClient::connect(&gw.ws(), Some("attacker")).await;
    // The server may close before taking the whole frame.
    let _ = attacker.try_send_text("x".repeat(200 * 1024)).await;
    let frame = attacker.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), protocol::close::MESSAGE_TOO_BIG);
    bystander
        .send_json(serde_json::json!({"type": "ping"}))
        .await;
    bystander
        .expect("pong", |m| matches!(m, ServerMessage::Pong))
        .await;
}

#[tokio::test]
async fn cooldown_holds_for_one_user_across_two_gateways() {
    let stack = Stack::start(2, &[("COOLDOWN_MS", "60000")]).await;
    let mut on_a = WsClient::connect(&stack.gateways[0].ws(), Some("carol")).await;
    let mut on_b = WsClient::connect(&stack.gateways[1].ws(), Some("carol")).await;
    // Both at once, several times each: exactly one may win.
    for i in 0..5u64 {
        on_a.place(i as i64, 1, "#000000", i).await;
        on_b.place(i as i64, 2, "#000000", 100 + i).await;
    }
    let mut acks = 0;
    let mut cooldowns = 0;
    for (client, base) in [(&mut on_a, 0u64), (&mut on_b, 100)] {
        for i in 0..5 {
            match client.reply_to(base + i).await {
                ServerMessage::Ack { .. } => acks += 1,
                ServerMessage::Error {
                    code: ErrorCode::Cooldown,
                    retry_after_ms,
                    ..
                } => {
                    let ms = retry_after_ms.expect("cooldown says when");
                    assert!(ms > 50_000 && ms <= 60_000, "retryAfterMs {ms}");
                    cooldowns += 1;
                }
                other => panic!("unexpected reply {other:?}"),
            }
        }
    }
    assert_eq!((acks, cooldowns), (1, 9));
    // Another user is not held back.
    let mut dave = WsClient::connect(&stack.gateways[1].ws(), Some("dave")).await;
    dave.place(9, 9, "#000000", 1).await;
    assert!(matches!(dave.reply_to(1).await, ServerMessage::Ack { .. }));
    let (_, _, seq, _) = canvas_bin(&stack.api.http()).await;
    assert_eq!(seq, 2);
}

#[tokio::test]
async fn a_write_made_over_http_is_broadcast_to_every_gateway() {
    let stack = Stack::start(2, NO_COOLDOWN).await;
    let mut a = WsClient::connect(&stack.gateways[0].ws(), None).await;
    let mut b = WsClient::connect(&stack.gateways[1].ws(), None).await;
    let r = put_pixel(&stack.api.http(), 5, 6, "#00A368", "erin").await;
    assert_eq!(r.status(), 200);
    let placed: protocol::http::PlacePixelResponse = r.json().await.unwrap();
    for client in [&mut a, &mut b] {
        let m = client
            .expect("the HTTP write", |m| pixel_event(m, 5, 6).is_some())
            .await;
        assert_eq!(pixel_event(&m, 5, 6).unwrap().seq, placed.seq);
    }
}

#[tokio::test]
async fn a_missed_event_is_repaired_from_the_replay_log() {
    let stack = Stack::start(1, &[("COOLDOWN_MS", "0"), ("GAP_GRACE_MS", "100")]).await;
    let gw = &stack.gateways[0];
    let mut watcher = WsClient::connect(&gw.ws(), None).await;
    // Stored, but its announcement was lost.
    store_unannounced(&stack.redis.url(), 1000, (1, 1), "#FFD635", "ghost").await;
    // The next write exposes the gap; the gateway fills it.
    let mut writer = WsClient::connect(&gw.ws(), Some("writer")).await;
    writer.place(2, 2, "#FFD635", 1).await;
    let mut seqs = Vec::new();
    while seqs.len() < 2 {
        if let ServerMessage::PixelUpdated(e) = watcher
            .expect("pixels", |m| matches!(m, ServerMessage::PixelUpdated(_)))
            .await
        {
            seqs.push((e.seq, e.username));
        }
    }
    seqs.sort();
    assert_eq!(
        seqs,
        vec![(1, "ghost".to_owned()), (2, "writer".to_owned())]
    );
}

#[tokio::test]
async fn the_websocket_is_also_served_on_the_root_path_and_the_page_without_upgrade() {
    let stack = Stack::start(1, NO_COOLDOWN).await;
    let gw = &stack.gateways[0];
    let mut client = WsClient::connect(&format!("ws://{}/", gw.addr), Some("rooted")).await;
    assert_eq!(client.username(), "rooted");
    match &client.hello {
        ServerMessage::Connected {
            pod_id,
            width,
            height,
            palette,
            cooldown_ms,
            ..
        } => {
            assert_eq!(pod_id, "gw-0");
            assert_eq!((*width, *height), (1000, 1000));
            assert_eq!(palette.len(), 32);
            assert_eq!(*cooldown_ms, 0);
        }
        _ => unreachable!(),
    }
    client.send_json(serde_json::json!({"type": "ping"})).await;
    client
        .expect("pong", |m| matches!(m, ServerMessage::Pong))
        .await;
    let page = http::client().get(gw.http()).send().await.unwrap();
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("<canvas"));
}

#[tokio::test]
async fn an_invalid_username_becomes_a_guest_name() {
    let stack = Stack::start(1, NO_COOLDOWN).await;
    let client = WsClient::connect(&stack.gateways[0].ws(), Some("no%20spaces")).await;
    let name = client.username();
    assert!(name.starts_with("guest-") && name.len() == 10, "{name}");
    let named = WsClient::connect(&stack.gateways[0].ws(), Some(&"n".repeat(33))).await;
    assert!(named.username().starts_with("guest-"));
}

#[tokio::test]
async fn single_process_servers_configured_the_prototypes_way_share_one_redis() {
    let redis = crate::harness::RedisServer::start().await;
    let env = |pod: &str| {
        vec![
            ("REDIS_HOST", "127.0.0.1".to_owned()),
            ("REDIS_PORT", redis.port.to_string()),
            ("REDIS_DB", "0".to_owned()),
            ("COOLDOWN_MS", "0".to_owned()),
            ("POD_ID", pod.to_owned()),
        ]
    };
    let one = crate::harness::Process::spawn("server", &env("one")).await;
    let two = crate::harness::Process::spawn("server", &env("two")).await;
    http::wait_ready(&one.http()).await;
    http::wait_ready(&two.http()).await;
    let mut a = WsClient::connect(&one.ws(), Some("a")).await;
    let mut b = WsClient::connect(&two.ws(), Some("b")).await;
    a.place(1, 2, "#000000", 1).await;
    b.place(3, 4, "#FF4500", 2).await;
    assert!(matches!(a.reply_to(1).await, ServerMessage::Ack { .. }));
    assert!(matches!(b.reply_to(2).await, ServerMessage::Ack { .. }));
    for client in [&mut a, &mut b] {
        for (x, y) in [(1, 2), (3, 4)] {
            client
                .expect("both pixels", |m| pixel_event(m, x, y).is_some())
                .await;
        }
    }
    let (w, _, seq, rgb) = canvas_bin(&one.http()).await;
    assert_eq!(seq, 2);
    assert_eq!(pixel_at(&rgb, w, 3, 4), [0xFF, 0x45, 0x00]);
    assert_eq!(canvas_bin(&two.http()).await.3, rgb);
}

#[tokio::test]
async fn after_redis_restarts_empty_clients_are_told_to_resync_and_new_pixels_flow() {
    let mut stack = Stack::start(2, NO_COOLDOWN).await;
    let mut writer = WsClient::connect(&stack.gateways[0].ws(), Some("before")).await;
    let mut watcher = WsClient::connect(&stack.gateways[1].ws(), Some("watcher")).await;
    for i in 0..3u64 {
        writer.place(i as i64, 0, "#000000", i).await;
        assert!(matches!(
            writer.reply_to(i).await,
            ServerMessage::Ack { .. }
        ));
    }
    watcher
        .expect(
            "seq 3",
            |m| matches!(m, ServerMessage::PixelUpdated(e) if e.seq == 3),
        )
        .await;

    stack.redis.restart_empty().await;
    // The store lost everything: its seq starts over below what was seen.
    watcher
        .expect("resync", |m| matches!(m, ServerMessage::Resync { .. }))
        .await;
    for gw in &stack.gateways {
        http::wait_ready(&gw.http()).await;
    }
    writer.place(7, 7, "#FF4500", 100).await;
    let seq = match writer.reply_to(100).await {
        ServerMessage::Ack { seq, .. } => seq,
        other => panic!("{other:?}"),
    };
    assert_eq!(seq, 1);
    let seen = watcher
        .expect("the first pixel of the new store", |m| {
            pixel_event(m, 7, 7).is_some()
        })
        .await;
    assert_eq!(pixel_event(&seen, 7, 7).unwrap().seq, 1);
}

#[tokio::test]
async fn a_missed_last_event_is_found_even_on_a_quiet_board() {
    let stack = Stack::start(1, NO_COOLDOWN).await;
    let mut watcher = WsClient::connect(&stack.gateways[0].ws(), None).await;
    // Stored, its announcement lost, and nothing follows it to reveal a gap.
    store_unannounced(&stack.redis.url(), 1000, (9, 9), "#FFD635", "silent").await;
    let m = watcher
        .expect("the unpublished pixel", |m| pixel_event(m, 9, 9).is_some())
        .await;
    assert_eq!(pixel_event(&m, 9, 9).unwrap().username, "silent");
}

/// The store announces each write in the step that stores it, so
/// `pixel-updates` carries every write once, in `seq` order, even while
/// two gateways place at once (when gateways published after storing, two
/// publishes could cross).
#[tokio::test]
async fn pixel_updates_carries_every_write_once_in_seq_order_from_two_gateways() {
    use futures_util::StreamExt;

    const WRITERS: u64 = 4;
    const EACH: u64 = 40;
    let stack = Stack::start(2, NO_COOLDOWN).await;
    let redis = redis::Client::open(stack.redis.url()).expect("redis URL");
    let mut channel = redis.get_async_pubsub().await.expect("subscribe");
    channel
        .subscribe(protocol::names::PIXEL_UPDATES_CHANNEL)
        .await
        .expect("subscribe");

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let url = stack.gateways[(w % 2) as usize].ws();
        writers.push(tokio::spawn(async move {
            let mut c = WsClient::connect(&url, Some(&format!("w{w}"))).await;
            // Every placement sent at once, then every answer awaited: as
            // many in flight as the gateway takes.
            for i in 0..EACH {
                c.place(i as i64, w as i64, "#FF4500", i).await;
            }
            for i in 0..EACH {
                let reply = c.reply_to(i).await;
                assert!(matches!(reply, ServerMessage::Ack { .. }), "{reply:?}");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }

    let mut messages = channel.on_message();
    let mut seqs = Vec::new();
    tokio::time::timeout(crate::harness::WAIT, async {
        while (seqs.len() as u64) < WRITERS * EACH {
            let m = messages.next().await.expect("the channel stays open");
            let payload: String = m.get_payload().expect("text");
            match serde_json::from_str::<ServerMessage>(&payload).expect("protocol v1") {
                ServerMessage::PixelUpdated(e) => seqs.push(e.seq),
                other => panic!("pixel-updates carried {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} of {} writes announced", seqs.len(), WRITERS * EACH));
    let expected: Vec<u64> = (1..=WRITERS * EACH).collect();
    assert_eq!(seqs, expected, "announced out of seq order, or twice");
}
