//! Every per-IP limit counts an IPv6 client by its /64, as the pixel pool
//! does: one host usually holds a whole /64, and would otherwise get a fresh
//! budget per address. Clients are told apart by `X-Forwarded-For` from a
//! trusted proxy, as loopback has no /64 of addresses to connect from.

use crate::harness::http::client;
use crate::harness::{WsClient, single_process};

/// A WebSocket upgrade from `forwarded_for`: its HTTP status (101 when
/// upgraded; the socket is kept open in `held`).
async fn upgrade(ws: &str, forwarded_for: &str, held: &mut Vec<WsClient>) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = ws.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-forwarded-for", forwarded_for.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => {
            held.push(WsClient::from_stream(ws).await);
            101
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("upgrade failed without a status: {e}"),
    }
}

async fn session_status(base: &str, username: &str, forwarded_for: &str) -> u16 {
    client()
        .post(format!("{base}/api/session"))
        .header("x-forwarded-for", forwarded_for)
        .json(&serde_json::json!({ "username": username }))
        .send()
        .await
        .expect("POST /api/session")
        .status()
        .as_u16()
}

#[tokio::test]
async fn connections_and_sessions_count_an_ipv6_client_by_its_64() {
    let (server, _dir) = single_process(
        "ipv6-limits",
        &[
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
            ("MAX_CONNECTIONS_PER_IP", "3"),
            ("SESSIONS_PER_HOUR_PER_IP", "2"),
        ],
    )
    .await;
    let ws = server.ws();
    let mut held = Vec::new();
    for i in 1..=3 {
        assert_eq!(
            upgrade(&ws, &format!("2001:db8::{i}"), &mut held).await,
            101
        );
    }
    assert_eq!(
        upgrade(&ws, "2001:db8::ffff:1", &mut held).await,
        429,
        "a fourth address of the same /64"
    );
    assert_eq!(
        upgrade(&ws, "2001:db8:0:1::1", &mut held).await,
        101,
        "another /64 is another client"
    );

    let base = server.http();
    assert_eq!(session_status(&base, "s1", "2001:db8:5::1").await, 200);
    assert_eq!(session_status(&base, "s2", "2001:db8:5::2").await, 200);
    assert_eq!(
        session_status(&base, "s3", "2001:db8:5:0:ffff::3").await,
        429,
        "a third session from the same /64"
    );
    assert_eq!(session_status(&base, "s3", "2001:db8:6::1").await, 200);
}
