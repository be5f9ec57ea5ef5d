//! The run's placements: what each one is, when it was sent and how it was
//! answered. Every writer and reader task shares one [`Ledger`]; the send
//! path is lock-free, and only acks (one per placement) take a short lock.
//!
//! A placement is known by its number `n`, which is also the `id` it is sent
//! with: the gateway echoes the id in the `ack` or `error`, so no map from
//! ids to placements is needed, and what `n` places is computed from `n`
//! ([`Plan`]), so the board check can recompute it instead of storing it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use protocol::Color;

/// The most placements one run may plan; the ledger holds 9 bytes each.
pub const MAX_PLACEMENTS: u64 = 20_000_000;

/// Which colors placements use.
#[derive(Debug, Clone)]
pub enum Colors {
    /// Any 24-bit color (the server has `anyColor`).
    Any,
    /// One of these.
    Palette(Vec<Color>),
}

/// Where and what placement `n` paints: pseudo-random but a pure function
/// of `n`, so it is recomputed instead of stored.
#[derive(Debug, Clone)]
pub struct Plan {
    pub seed: u64,
    pub width: u32,
    pub height: u32,
    pub colors: Colors,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub x: u32,
    pub y: u32,
    pub color: Color,
}

impl Plan {
    pub fn placement(&self, n: u32) -> Placement {
        let a = splitmix64(self.seed ^ u64::from(n));
        let b = splitmix64(a);
        let x = (a % u64::from(self.width)) as u32;
        let y = ((a >> 32) % u64::from(self.height)) as u32;
        let color = match &self.colors {
            Colors::Any => {
                let [_, _, _, _, _, r, g, bl] = b.to_be_bytes();
                Color([r, g, bl])
            }
            Colors::Palette(p) => p[(b % p.len() as u64) as usize],
        };
        Placement { x, y, color }
    }
}

/// A fast, well-mixed 64-bit hash (Steele et al.'s SplitMix64 finalizer).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One acknowledged placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub seq: u64,
    pub placement: u32,
    /// When the ack arrived, in microseconds on the ledger's clock.
    pub at_us: u64,
}

/// Totals so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub planned: u64,
    pub sent: u64,
    pub acked: u64,
    pub rejected: u64,
    /// Dropped by the pacer because the writer's queue was full.
    pub backlog_drops: u64,
    /// Dropped by the pacer because the writer's connection was gone.
    pub writer_gone: u64,
    /// Answers naming no placement of ours, or one already answered.
    pub stray_answers: u64,
}

impl Counts {
    /// Sent but not answered (yet).
    pub fn pending(&self) -> u64 {
        self.sent.saturating_sub(self.acked + self.rejected)
    }
}

pub struct Ledger {
    /// The one clock every send and receive time is measured on.
    t0: Instant,
    pub plan: Plan,
    /// Microseconds since `t0`, plus one; zero means not sent.
    sent_at: Box<[AtomicU64]>,
    answered: Box<[AtomicBool]>,
    /// Acks since the last [`Ledger::take_acks`].
    new_acks: Mutex<Vec<Ack>>,
    rejected_by_code: Mutex<BTreeMap<String, u64>>,
    sent: AtomicU64,
    acked: AtomicU64,
    rejected: AtomicU64,
    backlog_drops: AtomicU64,
    writer_gone: AtomicU64,
    stray_answers: AtomicU64,
}

impl Ledger {
    pub fn new(plan: Plan, planned: u32, t0: Instant) -> Self {
        Ledger {
            t0,
            plan,
            sent_at: (0..planned).map(|_| AtomicU64::new(0)).collect(),
            answered: (0..planned).map(|_| AtomicBool::new(false)).collect(),
            new_acks: Mutex::new(Vec::with_capacity(planned.min(1 << 20) as usize)),
            rejected_by_code: Mutex::new(BTreeMap::new()),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            backlog_drops: AtomicU64::new(0),
            writer_gone: AtomicU64::new(0),
            stray_answers: AtomicU64::new(0),
        }
    }

    pub fn planned(&self) -> u32 {
        self.sent_at.len() as u32
    }

