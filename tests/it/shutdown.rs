//! A gateway stopping with SIGTERM, as Kubernetes scales it down: at once it
//! takes no new connection and reads as not ready; the clients it holds are
//! still served, then closed with 1001 in batches spread over the drain
//! window, not all at once; then it exits.

use std::time::Duration;

use protocol::ServerMessage;
use tokio::time::Instant;

use crate::harness::client::Ended;
use crate::harness::http::{self, put_pixel};
use crate::harness::{Stack, WsClient};

#[tokio::test]
async fn a_stopping_gateway_refuses_newcomers_and_closes_its_clients_in_batches() {
    let mut stack = Stack::start(
        2,
        &[
            ("COOLDOWN_MS", "0"),
            ("SHUTDOWN_DRAIN_MS", "1500"),
            ("SHUTDOWN_GRACE_SECS", "10"),
        ],
    )
    .await;
    let leaving = stack.gateways.pop().expect("two gateways");
    let (ws_url, http_url) = (leaving.ws(), leaving.http());
    let mut clients = Vec::new();
    for i in 0..40 {
        clients.push(WsClient::connect(&ws_url, Some(&format!("leaving-{i}"))).await);
    }

    let stopping = tokio::spawn(leaving.terminate());
    // Not ready, and no newcomer, from the moment the signal lands: poll
    // until the listener is gone (the signal's delivery is the event).
    let deadline = Instant::now() + crate::harness::WAIT;
    while http::client()
        .get(format!("{http_url}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "still ready after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        WsClient::try_connect(&ws_url, None).await.is_err(),
        "a stopping gateway took a new connection"
    );

    // Those it holds are still served: a pixel placed elsewhere reaches
    // every one that has not been closed yet.
    let r = put_pixel(&stack.api.http(), 5, 5, "#000000", "elsewhere").await;
    assert_eq!(r.status(), 200);

    // Every client is read at once, so each close is timed when it comes
    // (read one after another, the closes before the slowest client's
    // would all be seen at its moment).
    let outcomes = futures_util::future::join_all(clients.iter_mut().map(|c| async move {
        let mut saw_pixel = false;
        loop {
            match c.try_next_within(crate::harness::WAIT).await {
                Ok(Some(ServerMessage::PixelUpdated(e))) if e.x == 5 && e.y == 5 => {
                    saw_pixel = true
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("no close within the drain window"),
                Err(Ended(frame)) => {
                    let code = frame.map(|f| u16::from(f.code));
                    assert_eq!(code, Some(protocol::close::GOING_AWAY));
                    return (Instant::now(), saw_pixel);
                }
            }
        }
    }))
    .await;
    let closed_at: Vec<Instant> = outcomes.iter().map(|(at, _)| *at).collect();
    let served = outcomes.iter().filter(|(_, saw)| *saw).count();
    assert!(served > 0, "nobody was served during the drain");
    // Batches over 1.5 s: the closes are spread out, not one burst. (A
    // slow machine only spreads them further.)
    let first = *closed_at.iter().min().expect("closes");
    let last = *closed_at.iter().max().expect("closes");
    assert!(
        last - first >= Duration::from_millis(500),
        "all 40 closes came within {:?}",
        last - first
    );
    let status = stopping.await.expect("terminate");
    assert!(status.success(), "exit status {status:?}");
}
