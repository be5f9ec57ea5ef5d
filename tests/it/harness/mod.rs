//! What every integration test stands on: real processes (the `server` and
//! `canvas-api` binaries, `redis-server`) on free loopback ports, a
//! WebSocket client that speaks protocol v1, an SSE client, and HTTP helpers.

pub mod client;
pub mod cluster;
pub mod http;
pub mod lossy_proxy;
pub mod player;
pub mod process;
pub mod redis_cluster;
pub mod redis_server;
pub mod sse;

pub use client::WsClient;
pub use process::{Process, Stack, single_process};
pub use redis_server::RedisServer;
pub use sse::SseStream;

use std::time::Duration;

/// How long a test waits for something that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(10);

/// A fresh folder for one test's data, removed when dropped (declare it
/// before the processes that use it, so they go first).
pub struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!(
        "canvas-it-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    TempDir(dir)
}