    /// Microseconds from the run's start to `at`.
    pub fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0).as_micros() as u64
    }

    pub fn mark_sent(&self, n: u32, at: Instant) {
        let us = self.micros(at) + 1;
        self.sent_at[n as usize].store(us, Ordering::Relaxed);
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// The pacer skipped a placement: its writer was backed up, or gone.
    pub fn mark_skipped(&self, writer_gone: bool) {
        let counter = if writer_gone {
            &self.writer_gone
        } else {
            &self.backlog_drops
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// When placement `n` was sent, if it was.
    pub fn sent_us(&self, n: u32) -> Option<u64> {
        match self.sent_at.get(n as usize)?.load(Ordering::Relaxed) {
            0 => None,
            us => Some(us - 1),
        }
    }

    /// The placement an answer's `id` names, the first time it is answered.
    fn claim(&self, id: Option<u64>) -> Option<u32> {
        let n = u32::try_from(id?).ok()?;
        let fresh = !self.answered.get(n as usize)?.swap(true, Ordering::Relaxed);
        fresh.then_some(n)
    }

    pub fn ack(&self, id: Option<u64>, seq: u64, at: Instant) {
        let Some(placement) = self.claim(id) else {
            self.stray_answers.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let ack = Ack {
            seq,
            placement,
            at_us: self.micros(at),
        };
        lock(&self.new_acks).push(ack);
        self.acked.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reject(&self, id: Option<u64>, code: &str) {
        if self.claim(id).is_none() {
            self.stray_answers.fetch_add(1, Ordering::Relaxed);
        } else {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        // Errors without a placement of ours are tallied too: they say what
        // the gateway objected to.
        let code = if code.is_empty() { "unknown" } else { code };
        *lock(&self.rejected_by_code)
            .entry(code.to_owned())
            .or_default() += 1;
    }

    /// The acks that arrived since the last call.
    pub fn take_acks(&self) -> Vec<Ack> {
        std::mem::take(&mut *lock(&self.new_acks))
    }

    pub fn rejected_by_code(&self) -> BTreeMap<String, u64> {
        lock(&self.rejected_by_code).clone()
    }

    pub fn counts(&self) -> Counts {
        Counts {
            planned: u64::from(self.planned()),
            sent: self.sent.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            backlog_drops: self.backlog_drops.load(Ordering::Relaxed),
            writer_gone: self.writer_gone.load(Ordering::Relaxed),
            stray_answers: self.stray_answers.load(Ordering::Relaxed),
        }
    }
}

/// Locks a mutex, ignoring poisoning: the data is counters, still valid
/// after a panicking holder.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(colors: Colors) -> Plan {
        Plan {
            seed: 42,
            width: 100,
            height: 50,
            colors,
        }
    }

    #[test]
    fn placements_stay_on_the_board_and_in_the_palette() {
        let palette = vec![Color([1, 2, 3]), Color([4, 5, 6])];
        let p = plan(Colors::Palette(palette.clone()));
        for n in 0..10_000 {
            let pl = p.placement(n);
            assert!(pl.x < 100 && pl.y < 50);
            assert!(palette.contains(&pl.color));
            assert_eq!(p.placement(n), pl, "a plan is a pure function");
        }
    }

    #[test]
    fn placements_spread_over_the_board() {
        let p = plan(Colors::Any);
        let distinct: std::collections::HashSet<_> = (0..5000)
            .map(|n| (p.placement(n).x, p.placement(n).y))
            .collect();
        assert!(distinct.len() > 3000, "{}", distinct.len());
    }

    #[test]
    fn an_answer_counts_once_and_strays_are_tallied() {
        let t0 = Instant::now();
        let l = Ledger::new(plan(Colors::Any), 3, t0);
        l.mark_sent(0, t0);
        l.mark_sent(1, t0);
        l.mark_sent(2, t0);
        l.ack(Some(0), 10, t0);
        l.ack(Some(0), 10, t0);
        l.ack(None, 11, t0);
        l.reject(Some(1), "cooldown");
        l.reject(Some(99), "out_of_bounds");
        let c = l.counts();
        assert_eq!((c.sent, c.acked, c.rejected, c.stray_answers), (3, 1, 1, 3));
        assert_eq!(c.pending(), 1);
        assert_eq!(l.take_acks().len(), 1);
        assert!(l.take_acks().is_empty());
        assert_eq!(l.rejected_by_code().get("cooldown"), Some(&1));
    }
}
