//! canvas-api's HTTP routes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use protocol::ServerMessage;
use protocol::http::{
    HEADER_CANVAS_EPOCH, HEADER_CANVAS_HEIGHT, HEADER_CANVAS_SEQ, HEADER_CANVAS_WIDTH,
    HEADER_GATEWAY_PROOF, PixelInfo, PlacePixelRequest, PlacePixelResponse, SessionRequest,
    SessionResponse, UpdatesPage,
};
use protocol::username::is_valid_username;

use crate::AppState;
use crate::auth::bearer;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::gateway_proof::PlacementClaim;
use crate::render;
use crate::store::chunk::ChunkId;

/// The largest `PUT /api/pixel` body.
pub const MAX_PIXEL_BODY: usize = 4 * 1024;
/// `/api/updates` page size when `limit` is not given.
pub const DEFAULT_UPDATES_PAGE: usize = 1000;

/// The largest `POST /api/session` body.
pub const MAX_SESSION_BODY: usize = 4 * 1024;

/// The `/api` routes alone, for a process that serves them beside others.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/api/config", get(config))
        .route(
            "/api/session",
            axum::routing::post(session).layer(DefaultBodyLimit::max(MAX_SESSION_BODY)),
        )
        .route(
            "/api/pixel",
            axum::routing::put(place_pixel)
                .post(place_pixel)
                .layer(DefaultBodyLimit::max(MAX_PIXEL_BODY)),
        )
        .route("/api/canvas.bin", get(canvas_bin))
        .route("/api/canvas.png", get(canvas_png))
        .route("/api/canvas", get(canvas_legacy))
        .route("/api/pixel/{x}/{y}", get(pixel_info))
        .route("/api/updates", get(updates))
        .merge(crate::batch_routes::batch_routes())
        .merge(crate::admin::admin_routes())
        .merge(crate::history::history_routes())
        .merge(crate::chunks::chunk_routes())
}

async fn config(
    State(state): State<AppState>,
) -> Result<Json<protocol::http::CanvasConfig>, ApiError> {
    let mut config = state.canvas.config().await?;
    config.auth_required = state.auth.required();
    Ok(Json(config))
}

/// A body, or the typed reason it could not be read.
pub(crate) fn read_body(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(limit)
        }
        other => ApiError::BadRequest(other.body_text()),
    })
}

/// `POST /api/session {"username"}`: a signed token for the name, unless
/// another live session holds it (409 `username_taken`); presenting the
/// name's current token (`Authorization: Bearer`) renews it.
async fn session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SessionResponse>, ApiError> {
    let body = read_body(body, MAX_SESSION_BODY)?;
    let req: SessionRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!("the body must be JSON {{\"username\"}}: {e}"))
    })?;
    let current = bearer(&headers)?;
    let client = state.auth.client_ip(peer.ip(), &headers);
    let (token, expires_at) = state.auth.issue(&req.username, current, client).await?;
    Ok(Json(SessionResponse {
        token,
        username: req.username,
        expires_at,
    }))
}

