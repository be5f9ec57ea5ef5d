//! Moderation writes on a Redis Cluster: the single node's `rewrite.lua`,
//! run per chunk on the chunk's keys, so each write is compared with its
//! pixel's last `seq` (the chunk's, as the histories the plan was made from
//! say) and stored, logged and announced as a placement is.

use protocol::PixelUpdated;
use protocol::names::canvas::cluster as keys;
use protocol::names::{PIXEL_UPDATES_CHANNEL, chunk_channel};

use super::{ClusterStore, chunk_key};
use crate::store::chunk::offset_in_chunk;
use crate::store::redis::{REWRITE_BATCH, unavailable};
use crate::store::{Rewrite, StoreError, pixel_updated_prefix};

impl ClusterStore {
    /// Applies `writes` as writes by `username`, skipping a pixel whose last
    /// write is no longer the expected one. Returns the events written,
    /// chunk by chunk, each chunk's in its `seq` order.
    pub async fn rewrite(
        &self,
        writes: &[Rewrite],
        username: &str,
    ) -> Result<Vec<PixelUpdated>, StoreError> {
        let mut by_chunk = std::collections::BTreeMap::<_, Vec<&Rewrite>>::new();
        for w in writes {
            by_chunk
                .entry(self.geometry.chunk_of(w.x, w.y))
                .or_default()
                .push(w);
        }
        let mut events = Vec::new();
        let mut conn = self.conn.clone();
        for (id, chunk_writes) in by_chunk {
            for slice in chunk_writes.chunks(REWRITE_BATCH) {
                let mut call = self.scripts.rewrite.prepare_invoke();
                call.key(chunk_key(id, "seq"))
                    .key(chunk_key(id, "meta"))
                    .key(chunk_key(id, "log"))
                    .arg(self.log_len)
                    .arg(username)
                    .arg(self.history_len)
                    .arg(PIXEL_UPDATES_CHANNEL)
                    .arg(chunk_channel(id.cx, id.cy));
                for w in slice {
                    let offset = offset_in_chunk(w.x, w.y);
                    call.key(keys::pixel_history(
                        id.cx,
                        id.cy,
                        self.geometry.index(w.x, w.y),
                    ))
                    .key(chunk_key(id, "board"))
                    .arg(offset / 3)
                    .arg(w.x)
                    .arg(w.y)
                    .arg(w.color.to_string())
                    .arg(w.expected_seq)
                    .arg(pixel_updated_prefix(w.x, w.y, w.color, username))
                    .arg(offset);
                }
                let reply: Vec<u64> = call.invoke_async(&mut conn).await.map_err(unavailable)?;
                let [timestamp, failed, seqs @ ..] = reply.as_slice() else {
                    return Err(StoreError::Corrupt(
                        "rewrite script answered nothing".into(),
                    ));
                };
                if *failed > 0 {
                    self.announce_failures.add(*failed);
                    tracing::warn!(
                        failed,
                        cx = id.cx,
                        cy = id.cy,
                        "publishing moderation writes failed; receivers repair the gap from the chunk's log"
                    );
                }
                for (w, &seq) in slice.iter().zip(seqs) {
                    if seq > 0 {
                        events.push(PixelUpdated {
                            x: w.x,
                            y: w.y,
                            color: w.color,
                            username: username.to_owned(),
                            timestamp: *timestamp,
                            seq,
                        });
                    }
                }
            }
        }
        Ok(events)
    }
}
