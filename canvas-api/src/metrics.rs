//! canvas-api's counters for `/metrics` (the primitives are the shared
//! `plumbing::metrics`).

pub(crate) use plumbing::metrics::{Counter, Gauge, Latency, write_counter, write_latency};

#[derive(Debug, Default)]
pub struct Metrics {
    pub placements_stored: Counter,
    /// Store steps that placements went through (one per batch).
    pub place_batches: Counter,
    pub placements_cooldown: Counter,
    pub placements_invalid: Counter,
    pub placements_failed: Counter,
    pub placements_ip_limited: Counter,
    pub placements_moderated: Counter,
    pub moderation_writes: Counter,
    /// Shared with the store, which announces what it stores.
    pub publish_failures: std::sync::Arc<Counter>,
    pub seq: Gauge,
    pub store_latency: Latency,
}

impl Metrics {
    /// Metrics whose `canvas_publish_failures_total` is the store's count.
    pub fn counting_announcements_of(store: &crate::store::CanvasStore) -> Metrics {
        Metrics {
            publish_failures: store.announce_failures(),
            ..Metrics::default()
        }
    }

    pub fn render(&self, out: &mut String) {
        write_counter(
            out,
            "canvas_placements_stored_total",
            "Pixel writes stored.",
            "counter",
            self.placements_stored.get(),
        );
        write_counter(
            out,
            "canvas_place_batches_total",
            "Store steps (script calls, lock acquisitions) placements went through: one per batch.",
            "counter",
            self.place_batches.get(),
        );
        write_counter(
            out,
            "canvas_placements_cooldown_total",
            "Pixel writes refused by the cooldown or the user's pixel pool.",
            "counter",
            self.placements_cooldown.get(),
        );
        write_counter(
            out,
            "canvas_placements_invalid_total",
            "Pixel writes refused by validation.",
            "counter",
            self.placements_invalid.get(),
        );
        write_counter(
            out,
            "canvas_placements_failed_total",
            "Pixel writes failed because the store was unavailable.",
            "counter",
            self.placements_failed.get(),
        );
        write_counter(
            out,
            "canvas_placements_ip_limited_total",
            "Pixel writes refused by the per-IP pool.",
            "counter",
            self.placements_ip_limited.get(),
        );
        write_counter(
            out,
            "canvas_placements_moderated_total",
            "Pixel writes refused because the user is banned or the pixel protected.",
            "counter",
            self.placements_moderated.get(),
        );
        write_counter(
            out,
            "canvas_moderation_writes_total",
            "Pixels rewritten by rollback or undo.",
            "counter",
            self.moderation_writes.get(),
        );
        write_counter(
            out,
            "canvas_publish_failures_total",
            "Stored writes whose pixel-updates publish failed (receivers repair the gap).",
            "counter",
            self.publish_failures.get(),
        );
        write_counter(
            out,
            "canvas_seq",
            "Last seq this process stored.",
            "gauge",
            self.seq.get(),
        );
        write_latency(
            out,
            "canvas_store_write_seconds",
            "Time of one store step for placements (a batch: one script call or lock).",
            &self.store_latency,
        );
    }
}
