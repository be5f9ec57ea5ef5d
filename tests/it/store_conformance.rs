//! The stores keep the same rules: the same cases — cooldown, the user's
//! pool, the IP's pool (IPv6 by /64), bans, protections, pixel history and
//! the replay log — run against the embedded store, against Redis (a real
//! `redis-server`) and against a real 3-master Redis Cluster, through
//! `CanvasStore`, and must give the same outcomes, which are also checked
//! against what the rules say. The board is one chunk, so the cluster's
//! per-chunk `seq` counts like the others' canvas-wide one.

use std::net::IpAddr;

use canvas_api::store::chunk::ChunkId;
use canvas_api::store::{
    CanvasStore, ClusterStore, EmbeddedStore, Gcra, Geometry, PlaceOutcome, RedisStore, Updates,
    Write,
};
use protocol::Color;
use protocol::http::{BanInfo, Rect};
use redis::IntoConnectionInfo;

use crate::harness::RedisServer;
use crate::harness::redis_cluster::RedisCluster;

const GEOMETRY: Geometry = Geometry {
    width: 100,
    height: 100,
};

fn write(x: u32, y: u32, user: &str) -> Write {
    Write {
        x,
        y,
        color: "#FF4500".parse::<Color>().expect("a color"),
        username: user.to_owned(),
        cooldown_ms: 0,
        pool: None,
        ip_pool: None,
    }
}

/// What one outcome was, without the times that differ from run to run.
fn kind(outcome: &PlaceOutcome) -> String {
    match outcome {
        PlaceOutcome::Stored(e) => format!("stored seq {}", e.seq),
        PlaceOutcome::Cooldown { retry_after_ms } => {
            assert!(
                *retry_after_ms > 0 && *retry_after_ms <= 60_000,
                "{outcome:?}"
            );
            "cooldown".into()
        }
        PlaceOutcome::PoolEmpty { retry_after_ms } => {
            assert!(
                *retry_after_ms > 0 && *retry_after_ms <= 60_000,
                "{outcome:?}"
            );
            "pool empty".into()
        }
        PlaceOutcome::IpLimited { retry_after_ms } => {
            assert!(
                *retry_after_ms > 0 && *retry_after_ms <= 60_000,
                "{outcome:?}"
            );
            "ip limited".into()
        }
        PlaceOutcome::Banned => "banned".into(),
        PlaceOutcome::Protected => "protected".into(),
    }
}