async fn place_pixel(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PlacePixelResponse>, ApiError> {
    let proof =
        match headers.get(HEADER_GATEWAY_PROOF) {
            // The single process's public route never believes one: no gateway
            // calls it, so whoever sends it is a client.
            Some(proof) if state.gateway_proofs => Some(proof.to_str().map_err(|_| {
                ApiError::Unauthorized(format!("{HEADER_GATEWAY_PROOF} is not ASCII"))
            })?),
            _ => None,
        };
    // Who places: a gateway's signed claim, else the token's user whatever
    // the body says; without a token, the body's username, unless
    // AUTH=required.
    let verified = match (proof, bearer(&headers)?) {
        (Some(_), _) => None,
        (None, Some(token)) => Some(state.auth.verify(token)?.username),
        (None, None) if state.auth.required() => {
            return Err(ApiError::Unauthorized(
                "AUTH=required: send `Authorization: Bearer <token>` (from POST /api/session)"
                    .into(),
            ));
        }
        (None, None) => None,
    };
    let body = read_body(body, MAX_PIXEL_BODY)?;
    let mut req: PlacePixelRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be JSON {{\"x\", \"y\", \"color\", \"username\"}}: {e}"
        ))
    })?;
    if let Some(username) = verified {
        req.username = username;
    }
    // A gateway placing for its WebSocket client (proven by its signature
    // over this very placement) passes the client's IP and answers its
    // client itself. Any other caller placed over HTTP: it is counted by
    // the address it connects from (or by X-Forwarded-For when that address
    // is one of TRUSTED_PROXIES), and the user's connections hear the
    // answer too. Either way the store announces the pixel as it stores it.
    let ip = match proof {
        Some(proof) => {
            let ip = match &req.ip {
                Some(ip) => Some(ip.parse::<IpAddr>().map_err(|_| {
                    ApiError::BadRequest(format!("`ip` must be an IP address, got {ip:?}"))
                })?),
                None => None,
            };
            let claim = PlacementClaim {
                username: &req.username,
                ip,
                x: req.x,
                y: req.y,
                color: &req.color,
            };
            state
                .auth
                .gateway_key()
                .verify(proof, &claim, now_ms())
                .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
            ip
        }
        None => {
            let ip = state.auth.client_ip(peer.ip(), &headers);
            state.http_placements.take(ip)?;
            Some(ip)
        }
    };
    let over_http = proof.is_none();
    let event = match state
        .canvas
        .place(req.x, req.y, &req.color, &req.username, ip)
        .await
    {
        Ok(event) => event,
        Err(e) => {
            if over_http && is_valid_username(&req.username) {
                state
                    .notices
                    .failed_over_http(&req.username, req.x, req.y, &e)
                    .await;
            }
            return Err(e);
        }
    };
    let response = PlacePixelResponse {
        seq: event.seq,
        timestamp: event.timestamp,
        x: event.x,
        y: event.y,
        color: event.color,
    };
    // The store announced the pixel as it stored it; only the answer to
    // the user is left.
    if over_http {
        state.notices.placed_over_http(&event).await;
    }
    Ok(Json(response))
}

async fn canvas_bin(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = state.canvas.snapshot().await?;
    let g = state.canvas.geometry();
    let mut response = snapshot.rgb.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(HEADER_CANVAS_WIDTH, g.width.into());
    h.insert(HEADER_CANVAS_HEIGHT, g.height.into());
    h.insert(HEADER_CANVAS_SEQ, snapshot.seq.into());
    if let Ok(epoch) = HeaderValue::from_str(&snapshot.epoch) {
        h.insert(HEADER_CANVAS_EPOCH, epoch);
    }
    expose_canvas_headers(h);
    Ok(response)
}

/// Lets a browser page on another origin (when CORS allows it) read the
/// board's headers.
fn expose_canvas_headers(h: &mut HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-canvas-width, x-canvas-height, x-canvas-seq, x-canvas-epoch"),
    );
}

async fn canvas_png(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = state.canvas.snapshot().await?;
    let g = state.canvas.geometry();
    let png = tokio::task::spawn_blocking(move || {
        render::png(g, &snapshot.rgb).map(|png| (png, snapshot.seq))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (png, seq) = png.map_err(|e| ApiError::Internal(format!("PNG encoding: {e}")))?;
    let mut response = png.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(HEADER_CANVAS_SEQ, seq.into());
    expose_canvas_headers(h);
    Ok(response)
}

async fn canvas_legacy(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = state.canvas.snapshot().await?;
    let g = state.canvas.geometry();
    let legacy = tokio::task::spawn_blocking(move || render::legacy(g, &snapshot))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(legacy).into_response())
}

fn parse_coordinate(name: &str, raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::BadRequest(format!("{name} must be an integer, got {raw:?}")))
}

