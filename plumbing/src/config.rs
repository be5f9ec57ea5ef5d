//! Options every service shares that are not about the board: where to
//! listen ([`ListenArgs`]), the limits of every HTTP route
//! ([`HttpArgs`]), and the proxies whose `X-Forwarded-For` is believed
//! ([`parse_cidrs`]).

use std::net::SocketAddr;

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
}
