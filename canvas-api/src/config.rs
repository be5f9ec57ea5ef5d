//! Configuration shared by every binary that owns a board: its geometry and
//! rules ([`CanvasArgs`]), where it is stored ([`StoreArgs`]), identity and
//! the history archive. How to reach Redis and where to listen are the
//! shared `plumbing::redis` and `plumbing::config`.

use std::path::PathBuf;

use crate::palette::Palette;
use plumbing::config::parse_cidrs;

/// The largest board side accepted: 65,536² pixels, kept by both stores as
/// chunks (only painted ones cost memory) and read by chunks.
pub const MAX_SIDE: u32 = 65_536;
/// The largest board in bytes (3 per pixel) kept in one Redis string (which
/// holds at most 512 MiB; a larger board keeps a string per chunk), and the
/// largest read whole: a board this size is already a 300 MB download.
pub const MAX_BOARD_BYTES: u64 = 300 * 1024 * 1024;

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Board")]
pub struct CanvasArgs {
    /// Board width in pixels.
    #[arg(long = "canvas-width", env = "CANVAS_WIDTH", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=MAX_SIDE as i64))]
    pub width: u32,

    /// Board height in pixels.
    #[arg(long = "canvas-height", env = "CANVAS_HEIGHT", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=MAX_SIDE as i64))]
    pub height: u32,

    /// Colors that may be placed: `rplace-2022` (the 32 colors of r/place
    /// 2022), `any` (every 24-bit color), or comma-separated `#RRGGBB` colors.
    #[arg(long, env = "PALETTE", default_value = "rplace-2022")]
    pub palette: Palette,

    /// Milliseconds a user waits between two placements; 0 disables.
    #[arg(long = "cooldown-ms", env = "COOLDOWN_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub cooldown_ms: u64,

    /// How many recent writes the replay log keeps for `/api/updates` and
    /// gap repair (approximate in Redis, trimmed in whole blocks).
    #[arg(long = "replay-log-len", env = "REPLAY_LOG_LEN", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub replay_log_len: u64,

    /// Placements remembered per pixel, for rollback and undo.
    #[arg(long = "history-len", env = "HISTORY_LEN", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub history_len: u64,

    /// Pixel pool per user: up to this many pixels at once, one back every
    /// POOL_REFILL_MS; 0 disables (then COOLDOWN_MS alone applies; set
    /// COOLDOWN_MS=0 to use the pool alone).
    #[arg(long = "pool-size", env = "POOL_SIZE", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub pool_size: u32,

    /// Milliseconds for one pixel to come back to a user's pool.
    #[arg(long = "pool-refill-ms", env = "POOL_REFILL_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub pool_refill_ms: u64,

    /// Pixel pool per client IP (IPv6 per /64), across every gateway: up to
    /// this many placements at once, one back every IP_POOL_REFILL_MS; 0
    /// disables.
    #[arg(long = "ip-pool-size", env = "IP_POOL_SIZE", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub ip_pool_size: u32,

    /// Milliseconds for one placement to come back to an IP's pool.
    #[arg(long = "ip-pool-refill-ms", env = "IP_POOL_REFILL_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    pub ip_pool_refill_ms: u64,

    /// Placements over HTTP (`PUT /api/pixel`, not those a gateway makes
    /// for its WebSockets) one client IP (IPv6: one /64) may make per
    /// second, in this process (a token bucket, one second of burst); past
    /// it, 429 `rate_limited`. Stops scripts that rotate usernames. 0: no
    /// limit.
    #[arg(long = "http-placements-per-sec-per-ip", env = "HTTP_PLACEMENTS_PER_SEC_PER_IP", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub http_placements_per_sec_per_ip: u32,

    /// Bearer token of the moderation API (`/api/admin/*`); unset disables
    /// moderation. At least 16 characters.
    #[arg(long = "admin-token", env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

impl CanvasArgs {
    /// The user pixel pool, when configured.
    pub fn pool(&self) -> Option<crate::store::Gcra> {
        (self.pool_size > 0).then_some(crate::store::Gcra {
            size: self.pool_size,
            refill_ms: self.pool_refill_ms,
        })
    }

    /// The per-IP pixel pool, when configured.
    pub fn ip_pool(&self) -> Option<crate::store::Gcra> {
        (self.ip_pool_size > 0).then_some(crate::store::Gcra {
            size: self.ip_pool_size,
            refill_ms: self.ip_pool_refill_ms,
        })
    }

