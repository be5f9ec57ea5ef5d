//! Who may open a long-lived connection here — a WebSocket or an SSE
//! stream, counted alike: not past the client IP's `MAX_CONNECTIONS_PER_IP`
//! (IPv6: per /64), not past `MAX_CONNECTIONS` for both kinds together; and
//! a browser page may open a WebSocket only from this site's own origin or
//! one of `CORS_ALLOWED_ORIGINS` (a WebSocket is not bound by CORS, so any
//! page could otherwise use its visitors' connections).

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use protocol::ErrorCode;
use protocol::http::{ErrorBody, ErrorDetail};

use crate::Gateway;
use crate::ip_limits::IpSlot;

/// What a client turned away for its IP's connection count waits.
const IP_RETRY_AFTER_SECS: u64 = 10;

/// Why a long-lived connection was not admitted; answered before the
/// upgrade or the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `MAX_CONNECTIONS_PER_IP` (429).
    TooManyFromIp,
    /// `MAX_CONNECTIONS` (503).
    Full,
    /// The gateway is stopping (503).
    ShuttingDown,
    /// A page of another site (403).
    ForeignOrigin,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, code, message, retry_after_secs) = match self {
            Refusal::TooManyFromIp => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                "too many connections from your address; close one or retry later",
                Some(IP_RETRY_AFTER_SECS),
            ),
            Refusal::Full => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "gateway full; try another or retry later",
                Some(1),
            ),
            Refusal::ShuttingDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                "gateway shutting down; reconnect",
                Some(1),
            ),
            Refusal::ForeignOrigin => (
                StatusCode::FORBIDDEN,
                ErrorCode::Unauthorized,
                "WebSockets are open to this site's own pages and CORS_ALLOWED_ORIGINS only",
                None,
            ),
        };
        let body = axum::Json(ErrorBody {
            error: ErrorDetail {
                code,
                message: message.into(),
                retry_after_ms: retry_after_secs.map(|s| s * 1000),
            },
        });
        let mut response = (status, body).into_response();
        if let Some(secs) = retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// A connection slot for `ip`, unless it holds the most it may.
pub fn ip_slot(gw: &Gateway, ip: IpAddr) -> Result<IpSlot, Refusal> {
    gw.ip_limits.connect(ip).ok_or_else(|| {
        gw.metrics.connections_refused.inc();
        Refusal::TooManyFromIp
    })
}

/// What an SSE stream holds while it lives: its place in its IP's count
/// and in the gateway's.
pub struct StreamSlots {
    _ip: IpSlot,
    _stream: SseStreamSlot,
}

/// Admits an SSE stream, or says why not.
pub fn admit_stream(
    gw: &Gateway,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<StreamSlots, Refusal> {
    if gw.shutdown.is_cancelled() {
        gw.metrics.connections_refused.inc();
        return Err(Refusal::ShuttingDown);
    }
    let ip = ip_slot(gw, gw.auth.client_ip(peer.ip(), headers))?;
    if at_capacity(gw) {
        gw.metrics.connections_refused.inc();
        return Err(Refusal::Full);
    }
    Ok(StreamSlots {
        _ip: ip,
        _stream: SseStreamSlot::open(gw),
    })
}

/// Whether the gateway holds `MAX_CONNECTIONS` (WebSockets and SSE streams).
pub fn at_capacity(gw: &Gateway) -> bool {
    let open = gw.metrics.connections.get() + gw.metrics.sse_streams.get();
    open as usize >= gw.max_connections
}

/// Counts one SSE stream for as long as it lives.
pub struct SseStreamSlot {
    gw: Gateway,
}

impl SseStreamSlot {
    pub fn open(gw: &Gateway) -> SseStreamSlot {
        gw.metrics.sse_streams.add(1);
        SseStreamSlot { gw: gw.clone() }
    }
}

impl Drop for SseStreamSlot {
    fn drop(&mut self) {
        self.gw.metrics.sse_streams.sub(1);
    }
}

/// Refuses a WebSocket upgrade from a page of another site. No `Origin`
/// (not a browser: scripts, load tests) is allowed, as is the page's own
/// origin (its host is the request's `Host`) and every origin of
/// `CORS_ALLOWED_ORIGINS`.
pub fn check_origin(headers: &HeaderMap, allowed: &[HeaderValue]) -> Result<(), Refusal> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    if allowed
        .iter()
        .any(|a| a.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
    {
        return Ok(());
    }
    let own_site = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
        .zip(headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .is_some_and(|((_, authority), host)| authority.eq_ignore_ascii_case(host));
    if own_site {
        Ok(())
    } else {
        Err(Refusal::ForeignOrigin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_the_own_site_allowed_origins_and_non_browsers_may_upgrade() {
        let allowed = [HeaderValue::from_static("https://art.example")];
        let ok = |origin: Option<&str>, host: &str| {
            check_origin(&headers(origin, host), &allowed).is_ok()
        };
        assert!(ok(None, "canvas.example"), "no Origin: not a browser");
        assert!(ok(Some("https://canvas.example"), "canvas.example"));
        assert!(ok(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"));
        assert!(ok(Some("https://ART.example"), "canvas.example"));
        assert!(!ok(Some("https://evil.example"), "canvas.example"));
        assert!(
            !ok(Some("http://127.0.0.1:9999"), "127.0.0.1:8080"),
            "another port is another origin"
        );
        assert!(!ok(Some("null"), "canvas.example"));
        assert!(!ok(
            Some("https://canvas.example.evil.example"),
            "canvas.example"
        ));
    }
}
