//! Redis Cluster, on a real 3-master cluster on loopback. canvas-api keeps
//! the board on one with `REDIS_CLUSTER_NODES`; the gateway does not follow
//! one yet (ARCHITECTURE.md, "Growing past one Redis") and says so, and a
//! `REDIS_URL` naming one node of a cluster stops both services at
//! start-up, instead of failing pixel by pixel with `MOVED`. The cluster
//! store ([`ClusterStore`]) is also tested directly: placements across
//! slots, a chunk's sharded channel, a master restarted mid-traffic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use canvas_api::store::chunk::{CHUNK_SIZE, ChunkId, offset_in_chunk};
use canvas_api::store::{ClusterStore, Geometry, PlaceOutcome, Rewrite, Updates, Write};
use futures_util::StreamExt;
use protocol::{Color, ErrorCode, ServerMessage, names};
use redis::IntoConnectionInfo;

use crate::harness::Process;
use crate::harness::http::{chunk_bin, client, get_json, pixel_in_chunk, put_pixel};
use crate::harness::redis_cluster::RedisCluster;

#[tokio::test]
async fn services_pointed_at_a_redis_cluster_node_refuse_to_start_and_say_why() {
    let cluster = RedisCluster::start(3).await;
    // It is a real cluster: a key of another node's slots is redirected.
    let client = redis::Client::open(cluster.url(0)).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut moved = 0;
    for i in 0..20 {
        let answer: redis::RedisResult<Option<String>> = redis::cmd("GET")
            .arg(format!("probe:{i}"))
            .query_async(&mut conn)
            .await;
        if answer.is_err_and(|e| e.to_string().to_lowercase().contains("moved")) {
            moved += 1;
        }
    }
    assert!(moved > 0, "no key of 20 lay on another node");

    for bin in ["canvas-api", "server"] {
        let (status, log) =
            Process::spawn_expecting_failure(bin, &[("REDIS_URL", cluster.url(1))]).await;
        assert!(
            !status.success(),
            "{bin} started against a cluster node:\n{log}"
        );
        assert!(
            log.contains("Redis Cluster is not supported yet"),
            "{bin} did not say why:\n{log}"
        );
    }
}

const BIG: Geometry = Geometry {
    width: 4096,
    height: 4096,
};

async fn cluster_store(cluster: &RedisCluster, geometry: Geometry) -> ClusterStore {
    let nodes = cluster
        .urls()
        .into_iter()
        .map(|u| u.into_connection_info().expect("a Redis URL"))
        .collect();
    ClusterStore::connect(nodes, geometry, 10_000, 16)
        .await
        .expect("connect to the cluster")
}

/// Write `n` of a sequence that never repeats a pixel: it goes round 64
/// chunks (8 × 8), a pixel further into each on every round.
fn nth_write(n: u32) -> Write {
    let (chunk, at) = (n % 64, n / 64);
    let (cx, cy) = (chunk % 8, chunk / 8);
    Write {
        x: cx * CHUNK_SIZE + at % CHUNK_SIZE,
        y: cy * CHUNK_SIZE + at / CHUNK_SIZE,
        color: Color([(n % 251) as u8, (n / 251 % 251) as u8, 7]),
        username: format!("u{}", n % 50),
        cooldown_ms: 0,
        pool: None,
        ip_pool: None,
    }
}

/// The RGB a chunk read shows at `(x, y)`.
async fn shown(store: &ClusterStore, x: u32, y: u32) -> [u8; 3] {
    let chunk = store.chunk(BIG.chunk_of(x, y)).await.expect("a chunk read");
    let i = offset_in_chunk(x, y);
    chunk
        .rgb
        .map_or([0xFF; 3], |rgb| [rgb[i], rgb[i + 1], rgb[i + 2]])
}

/// Which of the cluster's nodes holds `key`, asked of each node directly
/// (a node that does not serve its slot answers `MOVED`).
async fn holders(cluster: &RedisCluster, key: &str) -> Vec<usize> {
    let mut found = Vec::new();
    for i in 0..cluster.ports.len() {
        let client = redis::Client::open(cluster.url(i)).expect("url");
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let exists: redis::RedisResult<u8> =
            redis::cmd("EXISTS").arg(key).query_async(&mut conn).await;
        if exists == Ok(1) {
            found.push(i);
        }
    }
    found
}

