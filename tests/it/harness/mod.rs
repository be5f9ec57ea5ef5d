//! What every integration test stands on: real processes (the `server` and
//! `canvas-api` binaries, `redis-server`) on free loopback ports, a
//! WebSocket client that speaks protocol v1, and HTTP helpers.

pub mod client;
pub mod http;
pub mod process;
pub mod redis_server;

pub use client::WsClient;
pub use process::{Process, Stack};
pub use redis_server::RedisServer;

use std::time::Duration;

/// How long a test waits for something that should happen promptly.
pub const WAIT: Duration = Duration::from_secs(10);
