//! The `server` binary: configuration, logging, signals. `cargo run
//! --release` at the repository root starts this, as the whole product in
//! one process.

use anyhow::Context;
use clap::Parser;
use server::Gateway;
use server::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = Config::parse();
    // Bind first: a taken port must fail before the store is opened.
    let listener = canvas_api::listen::bind(config.listen)
        .with_context(|| format!("LISTEN_ADDR {}: cannot listen", config.listen))?;
    let gateway = Gateway::start(&config).await?;
    let addr = listener.local_addr()?;
    tracing::info!("listening on {addr}");
    tracing::info!("open http://{addr}/ to draw");
    server::run(listener, gateway, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
