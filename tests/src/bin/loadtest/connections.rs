//! `loadtest connections`: opens many idle connections as fast as allowed,
//! measures how quickly the gateway accepts them and what each one costs it
//! in memory, holds them, then closes them with a close handshake.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::Context;
use crate::client::{self, ConnectError, ReadBuffer};
use crate::gateway::{check_pid, rss_bytes, scrape};
use crate::ledger::lock;
use crate::limits;
use crate::report::{Progress, Report, round3};
use crate::stats::{micros, percentiles};
use crate::target::Endpoint;

/// How long the closing handshakes may take, all together.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(15);
/// When memory is read, after the last connection is up: long enough for
/// the gateway's allocator and presence bookkeeping to settle.
const SETTLE: Duration = Duration::from_secs(1);

/// Open N idle connections, measure the accept rate and the gateway's memory
/// per connection, hold them, and close them.
///
/// Every connection is a file descriptor here and in the gateway: both
/// processes need an open-file limit (`ulimit -n`) above --count. This tool
/// raises its own soft limit to the hard limit when it can (with prlimit(1)).
/// Beyond about 28000 connections to one gateway, give several --sources so
/// each brings its own ephemeral port range. Exits 1 when any connection
/// failed or was dropped while held.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionsArgs {
    /// Connections to open (usernames `lt-c-<i>`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub count: u32,

    /// At most this many new connections per second [default: no limit].
    #[arg(long = "rate-limit")]
    pub rate_limit: Option<f64>,

    /// Local addresses to connect from, round-robin (e.g.
    /// 127.0.0.1,127.0.0.2): each has an ephemeral port range of its own.
    #[arg(long, value_delimiter = ',')]
    pub sources: Vec<IpAddr>,

    /// Seconds to hold the connections once all are up.
    #[arg(long = "hold-secs", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub hold_secs: u64,

    /// The gateway's process id, to read its memory before and after the
    /// ramp (same machine).
    #[arg(long)]
    pub pid: Option<u32>,

    /// Handshakes in flight at once. Above the gateway's listen backlog,
    /// SYNs overflow its accept queue and those clients wait out a 1 s
    /// retransmit, which shows as a step in time_to_connected.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub concurrency: u32,

    /// Seconds one connection may take to reach `connected`.
    #[arg(long = "connect-timeout-secs", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub connect_timeout_secs: u64,
}

impl ConnectionsArgs {
    fn validate(&self) -> anyhow::Result<()> {
        if let Some(r) = self.rate_limit
            && !(r.is_finite() && r > 0.0)
        {
            anyhow::bail!("--rate-limit must be above 0 connections per second");
        }
        Ok(())
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// The latest the run may end: the ramp, the hold and the closing are
    /// each bounded, and so is their sum.
    fn deadline(&self) -> Duration {
        let rounds = self.count.div_ceil(self.concurrency);
        let paced = self.rate_limit.map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64(f64::from(self.count) / r)
        });
        self.connect_timeout() * rounds
            + paced
            + Duration::from_secs(self.hold_secs)
            + CLOSE_TIMEOUT
            + Duration::from_secs(30)
    }
}

/// The result of one connection attempt.
enum Attempt {
    Connected { took: Duration, at: Instant },
    Failed(ConnectError),
}

/// What the held connections report.
#[derive(Default)]
struct Held {
    /// Connections the gateway ended while held, by cause.
    dropped: Mutex<BTreeMap<String, u64>>,
    closed_cleanly: AtomicU64,
}

pub async fn run(args: &ConnectionsArgs, ctx: &Context) -> anyhow::Result<Report> {
    args.validate()?;
    let deadline = args.deadline();
    tokio::time::timeout(deadline, run_unbounded(args, ctx))
        .await
        .map_err(|_| anyhow::anyhow!("the run passed its hard deadline of {deadline:?}"))?
}