    /// Checks what clap cannot: the board's total size, pools that are
    /// whole, and an admin token worth the name.
    pub fn validate(&self) -> Result<(), String> {
        if self.pool_size > 0 && self.pool_refill_ms == 0 {
            return Err("POOL_SIZE is set, so POOL_REFILL_MS must be at least 1".into());
        }
        if self.ip_pool_size > 0 && self.ip_pool_refill_ms == 0 {
            return Err("IP_POOL_SIZE is set, so IP_POOL_REFILL_MS must be at least 1".into());
        }
        if let Some(token) = &self.admin_token
            && token.chars().count() < 16
        {
            return Err(
                "ADMIN_TOKEN must be at least 16 characters (unset it to disable moderation)"
                    .into(),
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Embedded store")]
pub struct StoreArgs {
    /// Folder of the embedded store (used when no Redis is configured).
    #[arg(long = "data-dir", env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

/// The history archive (timelapse, the board at any moment).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "History archive")]
pub struct ArchiveArgs {
    /// `auto`: on with the embedded store (in DATA_DIR/archive), off with
    /// Redis unless ARCHIVE_DIR is set; `on`; `off`.
    #[arg(
        long = "history-archive",
        env = "HISTORY_ARCHIVE",
        value_enum,
        default_value = "auto"
    )]
    pub archive_mode: ArchiveMode,

    /// Folder of the history archive [default: DATA_DIR/archive]. With
    /// Redis, give each archiving canvas-api its own.
    #[arg(long = "archive-dir", env = "ARCHIVE_DIR")]
    pub archive_dir: Option<PathBuf>,

    /// Writes between two whole boards in the archive: showing any moment
    /// replays at most this many.
    #[arg(long = "archive-keyframe-every", env = "ARCHIVE_KEYFRAME_EVERY", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(100..=10_000_000))]
    pub keyframe_every: u64,
}

/// Whether to keep the history archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchiveMode {
    Auto,
    On,
    Off,
}

impl CanvasArgs {
    /// Checks the board fits a store: both stores take any board up to
    /// [`MAX_SIDE`]² (the embedded store as chunks; Redis as one key up to
    /// [`MAX_BOARD_BYTES`], one key per chunk above). Clap checks each side
    /// already; this guards a `CanvasArgs` built another way.
    pub fn validate_for_store(&self) -> Result<(), String> {
        if self.width > MAX_SIDE || self.height > MAX_SIDE {
            return Err(format!(
                "CANVAS_WIDTH x CANVAS_HEIGHT = {}x{} is larger than {MAX_SIDE}x{MAX_SIDE}",
                self.width, self.height
            ));
        }
        Ok(())
    }

    /// Whether the board may be read whole (keyframes, `canvas.bin`).
    pub fn readable_whole(&self) -> bool {
        u64::from(self.width) * u64::from(self.height) * 3 <= MAX_BOARD_BYTES
    }
}

impl ArchiveArgs {
    /// The archive's folder, or `None` when there is to be none. Its
    /// keyframes are whole boards, so a board too large to read whole has
    /// none (`auto`), or is refused (`on`).
    pub fn folder(
        &self,
        store: &StoreArgs,
        on_redis: bool,
        readable_whole: bool,
    ) -> Result<Option<PathBuf>, String> {
        let wanted = match self.archive_mode {
            ArchiveMode::Off => false,
            ArchiveMode::On if !readable_whole => {
                return Err(format!(
                    "HISTORY_ARCHIVE=on needs a board of at most {MAX_BOARD_BYTES} bytes (its \
                     keyframes are whole boards); use HISTORY_ARCHIVE=off or auto for this board"
                ));
            }
            ArchiveMode::On => true,
            ArchiveMode::Auto => readable_whole && (!on_redis || self.archive_dir.is_some()),
        };
        Ok(wanted.then(|| {
            self.archive_dir
                .clone()
                .unwrap_or_else(|| store.data_dir.join("archive"))
        }))
    }
}

/// Whether placing needs a session token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// The prototype's way: a connection without a token is whoever its
    /// `?username=`/`set_username` says; a token, when given, still wins.
    Open,
    /// Placing needs a token; connections without one may only watch.
    Required,
}

/// The least `AUTH_SECRET` length: an HMAC-SHA256 key shorter than its
/// output weakens it.
pub const MIN_AUTH_SECRET_BYTES: usize = 32;

/// Identity: session tokens, and who the client behind a proxy is.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Identity")]
pub struct AuthArgs {
    /// `open` (a connection without a token is who it says) or `required`
    /// (placing needs a session token from `POST /api/session`).
    #[arg(long = "auth", env = "AUTH", value_enum, default_value = "open")]
    pub mode: AuthMode,

    /// The secret (at least 32 bytes) that signs session tokens; every pod
    /// needs the same. When unset, one is made and shared: in Redis
    /// (`canvas:auth-secret`), or in `DATA_DIR/auth-secret`.
    #[arg(long = "auth-secret", env = "AUTH_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// Seconds a session token (and its claim on the username) lasts.
    #[arg(long = "session-ttl-secs", env = "SESSION_TTL_SECS", default_value_t = 7 * 24 * 3600,
          value_parser = clap::value_parser!(u64).range(1..=365 * 24 * 3600))]
    pub session_ttl_secs: u64,

