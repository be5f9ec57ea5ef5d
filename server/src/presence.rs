//! Who is online.
//!
//! [`LocalUsers`] counts this gateway's connections by username. The
//! presence task publishes them as `pod:<POD_ID>:users` (TTL, refreshed three
//! times per TTL, deleted on shutdown), announces changes on `user-events`,
//! and aggregates every pod's record into the `stats` and `user_list` frames.
//! Pods are found through the `pods` set, never `KEYS`; pods whose key expired
//! (a killed gateway) are dropped from it. Work is coalesced: at most about
//! one write, one announcement and one aggregation per interval however many
//! users join, so N joins cost O(N), not O(N²).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use protocol::ServerMessage;
use protocol::names::{PODS_SET, USER_EVENTS_CHANNEL, pod_users_key};
use protocol::presence::{PodUsers, UserEvent};
use redis::aio::ConnectionManager;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::hub::{Hub, PresenceFrames};
use plumbing::clock::now_ms;

/// The most usernames in one pod's record and in a `user_list` frame. Every
/// connection's write buffer keeps the capacity of the largest frame it was
/// sent, so this bounds idle memory per connection too (100 names: ~1.3 KB).
pub const MAX_LISTED_USERS: usize = 100;
/// The least time between two presence pushes of one pod.
pub const MIN_PUSH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct LocalUsers {
    inner: Mutex<Counts>,
    /// Woken (one stored permit) whenever the counts change.
    pub changed: Notify,
}

#[derive(Default)]
struct Counts {
    by_name: HashMap<String, u32>,
    connections: u64,
}

impl LocalUsers {
    pub fn join(&self, name: &str) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *c.by_name.entry(name.to_owned()).or_default() += 1;
        c.connections += 1;
        drop(c);
        self.changed.notify_one();
    }

    pub fn leave(&self, name: &str) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = c.by_name.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                c.by_name.remove(name);
            }
            c.connections = c.connections.saturating_sub(1);
        }
        drop(c);
        self.changed.notify_one();
    }

    pub fn rename(&self, old: &str, new: &str) {
        self.leave(old);
        self.join(new);
    }

    /// This pod's record.
    pub fn record(&self) -> PodUsers {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut usernames: Vec<String> = if c.by_name.len() <= MAX_LISTED_USERS {
            c.by_name.keys().cloned().collect()
        } else {
            // Sorting only the names kept keeps a huge pod cheap.
            let mut names: Vec<&String> = c.by_name.keys().collect();
            names.select_nth_unstable(MAX_LISTED_USERS - 1);
            names.truncate(MAX_LISTED_USERS);
            names.into_iter().cloned().collect()
        };
        usernames.sort_unstable();
        PodUsers {
            count: c.connections,
            distinct: c.by_name.len() as u64,
            usernames,
            timestamp: now_ms(),
        }
    }
}

/// Where presence is kept.
pub enum PresenceStore {
    /// Only this process: the single-process default.
    Local,
    Redis {
        conn: ConnectionManager,
        pod_id: String,
        ttl: Duration,
    },
}

pub struct PresenceTask {
    pub store: PresenceStore,
    pub users: Arc<LocalUsers>,
    /// Woken on every `user-events` message.
    pub remote_changed: Arc<Notify>,
    pub hub: Arc<Hub>,
}

