//! Placement traffic over a fleet of connections, the engine under `fanout`
//! and `soak`: writers place pixels at a fixed total rate, observers record
//! every event, and the run ends with a bounded drain, a clean close and the
//! board check. The connections themselves are [`crate::fleet`]'s.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::MissedTickBehavior;

use crate::accounting::Accounting;
use crate::board::{self, BoardCheck, ForeignWrite, OurWrite};
use crate::client::Hello;
use crate::fleet::{
    CLOSE_GRACE, CONNECT_CONCURRENCY, CONNECT_TIMEOUT, ClientSpec, Command, Fleet, connect_all,
    observer_totals,
};
use crate::ledger::{Colors, Counts, Ledger, MAX_PLACEMENTS, Plan};
use crate::target::Targets;

/// Time for the board download and check, and scheduling slack.
const BOARD_AND_SLACK: Duration = Duration::from_secs(45);
/// How often the drain checks whether everything arrived.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// `--colors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorMode {
    /// Any 24-bit color when the server allows it, else its palette.
    Auto,
    /// Random 24-bit colors (the server must have `anyColor`).
    Any,
    /// Colors from the server's palette.
    Palette,
}

#[derive(Debug, Clone)]
pub struct TrafficOptions {
    pub clients: Vec<ClientSpec>,
    /// Placements per second, over all writers.
    pub rate: f64,
    pub duration: Duration,
    /// How long to wait after the last send for answers and deliveries.
    pub drain: Duration,
    pub colors: ColorMode,
    /// Keep every latency sample for exact percentiles (else a histogram).
    pub exact_latency: bool,
}

impl TrafficOptions {
    /// Placements the run will make.
    pub fn planned(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).ceil() as u64
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1_000_000.0) {
            anyhow::bail!("--rate must be above 0 and at most 1000000 placements per second");
        }
        if self.planned() > MAX_PLACEMENTS {
            anyhow::bail!(
                "--rate x --duration is {} placements; one run makes at most {MAX_PLACEMENTS}",
                self.planned()
            );
        }
        Ok(())
    }

    /// The latest the run may end: connecting, sending, draining, closing
    /// and the board check are each bounded, and so is their sum.
    pub fn deadline(&self) -> Duration {
        let connect_rounds = self.clients.len().div_ceil(CONNECT_CONCURRENCY) as u32;
        CONNECT_TIMEOUT * connect_rounds.max(1)
            + self.duration
            + self.drain
            + CLOSE_GRACE
            + BOARD_AND_SLACK
    }
}

/// Figures handed to the scenario once a second.
pub struct Tick<'a> {
    pub elapsed: Duration,
    /// False once the drain has begun.
    pub sending: bool,
    pub counts: Counts,
    pub accounting: &'a mut Accounting,
}

/// Everything a scenario reports from.
pub struct TrafficOutcome {
    pub hello: Hello,
    pub writers: usize,
    pub observers: usize,
    pub counts: Counts,
    pub rejected_by_code: BTreeMap<String, u64>,
    /// From the first placement to the pacer's last.
    pub send_window: Duration,
    /// Time spent draining, and whether everything arrived within it.
    pub drain_used: Duration,
    pub drained: bool,
    pub accounting: Accounting,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub late: u64,
    pub resyncs: u64,
    /// Connections that ended before the run did, by cause.
    pub ended_early: BTreeMap<String, u64>,
    pub decode_errors: u64,
    /// Payload bytes all observers received.
    pub observer_bytes: u64,
    /// `batch` messages sent to `--legacy` clients, which cannot read them.
    pub unread_batches: u64,
    pub board: Result<BoardCheck, String>,
}

