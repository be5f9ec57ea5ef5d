//! Configuration shared by every binary that owns a board: its geometry and
//! rules ([`CanvasArgs`]), where it is stored ([`StoreArgs`]), and how to
//! reach Redis ([`RedisArgs`]); and where to listen ([`ListenArgs`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::palette::Palette;

/// The largest board side accepted.
pub const MAX_SIDE: u32 = 16_384;
/// The largest board in bytes (3 per pixel); one Redis string holds at most
/// 512 MiB, and a board this size is already a 300 MB download.
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
        let bytes = u64::from(self.width) * u64::from(self.height) * 3;
        if bytes > MAX_BOARD_BYTES {
            return Err(format!(
                "CANVAS_WIDTH x CANVAS_HEIGHT = {}x{} needs {bytes} bytes; the most is {MAX_BOARD_BYTES}",
                self.width, self.height
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Redis")]
pub struct RedisArgs {
    /// Redis URL (`redis://[user:password@]host:port/db`, or `rediss://` for
    /// TLS). When neither this nor REDIS_HOST is set, the board is kept by the
    /// embedded on-disk store instead.
    #[arg(long = "redis-url", env = "REDIS_URL")]
    pub url: Option<String>,

    /// Redis host, the prototype's way (used when REDIS_URL is unset).
    #[arg(long = "redis-host", env = "REDIS_HOST")]
    pub host: Option<String>,

    /// Redis port, with REDIS_HOST.
    #[arg(long = "redis-port", env = "REDIS_PORT", default_value_t = 6379)]
    pub port: u16,

    /// Redis password, with REDIS_HOST (or to add to a REDIS_URL without one).
    #[arg(
        long = "redis-password",
        env = "REDIS_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,

    /// Redis ACL user (Redis 6+), with REDIS_PASSWORD; added to a REDIS_URL
    /// that names no user. Without it, the password is the `default` user's.
    #[arg(long = "redis-username", env = "REDIS_USERNAME")]
    pub username: Option<String>,

    /// Redis database number, with REDIS_HOST.
    #[arg(long = "redis-db", env = "REDIS_DB", default_value_t = 0)]
    pub db: i64,

    /// Connect with TLS (as a `rediss://` URL does), with REDIS_HOST.
    #[arg(long = "redis-tls", env = "REDIS_TLS", default_value_t = false)]
    pub tls: bool,

    /// PEM file of the certificate authorities to trust for Redis's TLS
    /// certificate instead of the system's (a private CA).
    #[arg(long = "redis-tls-ca-file", env = "REDIS_TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,

    /// PEM client certificate (chain) for Redis servers that require mutual
    /// TLS (`tls-auth-clients yes`), with REDIS_TLS_KEY_FILE.
    #[arg(long = "redis-tls-cert-file", env = "REDIS_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of REDIS_TLS_CERT_FILE.
    #[arg(long = "redis-tls-key-file", env = "REDIS_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
}

impl RedisArgs {
    /// The Redis connection settings, or `None` for the embedded store. With
    /// TLS files given, the returned settings carry the parsed certificates,
    /// so every connection made from them (commands, pub/sub) uses them.
    pub fn connection_info(&self) -> Result<Option<redis::ConnectionInfo>, String> {
        use redis::IntoConnectionInfo;
        let info = match (&self.url, &self.host) {
            (Some(url), _) => url
                .as_str()
                .into_connection_info()
                .map_err(|e| format!("REDIS_URL is not a Redis URL: {e}"))?,
            (None, Some(host)) => {
                let scheme = if self.tls { "rediss" } else { "redis" };
                format!("{scheme}://{host}:{}/{}", self.port, self.db)
                    .as_str()
                    .into_connection_info()
                    .map_err(|e| {
                        format!("REDIS_HOST/REDIS_PORT/REDIS_DB do not form a Redis address: {e}")
                    })?
            }
            (None, None) => {
                if self.has_tls_files() || self.username.is_some() {
                    return Err(
                        "REDIS_USERNAME and REDIS_TLS_* need REDIS_URL or REDIS_HOST".into(),
                    );
                }
                return Ok(None);
            }
        };
        let mut settings = info.redis_settings().clone();
        if settings.password().is_none()
            && let Some(password) = &self.password
        {
            settings = settings.set_password(password.clone());
        }
        if settings.username().is_none()
            && let Some(username) = &self.username
        {
            if settings.password().is_none() {
                return Err(
                    "REDIS_USERNAME needs a password (REDIS_PASSWORD or in REDIS_URL)".into(),
                );
            }
            settings = settings.set_username(username.clone());
        }
        let info = info.set_redis_settings(settings);
        if !self.has_tls_files() {
            return Ok(Some(info));
        }
        if !matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }) {
            return Err(
                "REDIS_TLS_CA_FILE/REDIS_TLS_CERT_FILE/REDIS_TLS_KEY_FILE need TLS: a rediss:// REDIS_URL or REDIS_TLS=true"
                    .into(),
            );
        }
        let read = |var: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("{var} {}: {e}", path.display()))
        };
        let root_cert = match &self.tls_ca_file {
            Some(path) => {
                let pem = read("REDIS_TLS_CA_FILE", path)?;
                // An empty trust store would fail later, as "unknown issuer".
                if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                    return Err(format!(
                        "REDIS_TLS_CA_FILE {}: no PEM certificate in it (TLS)",
                        path.display()
                    ));
                }
                Some(pem)
            }
            None => None,
        };
        let client_tls = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: read("REDIS_TLS_CERT_FILE", cert)?,
                client_key: read("REDIS_TLS_KEY_FILE", key)?,
            }),
            (None, None) => None,
            _ => {
                return Err("REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE go together".into());
            }
        };
        let client = redis::Client::build_with_tls(
            info,
            redis::TlsCertificates {
                client_tls,
                root_cert,
            },
        )
        .map_err(|e| format!("Redis TLS files: {e}"))?;
        Ok(Some(client.get_connection_info().clone()))
    }

    fn has_tls_files(&self) -> bool {
        self.tls_ca_file.is_some() || self.tls_cert_file.is_some() || self.tls_key_file.is_some()
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

impl ArchiveArgs {
    /// The archive's folder, or `None` when there is to be none.
    pub fn folder(&self, store: &StoreArgs, on_redis: bool) -> Option<PathBuf> {
        let wanted = match self.archive_mode {
            ArchiveMode::Off => false,
            ArchiveMode::On => true,
            ArchiveMode::Auto => !on_redis || self.archive_dir.is_some(),
        };
        wanted.then(|| {
            self.archive_dir
                .clone()
                .unwrap_or_else(|| store.data_dir.join("archive"))
        })
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

/// `a.b.c.d/n,…`; a bare address means just that address.
pub fn parse_cidrs(list: &str) -> Result<Vec<ipnet::IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| format!("TRUSTED_PROXIES: {item:?} is not a CIDR like 10.0.0.0/8"))
        })
        .collect()
}

