//! One log line, at `info`, when a WebSocket or an SSE stream opens and one
//! when it closes, with how many of each this process holds: enough to
//! follow a client's sessions and the load, never a line per pixel or per
//! message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::GatewayMetrics;

/// Logs a WebSocket that has just been counted in `gateway_connections`.
pub fn websocket_opened(metrics: &GatewayMetrics, user: &str) {
    tracing::info!(
        user,
        websockets = metrics.connections.get(),
        sse_streams = metrics.sse_streams.get(),
        "websocket opened"
    );
}

/// Logs a WebSocket that is no longer counted in `gateway_connections`.
pub fn websocket_closed(metrics: &GatewayMetrics, user: &str, lived: Duration) {
    tracing::info!(
        user,
        lived_ms = lived.as_millis() as u64,
        websockets = metrics.connections.get(),
        sse_streams = metrics.sse_streams.get(),
        "websocket closed"
    );
}

/// An SSE stream (`/api/events`) for as long as it is served: logged when
/// made and when dropped (its admission slot counts it in
/// `gateway_sse_streams`).
pub struct SseStreamLog {
    metrics: Arc<GatewayMetrics>,
    user: Option<String>,
    opened: Instant,
}

impl SseStreamLog {
    pub fn open(metrics: &Arc<GatewayMetrics>, user: Option<&str>) -> Self {
        tracing::info!(
            user,
            websockets = metrics.connections.get(),
            sse_streams = metrics.sse_streams.get(),
            "sse stream opened"
        );
        SseStreamLog {
            metrics: metrics.clone(),
            user: user.map(str::to_owned),
            opened: Instant::now(),
        }
    }
}

impl Drop for SseStreamLog {
    fn drop(&mut self) {
        let metrics = &self.metrics;
        tracing::info!(
            user = self.user.as_deref(),
            lived_ms = self.opened.elapsed().as_millis() as u64,
            websockets = metrics.connections.get(),
            sse_streams = metrics.sse_streams.get(),
            "sse stream closed"
        );
    }
}
