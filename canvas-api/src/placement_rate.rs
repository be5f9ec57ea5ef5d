//! [`PlacementRate`]: how many placements per second one client IP may make
//! over HTTP (`PUT /api/pixel` without a gateway's proof), in this process.
//! The per-user cooldown and pools do not stop a script that rotates
//! usernames; this does, by default, without `IP_POOL_SIZE`. Placements a
//! gateway makes for its WebSockets are limited there, per IP, by
//! `MESSAGES_PER_SEC_PER_IP`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::client_ip::limit_key;
use crate::error::ApiError;

/// Past this many tracked IPs, full buckets are forgotten.
const PRUNE_AT: usize = 10_000;

/// A token bucket per client IP (IPv6: per /64), one second of burst.
#[derive(Debug)]
pub struct PlacementRate {
    /// 0: no limit.
    per_sec: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl PlacementRate {
    pub fn new(per_sec: u32) -> PlacementRate {
        PlacementRate {
            per_sec,
            buckets: Mutex::default(),
        }
    }

    /// Takes one placement for `ip`, or says when the next one is allowed.
    pub fn take(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.take_at(ip, Instant::now())
    }

    fn take_at(&self, ip: IpAddr, now: Instant) -> Result<(), ApiError> {
        if self.per_sec == 0 {
            return Ok(());
        }
        let rate = f64::from(self.per_sec);
        let mut buckets = self.buckets.lock().expect("not poisoned");
        if buckets.len() > PRUNE_AT {
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < rate
            });
        }
        let (tokens, at) = buckets.entry(limit_key(ip)).or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        let retry_after_ms = (((1.0 - *tokens) / rate) * 1000.0).ceil().max(1.0) as u64;
        Err(ApiError::RateLimited {
            message: format!(
                "at most {} HTTP placements per second from one address; slow down",
                self.per_sec
            ),
            retry_after_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_address_gets_its_rate_and_a_64_is_one_address() {
        let rate = PlacementRate::new(2);
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        assert!(rate.take_at(a, t0).is_ok());
        assert!(rate.take_at(b, t0).is_ok());
        let refused = rate.take_at(a, t0).unwrap_err();
        assert!(
            matches!(refused, ApiError::RateLimited { retry_after_ms, .. } if (1..=500).contains(&retry_after_ms))
        );
        assert!(rate.take_at(IpAddr::from([10, 0, 0, 1]), t0).is_ok());
        assert!(rate.take_at(a, t0 + Duration::from_millis(500)).is_ok());
        assert!(PlacementRate::new(0).take_at(a, t0).is_ok());
    }
}
