//! `GET /api/events`: the read-only live stream over Server-Sent Events.

use std::time::Duration;

use crate::harness::http::{self, put_pixel};
use crate::harness::{SseStream, Stack};

const NO_COOLDOWN: &[(&str, &str)] = &[("COOLDOWN_MS", "0")];

#[tokio::test]
async fn a_pixel_placed_through_one_gateway_streams_from_another_with_its_seq_as_id() {
    let stack = Stack::start(2, NO_COOLDOWN).await;
    let mut stream = SseStream::open(&stack.gateways[1].http(), "", None).await;
    let r = put_pixel(&stack.gateways[0].http(), 4, 5, "#FF4500", "streamer").await;
    let placed: protocol::http::PlacePixelResponse = r.json().await.unwrap();
    let (event, pixel) = stream.next_pixel().await;
    assert_eq!(event.id, Some(placed.seq.to_string()));
    assert_eq!((pixel.x, pixel.y, pixel.seq), (4, 5, placed.seq));
    assert_eq!(pixel.username, "streamer");
}

#[tokio::test]
async fn a_reopened_stream_gets_exactly_the_missed_events_in_order() {
    let stack = Stack::start(2, NO_COOLDOWN).await;
    let api = stack.api.http();
    let mut stream = SseStream::open(&stack.gateways[1].http(), "", None).await;
    put_pixel(&api, 1, 1, "#000000", "a").await;
    let (first, _) = stream.next_pixel().await;
    assert_eq!(first.id.as_deref(), Some("1"));
    drop(stream);
    for x in 2..=4 {
        assert_eq!(put_pixel(&api, x, 1, "#000000", "a").await.status(), 200);
    }
    let mut stream = SseStream::open(&stack.gateways[0].http(), "", Some(1)).await;
    for expected in 2..=4u64 {
        let (e, p) = stream.next_pixel().await;
        assert_eq!((e.id, p.seq), (Some(expected.to_string()), expected));
    }
    // Then live, with nothing repeated.
    put_pixel(&api, 5, 1, "#000000", "a").await;
    let (_, p) = stream.next_pixel().await;
    assert_eq!(p.seq, 5);
}

#[tokio::test]
async fn a_last_event_id_older_than_the_log_gets_resync() {
    let stack = Stack::start(1, &[("COOLDOWN_MS", "0"), ("REPLAY_LOG_LEN", "10")]).await;
    http::write_many(&stack.api.http(), 300, 2).await;
    let mut stream = SseStream::open(&stack.gateways[0].http(), "", Some(0)).await;
    let e = stream.next().await;
    assert_eq!(e.event, "resync", "{e:?}");
}

#[tokio::test]
async fn a_region_filter_keeps_outside_pixels_out() {
    let stack = Stack::start(1, NO_COOLDOWN).await;
    let base = stack.gateways[0].http();
    let mut stream = SseStream::open(&base, "?region=10,10,20,20", None).await;
    put_pixel(&base, 5, 5, "#000000", "out").await;
    put_pixel(&base, 30, 15, "#000000", "out").await;
    put_pixel(&base, 15, 15, "#000000", "in").await;
    let (_, p) = stream.next_pixel().await;
    assert_eq!((p.x, p.y, p.username.as_str()), (15, 15, "in"));
    let bad = http::client()
        .get(format!("{base}/api/events?region=1,2,3"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // An idle stream stays open (heartbeats are comments, not events).
    let quiet = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
    assert!(quiet.is_err(), "unexpected event {quiet:?}");
}
