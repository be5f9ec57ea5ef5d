//! The placement rules, the embedded twin of `place.lua`: ban, protected
//! rectangles, cooldown, the user's and the IP's pools — every refusal
//! decided before anything changes — then the write logged and applied.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::PixelUpdated;

use super::board::Board;
use super::history::{HistEntry, Histories};
use super::{EmbeddedStore, PixelMeta, State, UserPixels};
use crate::clock::now_ms;
use crate::store::{Geometry, PlaceOutcome, StoreError, USER_PIXELS_LEN, Write, ip_key};

impl EmbeddedStore {
    pub fn place(&self, write: &Write) -> Result<PlaceOutcome, StoreError> {
        let mut guard = self.state();
        let state = &mut *guard;
        let now = Instant::now();
        let wall = now_ms().max(state.last_timestamp);
        // Every refusal is decided before anything changes.
        if state.moderation.is_banned(&write.username, wall) {
            return Ok(PlaceOutcome::Banned);
        }
        if state.moderation.is_protected(write.x, write.y) {
            return Ok(PlaceOutcome::Protected);
        }
        if write.cooldown_ms > 0 {
            if let Some(&until) = state.cooldowns.get(&write.username)
                && until > now
            {
                let left = until - now;
                return Ok(PlaceOutcome::Cooldown {
                    retry_after_ms: (left.as_millis() as u64).max(1),
                });
            }
            // Expired entries are pruned whenever the map doubles, so it
            // holds about as many users as placed within one cooldown.
            if state.cooldowns.len() >= 2 * state.cooldowns_pruned_at.max(1024) {
                state.cooldowns.retain(|_, until| *until > now);
                state.cooldowns_pruned_at = state.cooldowns.len();
            }
        }
        let pool_tat = match write.pool {
            Some(pool) => match pool.take(state.pools.get(&write.username).copied(), wall) {
                Ok(tat) => Some(tat),
                Err(wait) => {
                    return Ok(PlaceOutcome::PoolEmpty {
                        retry_after_ms: wait.max(1),
                    });
                }
            },
            None => None,
        };
        let ip_tat = match write.ip_pool {
            Some((ip, pool)) => {
                let key = ip_key(ip);
                match pool.take(state.ip_pools.get(&key).copied(), wall) {
                    Ok(tat) => Some((key, tat)),
                    Err(wait) => {
                        return Ok(PlaceOutcome::IpLimited {
                            retry_after_ms: wait.max(1),
                        });
                    }
                }
            }
            None => None,
        };
        if let Some(cause) = &state.broken {
            return Err(StoreError::Unavailable(format!(
                "the pixel log cannot be written: {cause}"
            )));
        }
        let event = PixelUpdated {
            x: write.x,
            y: write.y,
            color: write.color,
            username: write.username.clone(),
            timestamp: wall,
            seq: state.seq + 1,
        };
        self.append(state, &event)?;
        if write.cooldown_ms > 0 {
            state.cooldowns.insert(
                write.username.clone(),
                now + Duration::from_millis(write.cooldown_ms),
            );
        }
        if pool_tat.is_some() || ip_tat.is_some() {
            if state.pools.len() + state.ip_pools.len() >= 2 * state.pools_pruned_at.max(1024) {
                state.pools.retain(|_, tat| *tat > wall);
                state.ip_pools.retain(|_, tat| *tat > wall);
                state.pools_pruned_at = state.pools.len() + state.ip_pools.len();
            }
            if let Some(tat) = pool_tat {
                state.pools.insert(write.username.clone(), tat);
            }
            if let Some((key, tat)) = ip_tat {
                state.ip_pools.insert(key, tat);
            }
        }
        Ok(PlaceOutcome::Stored(event))
    }

    /// Logs and applies one write whose checks passed.
    pub(super) fn append(&self, state: &mut State, event: &PixelUpdated) -> Result<(), StoreError> {
        if let Err(e) = state.log.append(event) {
            tracing::error!(error = %e, "writing the pixel log failed; refusing writes until it is rewritten");
            state.broken = Some(e.to_string());
            return Err(StoreError::Unavailable(format!(
                "the pixel log cannot be written: {e}"
            )));
        }
        state.seq = event.seq;
        state.last_timestamp = event.timestamp;
        state.log_records += 1;
        state.unsynced = true;
        let g = self.inner.geometry;
        apply(g, &mut state.board, &mut state.meta, event);
        remember(
            g,
            self.inner.history_len,
            &mut state.history,
            &mut state.user_pixels,
            event,
        );
        state.recent.push_back(event.clone());
        if state.recent.len() > self.inner.recent_cap {
            state.recent.pop_front();
        }
        // Stored and announced in one step, under the lock: announcements
        // leave in seq order, and only for what the log holds.
        if let Some(announce) = self.inner.announce.get()
            && !announce(event)
        {
            self.inner.announce_failures.inc();
        }
        Ok(())
    }
}

/// Adds a write to its pixel's history and, for a player, to the pixels
/// that player placed. Moderation users (`~...`) are not indexed: nobody
/// undoes the moderators.
pub(super) fn remember(
    geometry: Geometry,
    history_len: usize,
    history: &mut Histories,
    user_pixels: &mut UserPixels,
    event: &PixelUpdated,
) {
    let index = geometry.index(event.x, event.y) as u32;
    let username: Arc<str> = Arc::from(event.username.as_str());
    let h = history.entry(index).or_default();
    h.push_back(HistEntry {
        seq: event.seq,
        timestamp: event.timestamp,
        color: event.color,
        username: username.clone(),
    });
    while h.len() > history_len {
        h.pop_front();
    }
    if !event.username.starts_with('~') {
        let placed = user_pixels.entry(username).or_default();
        placed.push_back((event.timestamp, index));
        if placed.len() > USER_PIXELS_LEN {
            placed.pop_front();
        }
    }
}

pub(super) fn apply(
    geometry: Geometry,
    board: &mut Board,
    meta: &mut HashMap<u32, PixelMeta>,
    event: &PixelUpdated,
) {
    let index = geometry.index(event.x, event.y);
    board.set(event.x, event.y, event.color.rgb());
    meta.insert(
        index as u32,
        PixelMeta {
            seq: event.seq,
            timestamp: event.timestamp,
            username: Arc::from(event.username.as_str()),
        },
    );
}
