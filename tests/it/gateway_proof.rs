//! Only a gateway speaks for its client's IP: the header a gateway once
//! sent, and a body `ip`, buy a client nothing; a forged or replayed proof
//! is refused; a gateway's own proof still counts its client's IP.

use std::net::IpAddr;

use protocol::http::HEADER_GATEWAY_PROOF;

use crate::auth::session;
use crate::harness::client::pixel_event;
use crate::harness::http::{TEST_SECRET, client, metric, put_as_gateway};
use crate::harness::{Stack, WsClient, single_process};

/// An IP pool of two, refilled only after ten minutes.
const IP_POOL: [(&str, &str); 2] = [("IP_POOL_SIZE", "2"), ("IP_POOL_REFILL_MS", "600000")];

/// `PUT /api/pixel` the way the review forged it: the old gateway header,
/// a made-up proof, a body `ip` of the caller's choosing.
async fn forged_put(base: &str, x: i64, ip: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = client()
        .put(format!("{base}/api/pixel"))
        .header("x-canvas-published-by-caller", "1")
        .json(&serde_json::json!({"x": x, "y": 0, "color": "#FF4500", "username": format!("u{x}"), "ip": ip}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("PUT /api/pixel")
}

/// Two forged placements pass (the pool holds two), the third is refused,
/// and the observer gets both pixels by broadcast: the gateway repaired
/// nothing from the replay log.
async fn assert_pool_holds_and_pixels_are_broadcast(
    api: &str,
    gateway: &str,
    observer: &mut WsClient,
    token: Option<&str>,
) {
    for x in 0..2 {
        let r = forged_put(api, x, &format!("10.0.0.{x}"), token).await;
        assert_eq!(r.status(), 200, "placement {x}");
        observer
            .expect("the placement, broadcast", |m| {
                pixel_event(m, x as u32, 0).is_some()
            })
            .await;
    }
    let r = forged_put(api, 2, "10.0.0.2", token).await;
    assert_eq!(r.status(), 429, "a body ip must not open a fresh pool");
    assert_eq!(
        metric(gateway, "gateway_repaired_events_total").await,
        0,
        "the pixels came by gap repair, not broadcast"
    );
}

#[tokio::test]
async fn the_single_process_never_believes_a_caller_supplied_ip() {
    let mut env = IP_POOL.to_vec();
    env.push(("AUTH_SECRET", TEST_SECRET));
    let (server, _dir) = single_process("forged-ip", &env).await;
    let mut observer = WsClient::connect(&server.ws(), None).await;
    assert_pool_holds_and_pixels_are_broadcast(&server.http(), &server.http(), &mut observer, None)
        .await;
    // Not even a proof signed with the right secret: no gateway calls the
    // single process's public route.
    let r = put_as_gateway(
        &server.http(),
        (5, 5),
        "#FF4500",
        "proven",
        IpAddr::from([10, 9, 9, 9]),
    )
    .await;
    assert_eq!(r.status(), 429, "counted under its own address");
}

#[tokio::test]
async fn canvas_api_counts_a_forged_placement_under_its_peer_and_broadcasts_it() {
    let mut env = IP_POOL.to_vec();
    env.extend([
        ("AUTH", "required"),
        ("COOLDOWN_MS", "0"),
        ("AUTH_SECRET", TEST_SECRET),
    ]);
    let stack = Stack::start(1, &env).await;
    let gw = &stack.gateways[0];
    let mut observer = WsClient::connect(&gw.ws(), None).await;
    let token = session(&stack.api.http(), "forger").await.token;
    assert_pool_holds_and_pixels_are_broadcast(
        &stack.api.http(),
        &gw.http(),
        &mut observer,
        Some(&token),
    )
    .await;
}

#[tokio::test]
async fn forged_and_replayed_proofs_are_refused_and_a_gateways_own_counts_its_client() {
    let mut env = IP_POOL.to_vec();
    env.extend([("COOLDOWN_MS", "0"), ("AUTH_SECRET", TEST_SECRET)]);
    let stack = Stack::start(1, &env).await;
    let api = stack.api.http();
    let put_with_proof = |x: i64, proof: String| {
        let api = api.clone();
        async move {
            client()
                .put(format!("{api}/api/pixel"))
                .header(HEADER_GATEWAY_PROOF, proof)
                .json(&serde_json::json!({"x": x, "y": 1, "color": "#FF4500", "username": "eve", "ip": "10.1.1.1"}))
                .send()
                .await
                .expect("PUT /api/pixel")
        }
    };
    let r = put_with_proof(
        1,
        "g1.99999999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
    )
    .await;
    assert_eq!(r.status(), 401, "a made-up proof");
    // A real proof, for another placement: captured and replayed.
    let key = canvas_api::gateway_proof::GatewayKey::from_secret(TEST_SECRET.as_bytes());
    let captured = key.mint(
        &canvas_api::gateway_proof::PlacementClaim {
            username: "eve",
            ip: Some(IpAddr::from([10, 1, 1, 1])),
            x: 1,
            y: 1,
            color: "#FF4500",
        },
        plumbing::clock::now_ms(),
    );
    let r = put_with_proof(2, captured.clone()).await;
    assert_eq!(r.status(), 401, "a proof replayed for another pixel");
    assert_eq!(put_with_proof(1, captured).await.status(), 200);

    // A gateway's proof counts its client's IP, not the caller's: this
    // caller's own pool is spent, the proven clients' are not.
    for x in 0..2 {
        let r = forged_put(&api, x, "10.0.0.1", None).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(forged_put(&api, 3, "10.0.0.1", None).await.status(), 429);
    let r = put_as_gateway(
        &api,
        (4, 4),
        "#FF4500",
        "carol",
        IpAddr::from([10, 2, 2, 2]),
    )
    .await;
    assert_eq!(r.status(), 200, "the proven client's own pool");
}
