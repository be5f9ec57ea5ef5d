//! The `server` binary: configuration, logging, signals. `cargo run
//! --release` at the repository root starts this, as the whole product in
//! one process.

use anyhow::Context;
use clap::Parser;
use server::Gateway;
use server::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    plumbing::process::init_tracing();
    let config = Config::parse();
    // Bind first: a taken port must fail before the store is opened.
    let addr = config.listen.addr(server::config::DEFAULT_PORT);
    let listener = plumbing::listen::bind(addr, config.send_buffer())
        .with_context(|| format!("{} {addr}: cannot listen", config.listen.source()))?;
    let gateway = Gateway::start(&config).await?;
    let addr = listener.local_addr()?;
    tracing::info!("listening on {addr}");
    tracing::info!("open http://{addr}/ to draw");
    server::run(listener, gateway, plumbing::process::shutdown_signal()).await?;
    Ok(())
}
