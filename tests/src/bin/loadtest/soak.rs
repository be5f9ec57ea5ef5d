//! `loadtest soak`: steady mixed load for a bounded time, every client both
//! placing and observing, with a line of figures every few seconds so a leak
//! or a slow drift shows while it happens, and the fanout verdict at the end.

use std::io::Write;
use std::time::Duration;

use serde::Serialize;

use crate::Context;
use crate::fleet::{ClientSpec, Role};
use crate::gateway::{check_pid, rss_bytes};
use crate::report::{Progress, Report, ms, round3};
use crate::stats::percentiles;
use crate::summary::summarize;
use crate::traffic::{self, ColorMode, Tick, TrafficOptions};

/// Steady load from clients that each place and observe, reported every few
/// seconds.
///
/// Interval lines go to stdout (to stderr with --json, whose object also
/// lists them). "lost" counts deliveries still missing --drain-secs after
/// their ack. Exits 1 on any loss, duplicate or board mismatch.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// Connections, each placing and observing (usernames `lt-s-<i>`).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub clients: u32,

    /// Placements per second, over all clients together.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,

    /// Seconds of load.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,

    /// Seconds between two lines of figures.
    #[arg(long = "report-every", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub report_every: u64,

    /// Seconds a delivery may trail its ack before it counts as lost, and
    /// the longest wait at the end.
    #[arg(long = "drain-secs", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub drain_secs: u64,

    /// The gateway's process id, to report its resident memory (same machine).
    #[arg(long)]
    pub pid: Option<u32>,

    /// Which colors to place.
    #[arg(long, value_enum, default_value_t = ColorMode::Auto)]
    pub colors: ColorMode,
}

/// One line of figures.
#[derive(Debug, Clone, Serialize)]
struct Interval {
    elapsed_secs: u64,
    acked_per_sec: f64,
    deliveries_per_sec: f64,
    p99_ms: Option<f64>,
    lost: u64,
    rss_bytes: Option<u64>,
}

impl Interval {
    const HEADER: &str = "elapsed_s   acked/s   deliv/s    p99_ms      lost    rss_mb";

    fn line(&self) -> String {
        let p99 = self.p99_ms.map_or("-".into(), |p| format!("{p:.2}"));
        let rss = self
            .rss_bytes
            .map_or("-".into(), |b| format!("{:.1}", b as f64 / 1_048_576.0));
        format!(
            "{:>9} {:>9.1} {:>9.1} {:>9} {:>9} {:>9}",
            self.elapsed_secs, self.acked_per_sec, self.deliveries_per_sec, p99, self.lost, rss
        )
    }
}

/// What the interval lines are computed from: the figures at the last line.
struct Ticker {
    /// Ticks (seconds) between two lines; counted, not compared with the
    /// clock, so a tick that fires a hair early does not skip a line.
    every: u64,
    ticks: u64,
    last_line_tick: u64,
    pid: Option<u32>,
    json: bool,
    last_at: Duration,
    last_acked: u64,
    last_deliveries: u64,
    lines: Vec<Interval>,
    rss_max: u64,
    progress: Progress,
}

impl Ticker {
    fn tick(&mut self, tick: Tick<'_>) {
        let acc = tick.accounting;
        self.progress.show(&format!(
            "soak {} {:>4}s  acked {}  delivered {}  lost {}",
            if tick.sending { "running" } else { "draining" },
            tick.elapsed.as_secs(),
            tick.counts.acked,
            acc.histogram.count(),
            acc.lost
        ));
        if !tick.sending {
            return;
        }
        self.ticks += 1;
        if self.ticks < self.last_line_tick + self.every {
            return;
        }
        self.last_line_tick = self.ticks;
        let secs = (tick.elapsed - self.last_at).as_secs_f64().max(1e-3);
        let deliveries = acc.histogram.count();
        let rss = self.pid.and_then(|pid| rss_bytes(pid).ok());
        self.rss_max = self.rss_max.max(rss.unwrap_or(0));
        let line = Interval {
            elapsed_secs: self.ticks,
            acked_per_sec: round3((tick.counts.acked - self.last_acked) as f64 / secs),
            deliveries_per_sec: round3((deliveries - self.last_deliveries) as f64 / secs),
            p99_ms: percentiles(&mut acc.take_interval()).map(|p| ms(p.p99)),
            lost: acc.lost,
            rss_bytes: rss,
        };
        self.last_at = tick.elapsed;
        self.last_acked = tick.counts.acked;
        self.last_deliveries = deliveries;
        self.progress.clear();
        self.print(&line.line());
        self.lines.push(line);
    }

    fn print(&self, text: &str) {
        if self.json {
            eprintln!("{text}");
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
        }
    }
}

pub async fn run(args: &SoakArgs, ctx: &Context) -> anyhow::Result<Report> {
    let opts = TrafficOptions {
        clients: (0..args.clients)
            .map(|i| ClientSpec {
                username: format!("lt-s-{i}"),
                role: Role {
                    writes: true,
                    observes: true,
                },
            })
            .collect(),
        rate: args.rate,
        duration: Duration::from_secs(args.duration),
        drain: Duration::from_secs(args.drain_secs),
        colors: args.colors,
        // A long soak cannot keep every sample; the histogram is within 2 %.
        exact_latency: false,
    };
    opts.validate()?;
    if let Some(pid) = args.pid {
        check_pid(pid)?;
    }
    let rss_start = args.pid.and_then(|pid| rss_bytes(pid).ok());
    let mut ticker = Ticker {
        every: args.report_every,
        ticks: 0,
        last_line_tick: 0,
        pid: args.pid,
        json: ctx.json,
        last_at: Duration::ZERO,
        last_acked: 0,
        last_deliveries: 0,
        lines: Vec::new(),
        rss_max: rss_start.unwrap_or(0),
        progress: Progress::new(),
    };
    ticker.print(Interval::HEADER);
    let outcome = traffic::run(&ctx.targets, &ctx.http, &opts, |tick| ticker.tick(tick)).await;
    ticker.progress.clear();
    let mut outcome = outcome?;
    let rss_end = args.pid.and_then(|pid| rss_bytes(pid).ok());

    let mut report = Report::new("soak");
    report.add("rate_target", args.rate);
    summarize(&mut report, &mut outcome);
    if args.pid.is_some() {
        report.add("gateway_rss_start_bytes", rss_start);
        report.add("gateway_rss_end_bytes", rss_end);
        report.add(
            "gateway_rss_max_bytes",
            ticker.rss_max.max(rss_end.unwrap_or(0)),
        );
    }
    report.add_json_only("intervals", &ticker.lines);
    Ok(report)
}