/// Runs every case on `store`; the transcript of what happened.
async fn cases(store: &CanvasStore) -> Vec<String> {
    let mut log = Vec::new();
    let mut place = async |w: Write, what: &str| {
        let outcome = store.place(&w).await.expect("the store answers");
        log.push(format!("{what}: {}", kind(&outcome)));
    };

    // Cooldown: per user, and a refusal changes nothing.
    let cooling = Write {
        cooldown_ms: 60_000,
        ..write(1, 1, "cooling")
    };
    place(cooling.clone(), "first placement").await;
    place(cooling.clone(), "again within the cooldown").await;
    place(write(2, 1, "other"), "another user meanwhile").await;

    // The user's pool: two pixels, then empty.
    let pooled = Write {
        pool: Some(Gcra {
            size: 2,
            refill_ms: 60_000,
        }),
        ..write(3, 1, "pooled")
    };
    for n in 1..=3 {
        place(pooled.clone(), &format!("pool pixel {n}")).await;
    }

    // The IP's pool counts an IPv6 client by its /64.
    let from = |ip: &str| Write {
        ip_pool: Some((
            ip.parse::<IpAddr>().expect("an address"),
            Gcra {
                size: 1,
                refill_ms: 60_000,
            },
        )),
        ..write(4, 1, &format!("ip-{}", ip.len()))
    };
    place(from("2001:db8:1:2::1"), "first address of a /64").await;
    place(from("2001:db8:1:2::ffff"), "another address of that /64").await;
    place(from("2001:db8:9:9::1"), "another /64").await;

    // Bans refuse, and lifting one lets the user place again.
    store
        .ban(&BanInfo {
            username: "mallory".into(),
            reason: None,
            until: None,
            by: "mod".into(),
            at: plumbing::clock::now_ms(),
        })
        .await
        .expect("ban");
    place(write(5, 1, "mallory"), "banned user").await;
    assert!(store.unban("mallory").await.expect("unban"));
    place(write(5, 1, "mallory"), "after the ban is lifted").await;

    // Protected rectangles, corners included.
    let protection = store
        .protect(
            Rect {
                x0: 10,
                y0: 10,
                x1: 20,
                y1: 20,
            },
            "mod",
            plumbing::clock::now_ms(),
        )
        .await
        .expect("protect")
        .expect("room for a protection");
    place(write(20, 20, "painter"), "a protected corner").await;
    place(write(21, 20, "painter"), "just outside").await;
    assert!(store.unprotect(protection.id).await.expect("unprotect"));
    place(write(20, 20, "painter"), "after unprotecting").await;

    // History: newest first, every placement of the pixel.
    for user in ["h1", "h2", "h3"] {
        place(write(50, 50, user), &format!("history by {user}")).await;
    }
    let history = store.history(50, 50).await.expect("history");
    log.push(format!(
        "history of (50, 50): {:?}",
        history
            .iter()
            .map(|r| (r.username.as_str(), r.seq))
            .collect::<Vec<_>>()
    ));

    // The replay log holds every stored write, in seq order (on a cluster,
    // the one chunk's log).
    let updates = match store {
        CanvasStore::Cluster(c) => {
            c.chunk_updates_since(ChunkId { cx: 0, cy: 0 }, 0, 100, None)
                .await
        }
        _ => store.updates_since(0, 100, None).await,
    };
    match updates.expect("updates") {
        Updates::Page(page) => log.push(format!(
            "replay log: seqs {:?}, latest {}",
            page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            page.latest_seq
        )),
        Updates::Gone { latest_seq } => log.push(format!("replay log gone at {latest_seq}")),
    }

    // A batch: each write decided on its own, in order, seeing the writes
    // before it (the user's second pixel meets the first one's cooldown).
    let batcher = |x| Write {
        cooldown_ms: 60_000,
        ..write(x, 60, "batcher")
    };
    let outcomes = store
        .place_many(&[batcher(60), batcher(61), write(62, 60, "after")])
        .await
        .expect("the store answers");
    log.push(format!(
        "batch: {}",
        outcomes.iter().map(kind).collect::<Vec<_>>().join(", ")
    ));

    // A write its IP refuses changes nothing for its user: no cooldown
    // (on a cluster, given back), no entry in the user's pixels.
    let shared_ip = |x, user: &str, ip: &str| Write {
        cooldown_ms: 60_000,
        ip_pool: Some((
            ip.parse::<IpAddr>().expect("an address"),
            Gcra {
                size: 1,
                refill_ms: 60_000,
            },
        )),
        ..write(x, 70, user)
    };
    for (w, what) in [
        (shared_ip(70, "first", "198.51.100.7"), "first from an IP"),
        (
            shared_ip(71, "second", "198.51.100.7"),
            "second from that IP",
        ),
        (
            shared_ip(72, "second", "198.51.100.8"),
            "second from another IP",
        ),
    ] {
        let outcome = store.place(&w).await.expect("the store answers");
        log.push(format!("{what}: {}", kind(&outcome)));
    }
    let placed = store
        .user_pixels_since("second", 0)
        .await
        .expect("user pixels");
    log.push(format!("second's pixels: {placed:?}"));
    log
}

#[tokio::test]
async fn the_embedded_store_and_redis_keep_the_same_rules() {
    let dir = crate::harness::temp_dir("conformance");
    let embedded = CanvasStore::Embedded(
        EmbeddedStore::open_with_history(&dir, GEOMETRY, 1000, 16)
            .expect("open the embedded store"),
    );
    let redis_server = RedisServer::start().await;
    let info = redis_server
        .url()
        .into_connection_info()
        .expect("a Redis URL");
    let redis = CanvasStore::Redis(
        RedisStore::connect(info, GEOMETRY, 1000, 16)
            .await
            .expect("connect to Redis"),
    );

    let embedded_log = cases(&embedded).await;
    let redis_log = cases(&redis).await;
    assert_eq!(
        embedded_log, redis_log,
        "the stores disagree (left: embedded, right: Redis)"
    );

    // And both say what the rules say.
    assert_eq!(embedded_log, EXPECTED);
}

/// A Redis Cluster keeps the same rules though a placement's checks and
/// its write run on different slots (the user's, the IP's, the chunk's).
#[tokio::test]
async fn a_redis_cluster_keeps_the_same_rules() {
    let cluster = RedisCluster::start(3).await;
    let nodes = cluster
        .urls()
        .into_iter()
        .map(|u| u.into_connection_info().expect("a Redis URL"))
        .collect();
    let store = CanvasStore::Cluster(
        ClusterStore::connect(nodes, GEOMETRY, 1000, 16)
            .await
            .expect("connect to the cluster"),
    );
    assert_eq!(cases(&store).await, EXPECTED);
}

