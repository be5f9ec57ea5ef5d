//! The load-test tool, in short runs: a healthy system (the single-process
//! default, and the local cluster behind nginx) must pass it, and a gateway
//! that drops messages must fail it.

use std::process::Stdio;

use crate::harness::Process;
use crate::harness::cluster::Cluster;
use crate::harness::lossy_proxy::LossyProxy;
use crate::harness::process::binary;

async fn server() -> (Process, crate::harness::TempDir) {
    let dir = crate::harness::temp_dir("loadtest");
    let env = [
        ("DATA_DIR", dir.display().to_string()),
        ("COOLDOWN_MS", "0".to_owned()),
        ("PALETTE", "any".to_owned()),
    ];
    (Process::spawn("server", &env).await, dir)
}

/// Runs `loadtest --json ARGS` and returns its exit code and summary.
async fn loadtest(url: &str, args: &[&str]) -> (i32, serde_json::Value) {
    loadtest_with_api(url, None, args).await
}

async fn loadtest_with_api(
    url: &str,
    api: Option<&str>,
    args: &[&str],
) -> (i32, serde_json::Value) {
    let mut cmd = tokio::process::Command::new(binary("loadtest"));
    if let Some(api) = api {
        cmd.arg("--api").arg(api);
    }
    let out = cmd
        .arg("--url")
        .arg(url)
        .arg("--json")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run loadtest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "loadtest printed no JSON summary ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), summary)
}

#[tokio::test]
async fn fanout_smoke_run_loses_nothing_and_the_board_matches() {
    let (server, _dir) = server().await;
    let (code, s) = loadtest(
        &server.ws(),
        &[
            "fanout",
            "--writers",
            "2",
            "--observers",
            "5",
            "--rate",
            "100",
            "--duration",
            "2",
        ],
    )
    .await;
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["placements_acked"], 200, "{s:#}");
    assert_eq!(s["deliveries_expected"], 1000);
    assert_eq!(s["deliveries_received"], 1000);
    assert_eq!(s["lost"], 0);
    assert_eq!(s["duplicates"], 0);
    assert_eq!(s["board_mismatches"], 0);
    assert!(s["board_pixels_compared"].as_u64().unwrap() > 0, "{s:#}");
}

#[tokio::test]
async fn connections_smoke_run_opens_every_connection() {
    let (server, _dir) = server().await;
    let (code, s) = loadtest(
        &server.ws(),
        &["connections", "--count", "200", "--hold-secs", "1"],
    )
    .await;
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["opened"], 200);
    assert_eq!(s["failed"], 0);
    assert_eq!(s["gateway_connections"], 200);
}

#[tokio::test]
async fn an_unreachable_gateway_is_a_clear_error() {
    let port = crate::harness::redis_server::free_port();
    let (code, _) = {
        let out = tokio::process::Command::new(binary("loadtest"))
            .args([
                "--url",
                &format!("ws://127.0.0.1:{port}/ws"),
                "fanout",
                "--duration",
                "1",
            ])
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(stderr.contains("cannot connect to"), "{stderr}");
        (out.status.code(), stderr)
    };
    assert_eq!(code, Some(2));
}

const SMOKE_FANOUT: [&str; 9] = [
    "fanout",
    "--writers",
    "2",
    "--observers",
    "5",
    "--rate",
    "100",
    "--duration",
    "2",
];

#[tokio::test]
async fn fanout_reports_loss_when_the_gateway_drops_messages() {
    let (server, _dir) = server().await;
    let proxy = LossyProxy::start(server.addr, 7).await;
    let (code, s) = loadtest_with_api(&proxy.ws(), Some(&server.http()), &SMOKE_FANOUT).await;
    let dropped = proxy.dropped.load(std::sync::atomic::Ordering::Relaxed);
    assert!(dropped > 0, "the proxy dropped nothing");
    assert_eq!(code, 1, "a lossy run must fail: {s:#}");
    assert!(s["lost"].as_u64().unwrap() > 0, "{s:#}");
    assert!(
        s["deliveries_received"].as_u64() < s["deliveries_expected"].as_u64(),
        "{s:#}"
    );
    // The loss is in delivery only: the board still matches every ack.
    assert_eq!(s["board_mismatches"], 0, "{s:#}");
}

#[tokio::test]
async fn fanout_smoke_run_through_the_local_cluster_loses_nothing() {
    let cluster = Cluster::up(&[("COOLDOWN_MS", "0"), ("PALETTE", "any")]).await;
    let (code, s) = loadtest(&cluster.ws(), &SMOKE_FANOUT).await;
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["placements_acked"], 200, "{s:#}");
    assert_eq!(s["deliveries_received"], 1000, "{s:#}");
    assert_eq!(s["lost"], 0);
    assert_eq!(s["duplicates"], 0);
    assert_eq!(s["board_mismatches"], 0);
}

/// `loadtest fanout` at 1,000/s (10 writers, 20 observers, 3 s) over two
/// gateways, with the client options `client_args`: every acknowledged
/// pixel reaches every observer once, and the board agrees. Returns the
/// summary for the caller's own checks.
async fn every_pixel_over_two_gateways(client_args: &[&str]) -> serde_json::Value {
    let stack = crate::harness::Stack::start(
        2,
        &[
            ("COOLDOWN_MS", "0"),
            ("PALETTE", "any"),
            ("MAX_CONNECTIONS_PER_IP", "0"),
            ("MESSAGES_PER_SEC_PER_IP", "0"),
        ],
    )
    .await;
    let urls = format!("{},{}", stack.gateways[0].ws(), stack.gateways[1].ws());
    let mut args = client_args.to_vec();
    args.extend([
        "fanout",
        "--writers",
        "10",
        "--observers",
        "20",
        "--rate",
        "1000",
        "--duration",
        "3",
    ]);
    let (code, s) = loadtest(&urls, &args).await;
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["lost"], 0, "{s:#}");
    assert_eq!(s["duplicates"], 0, "{s:#}");
    assert_eq!(s["board_mismatches"], 0, "{s:#}");
    let acked = s["placements_acked"].as_u64().unwrap();
    assert!(acked >= 2_900, "{s:#}");
    assert_eq!(s["deliveries_received"].as_u64(), Some(acked * 20), "{s:#}");
    s
}

#[tokio::test]
async fn legacy_clients_over_two_gateways_get_every_pixel_at_1000_per_second() {
    // The prototype's clients ignore `batch`: at this rate every fan-out
    // window holds several events, so each must still come on its own.
    let s = every_pixel_over_two_gateways(&["--legacy"]).await;
    assert_eq!(s["unread_batches"], 0, "{s:#}");
}

#[tokio::test]
async fn v2_clients_over_two_gateways_get_every_pixel_at_1000_per_second() {
    // Binary events and binary placements: every pixel still arrives once,
    // matched to its placement by the `seq` of its ack. A JSON pixel event
    // on a v2 connection would count as a decode error.
    let s = every_pixel_over_two_gateways(&["--protocol", "2"]).await;
    assert_eq!(s["decode_errors"], 0, "{s:#}");
}
