//! Metric primitives for `/metrics`, in Prometheus' text format: counters,
//! gauges, latency histograms and how each is written. Plain atomics: the
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

/// The upper bounds (seconds) of every latency histogram's buckets: from
/// half a millisecond (an in-process store) to 10 s (far past the 3 s a
/// gateway waits for canvas-api), so a p99 anywhere in between is seen.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram (Prometheus `histogram`: cumulative buckets, sum,
/// count), so dashboards and alerts can take quantiles across pods with
/// `histogram_quantile`. Each observation is two relaxed adds and at most
/// one more.
#[derive(Debug, Default)]
pub struct Latency {
    /// Observations per bucket, not cumulative: the one whose bound is the
    /// first at or above the value (none past the last bound).
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    micros: AtomicU64,
}

impl Latency {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|bound| secs <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
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

/// Writes a [`Latency`] as a Prometheus histogram: `NAME_bucket{le=…}`
/// (cumulative, ending with `+Inf`), `NAME_sum` and `NAME_count`.
pub fn write_latency(out: &mut String, name: &str, help: &str, l: &Latency) {
    // The count is read first: buckets read after it may have grown, so
    // `+Inf` (the count) is never below a bucket.
    let count = l.count.load(Ordering::Relaxed);
    let secs = l.micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&l.buckets) {
        cumulative += bucket.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{bound}\"}} {}",
            cumulative.min(count)
        );
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {secs}\n{name}_count {count}"
    );
}

/// Writes `NAME{version="…"} 1`: which build a process runs, to join with
/// its other series or to see a rollout's progress.
pub fn write_build_info(out: &mut String, name: &str, help: &str, version: &str) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{version=\"{version}\"}} 1"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_written_as_a_histogram_with_cumulative_buckets() {
        let l = Latency::default();
        l.observe(Duration::from_micros(300)); // ≤ 0.5 ms
        l.observe(Duration::from_millis(3)); // ≤ 5 ms
        l.observe(Duration::from_millis(3));
        l.observe(Duration::from_secs(60)); // past every bound
        let mut out = String::new();
        write_latency(&mut out, "x_seconds", "Help.", &l);
        assert!(out.contains("# TYPE x_seconds histogram\n"), "{out}");
        for line in [
            "x_seconds_bucket{le=\"0.0005\"} 1",
            "x_seconds_bucket{le=\"0.0025\"} 1",
            "x_seconds_bucket{le=\"0.005\"} 3",
            "x_seconds_bucket{le=\"10\"} 3",
            "x_seconds_bucket{le=\"+Inf\"} 4",
            "x_seconds_count 4",
            "x_seconds_sum 60.0063",
        ] {
            assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
        }
        let buckets = out.lines().filter(|l| l.contains("_bucket{")).count();
        assert_eq!(buckets, LATENCY_BUCKETS.len() + 1);
    }
}
