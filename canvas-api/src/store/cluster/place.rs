//! Placements on a Redis Cluster. A write's rules live on its user's and
//! its IP's slots and its pixel on its chunk's, so a batch goes in steps,
//! each step one script call per user, IP or chunk, all of a step at once:
//!
//! 1. the board's protections are read (one small hash);
//! 2. each user's writes, in order: ban, protection, cooldown, pool; a
//!    write that passes takes its cooldown and pool share and enters the
//!    user's index of placed pixels (`reserve.lua`);
//! 3. each IP's writes that passed: its pool (`ip_pool.lua`); a write it
//!    refuses gives its user's share back (`refund.lua`);
//! 4. each chunk's writes that passed, in order: `seq`, log, bytes,
//!    metadata, history, announcement (`write.lua`), which cannot refuse.
//!
//! Step 4 is where a pixel becomes stored; nothing is acknowledged before
//! it. A chunk whose master does not answer fails the batch (after giving
//! its writes' shares back): the caller tells every writer "unavailable",
//! though other chunks' writes of the batch may be stored, as a write whose
//! answer is lost on one node may be. A crash between the steps costs a
//! user one cooldown, never a pixel stored unacknowledged.
//!
//! Unlike one node's single script, the steps are not one atomic call: a
//! protection made while a batch is between steps 1 and 4 does not stop
//! it (as if the batch had come first), and a user's second write in a
//! batch that meets the first's cooldown stays refused even when the
//! first is then refused by its IP.

use std::collections::HashMap;
use std::hash::Hash;

use protocol::PixelUpdated;
use protocol::names::canvas::cluster as keys;
use protocol::names::{PIXEL_UPDATES_CHANNEL, chunk_channel};

use super::{ClusterStore, chunk_key};
use crate::store::chunk::{ChunkId, offset_in_chunk};
use crate::store::redis::{new_epoch, unavailable};
use crate::store::{
    PlaceOutcome, StoreError, USER_PIXELS_LEN, Write, ip_key, pixel_updated_prefix,
};

/// Groups `indexes` by `key`, each group in the order given, the groups in
/// the order of their first member.
fn group_by<K: Eq + Hash + Clone>(
    indexes: impl Iterator<Item = usize>,
    key: impl Fn(usize) -> K,
) -> Vec<(K, Vec<usize>)> {
    let mut position: HashMap<K, usize> = HashMap::new();
    let mut groups: Vec<(K, Vec<usize>)> = Vec::new();
    for i in indexes {
        let k = key(i);
        match position.get(&k) {
            Some(&at) => groups[at].1.push(i),
            None => {
                position.insert(k.clone(), groups.len());
                groups.push((k, vec![i]));
            }
        }
    }
    groups
}

/// A refusal from `reserve.lua` or `ip_pool.lua`, `None` for "passed".
fn refusal(reply: &[i64]) -> Result<Option<PlaceOutcome>, StoreError> {
    let ms = |ms: i64| ms.max(1) as u64;
    Ok(match reply {
        [1] | [1, _] => None,
        [0, ttl] => Some(PlaceOutcome::Cooldown {
            retry_after_ms: ms(*ttl),
        }),
        [2, wait] => Some(PlaceOutcome::PoolEmpty {
            retry_after_ms: ms(*wait),
        }),
        [3, wait] => Some(PlaceOutcome::IpLimited {
            retry_after_ms: ms(*wait),
        }),
        [4] => Some(PlaceOutcome::Banned),
        [5] => Some(PlaceOutcome::Protected),
        other => {
            return Err(StoreError::Corrupt(format!(
                "a placement script answered {other:?}"
            )));
        }
    })
}