/// What the rules say `cases` gives.
const EXPECTED: [&str; 24] = [
    "first placement: stored seq 1",
    "again within the cooldown: cooldown",
    "another user meanwhile: stored seq 2",
    "pool pixel 1: stored seq 3",
    "pool pixel 2: stored seq 4",
    "pool pixel 3: pool empty",
    "first address of a /64: stored seq 5",
    "another address of that /64: ip limited",
    "another /64: stored seq 6",
    "banned user: banned",
    "after the ban is lifted: stored seq 7",
    "a protected corner: protected",
    "just outside: stored seq 8",
    "after unprotecting: stored seq 9",
    "history by h1: stored seq 10",
    "history by h2: stored seq 11",
    "history by h3: stored seq 12",
    "history of (50, 50): [(\"h3\", 12), (\"h2\", 11), (\"h1\", 10)]",
    "replay log: seqs [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], latest 12",
    "batch: stored seq 13, cooldown, stored seq 14",
    "first from an IP: stored seq 15",
    "second from that IP: ip limited",
    "second from another IP: stored seq 16",
    "second's pixels: [(72, 70)]",
];

/// Both stores' chunk reads agree on a 65,536² board (the embedded store's
/// chunks in memory, Redis's one key per chunk): after placements at the
/// far corners and a chunk's edges, a moderation rewrite, and a clear.
#[tokio::test]
async fn the_embedded_store_and_redis_read_the_same_chunks_of_a_65536_square_board() {
    const BIG: Geometry = Geometry {
        width: 65_536,
        height: 65_536,
    };
    let dir = crate::harness::temp_dir("conformance-big");
    let embedded = CanvasStore::Embedded(
        EmbeddedStore::open_with_history(&dir, BIG, 1000, 16).expect("open the embedded store"),
    );
    let redis_server = RedisServer::start().await;
    let info = redis_server
        .url()
        .into_connection_info()
        .expect("a Redis URL");
    let redis = CanvasStore::Redis(
        RedisStore::connect(info, BIG, 1000, 16)
            .await
            .expect("connect to Redis"),
    );
    let chunks = [(0, 0), (1, 0), (0, 1), (255, 255), (255, 0), (7, 9)]
        .map(|(cx, cy)| canvas_api::store::chunk::ChunkId { cx, cy });
    let read_all = async |store: &CanvasStore| {
        let mut out = Vec::new();
        for id in chunks {
            let c = store.chunk(id).await.expect("a chunk read");
            let rgb = c
                .rgb
                .map(|b| b.to_vec())
                .unwrap_or_else(|| vec![0xFF; canvas_api::store::chunk::CHUNK_BYTES]);
            out.push((id, c.seq, rgb));
        }
        out
    };
    for store in [&embedded, &redis] {
        let writes: Vec<Write> = [
            (0, 0),
            (255, 255),
            (256, 0),
            (0, 256),
            (65_535, 65_535),
            (65_535, 0),
            (7 * 256 + 3, 9 * 256 + 200),
        ]
        .into_iter()
        .map(|(x, y)| write(x, y, "far"))
        .collect();
        for outcome in store.place_many(&writes).await.expect("placed") {
            assert!(matches!(outcome, PlaceOutcome::Stored(_)), "{outcome:?}");
        }
        let rewritten = store
            .rewrite(
                &[canvas_api::store::Rewrite {
                    x: 65_535,
                    y: 65_535,
                    color: "#123456".parse().expect("a color"),
                    expected_seq: 5,
                }],
                "~moderation",
            )
            .await
            .expect("rewritten");
        assert_eq!(rewritten.len(), 1);
    }
    let before_clear = read_all(&embedded).await;
    assert!(
        before_clear == read_all(&redis).await,
        "the stores' chunks differ"
    );
    let corner = &before_clear[3];
    let i = canvas_api::store::chunk::offset_in_chunk(65_535, 65_535);
    assert_eq!(
        (corner.1, &corner.2[i..i + 3]),
        (8, &[0x12, 0x34, 0x56][..])
    );

    for store in [&embedded, &redis] {
        assert_eq!(store.clear().await.expect("cleared").0, 9);
    }
    let after_clear = read_all(&embedded).await;
    assert!(
        after_clear == read_all(&redis).await,
        "the stores' chunks differ after a clear"
    );
    assert!(
        after_clear
            .iter()
            .all(|(_, seq, rgb)| *seq == 9 && rgb.iter().all(|&b| b == 0xFF)),
        "a cleared board is white"
    );
}
