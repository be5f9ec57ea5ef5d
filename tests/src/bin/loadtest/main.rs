//! `loadtest`: drives the gateway with WebSocket clients speaking protocol
//! v1 (or v2, `--protocol 2`) and reports what it measured.
//!
//! Three scenarios: `fanout` (few writers, many observers: delivery and
//! latency), `connections` (many idle connections: accept rate and memory
//! per connection) and `soak` (steady mixed load, reported as it goes).
//! Every figure is measured on this process's one monotonic clock. Exit
//! codes: 0 when the run found nothing wrong, 1 when it found a fault (a
//! lost or duplicated pixel, a wrong board, a failed connection), 2 when it
//! could not run (bad arguments, unreachable gateway, wrong protocol).

mod accounting;
mod board;
mod client;
mod connections;
mod delivery;
mod fanout;
mod fleet;
mod frames;
mod gateway;
mod ledger;
mod limits;
mod report;
mod soak;
mod stats;
mod summary;
mod target;
mod traffic;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::frames::Framing;
use crate::report::Report;
use crate::target::Targets;

/// Load tests for the pixel canvas gateway. Points at this machine only,
/// unless --allow-remote.
#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    after_help = "Exit status: 0 when the run found nothing wrong, 1 when it found a fault \
                  (a lost or duplicated pixel, a wrong board, a failed connection), \
                  2 when it could not run."
)]
struct Cli {
    #[command(flatten)]
    common: Common,

    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Args)]
struct Common {
    /// Gateway WebSocket URL. Repeat it or separate URLs with commas to
    /// spread clients over several gateways, round-robin.
    #[arg(
        long = "url",
        env = "LOADTEST_URL",
        global = true,
        value_delimiter = ',',
        default_value = "ws://127.0.0.1:8080/ws"
    )]
    urls: Vec<String>,

    /// Base URL for /api and /metrics [default: the first --url as http://
    /// without its path; the gateway serves both in every deployment mode].
    #[arg(long, env = "LOADTEST_API", global = true)]
    api: Option<String>,

    /// Print the summary as one JSON object on stdout instead of a table.
    #[arg(long, global = true)]
    json: bool,

    /// Connect as the prototype's clients do: without `?batch=1`, so the
    /// gateway sends one event per message, and with a `batch` message
    /// ignored like any unknown type (its pixels count as lost).
    #[arg(long, global = true, conflicts_with = "protocol")]
    legacy: bool,

    /// The protocol every client speaks: 1 (JSON, with `?batch=1`) or 2
    /// (`?protocol=2`: binary pixel events and binary placements).
    #[arg(long, env = "LOADTEST_PROTOCOL", global = true, default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=2))]
    protocol: u8,

    /// Allow hosts other than this machine (127.0.0.0/8, localhost, ::1).
    /// A load test aimed at a live service is an outage.
    #[arg(long = "allow-remote", global = true)]
    allow_remote: bool,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    Fanout(fanout::FanoutArgs),
    Connections(connections::ConnectionsArgs),
    Soak(soak::SoakArgs),
}

/// What every scenario needs.
pub struct Context {
    pub targets: Targets,
    pub http: reqwest::Client,
    pub json: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli).await {
        Ok(report) => {
            report.print(cli.common.json);
            if report.failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<Report> {
    let common = &cli.common;
    let framing = match (common.legacy, common.protocol) {
        (true, _) => Framing::Single,
        (false, 2) => Framing::Binary,
        (false, _) => Framing::Batched,
    };
    let targets = Targets::resolve(
        &common.urls,
        common.api.as_deref(),
        common.allow_remote,
        framing,
    )
    .await?;
    let http = reqwest::Client::builder()
        // The targets are local; a proxy from the environment would only
        // get in the way.
        .no_proxy()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()?;
    let ctx = Context {
        targets,
        http,
        json: common.json,
    };
    match &cli.scenario {
        Scenario::Fanout(args) => fanout::run(args, &ctx).await,
        Scenario::Connections(args) => connections::run(args, &ctx).await,
        Scenario::Soak(args) => soak::run(args, &ctx).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn urls_may_be_repeated_or_comma_separated() {
        let cli = Cli::try_parse_from([
            "loadtest",
            "fanout",
            "--url",
            "ws://127.0.0.1:1/ws,ws://127.0.0.1:2/ws",
            "--url",
            "ws://127.0.0.1:3/ws",
        ])
        .unwrap();
        assert_eq!(cli.common.urls.len(), 3);
    }

    #[test]
    fn the_protocol_is_1_or_2_and_not_with_legacy() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["loadtest", "fanout"], args].concat());
        assert_eq!(parse(&[]).unwrap().common.protocol, 1);
        assert_eq!(parse(&["--protocol", "2"]).unwrap().common.protocol, 2);
        assert!(parse(&["--protocol", "3"]).is_err());
        assert!(parse(&["--protocol", "2", "--legacy"]).is_err());
    }
}