async fn run_unbounded(args: &ConnectionsArgs, ctx: &Context) -> anyhow::Result<Report> {
    warn_about_limits(args, ctx.targets.endpoints.len());
    if let Some(pid) = args.pid {
        check_pid(pid)?;
    }
    let rss_before = args.pid.and_then(|pid| rss_bytes(pid).ok());

    let (stop, _) = watch::channel(false);
    let held = Arc::new(Held::default());
    let (outcomes_tx, outcomes) = mpsc::unbounded_channel();
    let started = Instant::now();
    let spawner = tokio::spawn(spawn_all(
        args.clone(),
        ctx.targets.endpoints.clone(),
        outcomes_tx,
        stop.clone(),
        held.clone(),
    ));
    let ramp = collect(outcomes, args.count, started).await;
    if let Some(e) = ramp.fatal {
        // Stop first: the spawner checks it before each new attempt.
        let _ = stop.send(true);
        spawner.abort();
        return Err(e.into());
    }
    let mut tasks = spawner.await?;
    if let Some(&n) = ramp.failures_by_cause.get("too_many_open_files") {
        let (soft, _) = limits::open_files().unwrap_or_default();
        eprintln!(
            "error: {n} connections failed with \"Too many open files\": the open-file limit is {soft}; \
             raise it above --count with `ulimit -n`"
        );
    }

    tokio::time::sleep(SETTLE).await;
    let rss_after = args.pid.and_then(|pid| rss_bytes(pid).ok());
    let gateway_connections = scrape(
        &ctx.http,
        ctx.targets.api_url("/metrics"),
        "gateway_connections",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(args.hold_secs).saturating_sub(SETTLE)).await;

    let _ = stop.send(true);
    if tokio::time::timeout(CLOSE_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tasks.abort_all();
    }

    let mut report = Report::new("connections");
    report.add("count", args.count);
    report.add(
        "sources",
        args.sources
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
    );
    report.add("opened", ramp.opened);
    report.add("failed", ramp.failed);
    report.add("failures_by_cause", &ramp.failures_by_cause);
    report.add("open_secs", round3(ramp.open_time.as_secs_f64()));
    report.add(
        "accept_rate",
        round3(f64::from(ramp.opened) / ramp.open_time.as_secs_f64().max(1e-3)),
    );
    let mut took = ramp.took;
    report.add_latency("time_to_connected_ms", percentiles(&mut took));
    let dropped = lock(&held.dropped).clone();
    let dropped_total: u64 = dropped.values().sum();
    report.add("dropped_while_held", &dropped);
    report.add(
        "closed_cleanly",
        held.closed_cleanly.load(Ordering::Relaxed),
    );
    // The measured gateway may hold only its share of the connections
    // (several --url): divide its growth by what it reports holding.
    let held_by_gateway = match &gateway_connections {
        Ok(Some(v)) if *v >= 1.0 => *v as i64,
        _ => i64::from(ramp.opened),
    };
    match gateway_connections {
        Ok(v) => report.add("gateway_connections", v.map(|v| v as u64)),
        Err(e) => {
            report.add("gateway_connections", None::<u64>);
            report.note(format!("/metrics could not be read: {e:#}"));
        }
    }
    if args.pid.is_some() {
        report.add("gateway_rss_before_bytes", rss_before);
        report.add("gateway_rss_after_bytes", rss_after);
        let per_connection = match (rss_before, rss_after) {
            (Some(b), Some(a)) if held_by_gateway > 0 => {
                Some((a as i64 - b as i64) / held_by_gateway)
            }
            _ => None,
        };
        report.add("gateway_bytes_per_connection", per_connection);
    }
    for (cause, example) in &ramp.examples {
        report.note(format!("{cause}: {example}"));
    }
    report.failed = ramp.failed > 0 || dropped_total > 0;
    Ok(report)
}

/// Warns when this machine cannot hold `--count` client connections.
fn warn_about_limits(args: &ConnectionsArgs, endpoints: usize) {
    if let Some(warning) = limits::ensure_open_files(u64::from(args.count) + 100) {
        eprintln!("warning: {warning}");
    }
    // A socket bound to a source address takes a port of that address for
    // any destination; an unbound one takes a port per destination.
    let spread = if args.sources.is_empty() {
        endpoints
    } else {
        args.sources.len()
    };
    if let Some(ports) = limits::ephemeral_ports() {
        let per = u64::from(args.count).div_ceil(spread as u64);
        if per > ports {
            eprintln!(
                "warning: {per} connections per source address but only {ports} ephemeral ports; \
                 add --sources 127.0.0.2,127.0.0.3,... to spread them"
            );
        }
    }
}

/// Starts one task per connection, paced by `--rate-limit` and bounded by
/// `--concurrency` handshakes in flight. Returns the tasks, which hold their
/// connections until `stop`.
async fn spawn_all(
    args: ConnectionsArgs,
    endpoints: Vec<Endpoint>,
    outcomes: mpsc::UnboundedSender<Attempt>,
    stop: watch::Sender<bool>,
    held: Arc<Held>,
) -> JoinSet<()> {
    let permits = Arc::new(Semaphore::new(args.concurrency as usize));
    let started = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..args.count {
        if *stop.borrow() {
            break;
        }
        if let Some(rate) = args.rate_limit {
            // One schedule for all: attempt i starts at i / rate.
            tokio::time::sleep_until(started + Duration::from_secs_f64(f64::from(i) / rate)).await;
        }
        let permit = permits.clone().acquire_owned().await.expect("never closed");
        let conn = Connection {
            username: format!("lt-c-{i}"),
            endpoint: endpoints[i as usize % endpoints.len()].clone(),
            source: (!args.sources.is_empty())
                .then(|| args.sources[i as usize % args.sources.len()]),
            timeout: args.connect_timeout(),
            outcomes: outcomes.clone(),
            stop: stop.subscribe(),
            held: held.clone(),
        };
        tasks.spawn(conn.run(permit));
    }
    tasks
}