/// Where a service listens: `LISTEN_ADDR`, or the prototype's `PORT`.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Listening")]
pub struct ListenArgs {
    /// Address to listen on, `host:port` [default: 127.0.0.1:8080 for
    /// server, 127.0.0.1:8081 for canvas-api]; `0.0.0.0:8080` in a
    /// container. Wins over PORT.
    #[arg(long = "listen-addr", visible_alias = "listen", env = "LISTEN_ADDR")]
    pub listen_addr: Option<SocketAddr>,

    /// The prototype's variable: listen on 0.0.0.0:PORT, every interface,
    /// as in a container. Used only when LISTEN_ADDR is unset.
    #[arg(id = "listen_port", long = "port", env = "PORT", value_name = "PORT")]
    pub port: Option<u16>,
}

impl ListenArgs {
    /// The address to bind: `LISTEN_ADDR`, else `0.0.0.0:PORT`, else
    /// loopback on `default_port` (nothing is exposed by accident).
    pub fn addr(&self, default_port: u16) -> SocketAddr {
        match (self.listen_addr, self.port) {
            (Some(addr), _) => addr,
            (None, Some(port)) => SocketAddr::from(([0, 0, 0, 0], port)),
            (None, None) => SocketAddr::from(([127, 0, 0, 1], default_port)),
        }
    }

