//! [`SeqTracker`]: which `seq`s this gateway has fanned out, and which are
//! missing. Pure bookkeeping; [`crate::fanout`] acts on it.
//!
//! Events reach a gateway out of order (two gateways publish concurrently)
//! and, rarely, not at all (a publish failed, the subscription dropped).
//! Events are passed on at once, whatever their order; a `seq` that stays
//! missing past a grace window is fetched from the replay log.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The most out-of-order `seq`s remembered; past it the gap is given up on
/// and clients are told to resync.
pub const MAX_AHEAD: usize = 100_000;

#[derive(Debug, Default)]
pub struct SeqTracker {
    /// Every `seq` up to this one was passed on. `None` before the first.
    contiguous: Option<u64>,
    /// `seq`s passed on above `contiguous + 1`.
    ahead: BTreeSet<u64>,
    /// When the oldest open gap was first seen.
    gap_since: Option<Instant>,
}

impl SeqTracker {
    /// Starts after `seq`: writes up to it are already on any board a client
    /// fetches from now on.
    pub fn starting_after(seq: u64) -> Self {
        SeqTracker {
            contiguous: Some(seq),
            ..Default::default()
        }
    }

    /// Records `seq`; false when it was already passed on (a duplicate).
    pub fn accept(&mut self, seq: u64, now: Instant) -> bool {
        let contiguous = *self.contiguous.get_or_insert(seq.saturating_sub(1));
        if seq <= contiguous || self.ahead.contains(&seq) {
            return false;
        }
        if seq == contiguous + 1 {
            self.settle(seq, now);
        } else {
            self.ahead.insert(seq);
            self.gap_since.get_or_insert(now);
        }
        true
    }

    pub fn contiguous(&self) -> u64 {
        self.contiguous.unwrap_or(0)
    }

    pub fn is_started(&self) -> bool {
        self.contiguous.is_some()
    }

    pub fn has_gap(&self) -> bool {
        !self.ahead.is_empty()
    }

    /// Too many out-of-order events are held: give the gap up.
    pub fn is_overfull(&self) -> bool {
        self.ahead.len() > MAX_AHEAD
    }

    /// When the open gap should be repaired, if one is open.
    pub fn repair_due(&self, grace: Duration) -> Option<Instant> {
        self.gap_since.map(|t| t + grace)
    }

    /// Pushes the next repair attempt back (the last one failed).
    pub fn postpone_repair(&mut self, now: Instant) {
        if self.gap_since.is_some() {
            self.gap_since = Some(now);
        }
    }

    /// Gives up on everything up to `seq` (clients were told to resync).
    pub fn skip_to(&mut self, seq: u64, now: Instant) {
        let c = self.contiguous().max(seq);
        self.ahead.retain(|&s| s > c);
        self.settle(c, now);
    }

    /// Everything up to `c` is passed on: absorb the out-of-order `seq`s
    /// that now follow on, and restart the gap clock if a gap remains.
    fn settle(&mut self, mut c: u64, now: Instant) {
        while self.ahead.remove(&(c + 1)) {
            c += 1;
        }
        self.contiguous = Some(c);
        self.gap_since = if self.ahead.is_empty() {
            None
        } else {
            Some(now)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_events_leave_no_gap() {
        let now = Instant::now();
        let mut s = SeqTracker::starting_after(10);
        assert!(s.accept(11, now));
        assert!(s.accept(12, now));
        assert_eq!(s.contiguous(), 12);
        assert!(!s.has_gap());
        assert_eq!(s.repair_due(Duration::from_secs(1)), None);
    }

    #[test]
    fn out_of_order_events_pass_and_close_the_gap() {
        let now = Instant::now();
        let mut s = SeqTracker::starting_after(0);
        assert!(s.accept(2, now));
        assert!(s.has_gap());
        assert_eq!(
            s.repair_due(Duration::from_millis(5)),
            Some(now + Duration::from_millis(5))
        );
        assert!(s.accept(1, now));
        assert_eq!(s.contiguous(), 2);
        assert!(!s.has_gap());
    }

    #[test]
    fn duplicates_are_refused() {
        let now = Instant::now();
        let mut s = SeqTracker::starting_after(0);
        assert!(s.accept(3, now));
        assert!(!s.accept(3, now));
        assert!(s.accept(1, now));
        assert!(!s.accept(1, now));
        assert!(s.accept(2, now));
        assert!(!s.accept(2, now));
        assert_eq!(s.contiguous(), 3);
    }

    #[test]
    fn the_first_event_starts_an_unstarted_seq_tracker() {
        let now = Instant::now();
        let mut s = SeqTracker::default();
        assert!(!s.is_started());
        assert!(s.accept(40, now));
        assert_eq!(s.contiguous(), 40);
    }

    #[test]
    fn skipping_drops_what_it_passes() {
        let now = Instant::now();
        let mut s = SeqTracker::starting_after(0);
        s.accept(5, now);
        s.accept(9, now);
        s.skip_to(6, now);
        assert_eq!(s.contiguous(), 6);
        assert!(s.has_gap()); // 7 and 8 are still missing before 9.
        s.skip_to(8, now);
        assert_eq!(s.contiguous(), 9);
        assert!(!s.has_gap());
    }
}
