//! [`Gcra`]: the pixel pool ("up to N pixels, one back every T") as the
//! generic cell rate algorithm. Each key stores one number, its
//! "theoretical arrival time" (TAT): the moment its pool would be full
//! again. A placement is allowed when that moment, plus one more refill,
//! is at most `size` refills away; there is no window, so no burst at a
//! window's edge. The Redis store runs the same arithmetic in `place.lua`.

/// A pool of `size` pixels, one back every `refill_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    pub size: u32,
    pub refill_ms: u64,
}

impl Gcra {
    /// Takes one pixel at `now` (ms) from a key whose stored TAT is `tat`.
    /// `Ok(new_tat)` to store on success; `Err(ms)` until a pixel is back.
    pub fn take(self, tat: Option<u64>, now: u64) -> Result<u64, u64> {
        let tat = tat.unwrap_or(now).max(now);
        let new_tat = tat + self.refill_ms;
        let allowed_at = new_tat.saturating_sub(u64::from(self.size) * self.refill_ms);
        if allowed_at > now {
            Err(allowed_at - now)
        } else {
            Ok(new_tat)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOL: Gcra = Gcra {
        size: 3,
        refill_ms: 1000,
    };

    /// Takes until refused; returns how many were taken and the wait.
    fn drain(tat: &mut Option<u64>, now: u64) -> (u32, u64) {
        let mut taken = 0;
        loop {
            match POOL.take(*tat, now) {
                Ok(t) => {
                    *tat = Some(t);
                    taken += 1;
                }
                Err(wait) => return (taken, wait),
            }
        }
    }

    #[test]
    fn a_full_pool_gives_its_size_then_one_per_refill() {
        let mut tat = None;
        assert_eq!(drain(&mut tat, 10_000), (3, 1000));
        // Just before a pixel is back: still nothing.
        assert_eq!(drain(&mut tat, 10_999), (0, 1));
        assert_eq!(drain(&mut tat, 11_000), (1, 1000));
        // After a long pause the pool is full again, and no fuller.
        assert_eq!(drain(&mut tat, 100_000), (3, 1000));
    }

    #[test]
    fn no_burst_at_any_boundary() {
        // Over any span of d ms, at most size + d / refill pixels pass.
        let mut tat = None;
        let mut granted = Vec::new();
        for now in (0..20_000).step_by(7) {
            while let Ok(t) = POOL.take(tat, now) {
                tat = Some(t);
                granted.push(now);
            }
        }
        for (i, &start) in granted.iter().enumerate() {
            let within = granted[i..]
                .iter()
                .take_while(|&&t| t < start + 5000)
                .count();
            assert!(within <= 3 + 5, "{within} pixels within 5 s from {start}");
        }
    }

    #[test]
    fn a_pool_of_one_is_a_cooldown() {
        let cooldown = Gcra {
            size: 1,
            refill_ms: 5000,
        };
        let t = cooldown.take(None, 0).unwrap();
        assert_eq!(cooldown.take(Some(t), 1), Err(4999));
        assert!(cooldown.take(Some(t), 5000).is_ok());
    }
}
