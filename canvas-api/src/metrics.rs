//! Counters for `/metrics`, in Prometheus' text format. Plain atomics: the
//! hot path pays one relaxed add.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A latency summary: count and sum, enough for a mean per scrape interval.
#[derive(Debug, Default)]
pub struct Latency {
    count: AtomicU64,
    micros: AtomicU64,
}

impl Latency {
    pub fn observe(&self, d: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Writes one metric family.
pub fn write_counter(out: &mut String, name: &str, help: &str, kind: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

pub fn write_latency(out: &mut String, name: &str, help: &str, l: &Latency) {
    let count = l.count.load(Ordering::Relaxed);
    let secs = l.micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} summary\n{name}_sum {secs}\n{name}_count {count}"
    );
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub placements_stored: Counter,
    pub placements_cooldown: Counter,
    pub placements_invalid: Counter,
    pub placements_failed: Counter,
    pub placements_ip_limited: Counter,
    pub placements_moderated: Counter,
    pub moderation_writes: Counter,
    pub publish_failures: Counter,
    pub seq: Gauge,
    pub store_latency: Latency,
}

impl Metrics {
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
            "Time to store one write.",
            &self.store_latency,
        );
    }
}
