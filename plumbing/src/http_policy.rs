//! What wraps every HTTP route of both services: compression, a time limit
//! and a body limit (each a typed JSON error), JSON-only request bodies on
//! `/api`, and CORS on `/api` only when origins are configured (same origin
//! by default: no CORS headers at all).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use protocol::ErrorCode;
use protocol::http::{ErrorBody, ErrorDetail};
use tower::{Layer, ServiceExt};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::HttpArgs;
use crate::http_metrics::{HttpMetrics, count_requests};

/// The largest request body any route takes (routes may take less:
/// `PUT /api/pixel` 4 KiB).
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// The HTTP limits of one process, from [`HttpArgs`].
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    pub request_timeout: Duration,
    pub cors_origins: Vec<HeaderValue>,
    /// The requests answered under these layers, for `/metrics` (which
    /// finds it as an `Extension`).
    pub http_metrics: Arc<HttpMetrics>,
    /// `HEADER_READ_TIMEOUT_SECS`, for [`crate::listen::ServeLimits`].
    pub header_read_timeout: Duration,
    /// `MAX_PENDING_CONNECTIONS_PER_IP`, for [`crate::listen::ServeLimits`].
    pub max_pending_connections_per_ip: u32,
}

impl HttpPolicy {
    pub fn from_args(args: &HttpArgs) -> Result<HttpPolicy, String> {
        let cors_origins = args
            .cors_origins()?
            .into_iter()
            .map(|o| {
                HeaderValue::from_str(&o)
                    .map_err(|_| format!("CORS_ALLOWED_ORIGINS: {o:?} is not a header value"))
            })
            .collect::<Result<_, _>>()?;
        Ok(HttpPolicy {
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            cors_origins,
            http_metrics: Arc::default(),
            header_read_timeout: Duration::from_secs(args.header_read_timeout_secs),
            max_pending_connections_per_ip: args.max_pending_connections_per_ip,
        })
    }
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            http_metrics: Arc::default(),
            header_read_timeout: Duration::from_secs(10),
            max_pending_connections_per_ip: 256,
        }
    }
}

/// Compression, the body limit, the time limit, request counts and CORS,
/// for every route (applied last, so the 404/405 fallbacks are covered
/// too). The time limit
/// ends when the response starts: a WebSocket upgrade or an SSE stream,
/// answered at once, lives on unlimited.
pub fn http_layers(router: Router, policy: &HttpPolicy) -> Router {
    let router = router
        .layer(middleware::from_fn(json_bodies))
        .layer(CompressionLayer::new().quality(CompressionLevel::Fastest))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .layer(middleware::from_fn_with_state(
            policy.request_timeout,
            limits,
        ))
        // Outside the limits, so their 408 and 413 are counted too.
        .layer(middleware::from_fn_with_state(
            policy.http_metrics.clone(),
            count_requests,
        ))
        .layer(Extension(policy.http_metrics.clone()));
    match cors_layer(policy) {
        Some(cors) => router.layer(middleware::from_fn_with_state(cors, cors_on_api)),
        None => router,
    }
}

/// CORS answers (and preflights) for `/api` only; the page, the WebSocket
/// and health routes stay same-origin. A request without `Origin` is not a
/// cross-origin one, so it gets no CORS header (tower-http's layer would
/// add `access-control-expose-headers` to it), only `Vary: Origin` for
/// caches.
async fn cors_on_api(State(cors): State<CorsLayer>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    if !request.headers().contains_key(header::ORIGIN) {
        let mut response = next.run(request).await;
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("origin"));
        return response;
    }
    match cors.layer(next).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// The CORS policy, when origins are configured.
fn cors_layer(policy: &HttpPolicy) -> Option<CorsLayer> {
    if policy.cors_origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(policy.cors_origins.clone()))
            .allow_methods([Method::GET, Method::PUT, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .expose_headers([
                header::RETRY_AFTER,
                header::HeaderName::from_static("x-canvas-width"),
                header::HeaderName::from_static("x-canvas-height"),
                header::HeaderName::from_static("x-canvas-seq"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// A POST or PUT to `/api/` with a body must say it is JSON. A page of any
/// site may send a `text/plain` (or form) body cross-site without asking
/// first; for `application/json` the browser asks (a CORS preflight), and
/// only `CORS_ALLOWED_ORIGINS` are let through.
async fn json_bodies(request: Request, next: Next) -> Response {
    let h = request.headers();
    let writes = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let has_body = h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let is_json = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if writes && has_body && !is_json && request.uri().path().starts_with("/api/") {
        return refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::BadRequest,
            "the body must be JSON, sent with `Content-Type: application/json`".into(),
        );
    }
    next.run(request).await
}

async fn limits(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    // A declared length over the limit is refused before reading a byte;
    // an undeclared one is cut off by `DefaultBodyLimit` as it is read.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BODY as u64) {
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than {MAX_REQUEST_BODY} bytes"),
        );
    }
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => refusal(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            format!("the request took longer than {} s", timeout.as_secs()),
        ),
    }
}

/// The error body every route answers with (`{"error":{"code","message"}}`),
/// for what these layers refuse before any handler runs.
fn refusal(status: StatusCode, code: ErrorCode, message: String) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message,
            retry_after_ms: None,
        },
    };
    (status, axum::Json(body)).into_response()
}
