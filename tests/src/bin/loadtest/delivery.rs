//! What one observer received: which `seq`s, how many twice, how many out of
//! order. Pure bookkeeping in memory proportional to the disorder, not to
//! the length of the run, so a long soak stays small.
//!
//! `seq`s are canvas-wide and gap-free, so an observer's history is a
//! contiguous prefix plus the few `seq`s that arrived ahead of a gap.

use std::collections::{BTreeSet, HashSet};

/// Given-up `seq`s remembered, so a late arrival is told from a duplicate.
/// Past this a late arrival counts as a duplicate; a run losing that much
/// has failed anyway.
const MAX_GIVEN_UP: usize = 1_000_000;

/// How one arrival was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// First time this `seq` arrived.
    Fresh,
    /// Arrived after it had been given up on (counted lost at the time).
    Late,
    /// This observer had it already.
    Duplicate,
}

#[derive(Debug, Clone)]
pub struct Tracker {
    /// The `seq` in this observer's `connected` frame.
    base: u64,
    /// Every `seq` in `(base, contiguous]` arrived or was given up on.
    contiguous: u64,
    /// `seq`s above `contiguous + 1` that arrived.
    ahead: BTreeSet<u64>,
    /// `seq`s at or below `base` that arrived: a pixel fanned out between
    /// the gateway subscribing this client and writing its `connected` frame
    /// comes after the greeting yet within its `seq`. Legitimate once.
    early: HashSet<u64>,
    /// `seq`s at or below `contiguous` that never arrived.
    given_up: HashSet<u64>,
    max_seen: u64,
    pub received: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub late: u64,
}

impl Tracker {
    pub fn new(base: u64) -> Self {
        Tracker {
            base,
            contiguous: base,
            ahead: BTreeSet::new(),
            early: HashSet::new(),
            given_up: HashSet::new(),
            max_seen: base,
            received: 0,
            duplicates: 0,
            out_of_order: 0,
            late: 0,
        }
    }

    /// Records one arrival of `seq`.
    pub fn arrive(&mut self, seq: u64) -> Arrival {
        let arrival = self.classify(seq);
        match arrival {
            Arrival::Duplicate => self.duplicates += 1,
            Arrival::Late => {
                self.late += 1;
                self.received += 1;
            }
            Arrival::Fresh => {
                self.received += 1;
                // Duplicates are counted on their own; out of order means a
                // new `seq` behind one already seen.
                if seq < self.max_seen {
                    self.out_of_order += 1;
                }
            }
        }
        self.max_seen = self.max_seen.max(seq);
        arrival
    }

    fn classify(&mut self, seq: u64) -> Arrival {
        if seq <= self.base {
            return if self.early.insert(seq) {
                Arrival::Fresh
            } else {
                Arrival::Duplicate
            };
        }
        if seq <= self.contiguous {
            return if self.given_up.remove(&seq) {
                Arrival::Late
            } else {
                Arrival::Duplicate
            };
        }
        if seq == self.contiguous + 1 {
            self.contiguous = seq;
            self.absorb_ahead();
            return Arrival::Fresh;
        }
        if self.ahead.insert(seq) {
            Arrival::Fresh
        } else {
            Arrival::Duplicate
        }
    }

    fn absorb_ahead(&mut self) {
        while self.ahead.remove(&(self.contiguous + 1)) {
            self.contiguous += 1;
        }
    }

    /// True when `seq` arrived (ever, including late).
    pub fn has(&self, seq: u64) -> bool {
        if seq <= self.base {
            return self.early.contains(&seq);
        }
        if seq <= self.contiguous {
            return !self.given_up.contains(&seq);
        }
        self.ahead.contains(&seq)
    }

    /// Every `seq` up to this one arrived (or was given up on).
    pub fn contiguous(&self) -> u64 {
        self.contiguous
    }

    /// Stops waiting for anything up to `seq`: what is missing is
    /// remembered as given up, so the `ahead` set cannot grow without bound
    /// behind a lost `seq` during a long run.
    pub fn give_up_to(&mut self, seq: u64) {
        if seq <= self.contiguous {
            return;
        }
        for missing in self.contiguous + 1..=seq {
            if !self.ahead.remove(&missing) && self.given_up.len() < MAX_GIVEN_UP {
                self.given_up.insert(missing);
            }
        }
        self.contiguous = seq;
        self.absorb_ahead();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_arrivals_are_all_fresh_and_contiguous() {
        let mut t = Tracker::new(10);
        for s in 11..=20 {
            assert_eq!(t.arrive(s), Arrival::Fresh);
        }
        assert_eq!(t.contiguous(), 20);
        assert_eq!((t.received, t.duplicates, t.out_of_order), (10, 0, 0));
        assert!(t.has(15));
        assert!(!t.has(21));
    }

    #[test]
    fn a_seq_behind_the_highest_seen_is_out_of_order_not_lost() {
        let mut t = Tracker::new(0);
        t.arrive(1);
        t.arrive(3);
        assert_eq!(t.contiguous(), 1);
        assert!(!t.has(2));
        assert_eq!(t.arrive(2), Arrival::Fresh);
        assert_eq!(t.contiguous(), 3);
        assert_eq!(t.out_of_order, 1);
        assert!(t.has(2));
    }

    #[test]
    fn a_second_arrival_is_a_duplicate_wherever_it_falls() {
        let mut t = Tracker::new(0);
        t.arrive(1);
        t.arrive(5);
        assert_eq!(t.arrive(1), Arrival::Duplicate); // Below the prefix.
        assert_eq!(t.arrive(5), Arrival::Duplicate); // Ahead of a gap.
        assert_eq!(t.duplicates, 2);
        assert_eq!(t.received, 2);
        assert_eq!(t.out_of_order, 0);
    }

    #[test]
    fn seqs_within_the_greeting_count_once() {
        let mut t = Tracker::new(7);
        assert_eq!(t.arrive(7), Arrival::Fresh);
        assert_eq!(t.arrive(7), Arrival::Duplicate);
        assert!(t.has(7));
        assert!(!t.has(6));
    }

    #[test]
    fn giving_up_marks_the_gap_missing_and_a_late_arrival_fills_it() {
        let mut t = Tracker::new(0);
        t.arrive(1);
        t.arrive(4);
        t.give_up_to(3);
        assert_eq!(t.contiguous(), 4);
        assert!(!t.has(2));
        assert!(!t.has(3));
        assert!(t.has(4));
        assert_eq!(t.arrive(2), Arrival::Late);
        assert!(t.has(2));
        assert_eq!(t.arrive(2), Arrival::Duplicate);
        assert_eq!((t.late, t.duplicates), (1, 1));
    }

    #[test]
    fn giving_up_behind_the_prefix_changes_nothing() {
        let mut t = Tracker::new(0);
        t.arrive(1);
        t.arrive(2);
        t.give_up_to(1);
        assert!(t.has(1) && t.has(2));
        assert_eq!(t.contiguous(), 2);
    }
}