/// Placements in one batch over 64 chunks: each chunk counts its own
/// `seq`, keeps its own log, and the chunks' keys lie on every master.
#[tokio::test]
async fn placements_across_slots_are_stored_with_a_seq_per_chunk_on_every_master() {
    let cluster = RedisCluster::start(3).await;
    let store = cluster_store(&cluster, BIG).await;
    let writes: Vec<Write> = (0..192).map(nth_write).collect();
    let outcomes = store.place_many(&writes).await.expect("placed");
    let mut by_chunk: BTreeMap<ChunkId, Vec<u64>> = BTreeMap::new();
    for (w, outcome) in writes.iter().zip(&outcomes) {
        let PlaceOutcome::Stored(event) = outcome else {
            panic!("{w:?} was not stored: {outcome:?}");
        };
        by_chunk
            .entry(BIG.chunk_of(w.x, w.y))
            .or_default()
            .push(event.seq);
    }
    // Three writes in each of 64 chunks, numbered 1, 2, 3 in batch order.
    assert_eq!(by_chunk.len(), 64);
    assert!(
        by_chunk.values().all(|seqs| seqs == &[1, 2, 3]),
        "{by_chunk:?}"
    );

    for w in &writes {
        assert_eq!(shown(&store, w.x, w.y).await, w.color.rgb(), "{w:?}");
        let record = store.pixel(w.x, w.y).await.unwrap().expect("placed");
        assert_eq!((record.color, &record.username), (w.color, &w.username));
    }
    let id = ChunkId { cx: 3, cy: 5 };
    let Updates::Page(page) = store.chunk_updates_since(id, 1, 100, None).await.unwrap() else {
        panic!("chunk (3, 5)'s log is gone");
    };
    let expected: Vec<(u32, u32, u64)> = writes
        .iter()
        .filter(|w| BIG.chunk_of(w.x, w.y) == id)
        .zip(1..)
        .skip(1)
        .map(|(w, seq)| (w.x, w.y, seq))
        .collect();
    assert_eq!(
        page.events
            .iter()
            .map(|e| (e.x, e.y, e.seq))
            .collect::<Vec<_>>(),
        expected
    );
    assert_eq!(page.latest_seq, 3);

    // The chunks' keys are spread over all three masters, one each.
    let mut masters = BTreeSet::new();
    for id in by_chunk.keys() {
        let on = holders(&cluster, &names::canvas::board_chunk(id.cx, id.cy)).await;
        assert_eq!(on.len(), 1, "chunk {id:?} is on {on:?}");
        masters.insert(on[0]);
    }
    assert_eq!(
        masters.len(),
        3,
        "64 chunks lay on masters {masters:?} only"
    );
}

