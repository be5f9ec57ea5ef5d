//! Bans, protected rectangles and the audit log in Redis, for both Redis
//! stores: the single node ([`super::RedisStore`]) and the cluster
//! ([`super::ClusterStore`]) keep the same records under different key
//! names ([`ModerationKeys`]). None of this is on the placement path except
//! the ban key, which each store's placement script reads itself.

use protocol::http::{AuditEntry, BanInfo, Protection, Rect};
use redis::AsyncCommands;
use redis::aio::ConnectionLike;

use super::{AUDIT_LEN, MAX_PROTECTIONS, StoreError};

/// Where one store keeps its moderation records.
pub struct ModerationKeys {
    /// A user's ban key (a JSON [`BanInfo`], expiring with the ban).
    pub ban: fn(&str) -> String,
    /// Hash from username to the same JSON, for listing bans.
    pub bans: String,
    /// Hash from protection id to a JSON [`Protection`].
    pub protections: String,
    /// The id of the last protection made.
    pub protection_id: String,
    /// List of JSON [`AuditEntry`], newest first.
    pub audit: String,
    /// True when a user's ban key and the ban list share a slot (one node),
    /// so the two change in one `MULTI`. On a cluster they cannot: the ban
    /// key is written first, and it alone decides placements.
    pub one_slot: bool,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub async fn ban<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    keys: &ModerationKeys,
    ban: &BanInfo,
) -> Result<(), StoreError> {
    let json = encode(ban)?;
    let mut set = redis::cmd("SET");
    set.arg((keys.ban)(&ban.username)).arg(&json);
    if let Some(until) = ban.until {
        // The ban ends by itself: the key expires.
        set.arg("PXAT").arg(until.max(1));
    }
    let mut list = redis::cmd("HSET");
    list.arg(&keys.bans).arg(&ban.username).arg(&json);
    both(conn, keys, set, list).await.map(|_| ())
}

pub async fn unban<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    keys: &ModerationKeys,
    username: &str,
) -> Result<bool, StoreError> {
    let mut del = redis::cmd("DEL");
    del.arg((keys.ban)(username));
    let mut list = redis::cmd("HDEL");
    list.arg(&keys.bans).arg(username);
    let (removed, _) = both(conn, keys, del, list).await?;
    Ok(removed > 0)
}

/// Runs a command on a user's ban key, then one on the ban list: in one
/// `MULTI` when they share a slot, else one after the other (a cluster
/// refuses a pipeline across slots), the ban key first since it alone
/// decides placements. Their integer answers.
async fn both<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    keys: &ModerationKeys,
    on_ban: redis::Cmd,
    on_list: redis::Cmd,
) -> Result<(i64, i64), StoreError> {
    let (first, second): (redis::Value, i64) = if keys.one_slot {
        redis::pipe()
            .atomic()
            .add_command(on_ban)
            .add_command(on_list)
            .query_async(conn)
            .await
            .map_err(unavailable)?
    } else {
        let first = on_ban.query_async(conn).await.map_err(unavailable)?;
        (first, on_list.query_async(conn).await.map_err(unavailable)?)
    };
    // `SET` answers OK, `DEL` a count.
    let first = match first {
        redis::Value::Int(n) => n,
        _ => 0,
    };
    Ok((first, second))
}

/// Bans in force at `now` (ms); expired ones are dropped from the list.
pub async fn bans<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    keys: &ModerationKeys,
    now: u64,
) -> Result<Vec<BanInfo>, StoreError> {
    let all: Vec<String> = conn.hvals(&keys.bans).await.map_err(unavailable)?;
    let mut live = Vec::new();
    for json in all {
        let ban: BanInfo = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("ban {json:?}: {e}")))?;
        if ban.until.is_some_and(|u| u <= now) {
            let _: u64 = conn
                .hdel(&keys.bans, &ban.username)
                .await
                .map_err(unavailable)?;
        } else {
            live.push(ban);
        }
    }
    live.sort_by(|a, b| a.username.cmp(&b.username));
    Ok(live)
}

pub async fn protect<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    keys: &ModerationKeys,
    rect: Rect,
    by: &str,
    at: u64,
) -> Result<Option<Protection>, StoreError> {
    let count: usize = conn.hlen(&keys.protections).await.map_err(unavailable)?;
    if count >= MAX_PROTECTIONS {
        return Ok(None);
    }
    let id: u64 = conn
        .incr(&keys.protection_id, 1)
        .await
        .map_err(unavailable)?;
    let protection = Protection {
        id,
        rect,
        by: by.to_owned(),
        at,
    };
    let _: () = conn
        .hset(&keys.protections, id, encode(&protection)?)
        .await
        .map_err(unavailable)?;
    Ok(Some(protection))
}

pub async fn unprotect<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    keys: &ModerationKeys,
    id: u64,
) -> Result<bool, StoreError> {
    let removed: u64 = conn
        .hdel(&keys.protections, id)
        .await
        .map_err(unavailable)?;
    Ok(removed > 0)
}

/// Every protection, oldest first.
pub async fn protections<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    keys: &ModerationKeys,
) -> Result<Vec<Protection>, StoreError> {
    let all: Vec<String> = conn.hvals(&keys.protections).await.map_err(unavailable)?;
    let mut list = all
        .iter()
        .map(|j| {
            serde_json::from_str::<Protection>(j)
                .map_err(|e| StoreError::Corrupt(format!("protection {j:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    list.sort_by_key(|p| p.id);
    Ok(list)
}

pub async fn audit_push<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    keys: &ModerationKeys,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    // One key: the push and the trim may share a `MULTI` on any Redis, but
    // a cluster client routes a transaction only by its first key, so they
    // go as a plain pipeline there (a trim that misses leaves one entry
    // too many until the next push).
    let mut pipe = redis::pipe();
    if keys.one_slot {
        pipe.atomic();
    }
    let _: () = pipe
        .lpush(&keys.audit, encode(entry)?)
        .ignore()
        .ltrim(&keys.audit, 0, AUDIT_LEN as isize - 1)
        .ignore()
        .query_async(conn)
        .await
        .map_err(unavailable)?;
    Ok(())
}

pub async fn audit<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    keys: &ModerationKeys,
    limit: usize,
) -> Result<Vec<AuditEntry>, StoreError> {
    let all: Vec<String> = conn
        .lrange(&keys.audit, 0, limit.clamp(1, AUDIT_LEN) as isize - 1)
        .await
        .map_err(unavailable)?;
    all.iter()
        .map(|j| {
            serde_json::from_str(j)
                .map_err(|e| StoreError::Corrupt(format!("audit entry {j:?}: {e}")))
        })
        .collect()
}