/// Runs the traffic; `on_tick` sees the figures once a second. Gives up at
/// [`TrafficOptions::deadline`] whatever happens.
pub async fn run(
    targets: &Targets,
    http: &reqwest::Client,
    opts: &TrafficOptions,
    on_tick: impl FnMut(Tick<'_>),
) -> anyhow::Result<TrafficOutcome> {
    let deadline = opts.deadline();
    tokio::time::timeout(deadline, run_unbounded(targets, http, opts, on_tick))
        .await
        .map_err(|_| anyhow::anyhow!("the run passed its hard deadline of {deadline:?}"))?
}

async fn run_unbounded(
    targets: &Targets,
    http: &reqwest::Client,
    opts: &TrafficOptions,
    mut on_tick: impl FnMut(Tick<'_>),
) -> anyhow::Result<TrafficOutcome> {
    let conns = connect_all(targets, &opts.clients).await?;
    let hello = conns[0].1.clone();
    let colors = choose_colors(opts.colors, &hello)?;
    if hello.cooldown_ms > 0 {
        eprintln!(
            "warning: the server has a {} ms cooldown, so most placements will be rejected; \
             start it with COOLDOWN_MS=0",
            hello.cooldown_ms
        );
    }
    let plan = Plan {
        seed: seed(),
        width: hello.width,
        height: hello.height,
        colors,
    };
    let planned = u32::try_from(opts.planned())?;
    let t0 = Instant::now();
    let ledger = Arc::new(Ledger::new(plan, planned, t0));
    let framing = targets.endpoint(0).framing;
    let fleet = Fleet::start(conns, &opts.clients, &ledger, opts.rate, framing);
    let observers = fleet.inboxes.len();
    let grace_us = opts.drain.as_micros() as u64;
    let keep_all = exact_samples(opts.exact_latency, planned, observers);
    let mut accounting = Accounting::new(observers, grace_us, keep_all);

    let pacer = tokio::spawn(pace(
        fleet.writer_queues(),
        opts.rate,
        planned,
        ledger.clone(),
        opts.duration,
    ));
    let send_window = send_phase(pacer, &ledger, &fleet, &mut accounting, &mut on_tick).await?;
    let drain_started = Instant::now();
    let drained = drain_phase(opts.drain, &ledger, &fleet, &mut accounting, &mut on_tick).await;
    let drain_used = drain_started.elapsed();
    accounting.sweep(&ledger, &fleet.inboxes, ledger.micros(Instant::now()), true);

    let inboxes = fleet.inboxes.clone();
    let end = fleet.close().await;
    let totals = observer_totals(&inboxes);
    let board = check_board(http, targets, &ledger, &accounting, totals.witness).await;
    Ok(TrafficOutcome {
        hello,
        writers: opts.clients.iter().filter(|c| c.role.writes).count(),
        observers,
        counts: ledger.counts(),
        rejected_by_code: ledger.rejected_by_code(),
        send_window,
        drain_used,
        drained,
        accounting,
        duplicates: totals.duplicates,
        out_of_order: totals.out_of_order,
        late: totals.late,
        resyncs: totals.resyncs,
        ended_early: end.ended_early,
        decode_errors: end.decode_errors,
        observer_bytes: end.observer_bytes,
        unread_batches: end.unread_batches,
        board,
    })
}

/// Exact percentiles keep every sample (4 bytes each); past this many, the
/// run uses the histogram instead of exhausting memory.
const MAX_EXACT_SAMPLES: u64 = 50_000_000;

/// Room to reserve for every latency sample, when they are to be kept.
fn exact_samples(wanted: bool, planned: u32, observers: usize) -> Option<usize> {
    let expected = u64::from(planned) * observers as u64;
    // Reserve a fraction up front; the vector grows if the run gets there.
    (wanted && expected <= MAX_EXACT_SAMPLES).then(|| expected.min(1 << 24) as usize)
}

/// How often deliveries are matched to acks while sending. Matching runs
/// on a runtime worker, so it must come in small pieces: one sweep a second
/// of 200,000 deliveries stalled half the readers for ~10 ms, which showed
/// up as the load test's own tail latency.
const SWEEP_INTERVAL: Duration = Duration::from_millis(50);

/// While the pacer runs: sweep every [`SWEEP_INTERVAL`], report once a
/// second.
async fn send_phase(
    mut pacer: tokio::task::JoinHandle<Duration>,
    ledger: &Ledger,
    fleet: &Fleet,
    accounting: &mut Accounting,
    on_tick: &mut impl FnMut(Tick<'_>),
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut sweeps =
        tokio::time::interval_at(tokio::time::Instant::now() + SWEEP_INTERVAL, SWEEP_INTERVAL);
    sweeps.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut next_report = started + Duration::from_secs(1);
    loop {
        tokio::select! {
            window = &mut pacer => return Ok(window?),
            _ = sweeps.tick() => {
                accounting.sweep(ledger, &fleet.inboxes, ledger.micros(Instant::now()), false);
                if Instant::now() >= next_report {
                    next_report += Duration::from_secs(1);
                    on_tick(Tick { elapsed: started.elapsed(), sending: true, counts: ledger.counts(), accounting });
                }
            }
        }
    }
}

/// After the last send: waits up to `limit` for every answer and every
/// delivery, finishing as soon as all are in. True when all came.
async fn drain_phase(
    limit: Duration,
    ledger: &Ledger,
    fleet: &Fleet,
    accounting: &mut Accounting,
    on_tick: &mut impl FnMut(Tick<'_>),
) -> bool {
    let started = Instant::now();
    let mut next_tick = started + Duration::from_secs(1);
    loop {
        accounting.sweep(ledger, &fleet.inboxes, ledger.micros(Instant::now()), false);
        let counts = ledger.counts();
        // With every writer gone, nothing unanswered will be answered.
        let answered = !fleet.writers_alive() || (fleet.queues_empty() && counts.pending() == 0);
        if answered && accounting.all_caught_up(&fleet.inboxes) {
            return counts.pending() == 0;
        }
        if started.elapsed() >= limit {
            return false;
        }
        if Instant::now() >= next_tick {
            next_tick += Duration::from_secs(1);
            on_tick(Tick {
                elapsed: started.elapsed(),
                sending: false,
                counts,
                accounting,
            });
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

fn choose_colors(mode: ColorMode, hello: &Hello) -> anyhow::Result<Colors> {
    let palette = || -> anyhow::Result<Colors> {
        if hello.palette.is_empty() {
            anyhow::bail!("--colors palette: the server's `connected` frame lists no palette");
        }
        Ok(Colors::Palette(hello.palette.clone()))
    };
    match mode {
        ColorMode::Auto if hello.any_color => Ok(Colors::Any),
        ColorMode::Auto | ColorMode::Palette => palette(),
        ColorMode::Any if hello.any_color => Ok(Colors::Any),
        ColorMode::Any => anyhow::bail!(
            "--colors any: the server takes only its palette (anyColor is false); \
             use --colors palette or start it with PALETTE=any"
        ),
    }
}

/// A different board region each run, so runs do not just repaint each
/// other's pixels with the same colors (which would hide a lost write).
fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5EED)
}

/// Feeds placement numbers to the writers on one schedule: by time `t`,
/// `floor(t * rate) + 1` placements are due. Computing what is due from the
/// elapsed time, rather than sleeping between sends, keeps the total rate
/// exact however late a tick fires; placement `n` goes to writer
/// `n % writers`. Returns how long the schedule took.
async fn pace(
    writers: Vec<mpsc::Sender<Command>>,
    rate: f64,
    planned: u32,
    ledger: Arc<Ledger>,
    duration: Duration,
) -> Duration {
    let started = Instant::now();
    // Tokio timers have millisecond resolution; faster rates send several
    // placements per tick.
    let period = Duration::from_secs_f64((1.0 / rate).max(0.001));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut next = 0u32;
    while next < planned && !writers.is_empty() {
        ticks.tick().await;
        if writers.iter().all(|w| w.is_closed()) {
            // Every writer's connection ended: nothing more can be sent.
            for _ in next..planned {
                ledger.mark_skipped(true);
            }
            break;
        }
        let elapsed = started.elapsed();
        let due = if elapsed >= duration {
            planned
        } else {
            ((elapsed.as_secs_f64() * rate) as u64 + 1).min(u64::from(planned)) as u32
        };
        while next < due {
            let writer = &writers[next as usize % writers.len()];
            if let Err(e) = writer.try_send(Command::Place(next)) {
                // Skip rather than let one slow connection hold back the
                // whole schedule.
                ledger.mark_skipped(matches!(e, TrySendError::Closed(_)));
            }
            next += 1;
        }
    }
    started.elapsed()
}

/// Fetches the board and compares it with every acknowledged placement.
async fn check_board(
    http: &reqwest::Client,
    targets: &Targets,
    ledger: &Ledger,
    accounting: &Accounting,
    witness: Vec<ForeignWrite>,
) -> Result<BoardCheck, String> {
    let snapshot = board::fetch(http, targets.api_url("/api/canvas.bin"))
        .await
        .map_err(|e| format!("{e:#}"))?;
    let ours: Vec<OurWrite> = accounting
        .acks
        .iter()
        .map(|a| {
            let p = ledger.plan.placement(a.placement);
            OurWrite {
                seq: a.seq,
                x: p.x,
                y: p.y,
                color: p.color,
            }
        })
        .collect();
    let our_seqs: HashSet<u64> = ours.iter().map(|w| w.seq).collect();
    let foreign: Vec<ForeignWrite> = witness
        .into_iter()
        .filter(|w| !our_seqs.contains(&w.seq))
        .collect();
    Ok(board::check(&snapshot, &ours, &foreign))
}