/// A chunk's sharded channel carries that chunk's events and nothing
/// else, and the whole-board `pixel-updates` carries every chunk's.
#[tokio::test]
async fn a_chunk_channel_carries_only_its_chunks_events() {
    let cluster = RedisCluster::start(3).await;
    let store = cluster_store(&cluster, BIG).await;
    let watched = ChunkId { cx: 0, cy: 0 };
    let other = ChunkId { cx: 5, cy: 2 };
    let channel = names::chunk_channel(watched.cx, watched.cy);

    let (tx, mut pushed) = tokio::sync::mpsc::unbounded_channel();
    let mut follower = redis::cluster::ClusterClient::builder(cluster.urls())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(tx)
        .build()
        .expect("a cluster client")
        .get_async_connection()
        .await
        .expect("connect");
    follower.ssubscribe(&channel).await.expect("SSUBSCRIBE");
    let whole = redis::Client::open(cluster.url(2)).expect("url");
    let mut whole = whole.get_async_pubsub().await.expect("connect");
    whole
        .subscribe(names::PIXEL_UPDATES_CHANNEL)
        .await
        .expect("SUBSCRIBE");

    let at = |id: ChunkId, n: u32| Write {
        x: id.cx * CHUNK_SIZE + n,
        y: id.cy * CHUNK_SIZE,
        ..nth_write(n)
    };
    // The other chunk first, then the watched one, one batch each.
    let placed = [at(other, 1), at(watched, 2), at(other, 3), at(watched, 4)];
    for w in &placed {
        let outcome = store.place_many(std::slice::from_ref(w)).await;
        assert!(
            matches!(outcome.as_deref(), Ok([PlaceOutcome::Stored(_)])),
            "{outcome:?}"
        );
    }

    // The follower hears exactly the watched chunk's two, in order.
    let mut heard = Vec::new();
    while heard.len() < 2 {
        let push = tokio::time::timeout(Duration::from_secs(10), pushed.recv())
            .await
            .expect("the watched chunk's events arrive")
            .expect("the push channel stays open");
        if push.kind != redis::PushKind::SMessage {
            continue;
        }
        let [from, payload] = push.data.as_slice() else {
            panic!("an smessage of {:?}", push.data);
        };
        let from: String = redis::from_redis_value(from.clone()).unwrap();
        assert_eq!(from, channel);
        let payload: String = redis::from_redis_value(payload.clone()).unwrap();
        heard.push(pixel_of(&payload));
    }
    assert_eq!(heard, [(2, 0, 1), (4, 0, 2)]);
    // Only the watched chunk's shard was asked: summed over every node,
    // its channel has the one follower and the other chunk's none.
    for (id, followers) in [(watched, 1), (other, 0)] {
        assert_eq!(
            shard_followers(&cluster, &names::chunk_channel(id.cx, id.cy)).await,
            followers,
            "chunk {id:?}"
        );
    }

    // The whole-board channel carries all four, each chunk in its order.
    let mut stream = whole.on_message();
    let mut all = Vec::new();
    while all.len() < 4 {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("every event reaches pixel-updates")
            .expect("the subscription stays open");
        all.push(pixel_of(&message.get_payload::<String>().unwrap()));
    }
    all.sort();
    assert_eq!(all, [(2, 0, 1), (4, 0, 2), (1281, 512, 1), (1283, 512, 2)]);
}

/// Followers of a sharded channel, summed over the nodes (each counts its
/// own clients).
async fn shard_followers(cluster: &RedisCluster, channel: &str) -> u64 {
    let mut total = 0;
    for i in 0..cluster.ports.len() {
        let client = redis::Client::open(cluster.url(i)).expect("url");
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let (_, n): (String, u64) = redis::cmd("PUBSUB")
            .arg("SHARDNUMSUB")
            .arg(channel)
            .query_async(&mut conn)
            .await
            .expect("PUBSUB SHARDNUMSUB");
        total += n;
    }
    total
}

/// `(x, y, seq)` of a `pixel_updated` JSON.
fn pixel_of(json: &str) -> (u32, u32, u64) {
    match serde_json::from_str::<ServerMessage>(json).expect("a server message") {
        ServerMessage::PixelUpdated(e) => (e.x, e.y, e.seq),
        other => panic!("not a pixel event: {other:?}"),
    }
}

