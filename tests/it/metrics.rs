//! What operators see. `/metrics` of both services, scraped live:
//! latencies are histograms, the process reports its memory and
//! descriptors, the build is named, HTTP requests are counted by route
//! template (never the raw path), and every metric the Grafana dashboard and
//! the alerts in `k8s/monitoring` query is one the services export. And the
//! log at its default level: a line per connection, none per pixel.

use std::collections::BTreeSet;

use protocol::ServerMessage;

use crate::harness::http::{client, put_pixel};
use crate::harness::{SseStream, Stack, WAIT, WsClient, single_process};

async fn scrape(base: &str) -> String {
    let r = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.status(), 200);
    r.text().await.expect("metrics body")
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

/// The names of every sample (a histogram's `_bucket`, `_sum`, `_count`).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn both_services_export_histograms_process_build_and_route_metrics() {
    let stack = Stack::start(1, &[("COOLDOWN_MS", "0")]).await;
    let (api, gateway) = (stack.api.http(), stack.gateways[0].http());
    let mut ws = WsClient::connect(&stack.gateways[0].ws(), Some("measured")).await;
    ws.place(3, 4, "#000000", 1).await;
    assert!(matches!(ws.reply_to(1).await, ServerMessage::Ack { .. }));
    assert_eq!(
        put_pixel(&api, 5, 6, "#000000", "painter").await.status(),
        200
    );
    for base in [&api, &gateway] {
        let r = client()
            .get(format!("{base}/api/pixel/5/6"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{base}");
    }
    let api_text = scrape(&api).await;
    let gateway_text = scrape(&gateway).await;

    // Latencies: histograms whose `+Inf` bucket is the count.
    for (text, name, at_least) in [
        (&gateway_text, "gateway_placement_seconds", 1.0),
        (&api_text, "canvas_store_write_seconds", 2.0),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} histogram\n")),
            "{name} is no histogram:\n{text}"
        );
        let count = sample(text, &format!("{name}_count")).expect("a count");
        assert!(count >= at_least, "{name}_count {count}");
        assert_eq!(
            sample(text, &format!("{name}_bucket{{le=\"+Inf\"}}")),
            Some(count),
            "{name}"
        );
        assert!(sample(text, &format!("{name}_bucket{{le=\"0.001\"}}")).is_some());
    }

    for (text, build_info) in [
        (&api_text, "canvas_api_build_info"),
        (&gateway_text, "gateway_build_info"),
    ] {
        assert_eq!(
            sample(text, &format!("{build_info}{{version=\"0.1.0\"}}")),
            Some(1.0),
            "{build_info}:\n{text}"
        );
        for process in [
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
        ] {
            assert!(
                sample(text, process).is_some_and(|v| v > 0.0),
                "{process}:\n{text}"
            );
        }
    }

    // Requests by route template, method and status class.
    for (text, series) in [
        (
            &api_text,
            r#"canvas_http_requests_total{route="/api/pixel",method="PUT",status="2xx"}"#,
        ),
        (
            &api_text,
            r#"canvas_http_requests_total{route="/api/pixel/{x}/{y}",method="GET",status="2xx"}"#,
        ),
        (
            &gateway_text,
            r#"gateway_http_requests_total{route="/ws",method="GET",status="1xx"}"#,
        ),
    ] {
        assert!(
            sample(text, series).is_some_and(|n| n >= 1.0),
            "no {series}:\n{text}"
        );
    }
    // The gateway passed its /api/pixel/5/6 on to canvas-api: one template.
    assert!(
        sample(
            &gateway_text,
            r#"gateway_http_requests_total{route="/api/{*rest}",method="GET",status="2xx"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{gateway_text}"
    );
    assert!(!api_text.contains("/api/pixel/5/6") && !gateway_text.contains("/api/pixel/5/6"));
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_query_is_exported() {
    let stack = Stack::start(1, &[("COOLDOWN_MS", "0")]).await;
    // One request first, so the request counters have a series.
    let _ = client()
        .get(format!("{}/api/config", stack.gateways[0].http()))
        .send()
        .await
        .unwrap();
    let mut exported = sample_names(&scrape(&stack.api.http()).await);
    exported.extend(sample_names(&scrape(&stack.gateways[0].http()).await));
    let queries = crate::k8s::monitoring::queries();
    assert!(queries.len() > 20, "{} queries", queries.len());
    for (at, expr) in queries {
        for name in crate::k8s::monitoring::metric_names(&expr) {
            assert!(
                exported.contains(&name)
                    || crate::k8s::monitoring::SYNTHETIC.contains(&name.as_str()),
                "{at} queries {name}, which no service exports ({expr})"
            );
        }
    }
}

#[tokio::test]
async fn the_log_has_a_line_per_connection_opened_and_closed_and_none_per_pixel() {
    let (server, _dir) = single_process("connection-log", &[]).await;
    let mut ws = WsClient::connect(&server.ws(), Some("logged")).await;
    for n in 0..20u64 {
        ws.place(n as i64, 0, "#000000", n).await;
        assert!(matches!(ws.reply_to(n).await, ServerMessage::Ack { .. }));
    }
    ws.expect(
        "the last pixel",
        |m| matches!(m, ServerMessage::PixelUpdated(p) if p.x == 19),
    )
    .await;
    // Opened and left on a quiet board: no event will reveal that it left.
    let sse = SseStream::open(&server.http(), "?username=logged", None).await;
    drop(sse);
    drop(ws);
    // The gateway notices both closed sockets at once; the lines follow.
    let deadline = tokio::time::Instant::now() + WAIT;
    let log = loop {
        let log = server.log();
        if log.contains("websocket closed") && log.contains("sse stream closed") {
            break log;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no close lines within {WAIT:?}:\n{log}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let lines = |what: &str| log.lines().filter(|l| l.contains(what)).collect::<Vec<_>>();
    let opened = lines("websocket opened");
    assert_eq!(opened.len(), 1, "{log}");
    assert!(
        opened[0].contains("INFO")
            && opened[0].contains("user=\"logged\"")
            && opened[0].contains("websockets=1"),
        "{}",
        opened[0]
    );
    let closed = lines("websocket closed");
    assert_eq!(closed.len(), 1, "{log}");
    assert!(
        closed[0].contains("websockets=0") && closed[0].contains("lived_ms="),
        "{}",
        closed[0]
    );
    assert_eq!(lines("sse stream opened").len(), 1, "{log}");
    let sse_closed = lines("sse stream closed");
    assert_eq!(sse_closed.len(), 1, "{log}");
    assert!(sse_closed[0].contains("sse_streams=0"), "{}", sse_closed[0]);
    // Between the WebSocket's two lines, 20 placements logged nothing but
    // the SSE stream's own lines.
    let during: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.contains("websocket opened"))
        .skip(1)
        .take_while(|l| !l.contains("websocket closed"))
        .filter(|l| !l.contains("sse stream"))
        .collect();
    assert!(during.is_empty(), "logged while placing: {during:#?}");
}
