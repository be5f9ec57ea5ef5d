//! The single-process default: no Redis, the board on disk.

use protocol::ServerMessage;
use protocol::http::{LegacyCanvas, PixelInfo};

use crate::harness::http::{self, canvas_bin, get_json, pixel_at, put_pixel};
use crate::harness::{Process, WsClient, temp_dir};

fn env(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("DATA_DIR", dir.display().to_string()),
        ("COOLDOWN_MS", "0".into()),
    ]
}

#[tokio::test]
async fn the_embedded_default_keeps_every_acknowledged_pixel_across_a_crash() {
    let dir = temp_dir("crash");
    let server = Process::spawn("server", &env(&dir)).await;
    let mut client = WsClient::connect(&server.ws(), Some("painter")).await;
    for i in 0..50u64 {
        client.place(i as i64, 7, "#2450A4", i).await;
    }
    let mut last = 0;
    for i in 0..50u64 {
        match client.reply_to(i).await {
            ServerMessage::Ack { seq, .. } => last = last.max(seq),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(last, 50);
    // No chance to flush anything: acknowledged means already on disk.
    server.kill9().await;

    let server = Process::spawn("server", &env(&dir)).await;
    let (w, _, seq, rgb) = canvas_bin(&server.http()).await;
    assert_eq!(seq, 50);
    for x in 0..50 {
        assert_eq!(
            pixel_at(&rgb, w, x, 7),
            [0x24, 0x50, 0xA4],
            "pixel ({x}, 7)"
        );
    }
    let info: PixelInfo = get_json(&format!("{}/api/pixel/49/7", server.http())).await;
    assert_eq!((info.username.as_str(), info.seq), ("painter", 50));
    // Writing goes on from where it stopped.
    let r = put_pixel(&server.http(), 0, 0, "#000000", "next").await;
    let placed: protocol::http::PlacePixelResponse = r.json().await.unwrap();
    assert_eq!(placed.seq, 51);
}

#[tokio::test]
async fn one_process_serves_the_page_the_websocket_and_the_api() {
    let dir = temp_dir("single");
    let server = Process::spawn("server", &env(&dir)).await;
    let mut a = WsClient::connect(&server.ws(), Some("a")).await;
    let mut b = WsClient::connect(&server.ws(), Some("b")).await;
    a.place(3, 3, "#FF4500", 1).await;
    assert!(matches!(
        a.reply_to(1).await,
        ServerMessage::Ack { seq: 1, .. }
    ));
    b.expect(
        "a's pixel",
        |m| matches!(m, ServerMessage::PixelUpdated(e) if e.seq == 1),
    )
    .await;
    // A write over HTTP reaches WebSocket clients too.
    assert_eq!(
        put_pixel(&server.http(), 4, 4, "#000000", "web")
            .await
            .status(),
        200
    );
    b.expect(
        "the HTTP pixel",
        |m| matches!(m, ServerMessage::PixelUpdated(e) if e.seq == 2 && e.username == "web"),
    )
    .await;
    b.expect("stats", |m| {
        matches!(
            m,
            ServerMessage::Stats {
                active_users: 2,
                ..
            }
        )
    })
    .await;

    let legacy: LegacyCanvas = get_json(&format!("{}/api/canvas", server.http())).await;
    assert_eq!(legacy.pixels.len(), 2);
    assert_eq!(legacy.pixels["3,3"].to_string(), "#FF4500");
    let page = http::client().get(server.http()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(
        http::client()
            .get(format!("{}/readyz", server.http()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_second_process_on_the_same_data_dir_is_refused() {
    let dir = temp_dir("locked");
    let _first = Process::spawn("server", &env(&dir)).await;
    let (status, log) = Process::spawn_expecting_failure("server", &env(&dir)).await;
    assert!(!status.success());
    assert!(log.contains("in use by another process"), "{log}");
}

#[tokio::test]
async fn a_damaged_log_is_refused_with_its_offset_and_left_as_it_was() {
    let dir = temp_dir("damaged");
    let server = Process::spawn("server", &env(&dir)).await;
    for i in 0..3 {
        assert_eq!(
            put_pixel(&server.http(), i, 0, "#000000", "w")
                .await
                .status(),
            200
        );
    }
    server.kill9().await;
    let log_path = dir.join("pixels.log");
    let mut bytes = std::fs::read(&log_path).unwrap();
    bytes[20] ^= 0xFF; // Inside the first record, which is not the last.
    std::fs::write(&log_path, &bytes).unwrap();
    let (status, log) = Process::spawn_expecting_failure("server", &env(&dir)).await;
    assert!(!status.success());
    assert!(
        log.contains("pixels.log") && log.contains("at byte 16"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(&log_path).unwrap(),
        bytes,
        "the damaged log was changed"
    );
}