    /// Sessions `POST /api/session` issues per client IP per hour, in this
    /// process (0: no limit).
    #[arg(long = "sessions-per-hour-per-ip", env = "SESSIONS_PER_HOUR_PER_IP", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub sessions_per_hour_per_ip: u32,

    /// Comma-separated CIDRs (`10.0.0.0/8,127.0.0.1/32`) of proxies whose
    /// `X-Forwarded-For` is believed. Unset: the client is the socket's peer.
    #[arg(long = "trusted-proxies", env = "TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
}

impl AuthArgs {
    /// Checks what clap cannot, naming the variable at fault.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(secret) = &self.secret
            && secret.len() < MIN_AUTH_SECRET_BYTES
        {
            return Err(format!(
                "AUTH_SECRET must be at least {MIN_AUTH_SECRET_BYTES} bytes (it has {}); e.g. `openssl rand -hex 32`",
                secret.len()
            ));
        }
        self.trusted().map(drop)
    }

    /// The parsed `TRUSTED_PROXIES`.
    pub fn trusted(&self) -> Result<Vec<ipnet::IpNet>, String> {
        parse_cidrs(self.trusted_proxies.as_deref().unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_is_on_by_default_only_for_the_embedded_store() {
        let store = StoreArgs {
            data_dir: "d".into(),
        };
        let args = |archive_mode, dir: Option<&str>| ArchiveArgs {
            archive_mode,
            archive_dir: dir.map(PathBuf::from),
            keyframe_every: 100,
        };
        let folder = |mode, dir, on_redis| args(mode, dir).folder(&store, on_redis, true).unwrap();
        assert_eq!(
            folder(ArchiveMode::Auto, None, false),
            Some(PathBuf::from("d/archive"))
        );
        assert_eq!(folder(ArchiveMode::Auto, None, true), None);
        assert_eq!(
            folder(ArchiveMode::Auto, Some("a"), true),
            Some(PathBuf::from("a"))
        );
        assert_eq!(
            folder(ArchiveMode::On, None, true),
            Some(PathBuf::from("d/archive"))
        );
        assert_eq!(folder(ArchiveMode::Off, Some("a"), false), None);
        // A board too large to read whole has no keyframes to keep.
        let huge = |mode| args(mode, None).folder(&store, false, false);
        assert_eq!(huge(ArchiveMode::Auto), Ok(None));
        assert!(
            huge(ArchiveMode::On)
                .unwrap_err()
                .contains("HISTORY_ARCHIVE")
        );
    }

    #[test]
    fn a_short_auth_secret_is_refused() {
        let auth = AuthArgs {
            mode: AuthMode::Open,
            secret: Some("short".into()),
            session_ttl_secs: 1,
            sessions_per_hour_per_ip: 1,
            trusted_proxies: None,
        };
        assert!(auth.validate().unwrap_err().contains("AUTH_SECRET"));
    }

    #[test]
    fn a_board_over_65536_a_partial_pool_and_a_short_token_are_refused() {
        let canvas = CanvasArgs {
            width: 16_384,
            height: 16_384,
            palette: Palette::default(),
            cooldown_ms: 0,
            replay_log_len: 1,
            history_len: 16,
            pool_size: 0,
            pool_refill_ms: 0,
            ip_pool_size: 0,
            ip_pool_refill_ms: 0,
            http_placements_per_sec_per_ip: 20,
            admin_token: None,
        };
        assert!(canvas.validate().is_ok());
        // 768 MiB: more than one Redis string holds, kept by chunks.
        assert!(canvas.validate_for_store().is_ok());
        assert!(!canvas.readable_whole());
        let too_wide = CanvasArgs {
            width: MAX_SIDE + 1,
            ..canvas.clone()
        };
        assert!(
            too_wide
                .validate_for_store()
                .unwrap_err()
                .contains("CANVAS_WIDTH")
        );
        let small = CanvasArgs {
            width: 10,
            height: 10,
            ..canvas
        };
        assert!(small.validate().is_ok());
        let pool = CanvasArgs {
            pool_size: 3,
            ..small.clone()
        };
        assert!(pool.validate().unwrap_err().contains("POOL_REFILL_MS"));
        let ip = CanvasArgs {
            ip_pool_size: 3,
            ..small.clone()
        };
        assert!(ip.validate().unwrap_err().contains("IP_POOL_REFILL_MS"));
        let token = CanvasArgs {
            admin_token: Some("short".into()),
            ..small
        };
        assert!(token.validate().unwrap_err().contains("ADMIN_TOKEN"));
    }
}