impl PresenceTask {
    pub async fn run(self, cancel: CancellationToken) {
        let ttl = match &self.store {
            PresenceStore::Redis { ttl, .. } => *ttl,
            PresenceStore::Local => Duration::from_secs(60),
        };
        let refresh = ttl / 3;
        let min_interval = MIN_PUSH_INTERVAL.min(ttl / 4);
        let mut last_write = Instant::now() - refresh;
        let mut last_frames: Option<(u64, Vec<String>, u64)> = None;
        let mut local_dirty = true;
        loop {
            // Coalesce: act at most once per interval.
            let started = Instant::now();
            if local_dirty || last_write.elapsed() >= refresh {
                if let Err(e) = self.write_own(ttl, local_dirty).await {
                    tracing::warn!(error = %e, "cannot write this pod's presence");
                }
                last_write = Instant::now();
            }
            match self.aggregate().await {
                Ok((active, users, total)) => {
                    let current = (active, users, total);
                    if last_frames.as_ref() != Some(&current) {
                        self.hub.set_presence(frames(&current));
                        last_frames = Some(current);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot aggregate presence"),
            }
            tokio::select! {
                () = tokio::time::sleep_until((started + min_interval).into()) => {}
                () = cancel.cancelled() => break,
            }
            local_dirty = false;
            let wait_until = last_write + refresh;
            tokio::select! {
                () = self.users.changed.notified() => local_dirty = true,
                () = self.remote_changed.notified() => {}
                () = tokio::time::sleep_until(wait_until.into()) => {}
                () = cancel.cancelled() => break,
            }
        }
        if let Err(e) = self.remove_own().await {
            tracing::warn!(error = %e, "cannot remove this pod's presence on shutdown");
        }
    }

    async fn write_own(&self, ttl: Duration, announce: bool) -> redis::RedisResult<()> {
        let PresenceStore::Redis { conn, pod_id, .. } = &self.store else {
            return Ok(());
        };
        let record = serde_json::to_string(&self.users.record()).expect("encodes");
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(pod_users_key(pod_id))
            .arg(record)
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .ignore()
            .cmd("SADD")
            .arg(PODS_SET)
            .arg(pod_id)
            .ignore();
        if announce {
            pipe.cmd("PUBLISH")
                .arg(USER_EVENTS_CHANNEL)
                .arg(user_update(pod_id))
                .ignore();
        }
        pipe.query_async::<()>(&mut conn.clone()).await
    }

    async fn remove_own(&self) -> redis::RedisResult<()> {
        let PresenceStore::Redis { conn, pod_id, .. } = &self.store else {
            return Ok(());
        };
        redis::pipe()
            .cmd("DEL")
            .arg(pod_users_key(pod_id))
            .ignore()
            .cmd("SREM")
            .arg(PODS_SET)
            .arg(pod_id)
            .ignore()
            .cmd("PUBLISH")
            .arg(USER_EVENTS_CHANNEL)
            .arg(user_update(pod_id))
            .ignore()
            .query_async::<()>(&mut conn.clone())
            .await
    }

    /// (connections, listed usernames, total usernames) over every pod.
    async fn aggregate(&self) -> redis::RedisResult<(u64, Vec<String>, u64)> {
        let records = match &self.store {
            PresenceStore::Local => vec![self.users.record()],
            PresenceStore::Redis { conn, .. } => {
                let mut conn = conn.clone();
                let pods: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(PODS_SET)
                    .query_async(&mut conn)
                    .await?;
                if pods.is_empty() {
                    Vec::new()
                } else {
                    let keys: Vec<String> = pods.iter().map(|p| pod_users_key(p)).collect();
                    let values: Vec<Option<String>> =
                        redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
                    let mut records = Vec::with_capacity(pods.len());
                    let mut gone = Vec::new();
                    for (pod, value) in pods.iter().zip(values) {
                        match value.and_then(|v| serde_json::from_str::<PodUsers>(&v).ok()) {
                            Some(r) => records.push(r),
                            None => gone.push(pod.clone()),
                        }
                    }
                    if !gone.is_empty() {
                        // Their keys expired: those gateways died without
                        // saying goodbye.
                        let _: i64 = redis::cmd("SREM")
                            .arg(PODS_SET)
                            .arg(&gone)
                            .query_async(&mut conn)
                            .await?;
                    }
                    records
                }
            }
        };
        Ok(merge(&records))
    }
}

/// Sums connections and unions usernames. `total` is exact while no pod
/// cut its list, and an upper bound after.
pub fn merge(records: &[PodUsers]) -> (u64, Vec<String>, u64) {
    let active = records.iter().map(|r| r.count).sum();
    let mut names = BTreeSet::new();
    let mut truncated = false;
    for r in records {
        names.extend(r.usernames.iter().cloned());
        truncated |= r.distinct > r.usernames.len() as u64;
    }
    let total = if truncated {
        records
            .iter()
            .map(|r| r.distinct.max(r.usernames.len() as u64))
            .sum()
    } else {
        names.len() as u64
    };
    (
        active,
        names.into_iter().take(MAX_LISTED_USERS).collect(),
        total,
    )
}

fn frames((active, users, total): &(u64, Vec<String>, u64)) -> PresenceFrames {
    let timestamp = now_ms();
    let stats = ServerMessage::Stats {
        active_users: *active,
        timestamp,
    };
    let list = ServerMessage::UserList {
        users: users.clone(),
        total: *total,
        timestamp,
    };
    PresenceFrames {
        stats: Utf8Bytes::from(serde_json::to_string(&stats).expect("encodes")),
        user_list: Utf8Bytes::from(serde_json::to_string(&list).expect("encodes")),
    }
}

fn user_update(pod_id: &str) -> String {
    serde_json::to_string(&UserEvent::UserUpdate {
        pod_id: pod_id.to_owned(),
    })
    .expect("encodes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_connections_and_distinct_names() {
        let users = LocalUsers::default();
        users.join("a");
        users.join("a");
        users.join("b");
        let r = users.record();
        assert_eq!((r.count, r.distinct), (3, 2));
        assert_eq!(r.usernames, vec!["a", "b"]);
        users.leave("a");
        users.rename("b", "c");
        let r = users.record();
        assert_eq!(r.count, 2);
        assert_eq!(r.usernames, vec!["a", "c"]);
    }

    #[test]
    fn a_large_pod_lists_a_bounded_number_of_names() {
        let users = LocalUsers::default();
        for i in 0..1000 {
            users.join(&format!("u{i:04}"));
        }
        let r = users.record();
        assert_eq!(r.usernames.len(), MAX_LISTED_USERS);
        assert_eq!(r.distinct, 1000);
        assert!(r.usernames.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn merge_sums_and_unions() {
        let a = PodUsers {
            count: 2,
            usernames: vec!["x".into(), "y".into()],
            distinct: 2,
            timestamp: 0,
        };
        let b = PodUsers {
            count: 1,
            usernames: vec!["y".into()],
            distinct: 1,
            timestamp: 0,
        };
        assert_eq!(merge(&[a, b]), (3, vec!["x".into(), "y".into()], 2));
    }
}
