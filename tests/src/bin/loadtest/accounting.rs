//! Turning what writers and observers saw into figures: latency of every
//! delivery of an acknowledged placement, and which deliveries never came.
//!
//! Observers append `(seq, receive time)` to their [`Inbox`] and writers'
//! acks land in the [`Ledger`]; a periodic [`Accounting::sweep`] joins the
//! two on `seq`. The join has to wait: the gateway publishes a pixel before
//! it acknowledges it, so an observer usually hears a `seq` before its
//! writer learns it. A delivery whose `seq` is still unknown stays pending
//! for the grace period; after that it was someone else's write.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::board::ForeignWrite;
use crate::delivery::{Arrival, Tracker};
use crate::ledger::{Ack, Ledger, lock};
use crate::stats::Histogram;

/// One delivery to one observer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub seq: u64,
    /// Microseconds on the ledger's clock.
    pub at_us: u64,
}

/// What one observer's reader task hands to the accounting.
#[derive(Debug)]
pub struct Inbox {
    pub tracker: Tracker,
    /// Deliveries since the last sweep (duplicates left out).
    pub records: Vec<Received>,
    /// Every pixel event with its coordinates, kept by one observer only:
    /// the board check needs to know where other clients wrote.
    pub witness: Option<Vec<ForeignWrite>>,
    pub resyncs: u64,
    /// Why the connection ended before the run did.
    pub ended_early: Option<String>,
}

impl Inbox {
    pub fn new(base_seq: u64, witness: bool, capacity: usize) -> Self {
        Inbox {
            tracker: Tracker::new(base_seq),
            records: Vec::with_capacity(capacity),
            witness: witness.then(|| Vec::with_capacity(capacity)),
            resyncs: 0,
            ended_early: None,
        }
    }

    /// Records one pixel event received at `at_us`.
    pub fn pixel(&mut self, seq: u64, x: u32, y: u32, at_us: u64) {
        if self.tracker.arrive(seq) != Arrival::Duplicate {
            self.records.push(Received { seq, at_us });
        }
        if let Some(w) = &mut self.witness {
            w.push(ForeignWrite { seq, x, y });
        }
    }
}

pub type SharedInbox = Arc<Mutex<Inbox>>;

#[derive(Debug)]
pub struct Accounting {
    /// How long a delivery may trail its ack before it counts as lost.
    grace_us: u64,
    /// Every acknowledged placement, for the board check.
    pub acks: Vec<Ack>,
    /// `seq` → placement, for acks whose deliveries are still expected.
    by_seq: HashMap<u64, u32>,
    /// Acks not yet checked against every observer, oldest first.
    unchecked: VecDeque<Ack>,
    /// Per observer: deliveries whose `seq` was not known to be ours yet.
    pending: Vec<Vec<Received>>,
    /// Per observer: the vector swapped into its inbox at the next sweep,
    /// so the reader never regrows one from empty on the hot path.
    spare: Vec<Vec<Received>>,
    pub max_acked_seq: u64,
    /// (observer, acked `seq`) pairs checked and found delivered.
    pub delivered: u64,
    /// (observer, acked `seq`) pairs checked and found missing.
    pub lost: u64,
    /// Latency of every delivery, kept when exact percentiles are wanted.
    pub all_samples: Option<Vec<u32>>,
    /// Latency since [`Accounting::take_interval`].
    pub interval_samples: Vec<u32>,
    pub histogram: Histogram,
}

impl Accounting {
    pub fn new(observers: usize, grace_us: u64, keep_all: Option<usize>) -> Self {
        Accounting {
            grace_us,
            acks: Vec::new(),
            by_seq: HashMap::new(),
            unchecked: VecDeque::new(),
            pending: vec![Vec::new(); observers],
            spare: vec![Vec::new(); observers],
            max_acked_seq: 0,
            delivered: 0,
            lost: 0,
            all_samples: keep_all.map(Vec::with_capacity),
            interval_samples: Vec::new(),
            histogram: Histogram::default(),
        }
    }

    /// Joins new acks with new deliveries and checks the acks older than
    /// the grace period (all of them when `last`).
    pub fn sweep(&mut self, ledger: &Ledger, inboxes: &[SharedInbox], now_us: u64, last: bool) {
        for ack in ledger.take_acks() {
            self.by_seq.insert(ack.seq, ack.placement);
            self.max_acked_seq = self.max_acked_seq.max(ack.seq);
            self.acks.push(ack);
            self.unchecked.push_back(ack);
        }
        for (i, inbox) in inboxes.iter().enumerate() {
            let mut fresh = std::mem::take(&mut self.spare[i]);
            fresh.clear();
            std::mem::swap(&mut lock(inbox).records, &mut fresh);
            self.match_deliveries(i, &fresh, ledger, now_us, last);
            self.spare[i] = fresh;
        }
        self.check_due(inboxes, now_us, last);
    }

    fn match_deliveries(
        &mut self,
        observer: usize,
        fresh: &[Received],
        ledger: &Ledger,
        now_us: u64,
        last: bool,
    ) {
        let waiting = std::mem::take(&mut self.pending[observer]);
        for r in waiting.into_iter().chain(fresh.iter().copied()) {
            match self.by_seq.get(&r.seq) {
                Some(&n) => {
                    let sent = ledger.sent_us(n).unwrap_or(r.at_us);
                    self.sample(crate::stats::micros(std::time::Duration::from_micros(
                        r.at_us.saturating_sub(sent),
                    )));
                }
                // Not known to be ours yet: the ack may still be on its way.
                None if !last && now_us.saturating_sub(r.at_us) < self.grace_us => {
                    self.pending[observer].push(r);
                }
                // Someone else's write, or a delivery after its ack was
                // checked (counted lost then, and late by the tracker).
                None => {}
            }
        }
    }

