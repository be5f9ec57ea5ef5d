//! Latency figures: exact percentiles of a sample vector, and a log-linear
//! histogram for runs too long to keep every sample.
//!
//! Samples are microseconds in a `u32` (71 minutes at most), which halves
//! the memory of a run that records millions of deliveries.

use serde::Serialize;

/// The percentiles a report shows, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u32,
    pub p90: u32,
    pub p99: u32,
    pub p999: u32,
    pub max: u32,
}

/// Nearest-rank percentiles; sorts `samples` in place. `None` when empty.
pub fn percentiles(samples: &mut [u32]) -> Option<Percentiles> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let at = |p: f64| samples[rank(p, samples.len() as u64) as usize];
    Some(Percentiles {
        count: samples.len() as u64,
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        p999: at(0.999),
        max: samples[samples.len() - 1],
    })
}

/// The 0-based index of the `p` nearest-rank percentile of `n` sorted
/// samples: the smallest value with at least `p * n` samples at or below it.
fn rank(p: f64, n: u64) -> u64 {
    ((p * n as f64).ceil() as u64).clamp(1, n) - 1
}

/// Microseconds of an interval, saturating at `u32::MAX`.
pub fn micros(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Sub-buckets per power of two: values are kept to within 1/64 (1.6 %).
const SUB_BITS: u32 = 6;
const SUB: u32 = 1 << SUB_BITS;
/// Values below this are counted exactly.
const EXACT: u32 = 2 * SUB;
const BUCKETS: usize = (EXACT + (32 - SUB_BITS - 1) * SUB) as usize;

/// A histogram of `u32` samples in constant memory (about 14 KB).
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u32,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, value: u32) {
        self.counts[bucket(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Percentiles to within the bucket width; `max` is exact.
    pub fn percentiles(&self) -> Option<Percentiles> {
        if self.total == 0 {
            return None;
        }
        let at = |p: f64| self.value_at_rank(rank(p, self.total)).min(self.max);
        Some(Percentiles {
            count: self.total,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: self.max,
        })
    }

    fn value_at_rank(&self, rank: u64) -> u32 {
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return bucket_high(i);
            }
        }
        self.max
    }
}

fn bucket(value: u32) -> usize {
    if value < EXACT {
        return value as usize;
    }
    // `value` is in [2^k, 2^(k+1)) with k >= SUB_BITS + 1; keep its top
    // SUB_BITS + 1 bits, the first of which is always 1.
    let k = 31 - value.leading_zeros();
    let shift = k - SUB_BITS;
    let sub = (value >> shift) - SUB;
    (EXACT + (k - SUB_BITS - 1) * SUB + sub) as usize
}

/// The largest value that falls in bucket `i`: reporting the top of a
/// bucket never understates a latency.
fn bucket_high(i: usize) -> u32 {
    let i = i as u32;
    if i < EXACT {
        return i;
    }
    let k = (i - EXACT) / SUB + SUB_BITS + 1;
    let sub = (i - EXACT) % SUB;
    let shift = k - SUB_BITS;
    let low = (SUB + sub) << shift;
    low + ((1u32 << shift) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_one_to_a_thousand() {
        let mut v: Vec<u32> = (1..=1000).rev().collect();
        let p = percentiles(&mut v).unwrap();
        assert_eq!(p.count, 1000);
        assert_eq!(
            (p.p50, p.p90, p.p99, p.p999, p.max),
            (500, 900, 990, 999, 1000)
        );
    }

    #[test]
    fn one_sample_is_every_percentile() {
        let p = percentiles(&mut [42]).unwrap();
        assert_eq!((p.p50, p.p999, p.max), (42, 42, 42));
        assert_eq!(percentiles(&mut []), None);
    }

    #[test]
    fn a_slow_tail_shows_in_p99_but_not_p50() {
        let mut v = vec![1000u32; 990];
        v.extend([50_000u32; 10]);
        let p = percentiles(&mut v).unwrap();
        assert_eq!(p.p50, 1000);
        assert_eq!(p.p99, 1000);
        assert_eq!(p.p999, 50_000);
    }

    #[test]
    fn every_value_lands_in_a_bucket_that_holds_it() {
        for v in (0..5000u32).chain([u32::MAX, u32::MAX - 1, 1 << 31, 123_456_789]) {
            let b = bucket(v);
            assert!(b < BUCKETS, "{v}");
            assert!(bucket_high(b) >= v, "{v}");
            assert!(b == 0 || bucket_high(b - 1) < v, "{v}");
        }
    }

    #[test]
    fn histogram_percentiles_are_within_the_bucket_width() {
        let mut h = Histogram::default();
        let mut exact: Vec<u32> = (0..100_000u32).map(|i| i * 7 % 250_000).collect();
        for &v in &exact {
            h.record(v);
        }
        let e = percentiles(&mut exact).unwrap();
        let a = h.percentiles().unwrap();
        for (e, a) in [
            (e.p50, a.p50),
            (e.p90, a.p90),
            (e.p99, a.p99),
            (e.p999, a.p999),
        ] {
            assert!(
                a >= e && f64::from(a - e) <= f64::from(e) / 64.0 + 1.0,
                "{e} vs {a}"
            );
        }
        assert_eq!(a.max, e.max);
        assert_eq!(h.count(), 100_000);
    }
}
