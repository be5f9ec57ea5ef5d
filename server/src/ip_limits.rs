//! Per-IP limits of this gateway: how many WebSockets and SSE streams one
//! client IP may hold, and how many messages per second all of them
//! together may send (a token bucket per IP). An IP is counted under its
//! `limit_key`: an IPv6 client by its /64. The state of every IP lives in one map, entered
//! when its first connection opens and removed when its last one closes, so
//! an idle connection costs nothing here but its [`IpSlot`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use plumbing::client_ip::limit_key;

/// How deep an IP may go into debt (in seconds' worth of its rate) by
/// sending on after being told `rate_limited`; past it, the sending
/// connection is closed (4029).
pub const FLOOD_FACTOR: f64 = 4.0;

#[derive(Debug)]
pub struct IpLimits {
    /// 0: no limit.
    max_connections: u32,
    /// 0: no limit.
    messages_per_sec: u32,
    ips: Mutex<HashMap<IpAddr, IpState>>,
}

#[derive(Debug)]
struct IpState {
    connections: u32,
    /// Messages that may still be sent now; below zero after refusals.
    tokens: f64,
    refilled: Instant,
}

/// What a message from an IP may do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    Allow,
    /// Refuse it (`rate_limited`); a token is back after this long.
    Limited {
        retry_after_ms: u64,
    },
    /// The IP keeps flooding after refusals: close the connection.
    Flood,
}

impl IpLimits {
    pub fn new(max_connections: u32, messages_per_sec: u32) -> Arc<IpLimits> {
        Arc::new(IpLimits {
            max_connections,
            messages_per_sec,
            ips: Mutex::default(),
        })
    }

    /// A connection slot for `ip`, or `None` when it holds the most it may.
    pub fn connect(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let key = limit_key(ip);
        let mut ips = self.ips.lock().expect("not poisoned");
        let state = ips.entry(key).or_insert_with(|| IpState {
            connections: 0,
            tokens: f64::from(self.messages_per_sec),
            refilled: Instant::now(),
        });
        if self.max_connections > 0 && state.connections >= self.max_connections {
            if state.connections == 0 {
                ips.remove(&key);
            }
            return None;
        }
        state.connections += 1;
        Some(IpSlot {
            limits: self.clone(),
            ip,
            key,
        })
    }

    /// IPs with at least one connection here (for tests and metrics).
    pub fn tracked_ips(&self) -> usize {
        self.ips.lock().expect("not poisoned").len()
    }

    /// Takes one message from the bucket of `key` (a [`limit_key`]).
    fn message(&self, key: IpAddr, now: Instant) -> Verdict {
        let rate = f64::from(self.messages_per_sec);
        if self.messages_per_sec == 0 {
            return Verdict::Allow;
        }
        let mut ips = self.ips.lock().expect("not poisoned");
        let Some(state) = ips.get_mut(&key) else {
            return Verdict::Allow;
        };
        // Refill at `rate` per second, up to one second's burst.
        let elapsed = now.duration_since(state.refilled).as_secs_f64();
        state.tokens = (state.tokens + elapsed * rate).min(rate);
        state.refilled = now;
        state.tokens -= 1.0;
        if state.tokens >= 0.0 {
            Verdict::Allow
        } else if state.tokens < -FLOOD_FACTOR * rate {
            // The connection that flooded is closed; the IP's other and
            // later connections start from an empty bucket, limited but
            // not closed.
            state.tokens = 0.0;
            Verdict::Flood
        } else {
            // Until the balance is back at one whole token.
            let missing = 1.0 - state.tokens;
            Verdict::Limited {
                retry_after_ms: ((missing / rate) * 1000.0).ceil().max(1.0) as u64,
            }
        }
    }
}

/// One connection's place in its IP's count; released when dropped.
#[derive(Debug)]
pub struct IpSlot {
    limits: Arc<IpLimits>,
    ip: IpAddr,
    /// What the limits count it under.
    key: IpAddr,
}

impl IpSlot {
    /// The client's address (proxy-aware, see `client_ip`).
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Takes one message from the IP's bucket.
    pub fn message(&self) -> Verdict {
        self.limits.message(self.key, Instant::now())
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut ips = self.limits.ips.lock().expect("not poisoned");
        if let Some(state) = ips.get_mut(&self.key) {
            state.connections -= 1;
            if state.connections == 0 {
                ips.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[test]
    fn connections_are_limited_and_released() {
        let limits = IpLimits::new(2, 0);
        let a = limits.connect(IP).unwrap();
        let _b = limits.connect(IP).unwrap();
        assert!(limits.connect(IP).is_none());
        assert!(limits.connect(IpAddr::from([10, 0, 0, 2])).is_some());
        drop(a);
        let _c = limits.connect(IP).expect("released");
    }

    #[test]
    fn one_ipv6_64_is_one_client() {
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let limits = IpLimits::new(3, 2);
        let slots: Vec<_> = (1..=3)
            .map(|i| limits.connect(v6(&format!("2001:db8::{i}"))).unwrap())
            .collect();
        assert!(limits.connect(v6("2001:db8::ffff:1")).is_none());
        assert!(limits.connect(v6("2001:db8:0:1::1")).is_some());
        // One message bucket for all of them too.
        let now = Instant::now();
        assert_eq!(limits.message(slots[0].key, now), Verdict::Allow);
        assert_eq!(limits.message(slots[1].key, now), Verdict::Allow);
        assert!(matches!(
            limits.message(slots[2].key, now),
            Verdict::Limited { .. }
        ));
        // The slot still knows the client's own address.
        assert_eq!(slots[2].ip(), v6("2001:db8::3"));
    }

    #[test]
    fn the_map_forgets_an_ip_without_connections() {
        let limits = IpLimits::new(0, 10);
        let slot = limits.connect(IP).unwrap();
        assert_eq!(limits.tracked_ips(), 1);
        drop(slot);
        assert_eq!(limits.tracked_ips(), 0);
    }

    #[test]
    fn messages_are_limited_then_a_flood_is_told_apart() {
        let limits = IpLimits::new(0, 10);
        let _slot = limits.connect(IP).unwrap();
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(limits.message(IP, t0), Verdict::Allow);
        }
        assert!(matches!(
            limits.message(IP, t0),
            Verdict::Limited { retry_after_ms } if retry_after_ms > 0 && retry_after_ms <= 200
        ));
        let mut verdict = Verdict::Allow;
        for _ in 0..100 {
            verdict = limits.message(IP, t0);
            if verdict == Verdict::Flood {
                break;
            }
        }
        assert_eq!(verdict, Verdict::Flood);
        // The debt is forgiven with the close: limited, not closed again.
        assert!(matches!(limits.message(IP, t0), Verdict::Limited { .. }));
        // Debt is paid back at the rate: after a quiet while, allowed again.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(limits.message(IP, later), Verdict::Allow);
    }
}