impl ClusterStore {
    /// Stores each write on its own, in order per user, IP and chunk (see
    /// the module's steps): one outcome per write.
    pub async fn place_many(&self, writes: &[Write]) -> Result<Vec<PlaceOutcome>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let protections = self.protections().await?;
        let token = new_epoch();
        let mut outcomes: Vec<Option<PlaceOutcome>> = vec![None; writes.len()];
        // Each reserved write's pixel's previous score in its user's index
        // (-1: none), what a refund puts back.
        let mut indexed = vec![-1; writes.len()];

        let users = group_by(0..writes.len(), |i| writes[i].username.as_str());
        let replies = futures_util::future::try_join_all(users.iter().map(|(user, members)| {
            let mut call = self.scripts.reserve.prepare_invoke();
            call.key(keys::user(user, "ban"))
                .key(keys::user(user, "cooldown"))
                .key(keys::user(user, "pool"))
                .key(keys::user(user, "pixels"))
                .arg(&token)
                .arg(USER_PIXELS_LEN);
            for &i in members {
                let w = &writes[i];
                let protected = protections.iter().any(|p| p.rect.contains(w.x, w.y));
                let (size, refill) = w.pool.map_or((0, 0), |p| (p.size, p.refill_ms));
                call.arg(if protected { "1" } else { "0" })
                    .arg(w.cooldown_ms)
                    .arg(size)
                    .arg(refill)
                    .arg(self.geometry.index(w.x, w.y));
            }
            let mut conn = self.conn.clone();
            async move { call.invoke_async::<Vec<Vec<i64>>>(&mut conn).await }
        }))
        .await
        .map_err(unavailable)?;
        for ((_, members), replies) in users.iter().zip(replies) {
            if replies.len() != members.len() {
                return Err(StoreError::Corrupt(format!(
                    "reserve script answered {} replies for {} writes",
                    replies.len(),
                    members.len()
                )));
            }
            for (&i, reply) in members.iter().zip(replies) {
                outcomes[i] = refusal(&reply)?;
                if let [1, previous] = reply[..] {
                    indexed[i] = previous;
                }
            }
        }

        let limited = self.ip_step(writes, &mut outcomes).await?;
        if !limited.is_empty() {
            self.refund(writes, &limited, &indexed, &token).await;
        }

        let chunks = group_by((0..writes.len()).filter(|&i| outcomes[i].is_none()), |i| {
            self.geometry.chunk_of(writes[i].x, writes[i].y)
        });
        let results = futures_util::future::join_all(
            chunks
                .iter()
                .map(|(id, members)| self.write_chunk(*id, members, writes)),
        )
        .await;
        let mut failure = None;
        for ((_, members), result) in chunks.iter().zip(results) {
            match result {
                Ok(events) => {
                    for (&i, event) in members.iter().zip(events) {
                        outcomes[i] = Some(PlaceOutcome::Stored(event));
                    }
                }
                Err(e) => {
                    self.refund(writes, members, &indexed, &token).await;
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| StoreError::Corrupt("a write got no outcome".into())))
            .collect()
    }

    /// Step 3: each IP's pool for the writes that passed their user's
    /// rules. Returns the writes it refused.
    async fn ip_step(
        &self,
        writes: &[Write],
        outcomes: &mut [Option<PlaceOutcome>],
    ) -> Result<Vec<usize>, StoreError> {
        let ips = group_by(
            (0..writes.len()).filter(|&i| outcomes[i].is_none() && writes[i].ip_pool.is_some()),
            |i| {
                writes[i]
                    .ip_pool
                    .map(|(ip, _)| ip_key(ip))
                    .unwrap_or_default()
            },
        );
        let replies = futures_util::future::try_join_all(ips.iter().map(|(ip, members)| {
            let mut call = self.scripts.ip_pool.prepare_invoke();
            call.key(keys::ip_pool(ip));
            for &i in members {
                if let Some((_, pool)) = writes[i].ip_pool {
                    call.arg(pool.size).arg(pool.refill_ms);
                }
            }
            let mut conn = self.conn.clone();
            async move { call.invoke_async::<Vec<Vec<i64>>>(&mut conn).await }
        }))
        .await
        .map_err(unavailable)?;
        let mut limited = Vec::new();
        for ((_, members), replies) in ips.iter().zip(replies) {
            for (&i, reply) in members.iter().zip(replies) {
                if let Some(refused) = refusal(&reply)? {
                    outcomes[i] = Some(refused);
                    limited.push(i);
                }
            }
        }
        Ok(limited)
    }