/// One held connection.
struct Connection {
    username: String,
    endpoint: Endpoint,
    source: Option<IpAddr>,
    timeout: Duration,
    outcomes: mpsc::UnboundedSender<Attempt>,
    stop: watch::Receiver<bool>,
    held: Arc<Held>,
}

impl Connection {
    async fn run(mut self, permit: OwnedSemaphorePermit) {
        let began = Instant::now();
        let result = client::connect(
            &self.endpoint,
            &self.username,
            self.source,
            ReadBuffer::Small,
            self.timeout,
        )
        .await;
        drop(permit);
        let mut ws = match result {
            Ok((ws, _)) => {
                let now = Instant::now();
                let _ = self.outcomes.send(Attempt::Connected {
                    took: now - began,
                    at: now,
                });
                ws
            }
            Err(e) => {
                let _ = self.outcomes.send(Attempt::Failed(e));
                return;
            }
        };
        // Keep reading while held: the gateway broadcasts presence to every
        // client, and one that never reads is eventually dropped as slow.
        loop {
            tokio::select! {
                _ = self.stop.wait_for(|stop| *stop) => break,
                frame = ws.next() => {
                    let cause = match frame {
                        Some(Ok(Message::Close(Some(f)))) => format!("closed_{}", u16::from(f.code)),
                        Some(Ok(Message::Close(None))) | None => "closed".to_owned(),
                        Some(Err(e)) => format!("error: {e}"),
                        Some(Ok(_)) => continue,
                    };
                    *lock(&self.held.dropped).entry(cause).or_default() += 1;
                    return;
                }
            }
        }
        // Our close, then read until the gateway's answering close ends the
        // stream.
        let clean = async {
            ws.close(None).await.ok()?;
            while let Some(Ok(_)) = ws.next().await {}
            Some(())
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, clean)
            .await
            .is_ok_and(|c| c.is_some())
        {
            self.held.closed_cleanly.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The ramp's figures.
#[derive(Default)]
struct Ramp {
    opened: u32,
    failed: u32,
    failures_by_cause: BTreeMap<String, u64>,
    /// One full message per cause, for the notes.
    examples: BTreeMap<String, String>,
    /// Time to `connected` of each connection, in microseconds.
    took: Vec<u32>,
    /// From the first attempt to the last connection up.
    open_time: Duration,
    /// A failure that makes the rest pointless: the gateway does not speak
    /// protocol v1, or nothing at all connected.
    fatal: Option<ConnectError>,
}

async fn collect(
    mut outcomes: mpsc::UnboundedReceiver<Attempt>,
    count: u32,
    started: Instant,
) -> Ramp {
    let mut ramp = Ramp {
        took: Vec::with_capacity(count as usize),
        ..Ramp::default()
    };
    let mut first_error = None;
    let mut progress = Progress::new();
    let mut last_shown = Instant::now();
    while ramp.opened + ramp.failed < count {
        let Some(attempt) = outcomes.recv().await else {
            break;
        };
        match attempt {
            Attempt::Connected { took, at } => {
                ramp.opened += 1;
                ramp.took.push(micros(took));
                ramp.open_time = ramp.open_time.max(at - started);
            }
            Attempt::Failed(e) => {
                ramp.failed += 1;
                let cause = e.cause();
                *ramp.failures_by_cause.entry(cause.clone()).or_default() += 1;
                ramp.examples.entry(cause).or_insert_with(|| e.to_string());
                if e.is_mismatch() {
                    ramp.fatal = Some(e);
                    break;
                }
                first_error.get_or_insert(e);
            }
        }
        if last_shown.elapsed() >= Duration::from_secs(1) {
            last_shown = Instant::now();
            progress.show(&format!(
                "connections {:>4}s  opened {}  failed {}  of {count}",
                started.elapsed().as_secs(),
                ramp.opened,
                ramp.failed
            ));
        }
    }
    progress.clear();
    if ramp.opened == 0 && ramp.fatal.is_none() {
        ramp.fatal = first_error;
    }
    ramp
}
