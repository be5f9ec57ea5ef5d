//! The gateway's HTTP routes: the WebSocket (`/ws`, and `/` as the
//! prototype had it), the web client, health, metrics, and `/api` (served
//! here or passed through to canvas-api).

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use protocol::close;
use protocol::messages::{
    BATCH_QUERY_PARAM, PROTOCOL_QUERY_PARAM, ProtocolVersion, parse_batch_param,
    parse_protocol_param,
};
use protocol::username::is_valid_username;

use crate::connection::{self, Identity, guest_name};
use crate::hub::Framing;
use crate::{ApiMode, Gateway, admission, web};

/// tungstenite allocates its read buffer eagerly per connection (and
/// zero-fills it before each read); client frames are small, so a small
/// buffer keeps idle connections cheap.
pub const WS_READ_BUFFER: usize = 512;
/// Frames written are batched up to this before a write call.
pub const WS_WRITE_BUFFER: usize = 16 * 1024;

pub fn router(gateway: Gateway) -> Router {
    let mut router = Router::new()
        .route("/ws", get(ws_only))
        .route("/", get(root))
        .route("/index.html", get(static_file))
        .route("/admin.html", get(static_file))
        .route("/static/{*path}", get(static_file))
        .route("/healthz", get(canvas_api::routes::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/events", get(crate::sse::events))
        .with_state(gateway.clone());
    let policy = &gateway.http_policy;
    match &gateway.api {
        ApiMode::Local(state) => {
            router = router.merge(canvas_api::routes::api_routes().with_state(state.clone()));
        }
        ApiMode::Proxy(remote) => {
            router = router.merge(
                Router::new()
                    .route("/api/{*rest}", any(crate::proxy::proxy))
                    .with_state(remote.clone()),
            );
        }
    }
    let router = router
        .fallback(canvas_api::routes::not_found)
        .method_not_allowed_fallback(canvas_api::routes::method_not_allowed);
    plumbing::http_layers(router, policy)
}

async fn ws_only(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match upgrade {
        Ok(upgrade) => accept(gw, peer, &headers, query, upgrade),
        Err(rejection) => (
            StatusCode::UPGRADE_REQUIRED,
            [(header::UPGRADE, "websocket")],
            format!("/ws takes WebSocket upgrades only: {rejection}"),
        )
            .into_response(),
    }
}

/// `/`: the web client, or a WebSocket when the request is an upgrade.
async fn root(
    State(gw): State<Gateway>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match upgrade {
        Ok(upgrade) => accept(gw, peer, &headers, query, upgrade),
        Err(_) => web::file("/").expect("index is embedded"),
    }
}

async fn static_file(uri: Uri) -> Response {
    web::file(uri.path()).unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
}

fn accept(
    gw: Gateway,
    peer: SocketAddr,
    headers: &HeaderMap,
    query: HashMap<String, String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    if gw.shutdown.is_cancelled() {
        gw.metrics.connections_refused.inc();
        return (StatusCode::SERVICE_UNAVAILABLE, "gateway shutting down").into_response();
    }
    let framing = match query.get(BATCH_QUERY_PARAM).map(|v| parse_batch_param(v)) {
        None | Some(Some(false)) => Framing::Single,
        Some(Some(true)) => Framing::Batched,
        Some(None) => {
            return canvas_api::ApiError::BadRequest(format!(
                "?{BATCH_QUERY_PARAM}= takes 1 or 0 (true or false)"
            ))
            .into_response();
        }
    };
    // Protocol v2 sends every run of events as one binary message, so a
    // `batch` asked for beside it changes nothing.
    let framing = match query
        .get(PROTOCOL_QUERY_PARAM)
        .map(|v| parse_protocol_param(v))
    {
        None | Some(Some(ProtocolVersion::V1)) => framing,
        Some(Some(ProtocolVersion::V2)) => Framing::Binary,
        Some(None) => {
            return canvas_api::ApiError::BadRequest(format!(
                "?{PROTOCOL_QUERY_PARAM}= takes 1 or 2"
            ))
            .into_response();
        }
    };
    if let Err(refused) = admission::check_origin(headers, &gw.http_policy.cors_origins) {
        gw.metrics.connections_refused.inc();
        return refused.into_response();
    }
    let ip = gw.auth.client_ip(peer.ip(), headers);
    let ip_slot = match admission::ip_slot(&gw, ip) {
        Ok(slot) => slot,
        Err(refused) => return refused.into_response(),
    };
    // A token decides who the connection is; a bad one is told so by a
    // close frame (4001), which a browser can read and an HTTP error is not.
    let identity = match query.get("token").map(|t| gw.auth.verify(t)) {
        Some(Ok(session)) => Ok((session.username, Identity::Verified)),
        Some(Err(e)) => Err(e),
        None if gw.auth.required() => Ok((guest_name(), Identity::Watcher)),
        None => Ok((
            query
                .get("username")
                .filter(|u| is_valid_username(u))
                .cloned()
                .unwrap_or_else(guest_name),
            Identity::Claimed,
        )),
    };
    let max_frame = gw.max_frame_bytes;
    upgrade
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |mut socket| async move {
            let (username, identity) = match identity {
                Ok(identity) => identity,
                Err(e) => {
                    gw.metrics.connections_refused.inc();
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: close::UNAUTHORIZED,
                            reason: Utf8Bytes::from_static(e.reason()),
                        })))
                        .await;
                    return;
                }
            };
            if admission::at_capacity(&gw) {
                gw.metrics.connections_refused.inc();
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: close::TRY_AGAIN_LATER,
                        reason: Utf8Bytes::from_static("gateway full; try another or retry later"),
                    })))
                    .await;
                return;
            }
            let tracker = gw.connections.clone();
            tracker
                .track_future(connection::serve(
                    socket, gw, username, identity, ip_slot, framing,
                ))
                .await;
        })
}

async fn readyz(State(gw): State<Gateway>) -> Response {
    if gw.is_ready() {
        "ready".into_response()
    } else {
        let detail = protocol::http::ErrorDetail {
            code: protocol::ErrorCode::Unavailable,
            message: if gw.shutdown.is_cancelled() {
                "shutting down".into()
            } else {
                "the Redis subscription is down".into()
            },
            retry_after_ms: None,
        };
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(protocol::http::ErrorBody { error: detail }),
        )
            .into_response()
    }
}

async fn metrics(State(gw): State<Gateway>) -> Response {
    let mut out = String::new();
    plumbing::metrics::write_build_info(
        &mut out,
        "gateway_build_info",
        "The gateway (server) build this process runs (always 1).",
        env!("CARGO_PKG_VERSION"),
    );
    gw.metrics.render(&mut out);
    if let ApiMode::Local(state) = &gw.api {
        state.canvas.metrics().render(&mut out);
    }
    gw.http_policy.http_metrics.render(
        &mut out,
        "gateway_http_requests_total",
        "HTTP requests answered, by route template, method and status class (a WebSocket upgrade is 1xx).",
    );
    plumbing::process_metrics::render(&mut out);
    gw.auth.forwarded_for_watch().render(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