/// A master killed and restarted while placements go on: placements whose
/// chunk it holds fail (none is acknowledged) while it is down, and every
/// placement acknowledged before, during or after is on the board and in
/// its chunk's log afterwards.
#[tokio::test]
async fn a_master_restarted_mid_traffic_loses_nothing_acknowledged() {
    let mut cluster = RedisCluster::start(3).await;
    let store = cluster_store(&cluster, BIG).await;
    let (status_tx, mut status) = tokio::sync::mpsc::unbounded_channel();
    let (resume_tx, resume) = tokio::sync::watch::channel(false);

    // Batches of 16, until 150 acknowledged batches came after the restart
    // (or 4000 batches, or 60 s: the load stops by itself).
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let mut acked = Vec::new();
            let (mut failed, mut after_restart) = (0, 0);
            for batch in 0..4000u32 {
                if tokio::time::Instant::now() > deadline || after_restart >= 150 {
                    break;
                }
                let writes: Vec<Write> = (batch * 16..batch * 16 + 16).map(nth_write).collect();
                match store.place_many(&writes).await {
                    Ok(outcomes) => {
                        for (w, o) in writes.into_iter().zip(outcomes) {
                            let PlaceOutcome::Stored(event) = o else {
                                panic!("{w:?}: {o:?}");
                            };
                            acked.push((w, event.seq));
                        }
                        if *resume.borrow() {
                            after_restart += 1;
                        }
                        let _ = status_tx.send(Ok(acked.len()));
                    }
                    Err(e) => {
                        failed += 1;
                        let _ = status_tx.send(Err(e.to_string()));
                    }
                }
            }
            (acked, failed, after_restart)
        })
    };

    // 100 batches in, kill a master; once a batch has failed, restart it.
    while let Some(s) = status.recv().await {
        if s.is_ok_and(|n| n >= 1600) {
            break;
        }
    }
    cluster.kill(1).await;
    while let Some(s) = status.recv().await {
        if s.is_err() {
            break;
        }
    }
    cluster.restart(1).await;
    resume_tx.send(true).unwrap();
    let (acked, failed, after_restart) = writer.await.expect("the writer");
    assert!(failed > 0, "no placement failed while a master was down");
    assert_eq!(
        after_restart, 150,
        "placements did not resume after the restart"
    );

    // Every acknowledged pixel is on the board with its seq in its chunk's
    // log; each pixel was written once, so nothing else could show there.
    let mut logged: BTreeMap<ChunkId, BTreeSet<u64>> = BTreeMap::new();
    for id in acked.iter().map(|(w, _)| BIG.chunk_of(w.x, w.y)) {
        if logged.contains_key(&id) {
            continue;
        }
        let Updates::Page(page) = store
            .chunk_updates_since(id, 0, 100_000, None)
            .await
            .unwrap()
        else {
            panic!("chunk {id:?}'s log is gone");
        };
        logged.insert(id, page.events.iter().map(|e| e.seq).collect());
    }
    for (w, seq) in &acked {
        let record = store.pixel(w.x, w.y).await.unwrap();
        assert_eq!(
            record.map(|r| (r.color, r.seq)),
            Some((w.color, *seq)),
            "acknowledged {w:?} (seq {seq}) is not on the board"
        );
        assert!(
            logged[&BIG.chunk_of(w.x, w.y)].contains(seq),
            "acknowledged {w:?} (seq {seq}) is not in its chunk's log"
        );
    }
    for (w, _) in acked.iter().step_by(97) {
        assert_eq!(shown(&store, w.x, w.y).await, w.color.rgb(), "{w:?}");
    }
}

/// A moderation rewrite on a cluster compares with the pixel's last `seq`
/// in its chunk: a stale plan changes nothing, a current one is written as
/// the chunk's next `seq`, into the board, the history and the log.
#[tokio::test]
async fn a_moderation_rewrite_is_a_compare_and_set_on_the_chunks_seq() {
    let cluster = RedisCluster::start(3).await;
    let store = cluster_store(&cluster, BIG).await;
    let first = nth_write(70); // chunk (6, 0)
    let second = Write {
        color: Color([1, 2, 3]),
        username: "second".into(),
        ..first.clone()
    };
    let elsewhere = nth_write(71);
    for w in [&first, &second, &elsewhere] {
        store.place_many(std::slice::from_ref(w)).await.unwrap();
    }
    let rewrite = |expected_seq, color: &str| Rewrite {
        x: first.x,
        y: first.y,
        color: color.parse().unwrap(),
        expected_seq,
    };
    // Planned when `first` (seq 1) was the last write: `second` stays.
    let stale = store
        .rewrite(&[rewrite(1, "#AAAAAA")], "~mod")
        .await
        .unwrap();
    assert!(stale.is_empty(), "{stale:?}");
    assert_eq!(shown(&store, first.x, first.y).await, [1, 2, 3]);

    let undone = store
        .rewrite(&[rewrite(2, "#ABCDEF")], "~mod")
        .await
        .unwrap();
    assert_eq!(
        undone.iter().map(|e| (e.x, e.y, e.seq)).collect::<Vec<_>>(),
        [(first.x, first.y, 3)]
    );
    assert_eq!(shown(&store, first.x, first.y).await, [0xAB, 0xCD, 0xEF]);
    let history = store.history(first.x, first.y).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|r| (r.username.as_str(), r.seq))
            .collect::<Vec<_>>(),
        [("~mod", 3), ("second", 2), (first.username.as_str(), 1)]
    );
    let Updates::Page(page) = store
        .chunk_updates_since(BIG.chunk_of(first.x, first.y), 2, 10, None)
        .await
        .unwrap()
    else {
        panic!("the chunk's log is gone");
    };
    assert_eq!(page.events, undone);
    // The other chunk's seq did not move.
    assert_eq!(
        store
            .chunk(BIG.chunk_of(elsewhere.x, elsewhere.y))
            .await
            .unwrap()
            .seq,
        1
    );
}

