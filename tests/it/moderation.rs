//! The moderation API on real processes: Redis, one canvas-api and two
//! gateways (and the single process where cheap). Rollback and undo are
//! checked on `/api/canvas.bin` and on connected players' boards, which
//! follow the moderation writes as ordinary `pixel_updated` events.

use std::time::Duration;

use protocol::http::{AuditPage, ModerationResult, PlacePixelResponse, Protection};
use protocol::{ErrorCode, NoticeCode, ServerMessage};
use serde_json::json;

use crate::harness::http::{self, canvas_bin, expect_error, pixel_at, put_pixel};
use crate::harness::player::join_players;
use crate::harness::{Process, Stack, WAIT, WsClient, single_process, temp_dir};

pub const TOKEN: &str = "test-admin-token-0123456789";

/// A small board, any color, no cooldown, moderation on.
const ENV: &[(&str, &str)] = &[
    ("COOLDOWN_MS", "0"),
    ("CANVAS_WIDTH", "32"),
    ("CANVAS_HEIGHT", "24"),
    ("PALETTE", "any"),
    ("ADMIN_TOKEN", TOKEN),
];

async fn admin(base: &str, path: &str, body: serde_json::Value) -> reqwest::Response {
    http::client()
        .post(format!("{base}/api/admin/{path}"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("admin POST")
}

async fn admin_ok<T: serde::de::DeserializeOwned>(
    base: &str,
    path: &str,
    body: serde_json::Value,
) -> T {
    let r = admin(base, path, body).await;
    let status = r.status();
    let text = r.text().await.expect("body");
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {text}: {e}"))
}

async fn bans(base: &str) -> Vec<String> {
    let r = http::client()
        .get(format!("{base}/api/admin/bans"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET bans");
    assert!(r.status().is_success(), "bans: {}", r.status());
    let list: Vec<protocol::http::BanInfo> = r.json().await.expect("bans body");
    list.into_iter().map(|b| b.username).collect()
}

async fn audit(base: &str) -> AuditPage {
    let r = http::client()
        .get(format!("{base}/api/admin/audit"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("GET audit");
    assert!(r.status().is_success(), "audit: {}", r.status());
    r.json().await.expect("audit body")
}

/// Places over HTTP; returns the stored write.
async fn paint(base: &str, x: i64, y: i64, color: &str, username: &str) -> PlacePixelResponse {
    let r = put_pixel(base, x, y, color, username).await;
    let status = r.status();
    let text = r.text().await.expect("body");
    assert_eq!(status, 200, "PUT ({x}, {y}) as {username}: {text}");
    serde_json::from_str(&text).expect("PUT body")
}

/// Waits until the wall clock is past `t`, so later writes are stamped
/// after it (all processes share this machine's clock).
async fn clock_past(t: u64) {
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        if now > t {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn hex(rgb: [u8; 3]) -> String {
    format!("#{:02X}{:02X}{:02X}", rgb[0], rgb[1], rgb[2])
}

/// Waits until `channel` has `n` subscribers.
async fn await_subscribers(stack: &Stack, channel: &str, n: i64) {
    let mut redis = stack.redis.conn().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, now): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut redis)
            .await
            .expect("PUBSUB NUMSUB");
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

async fn place_ws(client: &mut WsClient, x: i64, y: i64, id: u64) -> ServerMessage {
    client.place(x, y, "#123456", id).await;
    client.reply_to(id).await
}

fn error_code(m: &ServerMessage) -> ErrorCode {
    match m {
        ServerMessage::Error { code, .. } => *code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn admin_routes_refuse_requests_without_or_with_a_wrong_token() {
    let stack = Stack::start(1, ENV).await;
    // On canvas-api itself and through a gateway's `/api` pass-through.
    for base in [stack.api.http(), stack.gateways[0].http()] {
        for (path, get) in [
            ("ban", false),
            ("rollback", false),
            ("clear", false),
            ("audit", true),
            ("protections", true),
        ] {
            let url = format!("{base}/api/admin/{path}");
            let c = http::client();
            let bare = if get {
                c.get(&url)
            } else {
                c.post(&url).json(&json!({"username": "x"}))
            };
            let (status, body) = expect_error(bare.send().await.unwrap()).await;
            assert_eq!(
                (status, body.error.code),
                (401, ErrorCode::Unauthorized),
                "{url}"
            );
            let wrong = if get {
                c.get(&url)
            } else {
                c.post(&url).json(&json!({}))
            };
            let (status, body) =
                expect_error(wrong.bearer_auth("not-the-token").send().await.unwrap()).await;
            assert_eq!(
                (status, body.error.code),
                (401, ErrorCode::Unauthorized),
                "{url}"
            );
        }
    }
    // Nothing was done: the board is untouched and the audit log empty.
    let (_, _, seq, _) = canvas_bin(&stack.api.http()).await;
    assert_eq!(seq, 0);
    assert!(audit(&stack.api.http()).await.entries.is_empty());
    // With the token, a malformed body is a typed 400.
    let (status, body) =
        expect_error(admin(&stack.api.http(), "rollback", json!({"x0": 1})).await).await;
    assert_eq!((status, body.error.code), (400, ErrorCode::BadRequest));
}

#[tokio::test]
async fn without_an_admin_token_moderation_is_disabled() {
    let (server, _dir) = single_process("no-admin", &[]).await;
    let r = admin(&server.http(), "clear", json!({})).await;
    let (status, body) = expect_error(r).await;
    assert_eq!(
        (status, body.error.code),
        (404, ErrorCode::ModerationDisabled)
    );
}

#[tokio::test]
async fn a_ban_refuses_placements_on_every_gateway_tells_the_user_and_unban_restores() {
    let stack = Stack::start(2, ENV).await;
    let (a, b) = (&stack.gateways[0], &stack.gateways[1]);
    let mut eve_a = WsClient::connect(&a.ws(), Some("eve")).await;
    let mut eve_b = WsClient::connect(&b.ws(), Some("eve")).await;
    await_subscribers(&stack, "user:eve", 2).await;
    assert!(matches!(
        place_ws(&mut eve_a, 1, 1, 1).await,
        ServerMessage::Ack { .. }
    ));

    let api = stack.api.http();
    admin_ok::<serde_json::Value>(
        &api,
        "ban",
        json!({"username": "eve", "reason": "griefing", "by": "mod_ann"}),
    )
    .await;
    // The user hears of it on whichever gateway holds them.
    for ws in [&mut eve_a, &mut eve_b] {
        match ws
            .expect("a ban notice", |m| {
                matches!(m, ServerMessage::Notice { .. })
            })
            .await
        {
            ServerMessage::Notice { code, message } => {
                assert_eq!(code, NoticeCode::Banned);
                assert!(message.contains("griefing"), "{message}");
            }
            _ => unreachable!(),
        }
    }
    // Refused on both gateways and over HTTP; nothing stored.
    let (_, _, before, _) = canvas_bin(&api).await;
    assert_eq!(
        error_code(&place_ws(&mut eve_a, 2, 2, 2).await),
        ErrorCode::Banned
    );
    assert_eq!(
        error_code(&place_ws(&mut eve_b, 3, 3, 3).await),
        ErrorCode::Banned
    );
    let (status, body) = expect_error(put_pixel(&api, 4, 4, "#000000", "eve").await).await;
    assert_eq!((status, body.error.code), (403, ErrorCode::Banned));
    let (_, _, after, _) = canvas_bin(&api).await;
    assert_eq!(before, after);
    // Others still place.
    paint(&b.http(), 5, 5, "#000000", "ann").await;
    assert_eq!(bans(&api).await, ["eve"]);

    admin_ok::<serde_json::Value>(&api, "unban", json!({"username": "eve"})).await;
    assert!(bans(&api).await.is_empty());
    assert!(matches!(
        place_ws(&mut eve_b, 6, 6, 4).await,
        ServerMessage::Ack { .. }
    ));

    let log = audit(&api).await.entries;
    let actions: Vec<_> = log
        .iter()
        .map(|e| (e.action.as_str(), e.by.as_str()))
        .collect();
    assert_eq!(actions, [("unban", "admin"), ("ban", "mod_ann")]);
    assert!(log[1].detail.contains("eve") && log[1].detail.contains("griefing"));
}

#[tokio::test]
async fn a_timed_ban_ends_by_itself() {
    let stack = Stack::start(1, ENV).await;
    let api = stack.api.http();
    admin_ok::<serde_json::Value>(&api, "ban", json!({"username": "tim", "durationMs": 300})).await;
    let (_, body) = expect_error(put_pixel(&api, 1, 1, "#000000", "tim").await).await;
    assert_eq!(body.error.code, ErrorCode::Banned);
    // Retry until the ban has expired (bounded): the key's TTL ends it.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = put_pixel(&api, 1, 1, "#000000", "tim").await;
        if r.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ban never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn rollback_restores_the_rectangle_at_t_on_the_board_and_on_clients_and_leaves_the_rest() {
    let stack = Stack::start(2, ENV).await;
    let urls: Vec<String> = stack.gateways.iter().map(|g| g.ws()).collect();
    let api = stack.api.http();
    let mut players = join_players(2, &urls, &api).await;

    // Before T: a picture over the whole board's top-left corner.
    let mut t = 0;
    for y in 0..8 {
        for x in 0..8 {
            let color = format!("#{:02X}{:02X}40", x * 30, y * 30);
            t = paint(
                &stack.gateways[(x + y) as usize % 2].http(),
                x,
                y,
                &color,
                "artist",
            )
            .await
            .timestamp;
        }
    }
    let (w, h, _, at_t) = canvas_bin(&api).await;
    clock_past(t).await;

    // After T: vandalism inside and outside the rectangle (2..=5, 1..=6),
    // some pixels hit twice.
    for (x, y) in [
        (2, 1),
        (3, 3),
        (5, 6),
        (3, 3),
        (0, 0),
        (7, 7),
        (6, 2),
        (4, 4),
    ] {
        paint(&stack.gateways[1].http(), x, y, "#000000", "vandal").await;
    }
    paint(&stack.gateways[0].http(), 4, 4, "#FF0000", "other").await;
    let (_, _, _, vandalised) = canvas_bin(&api).await;

    let result: ModerationResult = admin_ok(
        &api,
        "rollback",
        json!({"x0": 2, "y0": 1, "x1": 5, "y1": 6, "at": t, "by": "mod_bo"}),
    )
    .await;
    assert_eq!(result.changed, 4, "{result:?}");
    assert_eq!(result.unknown, 0);

    let (_, _, seq, now) = canvas_bin(&api).await;
    assert_eq!(seq, result.seq);
    for y in 0..h {
        for x in 0..w {
            let inside = (2..=5).contains(&x) && (1..=6).contains(&y);
            let want = if inside { &at_t } else { &vandalised };
            assert_eq!(
                pixel_at(&now, w, x, y),
                pixel_at(want, w, x, y),
                "({x}, {y}) inside: {inside}"
            );
        }
    }
    // Outside pixels kept the vandalism, so the rectangle really bounded it.
    assert_eq!(hex(pixel_at(&now, w, 0, 0)), "#000000");
    // Every connected client converged on the same board.
    crate::harness::player::verify_views(&mut players, &api).await;

    // The pixel's history shows the moderation write on top.
    let info: protocol::http::PixelInfo = http::get_json(&format!("{api}/api/pixel/4/4")).await;
    assert_eq!(info.username, "~moderation");
    assert_eq!(info.history[1].username, "other");

    let log = audit(&api).await.entries;
    assert_eq!(log[0].action, "rollback");
    assert_eq!(log[0].by, "mod_bo");
}

#[tokio::test]
async fn undoing_a_user_restores_earlier_pixels_but_keeps_other_users_later_ones() {
    let stack = Stack::start(2, ENV).await;
    let urls: Vec<String> = stack.gateways.iter().map(|g| g.ws()).collect();
    let api = stack.api.http();
    let mut players = join_players(2, &urls, &api).await;
    let (a, b) = (stack.gateways[0].http(), stack.gateways[1].http());

    paint(&a, 1, 1, "#111111", "ann").await;
    paint(&a, 2, 2, "#222222", "ann").await;
    let t = paint(&a, 3, 3, "#333333", "ann").await.timestamp;
    // Eve's placement before T is not undone.
    let early = paint(&b, 9, 9, "#999999", "eve").await.timestamp;
    assert!(early >= t);
    clock_past(early).await;
    let since = early + 1;
    clock_past(since).await;

    for (x, y) in [(1, 1), (2, 2), (3, 3), (4, 4), (1, 1)] {
        paint(&b, x, y, "#EE00EE", "eve").await;
    }
    // Bob paints over one of eve's pixels after her.
    paint(&a, 2, 2, "#00BB00", "bob").await;

    let result: ModerationResult =
        admin_ok(&api, "undo", json!({"username": "eve", "since": since})).await;
    assert_eq!(result.changed, 3, "{result:?}");

    let (w, _, _, board) = canvas_bin(&api).await;
    assert_eq!(hex(pixel_at(&board, w, 1, 1)), "#111111");
    assert_eq!(
        hex(pixel_at(&board, w, 2, 2)),
        "#00BB00",
        "bob's later pixel stays"
    );
    assert_eq!(hex(pixel_at(&board, w, 3, 3)), "#333333");
    assert_eq!(
        hex(pixel_at(&board, w, 4, 4)),
        "#FFFFFF",
        "nothing before eve"
    );
    assert_eq!(hex(pixel_at(&board, w, 9, 9)), "#999999", "before `since`");
    crate::harness::player::verify_views(&mut players, &api).await;

    // Undoing again finds nothing left to do.
    let again: ModerationResult =
        admin_ok(&api, "undo", json!({"username": "eve", "since": since})).await;
    assert_eq!(again.changed, 0);
}

#[tokio::test]
async fn protect_refuses_inside_allows_outside_and_unprotect_lifts_it() {
    let stack = Stack::start(2, ENV).await;
    let api = stack.api.http();
    let p: Protection = admin_ok(
        &api,
        "protect",
        json!({"x0": 10, "y0": 10, "x1": 12, "y1": 11}),
    )
    .await;
    let listed: Vec<Protection> = http::client()
        .get(format!("{api}/api/admin/protections"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, vec![p.clone()]);

    let mut ws = WsClient::connect(&stack.gateways[1].ws(), Some("pat")).await;
    assert_eq!(
        error_code(&place_ws(&mut ws, 10, 10, 1).await),
        ErrorCode::Protected
    );
    assert_eq!(
        error_code(&place_ws(&mut ws, 12, 11, 2).await),
        ErrorCode::Protected
    );
    assert!(matches!(
        place_ws(&mut ws, 13, 11, 3).await,
        ServerMessage::Ack { .. }
    ));
    assert!(matches!(
        place_ws(&mut ws, 10, 12, 4).await,
        ServerMessage::Ack { .. }
    ));
    let (status, body) = expect_error(put_pixel(&api, 11, 10, "#000000", "pat").await).await;
    assert_eq!((status, body.error.code), (403, ErrorCode::Protected));

    admin_ok::<serde_json::Value>(&api, "unprotect", json!({"id": p.id})).await;
    assert!(matches!(
        place_ws(&mut ws, 10, 10, 5).await,
        ServerMessage::Ack { .. }
    ));
    let (status, _) = expect_error(admin(&api, "unprotect", json!({"id": p.id})).await).await;
    assert_eq!(status, 404);
    let actions: Vec<_> = audit(&api)
        .await
        .entries
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["unprotect", "protect"]);
}

#[tokio::test]
async fn clear_whitens_the_board_and_every_client_converges() {
    let stack = Stack::start(2, ENV).await;
    let urls: Vec<String> = stack.gateways.iter().map(|g| g.ws()).collect();
    let api = stack.api.http();
    let mut players = join_players(2, &urls, &api).await;
    for i in 0..10 {
        paint(&stack.gateways[i % 2].http(), i as i64, 3, "#123456", "ann").await;
    }
    crate::harness::player::verify_views(&mut players, &api).await;
    let t = paint(&api, 20, 20, "#654321", "ann").await.timestamp;

    let result: ModerationResult = admin_ok(&api, "clear", json!({})).await;
    let (_, _, seq, board) = canvas_bin(&api).await;
    assert_eq!(seq, result.seq);
    assert!(board.iter().all(|&b| b == 0xFF), "the board is white");
    // Clients learn of the clear (the log cannot replay across it, so
    // their gateways tell them to resync) and refetch.
    crate::harness::player::verify_views(&mut players, &api).await;
    assert!(players.iter().all(|p| p.refetches >= 1));

    // Placing goes on; a rollback to before the clear brings it back.
    paint(&api, 0, 0, "#000000", "ann").await;
    let back: ModerationResult = admin_ok(
        &api,
        "rollback",
        json!({"x0": 0, "y0": 0, "x1": 31, "y1": 23, "at": t}),
    )
    .await;
    assert_eq!(back.changed, 12, "{back:?}");
    let (w, _, _, board) = canvas_bin(&api).await;
    assert_eq!(hex(pixel_at(&board, w, 5, 3)), "#123456");
    assert_eq!(hex(pixel_at(&board, w, 20, 20)), "#654321");
    assert_eq!(hex(pixel_at(&board, w, 0, 0)), "#FFFFFF");
    crate::harness::player::verify_views(&mut players, &api).await;
    let actions: Vec<_> = audit(&api)
        .await
        .entries
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["rollback", "clear"]);
}

#[tokio::test]
async fn moderation_works_in_the_single_process_too() {
    let dir = temp_dir("moderation-embedded");
    let mut env: Vec<(&str, String)> = vec![("DATA_DIR", dir.display().to_string())];
    env.extend(ENV.iter().map(|(k, v)| (*k, v.to_string())));
    let server = Process::spawn("server", &env).await;
    let base = server.http();
    let mut watcher = WsClient::connect(&server.ws(), Some("watcher")).await;
    let mut eve = WsClient::connect(&server.ws(), Some("eve")).await;
    let t = paint(&base, 1, 1, "#111111", "ann").await.timestamp;
    clock_past(t).await;
    assert!(matches!(
        place_ws(&mut eve, 1, 1, 1).await,
        ServerMessage::Ack { .. }
    ));

    let undone: ModerationResult =
        admin_ok(&base, "undo", json!({"username": "eve", "since": t + 1})).await;
    assert_eq!(undone.changed, 1);
    let (w, _, _, board) = canvas_bin(&base).await;
    assert_eq!(hex(pixel_at(&board, w, 1, 1)), "#111111");
    // The watcher saw the moderation write as an ordinary event.
    watcher
        .expect("the undo", |m| {
            matches!(m, ServerMessage::PixelUpdated(e) if e.seq == undone.seq && e.username == "~moderation")
        })
        .await;

    admin_ok::<serde_json::Value>(&base, "ban", json!({"username": "eve"})).await;
    eve.expect("a ban notice", |m| {
        matches!(
            m,
            ServerMessage::Notice {
                code: NoticeCode::Banned,
                ..
            }
        )
    })
    .await;
    assert_eq!(
        error_code(&place_ws(&mut eve, 2, 2, 2).await),
        ErrorCode::Banned
    );
    // The ban and the history are on disk: both survive a restart.
    server.terminate().await;
    let server = Process::spawn("server", &env).await;
    let (_, body) = expect_error(put_pixel(&server.http(), 2, 2, "#000000", "eve").await).await;
    assert_eq!(body.error.code, ErrorCode::Banned);
    let info: protocol::http::PixelInfo =
        http::get_json(&format!("{}/api/pixel/1/1", server.http())).await;
    let who: Vec<_> = info.history.iter().map(|h| h.username.as_str()).collect();
    assert_eq!(who, ["~moderation", "eve", "ann"]);
    let audit = audit(&server.http()).await.entries;
    assert_eq!(audit.len(), 2, "{audit:?}");
}

#[tokio::test]
async fn a_rollback_during_traffic_leaves_every_client_converged() {
    use crate::harness::player::Traffic;
    let stack = Stack::start(2, ENV).await;
    let urls: Vec<String> = stack.gateways.iter().map(|g| g.ws()).collect();
    let api = stack.api.http();
    // Players place in their own columns (x = index), one row per pixel.
    let players = join_players(6, &urls, &api).await;
    let t = paint(&api, 31, 23, "#ABCDEF", "marker").await.timestamp;
    clock_past(t).await;
    let traffic = Traffic::start(players, 20, Duration::from_millis(10));
    traffic.acked_at_least(40).await;
    // Roll columns 0..=3 back while placements keep landing there.
    let result: ModerationResult = admin_ok(
        &api,
        "rollback",
        json!({"x0": 0, "y0": 0, "x1": 3, "y1": 23, "at": t}),
    )
    .await;
    assert!(result.changed > 0, "{result:?}");
    let mut players = traffic.finish().await;
    // Whatever raced with the rollback, every client shows the board.
    crate::harness::player::verify_views(&mut players, &api).await;
    // Columns the rollback did not cover kept every placement.
    let (w, _, _, board) = canvas_bin(&api).await;
    for p in &players {
        for ((x, y), (_, color)) in &p.acked {
            if *x > 3 {
                assert_eq!(&hex(pixel_at(&board, w, *x, *y)), color, "({x}, {y})");
            }
        }
    }
}

/// The compare-and-set that keeps a placement made while a plan was being
/// made: `rewrite.lua` run directly against the stack's Redis.
#[tokio::test]
async fn a_moderation_write_planned_before_a_placement_leaves_that_placement() {
    let stack = Stack::start(1, ENV).await;
    let api = stack.api.http();
    paint(&api, 1, 1, "#111111", "ann").await;
    let later = paint(&api, 1, 1, "#222222", "bob").await;
    let script = redis::Script::new(include_str!("../../canvas-api/src/store/rewrite.lua"));
    let mut redis = stack.redis.conn().await;
    let index = 32 + 1; // (1, 1) on a 32-wide board.
    let run = |expected: u64| {
        let mut call = script.prepare_invoke();
        use protocol::names::canvas as keys;
        call.key(keys::SEQ)
            .key(keys::PIXEL_META)
            .key(keys::LOG)
            .key(format!("{}{index}", keys::HISTORY_PREFIX))
            .key(keys::BOARD)
            .arg(1000)
            .arg("~moderation")
            .arg(16)
            .arg(protocol::names::PIXEL_UPDATES_CHANNEL)
            .arg("") // no sharded channel on one node
            .arg(index)
            .arg(1)
            .arg(1)
            .arg("#FFFFFF")
            .arg(expected)
            .arg(canvas_api::store::pixel_updated_prefix(
                1,
                1,
                "#FFFFFF".parse().unwrap(),
                "~moderation",
            ))
            .arg(index * 3);
        call
    };
    // Planned from ann's write (seq 1): bob placed since, so nothing moves.
    // The answer: {ts, announcements failed, seq per write (0: skipped)}.
    let stale: Vec<u64> = run(1).invoke_async(&mut redis).await.unwrap();
    assert_eq!(stale[2], 0);
    let (w, _, seq, board) = canvas_bin(&api).await;
    assert_eq!(
        (seq, hex(pixel_at(&board, w, 1, 1))),
        (later.seq, "#222222".into())
    );
    // Planned from bob's: written as the next seq, in the log and history.
    let fresh: Vec<u64> = run(later.seq).invoke_async(&mut redis).await.unwrap();
    assert_eq!((fresh[1], fresh[2]), (0, later.seq + 1));
    let (_, _, seq, board) = canvas_bin(&api).await;
    assert_eq!(
        (seq, hex(pixel_at(&board, w, 1, 1))),
        (later.seq + 1, "#FFFFFF".into())
    );
    let page: protocol::http::UpdatesPage =
        http::get_json(&format!("{api}/api/updates?since={}", later.seq)).await;
    assert!(
        matches!(&page.events[..], [ServerMessage::PixelUpdated(e)] if e.username == "~moderation")
    );
    let info: protocol::http::PixelInfo = http::get_json(&format!("{api}/api/pixel/1/1")).await;
    let who: Vec<_> = info.history.iter().map(|h| h.username.as_str()).collect();
    assert_eq!(who, ["~moderation", "bob", "ann"]);
}
