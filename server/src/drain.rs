//! When a stopping gateway closes each WebSocket. Closing every socket in the
//! same millisecond would send all of this replica's clients to the others
//! at once; instead each connection closes on a random tick of the drain
//! window, so they leave in batches spread over it.

use std::time::Duration;

/// Closes happen on ticks this far apart; the connections drawn for the
/// same tick close together, as one batch.
pub const TICK: Duration = Duration::from_millis(100);

/// How long after shutdown begins the connection drawing `random` closes:
/// one of the window's ticks, uniformly. A window shorter than a tick
/// closes everything at once.
pub fn close_delay(window: Duration, random: u64) -> Duration {
    let ticks = (window.as_millis() / TICK.as_millis()) as u64;
    if ticks == 0 {
        return Duration::ZERO;
    }
    TICK * (random % ticks) as u32
}

/// A delay for a new connection, from fresh randomness.
pub fn random_close_delay(window: Duration) -> Duration {
    close_delay(window, uuid::Uuid::new_v4().as_u64_pair().0)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn delays_fall_on_every_tick_inside_the_window() {
        let window = Duration::from_millis(2_000);
        let delays: BTreeSet<Duration> = (0..1_000).map(|r| close_delay(window, r)).collect();
        assert_eq!(delays.len(), 20, "one batch per tick: {delays:?}");
        assert!(delays.iter().all(|d| *d < window));
        assert!(delays.iter().all(|d| d.as_millis() % TICK.as_millis() == 0));
    }

    #[test]
    fn random_delays_spread_over_the_window() {
        let window = Duration::from_millis(1_000);
        let delays: BTreeSet<Duration> = (0..500).map(|_| random_close_delay(window)).collect();
        // 500 draws over 10 ticks miss one with odds of about 10 * 0.9^500.
        assert_eq!(delays.len(), 10, "{delays:?}");
    }

    #[test]
    fn a_window_under_one_tick_closes_at_once() {
        assert_eq!(close_delay(Duration::ZERO, 7), Duration::ZERO);
        assert_eq!(close_delay(Duration::from_millis(99), 7), Duration::ZERO);
    }
}