/// canvas-api on a Redis Cluster (`REDIS_CLUSTER_NODES`): placements over
/// HTTP land on the chunks' masters, a chunk comes with its own `seq`, its
/// replay log is asked per chunk, and what a cluster does not do yet is
/// refused with `not_on_cluster`, not a 500. The gateway refuses the
/// option with the reason.
#[tokio::test]
async fn canvas_api_serves_a_board_kept_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3).await;
    let nodes = cluster.urls().join(",");
    let api = Process::spawn(
        "canvas-api",
        &[
            ("REDIS_CLUSTER_NODES", nodes.clone()),
            ("CANVAS_WIDTH", "4096".into()),
            ("CANVAS_HEIGHT", "4096".into()),
            ("COOLDOWN_MS", "0".into()),
            ("PALETTE", "any".into()),
        ],
    )
    .await;
    let base = api.http();
    let config: protocol::http::CanvasConfig = get_json(&format!("{base}/api/config")).await;
    assert_eq!((config.whole_board, config.seq), (false, 0));

    // Two pixels in chunk (1, 0), one in chunk (9, 9).
    for (x, y, color) in [
        (300, 5, "#102030"),
        (301, 5, "#405060"),
        (9 * 256 + 1, 9 * 256 + 2, "#708090"),
    ] {
        let r = put_pixel(&base, x, y, color, "painter").await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let (rgb, seq, _) = chunk_bin(&base, 1, 0).await;
    assert_eq!(seq, 2);
    assert_eq!(pixel_in_chunk(&rgb, 301, 5), [0x40, 0x50, 0x60]);
    let (rgb, seq, _) = chunk_bin(&base, 9, 9).await;
    assert_eq!(seq, 1);
    assert_eq!(
        pixel_in_chunk(&rgb, 9 * 256 + 1, 9 * 256 + 2),
        [0x70, 0x80, 0x90]
    );

    let page: protocol::http::UpdatesPage =
        get_json(&format!("{base}/api/updates?since=1&chunk=1,0")).await;
    assert_eq!(page.latest_seq, 2);
    assert!(
        matches!(page.events.as_slice(), [ServerMessage::PixelUpdated(e)] if (e.x, e.y, e.seq) == (301, 5, 2)),
        "{page:?}"
    );
    for (path, status, code) in [
        ("/api/updates?since=0", 501, ErrorCode::NotOnCluster),
        ("/api/canvas.bin", 501, ErrorCode::NotOnCluster),
        ("/api/updates?since=0&chunk=16,0", 404, ErrorCode::NotFound),
        ("/api/updates?since=0&chunk=1", 400, ErrorCode::BadRequest),
    ] {
        let r = client().get(format!("{base}{path}")).send().await.unwrap();
        let got = r.status().as_u16();
        let body: protocol::http::ErrorBody = r.json().await.expect("an error body");
        assert_eq!((got, body.error.code), (status, code), "{path}: {body:?}");
    }

    let (status, log) =
        Process::spawn_expecting_failure("server", &[("REDIS_CLUSTER_NODES", nodes)]).await;
    assert!(
        !status.success(),
        "the gateway started on a cluster:\n{log}"
    );
    assert!(
        log.contains("only canvas-api"),
        "the gateway did not say why:\n{log}"
    );
}
