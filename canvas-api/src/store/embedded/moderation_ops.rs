//! What moderation reads and writes in the embedded store: pixel
//! histories, each user's pixels, compare-and-set rewrites, the clear,
//! bans, protections and the audit log (kept in `moderation.json`).

use std::collections::HashMap;

use protocol::PixelUpdated;
use protocol::http::{AuditEntry, BanInfo, Protection, Rect};

use super::board::Board;
use super::history;
use super::snapshot;
use super::{EmbeddedStore, HISTORY_FILE, MODERATION_FILE, SNAPSHOT_FILE, State};
use crate::clock::now_ms;
use crate::store::{AUDIT_LEN, MAX_PROTECTIONS, PixelRecord, Rewrite, StoreError};

impl EmbeddedStore {
    pub fn history(&self, x: u32, y: u32) -> Vec<PixelRecord> {
        let index = self.inner.geometry.index(x, y) as u32;
        let state = self.state();
        state.history.get(&index).map_or_else(Vec::new, |h| {
            h.iter()
                .rev()
                .map(|e| PixelRecord {
                    color: e.color,
                    username: e.username.to_string(),
                    timestamp: e.timestamp,
                    seq: e.seq,
                })
                .collect()
        })
    }

    pub fn history_floor(&self) -> u64 {
        self.inner.history_floor
    }

    pub fn user_pixels_since(&self, username: &str, since: u64) -> Vec<(u32, u32)> {
        let state = self.state();
        let Some(placed) = state.user_pixels.get(username) else {
            return Vec::new();
        };
        let w = self.inner.geometry.width;
        let mut seen = std::collections::HashSet::new();
        placed
            .iter()
            .filter(|(ts, index)| *ts >= since && seen.insert(*index))
            .map(|(_, index)| (index % w, index / w))
            .collect()
    }

    pub fn cleared(&self) -> Option<(u64, u64)> {
        self.state().moderation.cleared
    }

    pub fn rewrite(
        &self,
        writes: &[Rewrite],
        username: &str,
    ) -> Result<Vec<PixelUpdated>, StoreError> {
        let mut guard = self.state();
        let state = &mut *guard;
        if let Some(cause) = &state.broken {
            return Err(StoreError::Unavailable(format!(
                "the pixel log cannot be written: {cause}"
            )));
        }
        let mut written = Vec::new();
        for w in writes {
            let index = self.inner.geometry.index(w.x, w.y) as u32;
            let current = state.meta.get(&index).map_or(0, |m| m.seq);
            if current != w.expected_seq {
                continue; // Placed on meanwhile: the later pixel stays.
            }
            let event = PixelUpdated {
                x: w.x,
                y: w.y,
                color: w.color,
                username: username.to_owned(),
                timestamp: now_ms().max(state.last_timestamp),
                seq: state.seq + 1,
            };
            self.append(state, &event)?;
            written.push(event);
        }
        Ok(written)
    }

    /// Writes the cleared board as a snapshot at the next `seq` with an
    /// empty log after it: nothing can replay across the clear.
    pub fn clear(&self) -> Result<(u64, u64), StoreError> {
        let mut guard = self.state();
        let state = &mut *guard;
        let fail = |e: std::io::Error| StoreError::Unavailable(format!("clearing failed: {e}"));
        let seq = state.seq + 1;
        let timestamp = now_ms().max(state.last_timestamp);
        let g = self.inner.geometry;
        let dir = &self.inner.dir;
        let white = Board::new(g);
        snapshot::write(&dir.join(SNAPSHOT_FILE), g, seq, &white, &HashMap::new()).map_err(fail)?;
        // Histories stay across a clear, for a rollback to before it.
        history::write(&dir.join(HISTORY_FILE), seq, &state.history).map_err(fail)?;
        self.start_new_log(state, seq).map_err(fail)?;
        state.broken = None;
        state.board = white;
        state.meta.clear();
        state.recent.clear();
        state.seq = seq;
        state.last_timestamp = timestamp;
        state.moderation.cleared = Some((seq, timestamp));
        self.save_moderation(state)?;
        Ok((seq, timestamp))
    }

    pub(super) fn save_moderation(&self, state: &State) -> Result<(), StoreError> {
        state
            .moderation
            .save(&self.inner.dir.join(MODERATION_FILE))
            .map_err(|e| StoreError::Unavailable(format!("writing {MODERATION_FILE}: {e}")))
    }

    pub fn ban(&self, ban: &BanInfo) -> Result<(), StoreError> {
        let mut state = self.state();
        state
            .moderation
            .bans
            .insert(ban.username.clone(), ban.clone());
        self.save_moderation(&state)
    }

    pub fn unban(&self, username: &str) -> Result<bool, StoreError> {
        let mut state = self.state();
        let now = now_ms();
        let was = state.moderation.is_banned(username, now);
        state.moderation.bans.remove(username);
        self.save_moderation(&state)?;
        Ok(was)
    }

    pub fn bans(&self, now: u64) -> Vec<BanInfo> {
        let state = self.state();
        state
            .moderation
            .bans
            .values()
            .filter(|b| b.until.is_none_or(|u| u > now))
            .cloned()
            .collect()
    }

    pub fn protect(&self, rect: Rect, by: &str, at: u64) -> Result<Option<Protection>, StoreError> {
        let mut state = self.state();
        if state.moderation.protections.len() >= MAX_PROTECTIONS {
            return Ok(None);
        }
        state.moderation.last_protection_id += 1;
        let protection = Protection {
            id: state.moderation.last_protection_id,
            rect,
            by: by.to_owned(),
            at,
        };
        state.moderation.protections.push(protection.clone());
        self.save_moderation(&state)?;
        Ok(Some(protection))
    }

    pub fn unprotect(&self, id: u64) -> Result<bool, StoreError> {
        let mut state = self.state();
        let before = state.moderation.protections.len();
        state.moderation.protections.retain(|p| p.id != id);
        let removed = state.moderation.protections.len() < before;
        self.save_moderation(&state)?;
        Ok(removed)
    }

    pub fn protections(&self) -> Vec<Protection> {
        self.state().moderation.protections.clone()
    }

    pub fn audit_push(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let mut state = self.state();
        state.moderation.audit.push_front(entry.clone());
        state.moderation.audit.truncate(AUDIT_LEN);
        self.save_moderation(&state)
    }

    pub fn audit(&self, limit: usize) -> Vec<AuditEntry> {
        let state = self.state();
        state.moderation.audit.iter().take(limit).cloned().collect()
    }
}
