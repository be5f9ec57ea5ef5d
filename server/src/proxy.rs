//! `/api/*` passed through to a separate canvas-api, so a browser that
//! loaded the page from a gateway reaches the whole API at one origin even
//! where no ingress routes `/api` (local runs, the test cluster).

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use canvas_api::ApiError;
use protocol::http::HEADER_GATEWAY_PROOF;

use crate::backend::RemoteCanvas;

/// The largest request body passed on.
const MAX_BODY: usize = 64 * 1024;

/// Request headers passed on to canvas-api (the moderation API's admin
/// name too, so the admin page works from a gateway's origin).
const FORWARD_REQUEST: [HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::ACCEPT_ENCODING,
    header::AUTHORIZATION,
    // A chunk's revalidation (`ETag`), answered 304 by canvas-api.
    header::IF_NONE_MATCH,
    HeaderName::from_static(canvas_api::admin::HEADER_ADMIN_NAME),
];
/// Response headers passed back.
const FORWARD_RESPONSE: [&str; 12] = [
    "content-type",
    "content-encoding",
    "cache-control",
    "retry-after",
    "vary",
    "access-control-expose-headers",
    "x-canvas-width",
    "x-canvas-height",
    "x-canvas-seq",
    "x-canvas-epoch",
    "x-canvas-chunk-size",
    "etag",
];

/// A path under `/api/` that no URL parser would rewrite: no `.` or `..`
/// segment (plain or percent-encoded), no backslash, no encoded slash.
fn is_plain_api_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/") else {
        return false;
    };
    let lower = rest.to_ascii_lowercase();
    !lower.contains('\\')
        && !lower.contains("%2f")
        && !lower.contains("%5c")
        && !lower.contains("%2e")
        && rest
            .split('/')
            .all(|segment| segment != "." && segment != "..")
}

pub async fn proxy(
    State(remote): State<RemoteCanvas>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    match forward(&remote, peer, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn forward(
    remote: &RemoteCanvas,
    peer: SocketAddr,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    // The upstream URL is parsed, and so normalised: `/api/../metrics`
    // would reach canvas-api's `/metrics`. Only plain paths under /api/ go.
    if !is_plain_api_path(parts.uri.path()) {
        return Err(ApiError::BadRequest(format!(
            "{} is not a plain /api/ path (no `.` or `..` segments, no encoded `.`, `/` or `\\`)",
            parts.uri.path()
        )));
    }
    let body: Bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(MAX_BODY))?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outgoing = remote
        .http()
        .request(parts.method.clone(), format!("{}{path}", remote.base_url()))
        .body(body);
    for name in FORWARD_REQUEST {
        if let Some(value) = parts.headers.get(&name) {
            outgoing = outgoing.header(name, value.clone());
        }
    }
    // As any proxy does: append the address we saw, so a canvas-api that
    // lists the gateways in TRUSTED_PROXIES knows the client's.
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .chain(std::iter::once(
            peer.ip().to_canonical().to_string().as_str(),
        ))
        .collect::<Vec<_>>()
        .join(", ");
    outgoing = outgoing.header("x-forwarded-for", forwarded);
    // A client's proof header is never passed on (only this gateway's own
    // calls carry one), so a client cannot even try one through here.
    debug_assert!(
        !FORWARD_REQUEST
            .iter()
            .any(|h| h.as_str() == HEADER_GATEWAY_PROOF)
    );
    let upstream = outgoing
        .send()
        .await
        .map_err(|e| ApiError::Unavailable(format!("canvas-api: {e}")))?;
    let status =
        StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = Response::builder().status(status);
    for name in FORWARD_RESPONSE {
        if let Some(value) = upstream.headers().get(name) {
            response = response.header(name, value.clone());
        }
    }
    let bytes = upstream
        .bytes()
        .await
        .map_err(|e| ApiError::Unavailable(format!("canvas-api: {e}")))?;
    response
        .body(Body::from(bytes))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::is_plain_api_path;

    #[test]
    fn only_plain_api_paths_pass_through() {
        for ok in [
            "/api/config",
            "/api/pixel/1/2",
            "/api/admin/ban",
            "/api/canvas.bin",
        ] {
            assert!(is_plain_api_path(ok), "{ok}");
        }
        for bad in [
            "/api/../metrics",
            "/api/./config",
            "/api/%2e%2e/metrics",
            "/api/%2E./metrics",
            "/api/..%2fmetrics",
            "/api/..\\metrics",
            "/api/x/../../metrics",
            "/metrics",
        ] {
            assert!(!is_plain_api_path(bad), "{bad}");
        }
    }
}
