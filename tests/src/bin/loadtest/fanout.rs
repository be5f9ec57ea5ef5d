//! `loadtest fanout`: a few writers place pixels at a fixed total rate while
//! many observers only listen. Measures how each acknowledged pixel reaches
//! each observer (lost, duplicated, out of order, end-to-end latency) and
//! checks the board against what was acknowledged.

use std::time::Duration;

use crate::Context;
use crate::fleet::{ClientSpec, Role};
use crate::report::{Progress, Report, ms};
use crate::stats::percentiles;
use crate::summary::summarize;
use crate::traffic::{self, ColorMode, Tick, TrafficOptions};

/// Place pixels from W writers and measure their delivery to O observers.
///
/// Assumes the server runs with COOLDOWN_MS=0 (cooldown errors are counted
/// as rejected). Exits 1 when an acknowledged pixel was lost or delivered
/// twice, or the board disagrees with what was acknowledged.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// Connections that place pixels (usernames `lt-w-<i>`).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub writers: u32,

    /// Connections that only receive (usernames `lt-o-<i>`).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub observers: u32,

    /// Placements per second, over all writers together.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,

    /// Seconds of sending.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,

    /// Seconds to wait after the last send for acks and deliveries; a
    /// delivery later than this after its ack counts as lost.
    #[arg(long = "drain-secs", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub drain_secs: u64,

    /// Which colors to place.
    #[arg(long, value_enum, default_value_t = ColorMode::Auto)]
    pub colors: ColorMode,
}

impl FanoutArgs {
    pub fn options(&self) -> anyhow::Result<TrafficOptions> {
        let writers = (0..self.writers).map(|i| ClientSpec {
            username: format!("lt-w-{i}"),
            role: Role {
                writes: true,
                observes: false,
            },
        });
        let observers = (0..self.observers).map(|i| ClientSpec {
            username: format!("lt-o-{i}"),
            role: Role {
                writes: false,
                observes: true,
            },
        });
        let opts = TrafficOptions {
            clients: writers.chain(observers).collect(),
            rate: self.rate,
            duration: Duration::from_secs(self.duration),
            drain: Duration::from_secs(self.drain_secs),
            colors: self.colors,
            exact_latency: true,
        };
        opts.validate()?;
        Ok(opts)
    }
}

pub async fn run(args: &FanoutArgs, ctx: &Context) -> anyhow::Result<Report> {
    let opts = args.options()?;
    let mut progress = Progress::new();
    let outcome = traffic::run(&ctx.targets, &ctx.http, &opts, |tick| {
        progress.show(&progress_line(tick));
    })
    .await;
    progress.clear();
    let mut outcome = outcome?;
    let mut report = Report::new("fanout");
    report.add("rate_target", args.rate);
    summarize(&mut report, &mut outcome);
    Ok(report)
}

fn progress_line(tick: Tick<'_>) -> String {
    let c = tick.counts;
    let p99 = percentiles(&mut tick.accounting.take_interval())
        .map(|p| format!("{:.1} ms", ms(p.p99)))
        .unwrap_or_else(|| "-".into());
    format!(
        "fanout {} {:>3}s  sent {}  acked {}  rejected {}  pending {}  delivered {}  lost {}  p99(1s) {p99}",
        if tick.sending { "sending" } else { "draining" },
        tick.elapsed.as_secs(),
        c.sent,
        c.acked,
        c.rejected,
        c.pending(),
        tick.accounting.histogram.count(),
        tick.accounting.lost,
    )
}
