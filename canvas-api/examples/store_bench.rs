//! Placements straight into a Redis store, for BENCHMARKS.md: the same
//! batches (what a gateway sends as one `POST /api/pixels`) into one node
//! (`--redis-url`) or a Redis Cluster (`--cluster-nodes`), with what each
//! Redis node did for them (commands, CPU) read from its own `INFO`.
//!
//!   cargo run --release -p canvas-api --example store_bench -- \
//!     --cluster-nodes redis://127.0.0.1:7000,redis://127.0.0.1:7001 --seconds 10
//!
//! `scripts/bench_store.sh` starts both kinds of Redis on loopback and runs
//! this against each. The load is bounded by `--placements` and
//! `--seconds`, and stops by itself.

use std::time::{Duration, Instant};

use canvas_api::store::{ClusterStore, Geometry, PlaceOutcome, RedisStore, Write};
use clap::Parser;
use redis::IntoConnectionInfo;

#[derive(Parser)]
struct Args {
    /// One Redis node.
    #[arg(
        long,
        conflicts_with = "cluster_nodes",
        required_unless_present = "cluster_nodes"
    )]
    redis_url: Option<String>,
    /// The nodes of a Redis Cluster, comma-separated URLs (every master:
    /// each one's `INFO` is read).
    #[arg(long)]
    cluster_nodes: Option<String>,
    /// Side of the square board; placements fall uniformly over it.
    #[arg(long, default_value_t = 4096)]
    side: u32,
    /// Placements per store call (a gateway's batch).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Store calls in flight at once (gateways × their batchers).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Stop after this many placements...
    #[arg(long, default_value_t = 1_000_000)]
    placements: u64,
    /// ...or this many seconds, whichever comes first.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// A small deterministic generator: the same run places the same pixels.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[derive(Clone)]
enum Store {
    Node(RedisStore),
    Cluster(ClusterStore),
}

impl Store {
    async fn place_many(&self, writes: &[Write]) -> Vec<PlaceOutcome> {
        match self {
            Store::Node(s) => s.place_many(writes).await,
            Store::Cluster(s) => s.place_many(writes).await,
        }
        .expect("the store answers")
    }
}

/// Commands served and CPU seconds used, per node, from `INFO`.
async fn node_counts(urls: &[String]) -> Vec<(u64, f64)> {
    let mut out = Vec::new();
    for url in urls {
        let mut conn = redis::Client::open(url.as_str())
            .expect("a Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to a node");
        let info: String = redis::cmd("INFO")
            .arg("all")
            .query_async(&mut conn)
            .await
            .expect("INFO");
        let mut calls = 0;
        let mut cpu = 0.0;
        for line in info.lines() {
            if let Some(rest) = line.strip_prefix("cmdstat_") {
                // `cmdstat_set:calls=3,usec=…`; INFO itself is not the load.
                let (name, stats) = rest.split_once(':').unwrap_or_default();
                if name == "info" {
                    continue;
                }
                calls += stats
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("calls="))
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            } else if let Some(v) = line
                .strip_prefix("used_cpu_sys:")
                .or_else(|| line.strip_prefix("used_cpu_user:"))
            {
                cpu += v.trim().parse::<f64>().unwrap_or(0.0);
            }
        }
        out.push((calls, cpu));
    }
    out
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let geometry = Geometry {
        width: args.side,
        height: args.side,
    };
    let (store, urls, kind) = match (&args.redis_url, &args.cluster_nodes) {
        (Some(url), _) => {
            let info = url.as_str().into_connection_info().expect("a Redis URL");
            let store = RedisStore::connect(info, geometry, 100_000, 16)
                .await
                .expect("connect to Redis");
            (Store::Node(store), vec![url.clone()], "node")
        }
        (None, Some(nodes)) => {
            let urls: Vec<String> = nodes.split(',').map(str::to_owned).collect();
            let infos = urls
                .iter()
                .map(|u| u.as_str().into_connection_info().expect("a Redis URL"))
                .collect();
            let store = ClusterStore::connect(infos, geometry, 100_000, 16)
                .await
                .expect("connect to the cluster");
            (Store::Cluster(store), urls, "cluster")
        }
        (None, None) => unreachable!("clap requires one"),
    };

    let before = node_counts(&urls).await;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let per_worker = args.placements / args.concurrency as u64;
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let store = store.clone();
        let (side, batch) = (args.side, args.batch);
        workers.push(tokio::spawn(async move {
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1));
            let mut latencies = Vec::new();
            let mut stored = 0u64;
            let mut n = 0u64;
            while stored < per_worker && Instant::now() < deadline {
                let writes: Vec<Write> = (0..batch)
                    .map(|_| {
                        let r = rng.next();
                        n += 1;
                        Write {
                            x: (r % u64::from(side)) as u32,
                            y: ((r >> 32) % u64::from(side)) as u32,
                            color: protocol::Color([r as u8, (r >> 8) as u8, (r >> 16) as u8]),
                            username: format!("w{w}u{}", n % 1000),
                            cooldown_ms: 0,
                            pool: None,
                            ip_pool: None,
                        }
                    })
                    .collect();
                let t = Instant::now();
                let outcomes = store.place_many(&writes).await;
                latencies.push(t.elapsed());
                stored += outcomes
                    .iter()
                    .filter(|o| matches!(o, PlaceOutcome::Stored(_)))
                    .count() as u64;
            }
            (stored, latencies)
        }));
    }
    let mut stored = 0;
    let mut latencies = Vec::new();
    for w in workers {
        let (s, l) = w.await.expect("a worker");
        stored += s;
        latencies.extend(l);
    }
    let secs = started.elapsed().as_secs_f64();
    let after = node_counts(&urls).await;
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let per_node: Vec<String> = before
        .iter()
        .zip(&after)
        .map(|((c0, cpu0), (c1, cpu1))| {
            format!(
                "{{\"commands_per_placement\":{:.2},\"cpu_share\":{:.2}}}",
                (c1 - c0) as f64 / stored.max(1) as f64,
                (cpu1 - cpu0) / secs
            )
        })
        .collect();
    println!(
        "{{\"store\":\"{kind}\",\"batch\":{},\"concurrency\":{},\"placements\":{stored},\
         \"seconds\":{secs:.2},\"placements_per_sec\":{:.0},\"call_p50_ms\":{:.2},\
         \"call_p99_ms\":{:.2},\"nodes\":[{}]}}",
        args.batch,
        args.concurrency,
        stored as f64 / secs,
        at(0.5),
        at(0.99),
        per_node.join(",")
    );
}
