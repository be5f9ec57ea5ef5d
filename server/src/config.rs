//! The gateway's configuration, from flags and environment variables.
//! `server --help` is the reference.

use std::time::Duration;

use canvas_api::config::{ArchiveArgs, AuthArgs, CanvasArgs, StoreArgs};
use plumbing::config::{HttpArgs, ListenArgs};
use plumbing::redis::RedisArgs;

/// Where the gateway listens unless told: loopback port 8080.
pub const DEFAULT_PORT: u16 = 8080;

/// The pixel canvas gateway. With no REDIS_URL/REDIS_HOST and no
/// CANVAS_API_URL it is the whole product in one process, keeping the board
/// in DATA_DIR.
#[derive(Debug, Clone, clap::Parser)]
// `--help` groups the options under headings: the fields below without one
// of their own are under "Listening"; each flattened group names its own.
#[command(version, next_help_heading = "Listening")]
pub struct Config {
    #[command(flatten)]
    pub listen: ListenArgs,

    /// This gateway's name in presence keys (`pod:<POD_ID>:users`); the
    /// hostname plus a random suffix when unset.
    #[arg(long = "pod-id", env = "POD_ID", help_heading = "Cluster")]
    pub pod_id: Option<String>,

    /// Base URL of a separate canvas-api (the Kubernetes shape), e.g.
    /// `http://canvas-api:8081`. When unset the board is kept in this
    /// process.
    #[arg(
        long = "canvas-api-url",
        env = "CANVAS_API_URL",
        help_heading = "Cluster"
    )]
    pub canvas_api_url: Option<String>,

    #[command(flatten)]
    pub redis: RedisArgs,

    #[command(flatten)]
    pub canvas: CanvasArgs,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub archive: ArchiveArgs,

    /// Largest WebSocket message (and frame) a client may send, in bytes;
    /// a larger one closes the connection with 1009. Text frames over the
    /// protocol's 4 KiB but within this get a `frame_too_large` error.
    #[arg(long = "max-frame-bytes", env = "MAX_FRAME_BYTES", help_heading = "Client limits", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u32).range(4096..=1024 * 1024))]
    pub max_frame_bytes: u32,

    /// WebSockets and SSE streams one client IP (IPv6: one /64) may hold
    /// on this gateway together; more are refused with HTTP 429 before the
    /// upgrade. 0: no limit.
    #[arg(long = "max-connections-per-ip", env = "MAX_CONNECTIONS_PER_IP", help_heading = "Client limits", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub max_connections_per_ip: u32,

    /// Messages per second all WebSockets of one client IP on this gateway
    /// may send together (a token bucket, one second of burst); past it a
    /// message gets `rate_limited` with `retryAfterMs`, and an IP that sends
    /// on past 4 more seconds' worth is closed with 4029. 0: no limit.
    #[arg(long = "messages-per-sec-per-ip", env = "MESSAGES_PER_SEC_PER_IP", help_heading = "Client limits", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub messages_per_sec_per_ip: u32,

    /// Events an SSE stream's `Last-Event-ID` replay may send; a client
    /// further behind gets a `resync` event (refetch the board) instead, so
    /// one request cannot ask for the whole replay log.
    #[arg(long = "sse-max-replay", env = "SSE_MAX_REPLAY", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub sse_max_replay: u64,

    /// Seconds a WebSocket may stay silent (no message, no pong to the
    /// gateway's pings, sent a few times per timeout) before it is closed
    /// with 4002. 0: never.
    #[arg(long = "idle-timeout-secs", env = "IDLE_TIMEOUT_SECS", help_heading = "Client limits", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub idle_timeout_secs: u64,

    /// Seconds a presence key lives without a refresh; it is refreshed
    /// three times per TTL.
    #[arg(long = "presence-ttl-secs", env = "PRESENCE_TTL_SECS", help_heading = "Cluster", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub presence_ttl_secs: u64,

    /// Milliseconds a missing `seq` may stay missing before the gateway
    /// fetches it from the replay log.
    #[arg(long = "gap-grace-ms", env = "GAP_GRACE_MS", help_heading = "Gateway tuning", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub gap_grace_ms: u64,

    /// Least milliseconds between two frames of pixel events: an event after
    /// a quiet spell goes out at once, while under load the events of one
    /// window share a frame, cutting writes per client many times over.
    /// 0 sends whatever is ready at once.
    #[arg(long = "fanout-window-ms", env = "FANOUT_WINDOW_MS", help_heading = "Gateway tuning", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub fanout_window_ms: u64,

    /// Most WebSocket connections and SSE streams this gateway holds
    /// together; a WebSocket past it is closed with code 1013 (try again
    /// later), an SSE stream answered 503.
    #[arg(
        long = "max-connections",
        env = "MAX_CONNECTIONS",
        help_heading = "Client limits",
        default_value_t = 100_000
    )]
    pub max_connections: usize,

    /// Placements this gateway has in flight at once, over all its
    /// connections. Past it a placement is answered at once with
    /// `unavailable` (retry after a moment) instead of queueing behind a
    /// store that cannot keep up.
    #[arg(long = "max-placements-in-flight", env = "MAX_PLACEMENTS_IN_FLIGHT", help_heading = "Gateway tuning", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_placements_in_flight: u32,

    /// Bytes of kernel send buffer per client socket (SO_SNDBUF; 0 leaves it
    /// to the kernel's autotuning, up to megabytes). A client that stops
    /// reading can park at most this much in the kernel; past it the
    /// gateway's bounded ring applies, and the client is closed with 4008
    /// once it falls a whole ring behind.
    #[arg(long = "send-buffer-bytes", env = "SEND_BUFFER_BYTES", help_heading = "Gateway tuning", default_value_t = 131_072,
          value_parser = clap::value_parser!(u32).range(0..=64 * 1024 * 1024))]
    pub send_buffer_bytes: u32,

    /// Seconds a client's socket may take nothing before the connection is
    /// dropped. A client that reads again within it finds everything the
    /// gateway meant to send, a 4008 close included; after it, the gateway
    /// stops waiting and closes the TCP connection without a close frame.
    #[arg(long = "write-timeout-secs", env = "WRITE_TIMEOUT_SECS", help_heading = "Gateway tuning", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub write_timeout_secs: u64,

    /// Milliseconds over which WebSockets are closed (code 1001, "going
    /// away, reconnect") after SIGTERM: each connection closes on a random
    /// 100 ms tick of this window, so clients reach the other replicas in
    /// batches, not all at once. 0 closes them all at once.
    #[arg(long = "shutdown-drain-ms", env = "SHUTDOWN_DRAIN_MS", help_heading = "Shutdown", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub shutdown_drain_ms: u64,

    /// Seconds from SIGTERM to giving up on open connections; then the
    /// presence key is removed (at most 2 s more) and the process exits.
    /// Must exceed the drain window.
    #[arg(long = "shutdown-grace-secs", env = "SHUTDOWN_GRACE_SECS", help_heading = "Shutdown", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=600))]
    pub shutdown_grace_secs: u64,
}

