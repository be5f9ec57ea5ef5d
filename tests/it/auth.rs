//! Identity that cannot be forged: session tokens from `POST /api/session`,
//! refused when forged, foreign, expired or malformed (4001), the token's
//! user placing whatever a frame says, `AUTH=required`, and username claims
//! that hold across pods.

use protocol::http::{PixelInfo, SessionResponse};
use protocol::{ErrorCode, ServerMessage};

use crate::harness::http::{client, expect_error, get_json};
use crate::harness::{Process, Stack, WsClient, temp_dir};

const NO_COOLDOWN: (&str, &str) = ("COOLDOWN_MS", "0");

/// `POST /api/session` for `username`, answered 200.
pub async fn session(base: &str, username: &str) -> SessionResponse {
    let r = client()
        .post(format!("{base}/api/session"))
        .json(&serde_json::json!({ "username": username }))
        .send()
        .await
        .expect("POST /api/session");
    assert_eq!(r.status(), 200, "session for {username}");
    r.json().await.expect("session JSON")
}

/// Connects with `query` and expects the server to close at once; returns
/// the close code and reason.
async fn closed_with(ws: &str, query: &str) -> (u16, String) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{ws}?{query}"))
        .await
        .expect("the upgrade is accepted");
    loop {
        match tokio::time::timeout(crate::harness::WAIT, socket.next())
            .await
            .expect("closed within the wait")
        {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Text(text))) => panic!("expected a close, got {text}"),
            Some(Ok(_)) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn forged_foreign_expired_and_malformed_tokens_are_closed_with_4001() {
    let stack = Stack::start(1, &[NO_COOLDOWN, ("SESSION_TTL_SECS", "1")]).await;
    let gw = &stack.gateways[0];
    let good = session(&gw.http(), "alice").await;
    assert_eq!(good.username, "alice");
    // The good token works while it lives...
    let mut ok = WsClient::connect(&format!("{}?token={}", gw.ws(), good.token), None).await;
    assert_eq!(ok.username(), "alice");
    ok.send_json(serde_json::json!({"type": "ping"})).await;
    ok.expect("pong", |m| matches!(m, ServerMessage::Pong))
        .await;

    // The signature of alice's token on mallory's name.
    let mut parts: Vec<String> = good.token.split('.').map(str::to_owned).collect();
    parts[1] = base64_url("mallory");
    let forged = parts.join(".");
    let (code, reason) = closed_with(&gw.ws(), &format!("token={forged}")).await;
    assert_eq!(code, protocol::close::UNAUTHORIZED);
    assert!(reason.contains("signature"), "{reason}");

    // A token signed with another secret.
    let dir = temp_dir("other-secret");
    let other = Process::spawn(
        "server",
        &[
            ("DATA_DIR", dir.display().to_string()),
            ("AUTH_SECRET", "x".repeat(40)),
        ],
    )
    .await;
    let foreign = session(&other.http(), "alice").await;
    let (code, _) = closed_with(&gw.ws(), &format!("token={}", foreign.token)).await;
    assert_eq!(code, protocol::close::UNAUTHORIZED);

    for malformed in ["garbage", "v1.a.b.c.d", ""] {
        let (code, reason) = closed_with(&gw.ws(), &format!("token={malformed}")).await;
        assert_eq!(code, protocol::close::UNAUTHORIZED, "{malformed:?}");
        assert!(reason.contains("malformed"), "{reason}");
    }

    // A token is refused once expired (its whole point is time passing).
    let left = good.expires_at.saturating_sub(now_ms());
    tokio::time::sleep(std::time::Duration::from_millis(left + 50)).await;
    let (code, reason) = closed_with(&gw.ws(), &format!("token={}", good.token)).await;
    assert_eq!(code, protocol::close::UNAUTHORIZED);
    assert!(reason.contains("expired"), "{reason}");
    // Over HTTP too.
    let r = client()
        .put(format!("{}/api/pixel", gw.http()))
        .bearer_auth(&good.token)
        .json(&serde_json::json!({"x": 1, "y": 1, "color": "#000000"}))
        .send()
        .await
        .unwrap();
    let (status, body) = expect_error(r).await;
    assert_eq!((status, body.error.code), (401, ErrorCode::Unauthorized));
}

