//! One coarse clock for every connection's idle timeout. A single task
//! ticks a `watch` a few times per `IDLE_TIMEOUT_SECS`; each connection
//! notes the tick it last heard its client on, pings a client silent since
//! the last tick, and closes one silent for the whole timeout (4002). A
//! connection thus carries one integer, not a timer of its own.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Ticks per idle timeout. A connection heard last on tick `k` closes on
/// tick `k + 5`: between the timeout and the timeout plus one tick after it
/// was last heard.
pub const TICKS_PER_TIMEOUT: u64 = 4;

/// The clock's current tick, and a way to wait for the next.
pub type IdleClock = watch::Receiver<u64>;

/// Starts the clock; `None` when idle timeouts are off (0).
pub fn start(
    timeout: Duration,
    tracker: &tokio_util::task::TaskTracker,
    stop: CancellationToken,
) -> Option<IdleClock> {
    if timeout.is_zero() {
        return None;
    }
    let (tx, rx) = watch::channel(0u64);
    let period = timeout / TICKS_PER_TIMEOUT as u32;
    tracker.spawn(async move {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = interval.tick() => tx.send_modify(|t| *t += 1),
            }
        }
    });
    Some(rx)
}

/// What a connection does on a tick, given the tick it last heard from
/// its client on.
#[derive(Debug, PartialEq, Eq)]
pub enum OnTick {
    Nothing,
    Ping,
    Close,
}

pub fn on_tick(now: u64, heard: u64) -> OnTick {
    match now.saturating_sub(heard) {
        0 => OnTick::Nothing,
        n if n > TICKS_PER_TIMEOUT => OnTick::Close,
        _ => OnTick::Ping,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_pings_then_closes() {
        assert_eq!(on_tick(5, 5), OnTick::Nothing);
        assert_eq!(on_tick(6, 5), OnTick::Ping);
        assert_eq!(on_tick(9, 5), OnTick::Ping);
        assert_eq!(on_tick(10, 5), OnTick::Close);
    }

    #[tokio::test(start_paused = true)]
    async fn the_clock_ticks_four_times_per_timeout() {
        let tracker = tokio_util::task::TaskTracker::new();
        let stop = CancellationToken::new();
        let mut clock = start(Duration::from_secs(60), &tracker, stop.clone()).unwrap();
        tokio::time::sleep(Duration::from_secs(61)).await;
        clock.changed().await.unwrap();
        assert_eq!(*clock.borrow_and_update(), 4);
        stop.cancel();
    }
}