impl Config {
    pub fn presence_ttl(&self) -> Duration {
        Duration::from_secs(self.presence_ttl_secs)
    }

    pub fn send_buffer(&self) -> Option<u32> {
        (self.send_buffer_bytes > 0).then_some(self.send_buffer_bytes)
    }

    pub fn gap_grace(&self) -> Duration {
        Duration::from_millis(self.gap_grace_ms)
    }

    /// The pod id, made up when not configured.
    pub fn resolved_pod_id(&self) -> String {
        if let Some(id) = &self.pod_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "gateway".into());
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
        format!("{host}-{suffix}")
    }

    /// Checks what clap cannot, naming the variable at fault.
    pub fn validate(&self) -> Result<(), String> {
        self.canvas.validate()?;
        self.auth.validate()?;
        self.http.validate()?;
        if let Some(id) = &self.pod_id
            && (id.is_empty()
                || id.len() > 128
                || id.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(format!(
                "POD_ID {id:?} must be 1-128 characters without spaces"
            ));
        }
        if let Some(url) = &self.canvas_api_url {
            let ok = (url.starts_with("http://") || url.starts_with("https://"))
                && reqwest::Url::parse(url).is_ok();
            if !ok {
                return Err(format!(
                    "CANVAS_API_URL {url:?} is not an http:// or https:// URL"
                ));
            }
        }
        if self.shutdown_drain_ms > 0 && self.shutdown_drain_ms >= self.shutdown_grace_secs * 1000 {
            return Err(format!(
                "SHUTDOWN_DRAIN_MS ({}) must be shorter than SHUTDOWN_GRACE_SECS ({} s)",
                self.shutdown_drain_ms, self.shutdown_grace_secs
            ));
        }
        if self.max_connections == 0 {
            return Err("MAX_CONNECTIONS must be at least 1".into());
        }
        self.redis.connection_info().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Config;

    #[test]
    fn the_command_line_is_well_formed() {
        Config::command().debug_assert();
    }

    #[test]
    fn http_placements_are_limited_per_ip_by_default() {
        let config = Config::try_parse_from(["server"]).unwrap();
        assert!(config.canvas.http_placements_per_sec_per_ip > 0);
        assert!(config.http.max_pending_connections_per_ip > 0);
    }
}
