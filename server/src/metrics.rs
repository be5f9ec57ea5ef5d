//! The gateway's counters for `/metrics`.

use plumbing::metrics::{Counter, Gauge, Latency, write_counter, write_latency};

#[derive(Debug, Default)]
pub struct GatewayMetrics {
    pub connections: Gauge,
    /// Open SSE streams (`/api/events`); with `connections`, what
    /// `MAX_CONNECTIONS` bounds.
    pub sse_streams: Gauge,
    pub connections_total: Counter,
    pub connections_refused: Counter,
    pub messages_in: Counter,
    pub frames_out: Counter,
    pub slow_client_closes: Counter,
    pub idle_closes: Counter,
    pub messages_rate_limited: Counter,
    pub flood_closes: Counter,
    pub placements_acked: Counter,
    pub placements_rejected: Counter,
    pub placements_shed: Counter,
    /// Batches of placements sent to the store (`placement_batch.rs`).
    pub placement_batches: Counter,
    pub placement_latency: Latency,
    pub duplicates_dropped: Counter,
    pub batched_events: Counter,
    pub gap_repairs: Counter,
    pub tail_checks: Counter,
    pub repaired_events: Counter,
    pub resyncs: Counter,
    pub subscriber_reconnects: Counter,
    pub user_channels: Gauge,
    pub user_events: Counter,
    pub user_frames: Counter,
}

impl GatewayMetrics {
    pub fn render(&self, out: &mut String) {
        write_counter(
            out,
            "gateway_connections",
            "Open WebSocket connections.",
            "gauge",
            self.connections.get(),
        );
        write_counter(
            out,
            "gateway_sse_streams",
            "Open SSE streams (/api/events).",
            "gauge",
            self.sse_streams.get(),
        );
        write_counter(
            out,
            "gateway_connections_total",
            "WebSocket connections accepted.",
            "counter",
            self.connections_total.get(),
        );
        write_counter(
            out,
            "gateway_connections_refused_total",
            "Connections refused (limit or shutdown).",
            "counter",
            self.connections_refused.get(),
        );
        write_counter(
            out,
            "gateway_messages_in_total",
            "Frames received from clients.",
            "counter",
            self.messages_in.get(),
        );
        write_counter(
            out,
            "gateway_frames_out_total",
            "Frames sent to clients.",
            "counter",
            self.frames_out.get(),
        );
        write_counter(
            out,
            "gateway_queue_drops_total",
            "Clients closed because their queue overflowed (code 4008).",
            "counter",
            self.slow_client_closes.get(),
        );
        write_counter(
            out,
            "gateway_idle_closes_total",
            "Clients closed for silence (code 4002).",
            "counter",
            self.idle_closes.get(),
        );
        write_counter(
            out,
            "gateway_messages_rate_limited_total",
            "Client messages refused with rate_limited (MESSAGES_PER_SEC_PER_IP).",
            "counter",
            self.messages_rate_limited.get(),
        );
        write_counter(
            out,
            "gateway_flood_closes_total",
            "Clients closed for flooding (code 4029).",
            "counter",
            self.flood_closes.get(),
        );
        write_counter(
            out,
            "gateway_placements_acked_total",
            "Placements stored and acknowledged.",
            "counter",
            self.placements_acked.get(),
        );
        write_counter(
            out,
            "gateway_placements_rejected_total",
            "Placements answered with an error.",
            "counter",
            self.placements_rejected.get(),
        );
        write_counter(
            out,
            "gateway_placements_shed_total",
            "Placements refused at once because MAX_PLACEMENTS_IN_FLIGHT were in flight.",
            "counter",
            self.placements_shed.get(),
        );
        write_counter(
            out,
            "gateway_placement_batches_total",
            "Batches of placements sent to the store (one request to canvas-api each).",
            "counter",
            self.placement_batches.get(),
        );
        write_latency(
            out,
            "gateway_placement_seconds",
            "Time from a WebSocket placement's start to its ack (stored, and so announced).",
            &self.placement_latency,
        );
        write_counter(
            out,
            "gateway_duplicates_dropped_total",
            "Events dropped as already delivered.",
            "counter",
            self.duplicates_dropped.get(),
        );
        write_counter(
            out,
            "gateway_batched_events_total",
            "Events sent inside batch frames.",
            "counter",
            self.batched_events.get(),
        );
        write_counter(
            out,
            "gateway_gap_repairs_total",
            "Replay-log fetches to fill seq gaps.",
            "counter",
            self.gap_repairs.get(),
        );
        write_counter(
            out,
            "gateway_repaired_events_total",
            "Events delivered from the replay log.",
            "counter",
            self.repaired_events.get(),
        );
        write_counter(
            out,
            "gateway_resyncs_total",
            "Times clients were told to refetch the board.",
            "counter",
            self.resyncs.get(),
        );
        write_counter(
            out,
            "gateway_subscriber_reconnects_total",
            "Redis subscription (re)connections.",
            "counter",
            self.subscriber_reconnects.get(),
        );
        write_counter(
            out,
            "gateway_user_channels",
            "Per-user channels subscribed: users with a connection here.",
            "gauge",
            self.user_channels.get(),
        );
        write_counter(
            out,
            "gateway_user_events_total",
            "Messages heard on per-user channels.",
            "counter",
            self.user_events.get(),
        );
        write_counter(
            out,
            "gateway_user_frames_total",
            "Per-user messages handed to connections (WebSocket or SSE).",
            "counter",
            self.user_frames.get(),
        );
    }
}