async fn pixel_info(
    State(state): State<AppState>,
    Path((x, y)): Path<(String, String)>,
) -> Result<Json<PixelInfo>, ApiError> {
    let (x, y) = (parse_coordinate("x", &x)?, parse_coordinate("y", &y)?);
    let record = state.canvas.pixel(x, y).await?;
    let history = state
        .canvas
        .store()
        .history(x as u32, y as u32)
        .await?
        .into_iter()
        .map(|r| protocol::http::HistoryEntry {
            color: r.color,
            username: r.username,
            timestamp: r.timestamp,
            seq: r.seq,
        })
        .collect();
    Ok(Json(PixelInfo {
        x: x as u32,
        y: y as u32,
        color: record.color,
        username: record.username,
        timestamp: record.timestamp,
        seq: record.seq,
        history,
    }))
}

async fn updates(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<UpdatesPage>, ApiError> {
    let since = query.get("since").ok_or_else(|| {
        ApiError::BadRequest("`since` is required: /api/updates?since=SEQ".into())
    })?;
    let since: u64 = since.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "`since` must be a non-negative integer, got {since:?}"
        ))
    })?;
    let limit = match query.get("limit") {
        None => DEFAULT_UPDATES_PAGE,
        Some(raw) => raw.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
            ApiError::BadRequest(format!("`limit` must be a positive integer, got {raw:?}"))
        })?,
    };
    let epoch = match query.get("epoch") {
        None => None,
        Some(e) if is_epoch(e) => Some(e.as_str()),
        Some(e) => {
            return Err(ApiError::BadRequest(format!(
                "`epoch` must be the X-Canvas-Epoch of /api/canvas.bin, got {e:?}"
            )));
        }
    };
    let page = match query.get("chunk") {
        None => state.canvas.updates_since(since, limit, epoch).await?,
        Some(raw) => {
            let id = parse_chunk_pair(raw, state.canvas.geometry())?;
            state
                .canvas
                .chunk_updates_since(id, since, limit, epoch)
                .await?
        }
    };
    Ok(Json(UpdatesPage {
        events: page
            .events
            .into_iter()
            .map(ServerMessage::PixelUpdated)
            .collect(),
        latest_seq: page.latest_seq,
        has_more: page.has_more,
        epoch: page.epoch,
    }))
}

/// `chunk=CX,CY` of `/api/updates`, a chunk on the board.
fn parse_chunk_pair(raw: &str, g: crate::store::Geometry) -> Result<ChunkId, ApiError> {
    let parsed = raw.split_once(',').and_then(|(cx, cy)| {
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u32>().ok())
                .flatten()
        };
        Some(ChunkId {
            cx: number(cx)?,
            cy: number(cy)?,
        })
    });
    match parsed {
        Some(id) if g.has_chunk(id) => Ok(id),
        Some(id) => Err(ApiError::NotFound(format!(
            "chunk ({}, {}) is outside the board: it has {}x{} chunks",
            id.cx,
            id.cy,
            g.chunks_across(),
            g.chunks_down()
        ))),
        None => Err(ApiError::BadRequest(format!(
            "`chunk` must be two chunk numbers, `CX,CY`, got {raw:?}"
        ))),
    }
}

/// What an epoch can look like (the stores make 32 hex digits).
fn is_epoch(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `/healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `/readyz`: the store takes writes.
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.canvas.ready().await.map(|()| "ready")
}

async fn metrics(
    State(state): State<AppState>,
    http: Option<axum::Extension<std::sync::Arc<plumbing::http_metrics::HttpMetrics>>>,
) -> impl IntoResponse {
    let mut out = String::new();
    plumbing::metrics::write_build_info(
        &mut out,
        "canvas_api_build_info",
        "The canvas-api build this process runs (always 1).",
        env!("CARGO_PKG_VERSION"),
    );
    state.canvas.metrics().render(&mut out);
    if let Some(axum::Extension(http)) = http {
        http.render(
            &mut out,
            "canvas_http_requests_total",
            "HTTP requests answered, by route template, method and status class.",
        );
    }
    plumbing::process_metrics::render(&mut out);
    state.auth.forwarded_for_watch().render(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

/// The routes of the standalone canvas-api: `/api`, health and metrics.
pub fn all_routes() -> Router<AppState> {
    api_routes()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// JSON 404 for every unknown path.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

/// JSON 405 for a known path with the wrong method.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let mut r =
        ApiError::BadRequest(format!("{method} is not allowed on {}", uri.path())).into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}