    /// Gives back what step 2 took for `members` (writes that will not be
    /// stored), `indexed` being each write's previous score in its user's
    /// index. Best effort: a refund that fails costs its user a cooldown
    /// (and leaves an index entry "undo" finds nothing behind), and is
    /// logged.
    async fn refund(&self, writes: &[Write], members: &[usize], indexed: &[i64], token: &str) {
        let users = group_by(members.iter().copied(), |i| writes[i].username.as_str());
        let results = futures_util::future::join_all(users.iter().map(|(user, members)| {
            let mut call = self.scripts.refund.prepare_invoke();
            call.key(keys::user(user, "cooldown"))
                .key(keys::user(user, "pool"))
                .key(keys::user(user, "pixels"))
                .arg(token);
            // Last first: two writes of one pixel put back the older score.
            for &i in members.iter().rev() {
                let w = &writes[i];
                call.arg(w.pool.map_or(0, |p| p.refill_ms))
                    .arg(self.geometry.index(w.x, w.y))
                    .arg(indexed[i]);
            }
            let mut conn = self.conn.clone();
            async move { call.invoke_async::<i64>(&mut conn).await }
        }))
        .await;
        for ((user, _), result) in users.iter().zip(results) {
            if let Err(e) = result {
                tracing::warn!(user, error = %e, "giving back a refused write's cooldown failed");
            }
        }
    }

    /// Step 4: one chunk's writes, stored and announced.
    async fn write_chunk(
        &self,
        id: ChunkId,
        members: &[usize],
        writes: &[Write],
    ) -> Result<Vec<PixelUpdated>, StoreError> {
        let mut call = self.scripts.write.prepare_invoke();
        call.key(chunk_key(id, "board"))
            .key(chunk_key(id, "seq"))
            .key(chunk_key(id, "log"))
            .key(chunk_key(id, "meta"))
            .key(chunk_key(id, "epoch"))
            .arg(self.log_len)
            .arg(self.history_len)
            .arg(PIXEL_UPDATES_CHANNEL)
            .arg(chunk_channel(id.cx, id.cy))
            .arg(new_epoch());
        for &i in members {
            let w = &writes[i];
            let [r, g, b] = w.color.rgb();
            call.key(keys::pixel_history(
                id.cx,
                id.cy,
                self.geometry.index(w.x, w.y),
            ))
            .arg(offset_in_chunk(w.x, w.y))
            .arg(&[255 - r, 255 - g, 255 - b][..])
            .arg(w.x)
            .arg(w.y)
            .arg(w.color.to_string())
            .arg(&w.username)
            .arg(pixel_updated_prefix(w.x, w.y, w.color, &w.username));
        }
        let replies: Vec<(u64, u64, u8)> = call
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        if replies.len() != members.len() {
            return Err(StoreError::Corrupt(format!(
                "write script answered {} replies for {} writes",
                replies.len(),
                members.len()
            )));
        }
        Ok(members
            .iter()
            .zip(replies)
            .map(|(&i, (seq, timestamp, announced))| {
                if announced == 0 {
                    self.announce_failures.inc();
                    tracing::warn!(
                        seq,
                        cx = id.cx,
                        cy = id.cy,
                        "publishing a stored pixel failed; receivers repair the gap from the chunk's log"
                    );
                }
                let w = &writes[i];
                PixelUpdated {
                    x: w.x,
                    y: w.y,
                    color: w.color,
                    username: w.username.clone(),
                    timestamp,
                    seq,
                }
            })
            .collect())
    }
}