    /// The variable that decided [`ListenArgs::addr`], for error messages.
    pub fn source(&self) -> &'static str {
        match (self.listen_addr, self.port) {
            (None, Some(_)) => "PORT",
            _ => "LISTEN_ADDR",
        }
    }
}

/// Limits every HTTP route shares, in both services.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "HTTP")]
pub struct HttpArgs {
    /// Seconds any HTTP request may take to be answered (408 past it); the
    /// SSE stream and WebSockets, once answered, are not limited.
    #[arg(long = "request-timeout-secs", env = "REQUEST_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_secs: u64,

    /// Comma-separated origins (`https://a.example,http://localhost:3000`)
    /// whose pages may call `/api` from the browser. Unset: same origin
    /// only (no CORS headers at all).
    #[arg(long = "cors-allowed-origins", env = "CORS_ALLOWED_ORIGINS")]
    pub cors_allowed_origins: Option<String>,

    /// Seconds a client may take to send a request's headers; a connection
    /// that has not finished them by then (or that sits idle between
    /// keep-alive requests that long) is closed. Against slowloris. Keep it
    /// above 5 on canvas-api: gateways reuse an idle connection for 5 s.
    #[arg(long = "header-read-timeout-secs", env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout_secs: u64,

    /// Connections one client IP (IPv6: one /64) may hold open before it
    /// has sent a whole first request; past it a new one is closed at once.
    /// Peers in TRUSTED_PROXIES are exempt. 0: no limit.
    #[arg(long = "max-pending-connections-per-ip", env = "MAX_PENDING_CONNECTIONS_PER_IP", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub max_pending_connections_per_ip: u32,
}

impl HttpArgs {
    pub fn validate(&self) -> Result<(), String> {
        self.cors_origins().map(drop)
    }

