//! The `canvas-api` binary: configuration, logging, signals; the service
//! itself is the library.

use anyhow::Context;
use canvas_api::config::{ArchiveArgs, AuthArgs, CanvasArgs, StoreArgs};
use canvas_api::{Announcer, AppState, Auth, Canvas, HttpPolicy, UserNotices};
use clap::Parser;
use plumbing::config::{HttpArgs, ListenArgs};
use plumbing::redis::RedisArgs;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The board's owner: stores pixel writes and serves the board over HTTP.
#[derive(Debug, Parser)]
// `--help` groups the options; each flattened group names its own heading.
#[command(version, next_help_heading = "Listening")]
struct Config {
    #[command(flatten)]
    listen: ListenArgs,

    #[command(flatten)]
    canvas: CanvasArgs,

    #[command(flatten)]
    redis: RedisArgs,

    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    auth: AuthArgs,

    #[command(flatten)]
    http: HttpArgs,

    #[command(flatten)]
    archive: ArchiveArgs,
}

/// Where canvas-api listens unless told: loopback, beside the gateway's 8080.
const DEFAULT_PORT: u16 = 8081;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    plumbing::process::init_tracing();
    let config = Config::parse();
    config.canvas.validate().map_err(anyhow::Error::msg)?;
    config.auth.validate().map_err(anyhow::Error::msg)?;
    let policy = HttpPolicy::from_args(&config.http).map_err(anyhow::Error::msg)?;
    let redis = config.redis.target().map_err(anyhow::Error::msg)?;

    // Bind first: a taken port must fail before the store is opened.
    let addr = config.listen.addr(DEFAULT_PORT);
    let listener = plumbing::listen::bind(addr, None)
        .with_context(|| format!("{} {addr}: cannot listen", config.listen.source()))?;
    let store = canvas_api::open_store(&config.canvas, redis, &config.store).await?;
    let shared = store.connection();
    let auth = match &shared {
        Some(conn) => Auth::start(&config.auth, Some(conn.clone()), None).await?,
        None => Auth::start(&config.auth, None, Some(&config.store.data_dir)).await?,
    };
    let announcer = match shared {
        Some(conn) => Announcer::Redis(conn),
        None => Announcer::Nobody,
    };
    let canvas = Canvas::from_args(store.clone(), &config.canvas);
    // The archive's keyframes are whole boards, which a cluster does not
    // read yet.
    let clustered = matches!(store, canvas_api::store::CanvasStore::Cluster(_));
    if clustered && config.archive.archive_mode == canvas_api::config::ArchiveMode::On {
        anyhow::bail!(
            "HISTORY_ARCHIVE=on is not available on a Redis Cluster yet (its keyframes are whole boards)"
        );
    }
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let archive = match config
        .archive
        .folder(
            &config.store,
            !matches!(store, canvas_api::store::CanvasStore::Embedded(_)),
            config.canvas.readable_whole() && !clustered,
        )
        .map_err(anyhow::Error::msg)?
    {
        Some(dir) => Some(canvas_api::archive::Archive::start(
            store.clone(),
            dir,
            config.archive.keyframe_every,
            &tracker,
            cancel.clone(),
        )?),
        None => None,
    };
    canvas_api::maintenance::spawn(store, &tracker, cancel.clone());
    let notices = UserNotices::start(
        announcer.clone(),
        config.canvas.cooldown_ms,
        &tracker,
        cancel.clone(),
    );

    if config.auth.trusted_proxies.is_none() {
        tracing::warn!(
            "TRUSTED_PROXIES is unset: X-Forwarded-For is ignored, so behind gateways or an \
             ingress every client shares one per-IP budget (SESSIONS_PER_HOUR_PER_IP, \
             IP_POOL_SIZE); list their addresses in TRUSTED_PROXIES"
        );
    }
    tracing::info!("listening on {}", listener.local_addr()?);
    let limits = plumbing::listen::ServeLimits::new(
        &policy,
        auth.trusted_proxies(),
        auth.forwarded_for_watch(),
    );
    let router = canvas_api::router(
        AppState {
            canvas,
            announcer,
            notices,
            auth,
            archive,
            gateway_proofs: true,
            http_placements: std::sync::Arc::new(canvas_api::placement_rate::PlacementRate::new(
                config.canvas.http_placements_per_sec_per_ip,
            )),
        },
        &policy,
    );
    canvas_api::run(
        listener,
        router,
        limits,
        plumbing::process::shutdown_signal(),
    )
    .await?;

    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Config::command().debug_assert();
    }
}