#[tokio::test]
async fn the_tokens_user_places_whatever_the_frame_or_query_says() {
    let stack = Stack::start(1, &[NO_COOLDOWN]).await;
    let gw = &stack.gateways[0];
    let alice = session(&gw.http(), "alice").await;
    let mut client_ws = WsClient::connect(
        &format!("{}?token={}&username=mallory", gw.ws(), alice.token),
        None,
    )
    .await;
    assert_eq!(client_ws.username(), "alice");
    client_ws
        .send_json(serde_json::json!({
            "type": "pixel_update", "x": 5, "y": 6, "color": "#000000", "id": 1,
            "username": "mallory"
        }))
        .await;
    assert!(matches!(
        client_ws.reply_to(1).await,
        ServerMessage::Ack { .. }
    ));
    let info: PixelInfo = get_json(&format!("{}/api/pixel/5/6", gw.http())).await;
    assert_eq!(info.username, "alice");
    // Nor can the connection rename itself.
    client_ws
        .send_json(serde_json::json!({"type": "set_username", "username": "mallory"}))
        .await;
    match client_ws
        .expect("an error", |m| matches!(m, ServerMessage::Error { .. }))
        .await
    {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::Unauthorized),
        _ => unreachable!(),
    }
    // Over HTTP, the bearer's user places, not the body's.
    let r = client()
        .put(format!("{}/api/pixel", gw.http()))
        .bearer_auth(&alice.token)
        .json(&serde_json::json!({"x": 7, "y": 6, "color": "#000000", "username": "mallory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info: PixelInfo = get_json(&format!("{}/api/pixel/7/6", stack.api.http())).await;
    assert_eq!(info.username, "alice");
}

#[tokio::test]
async fn auth_required_refuses_anonymous_placement_over_websocket_and_http() {
    let stack = Stack::start(1, &[NO_COOLDOWN, ("AUTH", "required")]).await;
    let gw = &stack.gateways[0];
    // Anonymous: may watch, not place, not pick a name.
    let mut watcher = WsClient::connect(&gw.ws(), Some("mallory")).await;
    assert_ne!(watcher.username(), "mallory");
    watcher.place(1, 1, "#000000", 9).await;
    match watcher.reply_to(9).await {
        ServerMessage::Error { code, .. } => assert_eq!(code, ErrorCode::Unauthorized),
        other => panic!("{other:?}"),
    }
    for base in [gw.http(), stack.api.http()] {
        let r = crate::harness::http::put_pixel(&base, 1, 1, "#000000", "mallory").await;
        let (status, body) = expect_error(r).await;
        assert_eq!(
            (status, body.error.code),
            (401, ErrorCode::Unauthorized),
            "{base}"
        );
    }
    // With a token, both work, and the watcher sees the pixel.
    let bob = session(&gw.http(), "bob").await;
    // A user's event stream needs the token too.
    let r = client()
        .get(format!("{}/api/events?username=bob", gw.http()))
        .send()
        .await
        .unwrap();
    let (status, body) = expect_error(r).await;
    assert_eq!((status, body.error.code), (401, ErrorCode::Unauthorized));
    let mut stream =
        crate::harness::SseStream::open(&gw.http(), &format!("?token={}", bob.token), None).await;
    let mut player = WsClient::connect(&format!("{}?token={}", gw.ws(), bob.token), None).await;
    player.place(2, 2, "#000000", 1).await;
    assert!(matches!(
        player.reply_to(1).await,
        ServerMessage::Ack { .. }
    ));
    watcher
        .expect("bob's pixel", |m| {
            crate::harness::client::pixel_event(m, 2, 2).is_some_and(|e| e.username == "bob")
        })
        .await;
    let r = client()
        .put(format!("{}/api/pixel", stack.api.http()))
        .bearer_auth(&bob.token)
        .json(&serde_json::json!({"x": 3, "y": 3, "color": "#000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info: PixelInfo = get_json(&format!("{}/api/pixel/3/3", gw.http())).await;
    assert_eq!(info.username, "bob");
    // The HTTP placement's answer reaches bob's stream.
    match stream.next_named("placed").await {
        ServerMessage::Placed { x, y, .. } => assert_eq!((x, y), (3, 3)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_claimed_username_is_taken_on_every_pod_until_its_session_renews() {
    let stack = Stack::start(2, &[NO_COOLDOWN]).await;
    let second_api = Process::spawn("canvas-api", &[("REDIS_URL", stack.redis.url())]).await;
    let first = session(&stack.gateways[0].http(), "carol").await;
    for base in [
        stack.gateways[1].http(),
        stack.api.http(),
        second_api.http(),
    ] {
        let r = client()
            .post(format!("{base}/api/session"))
            .json(&serde_json::json!({"username": "carol"}))
            .send()
            .await
            .unwrap();
        assert!(r.headers().contains_key("retry-after"));
        let (status, body) = expect_error(r).await;
        assert_eq!(
            (status, body.error.code),
            (409, ErrorCode::UsernameTaken),
            "{base}"
        );
    }
    // The holder renews through another pod; the token verifies everywhere.
    let r = client()
        .post(format!("{}/api/session", second_api.http()))
        .bearer_auth(&first.token)
        .json(&serde_json::json!({"username": "carol"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let renewed: SessionResponse = r.json().await.unwrap();
    let c = WsClient::connect(
        &format!("{}?token={}", stack.gateways[1].ws(), renewed.token),
        None,
    )
    .await;
    assert_eq!(c.username(), "carol");
    // Another name is free; a bad one is refused with its code.
    session(&stack.api.http(), "dave").await;
    let r = client()
        .post(format!("{}/api/session", stack.api.http()))
        .json(&serde_json::json!({"username": "<b>"}))
        .send()
        .await
        .unwrap();
    let (status, body) = expect_error(r).await;
    assert_eq!((status, body.error.code), (400, ErrorCode::InvalidUsername));
}

#[tokio::test]
async fn sessions_per_ip_are_limited_with_retry_after() {
    let dir = temp_dir("sessions-per-ip");
    let server = Process::spawn(
        "server",
        &[
            ("DATA_DIR", dir.display().to_string()),
            ("SESSIONS_PER_HOUR_PER_IP", "2".into()),
        ],
    )
    .await;
    session(&server.http(), "u1").await;
    session(&server.http(), "u2").await;
    let r = client()
        .post(format!("{}/api/session", server.http()))
        .json(&serde_json::json!({"username": "u3"}))
        .send()
        .await
        .unwrap();
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 3600, "{retry}");
    let (status, body) = expect_error(r).await;
    assert_eq!((status, body.error.code), (429, ErrorCode::RateLimited));
    // The single process keeps its generated secret private to its owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("auth-secret"))
        .expect("the generated secret is kept in DATA_DIR")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn a_short_auth_secret_or_bad_auth_mode_stops_the_start() {
    for (var, value) in [
        ("AUTH_SECRET", "too-short"),
        ("AUTH", "sometimes"),
        ("TRUSTED_PROXIES", "10.0.0.0/99"),
        ("CORS_ALLOWED_ORIGINS", "example.com"),
    ] {
        let dir = temp_dir("bad-auth");
        let (status, log) = Process::spawn_expecting_failure(
            "server",
            &[("DATA_DIR", dir.display().to_string()), (var, value.into())],
        )
        .await;
        assert!(!status.success());
        assert!(
            log.contains(var)
                || log
                    .to_lowercase()
                    .contains(&var.to_lowercase().replace('_', "-")),
            "{var}: {log}"
        );
    }
}

fn base64_url(s: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = s.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