    /// The parsed `CORS_ALLOWED_ORIGINS` (empty: CORS off).
    pub fn cors_origins(&self) -> Result<Vec<String>, String> {
        let list = self.cors_allowed_origins.as_deref().unwrap_or("");
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|origin| {
                let (scheme, rest) = origin.split_once("://").unwrap_or(("", ""));
                let host_ok = !rest.is_empty()
                    && rest.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                    });
                if matches!(scheme, "http" | "https") && host_ok {
                    Ok(origin.to_owned())
                } else {
                    Err(format!(
                        "CORS_ALLOWED_ORIGINS: {origin:?} is not an origin like https://example.com or http://localhost:3000 (no path)"
                    ))
                }
            })
            .collect()
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
        assert_eq!(
            args(ArchiveMode::Auto, None).folder(&store, false),
            Some(PathBuf::from("d/archive"))
        );
        assert_eq!(args(ArchiveMode::Auto, None).folder(&store, true), None);
        assert_eq!(
            args(ArchiveMode::Auto, Some("a")).folder(&store, true),
            Some(PathBuf::from("a"))
        );
        assert_eq!(
            args(ArchiveMode::On, None).folder(&store, true),
            Some(PathBuf::from("d/archive"))
        );
        assert_eq!(
            args(ArchiveMode::Off, Some("a")).folder(&store, false),
            None
        );
    }

    #[test]
    fn listen_addr_wins_over_port_and_port_means_every_interface() {
        let args = |listen_addr: Option<&str>, port: Option<u16>| ListenArgs {
            listen_addr: listen_addr.map(|a| a.parse().unwrap()),
            port,
        };
        assert_eq!(
            args(None, None).addr(8080),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(
            args(None, Some(3002)).addr(8080),
            "0.0.0.0:3002".parse().unwrap()
        );
        assert_eq!(args(None, Some(3002)).source(), "PORT");
        let both = args(Some("127.0.0.2:9000"), Some(3002));
        assert_eq!(both.addr(8080), "127.0.0.2:9000".parse().unwrap());
        assert_eq!(both.source(), "LISTEN_ADDR");
    }

    #[test]
    fn trusted_proxies_parse_or_name_the_variable() {
        let nets = parse_cidrs("10.0.0.0/8, 127.0.0.1 ,::1/128").unwrap();
        assert_eq!(nets.len(), 3);
        assert!(nets[1].contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap()));
        assert!(
            parse_cidrs("10.0.0.0/33")
                .unwrap_err()
                .contains("TRUSTED_PROXIES")
        );
        assert!(parse_cidrs("nope").is_err());
        assert!(parse_cidrs("").unwrap().is_empty());
    }

    #[test]
    fn cors_origins_are_checked() {
        let http = |v: &str| HttpArgs {
            request_timeout_secs: 1,
            cors_allowed_origins: Some(v.into()),
            header_read_timeout_secs: 10,
            max_pending_connections_per_ip: 256,
        };
        assert_eq!(
            http("https://a.example, http://localhost:3000")
                .cors_origins()
                .unwrap(),
            vec!["https://a.example", "http://localhost:3000"]
        );
        for bad in ["a.example", "https://a.example/path", "ftp://x", "https://"] {
            assert!(
                http(bad)
                    .cors_origins()
                    .unwrap_err()
                    .contains("CORS_ALLOWED_ORIGINS"),
                "{bad}"
            );
        }
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

    fn args(url: Option<&str>, host: Option<&str>, password: Option<&str>) -> RedisArgs {
        RedisArgs {
            url: url.map(Into::into),
            host: host.map(Into::into),
            port: 6380,
            password: password.map(Into::into),
            username: None,
            db: 2,
            tls: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }

    #[test]
    fn no_redis_means_the_embedded_store() {
        assert!(args(None, None, None).connection_info().unwrap().is_none());
    }

    #[test]
    fn host_port_db_and_password_form_an_address() {
        let info = args(None, Some("redis.local"), Some("s3cret"))
            .connection_info()
            .unwrap()
            .unwrap();
        assert_eq!(info.addr().to_string(), "redis.local:6380");
        assert_eq!(info.redis_settings().db(), 2);
        assert_eq!(info.redis_settings().password(), Some("s3cret"));
    }

    #[test]
    fn a_password_joins_a_url_without_one_but_never_overrides_it() {
        let info = args(Some("redis://h:1/0"), None, Some("extra"))
            .connection_info()
            .unwrap()
            .unwrap();
        assert_eq!(info.redis_settings().password(), Some("extra"));
        let info = args(Some("redis://:inurl@h:1/0"), None, Some("extra"))
            .connection_info()
            .unwrap()
            .unwrap();
        assert_eq!(info.redis_settings().password(), Some("inurl"));
    }

    #[test]
    fn an_acl_user_joins_the_password() {
        let mut a = args(None, Some("h"), Some("pw"));
        a.username = Some("canvas".into());
        let info = a.connection_info().unwrap().unwrap();
        assert_eq!(info.redis_settings().username(), Some("canvas"));
        assert_eq!(info.redis_settings().password(), Some("pw"));
        let mut a = args(None, Some("h"), None);
        a.username = Some("canvas".into());
        assert!(a.connection_info().unwrap_err().contains("REDIS_USERNAME"));
    }

    #[test]
    fn tls_files_need_a_tls_address_and_readable_pem() {
        let mut a = args(Some("redis://h:1/0"), None, None);
        a.tls_ca_file = Some("ca.pem".into());
        assert!(a.connection_info().unwrap_err().contains("rediss://"));

        let mut a = args(None, Some("h"), None);
        a.tls = true;
        assert!(matches!(
            a.connection_info().unwrap().unwrap().addr(),
            redis::ConnectionAddr::TcpTls { .. }
        ));
        a.tls_ca_file = Some("/nonexistent/ca.pem".into());
        assert!(
            a.connection_info()
                .unwrap_err()
                .contains("REDIS_TLS_CA_FILE")
        );

        let dir = std::env::temp_dir().join(format!("canvas-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        a.tls_ca_file = Some(garbage);
        let err = a.connection_info().unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("TLS"), "{err}");

        let mut a = args(Some("rediss://h:1/0"), None, None);
        a.tls_cert_file = Some("c.pem".into());
        assert!(a.connection_info().unwrap_err().contains("go together"));
    }

    #[test]
    fn a_bad_url_names_the_variable() {
        let err = args(Some("http://x"), None, None)
            .connection_info()
            .unwrap_err();
        assert!(err.contains("REDIS_URL"), "{err}");
    }

    #[test]
    fn an_oversized_board_a_partial_pool_and_a_short_token_are_refused() {
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
        assert!(canvas.validate().unwrap_err().contains("CANVAS_WIDTH"));
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