    fn sample(&mut self, us: u32) {
        self.histogram.record(us);
        self.interval_samples.push(us);
        if let Some(all) = &mut self.all_samples {
            all.push(us);
        }
    }

    /// Checks every due ack against every observer, then lets the
    /// observers stop waiting for what is now overdue.
    fn check_due(&mut self, inboxes: &[SharedInbox], now_us: u64, last: bool) {
        let mut due = Vec::new();
        while let Some(ack) = self.unchecked.front() {
            if !last && ack.at_us.saturating_add(self.grace_us) > now_us {
                break;
            }
            due.push(*ack);
            self.unchecked.pop_front();
        }
        if due.is_empty() {
            return;
        }
        let newest = due.iter().map(|a| a.seq).max().unwrap_or(0);
        for inbox in inboxes {
            let mut inbox = lock(inbox);
            for ack in &due {
                if inbox.tracker.has(ack.seq) {
                    self.delivered += 1;
                } else {
                    self.lost += 1;
                }
            }
            if !last {
                inbox.tracker.give_up_to(newest);
            }
        }
        for ack in &due {
            self.by_seq.remove(&ack.seq);
        }
    }

    /// Latency samples since the last call.
    pub fn take_interval(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.interval_samples)
    }

    /// True when every observer still connected has every `seq` up to the
    /// newest ack: the drain can stop early.
    pub fn all_caught_up(&self, inboxes: &[SharedInbox]) -> bool {
        inboxes.iter().all(|inbox| {
            let inbox = lock(inbox);
            inbox.ended_early.is_some() || inbox.tracker.contiguous() >= self.max_acked_seq
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::ledger::{Colors, Plan};

    fn ledger(planned: u32) -> (Ledger, Instant) {
        let t0 = Instant::now();
        let plan = Plan {
            seed: 1,
            width: 10,
            height: 10,
            colors: Colors::Any,
        };
        (Ledger::new(plan, planned, t0), t0)
    }

    fn inbox(base: u64) -> SharedInbox {
        Arc::new(Mutex::new(Inbox::new(base, false, 0)))
    }

    #[test]
    fn a_delivery_heard_before_its_ack_still_gets_a_latency() {
        let (l, t0) = ledger(1);
        let obs = [inbox(0)];
        l.mark_sent(0, t0);
        lock(&obs[0]).pixel(1, 0, 0, 1500);
        let mut acc = Accounting::new(1, 5_000_000, Some(10));
        acc.sweep(&l, &obs, 2000, false);
        assert!(acc.interval_samples.is_empty(), "the ack has not come yet");
        l.ack(Some(0), 1, t0 + Duration::from_micros(1800));
        acc.sweep(&l, &obs, 3000, true);
        assert_eq!(acc.all_samples, Some(vec![1500]));
        assert_eq!((acc.delivered, acc.lost), (1, 0));
    }

    #[test]
    fn a_missing_delivery_is_lost_once_per_observer() {
        let (l, t0) = ledger(2);
        let obs = [inbox(0), inbox(0)];
        for n in 0..2 {
            l.mark_sent(n, t0);
        }
        l.ack(Some(0), 1, t0);
        l.ack(Some(1), 2, t0);
        {
            let mut a = lock(&obs[0]);
            a.pixel(1, 0, 0, 10);
            a.pixel(2, 0, 0, 10);
        }
        lock(&obs[1]).pixel(2, 0, 0, 10);
        let mut acc = Accounting::new(2, 5_000_000, None);
        acc.sweep(&l, &obs, 20, true);
        assert_eq!((acc.delivered, acc.lost), (3, 1));
        assert_eq!(acc.histogram.count(), 3);
    }

    #[test]
    fn acks_are_checked_only_after_the_grace_period() {
        let (l, t0) = ledger(1);
        let obs = [inbox(0)];
        l.mark_sent(0, t0);
        l.ack(Some(0), 1, t0 + Duration::from_micros(100));
        let mut acc = Accounting::new(1, 1000, None);
        acc.sweep(&l, &obs, 500, false);
        assert_eq!((acc.delivered, acc.lost), (0, 0));
        assert!(!acc.all_caught_up(&obs));
        acc.sweep(&l, &obs, 2000, false);
        assert_eq!(acc.lost, 1);
        // The observer stopped waiting, and a late arrival is told apart.
        assert!(acc.all_caught_up(&obs));
        lock(&obs[0]).pixel(1, 0, 0, 3000);
        assert_eq!(lock(&obs[0]).tracker.late, 1);
    }

    #[test]
    fn other_clients_writes_are_dropped_after_the_grace_period() {
        let (l, _) = ledger(1);
        let obs = [inbox(0)];
        lock(&obs[0]).pixel(1, 0, 0, 10);
        let mut acc = Accounting::new(1, 1000, None);
        acc.sweep(&l, &obs, 500, false);
        assert_eq!(acc.pending[0].len(), 1);
        acc.sweep(&l, &obs, 5000, false);
        assert!(acc.pending[0].is_empty());
        assert_eq!(acc.histogram.count(), 0);
    }
}
