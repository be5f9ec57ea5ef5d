//! Who a client is behind proxies: the local cluster (as the Kubernetes
//! base) lets canvas-api believe the load balancer's and the gateways'
//! `X-Forwarded-For`, so clients behind them do not share one session
//! quota; and a service that gets the header from a peer it does not trust
//! says so, in its log and in `/metrics`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::harness::cluster::Cluster;
use crate::harness::http::metric;
use crate::harness::{Process, WAIT, temp_dir};

async fn session_from(source: [u8; 4], base: &str, username: &str) -> u16 {
    let client = reqwest::Client::builder()
        .local_address(IpAddr::from(source))
        .build()
        .unwrap();
    client
        .post(format!("{base}/api/session"))
        .json(&serde_json::json!({ "username": username }))
        .send()
        .await
        .expect("POST /api/session")
        .status()
        .as_u16()
}

#[tokio::test]
async fn clients_behind_the_load_balancer_and_gateways_each_have_their_own_session_quota() {
    // One canvas-api: the quota is kept per process.
    let cluster = Cluster::up(&[("SESSIONS_PER_HOUR_PER_IP", "1"), ("CLUSTER_APIS", "1")]).await;
    let lb = cluster.url();
    assert_eq!(session_from([127, 0, 0, 2], &lb, "first").await, 200);
    assert_eq!(
        session_from([127, 0, 0, 3], &lb, "second").await,
        200,
        "another client behind the load balancer has its own quota"
    );
    assert_eq!(
        session_from([127, 0, 0, 2], &lb, "third").await,
        429,
        "each client is still limited"
    );
    // Through a gateway's /api pass-through (and the canvas-api Service).
    let gateway = cluster.gateway_url(1);
    assert_eq!(session_from([127, 0, 0, 4], &gateway, "fourth").await, 200);
    assert_eq!(session_from([127, 0, 0, 4], &gateway, "fifth").await, 429);
}

/// Waits until `process`'s log holds `text`.
async fn await_log(process: &Process, text: &str) {
    let deadline = Instant::now() + WAIT;
    while !process.log().contains(text) {
        assert!(
            Instant::now() < deadline,
            "log never said {text:?}:\n{}",
            process.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_untrusted_x_forwarded_for_is_warned_about_and_counted() {
    let dir = temp_dir("untrusted-xff");
    let api = Process::spawn("canvas-api", &[("DATA_DIR", dir.display().to_string())]).await;
    await_log(&api, "TRUSTED_PROXIES is unset").await;
    let base = api.http();
    const COUNTER: &str = "http_untrusted_forwarded_for_total";
    assert_eq!(metric(&base, COUNTER).await, 0);
    for _ in 0..2 {
        let r = reqwest::Client::new()
            .get(format!("{base}/api/config"))
            .header("x-forwarded-for", "203.0.113.9")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(metric(&base, COUNTER).await, 2);
    let warning = "which is not in TRUSTED_PROXIES";
    await_log(&api, warning).await;
    assert_eq!(api.log().matches(warning).count(), 1, "warned once");
}
