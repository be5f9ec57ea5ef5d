//! Where the load goes: the gateway WebSocket URLs, the HTTP base for `/api`
//! and `/metrics`, and the safety rule that keeps load on this machine unless
//! the user says otherwise.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, bail};
use protocol::messages::{BATCH_QUERY_PARAM, PROTOCOL_QUERY_PARAM};
use reqwest::Url;
use reqwest::header::HeaderValue;

use crate::frames::Framing;

/// One gateway: its `ws://` URL and the socket addresses its host resolves
/// to (resolved once, so ten thousand connections do not mean ten thousand
/// lookups).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: Url,
    pub addrs: Vec<SocketAddr>,
    pub framing: Framing,
}

impl Endpoint {
    /// The URL a client named `username` connects to.
    pub fn url_for(&self, username: &str) -> Url {
        let mut url = self.url.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("username", username);
            match self.framing {
                Framing::Batched => {
                    query.append_pair(BATCH_QUERY_PARAM, "1");
                }
                Framing::Binary => {
                    query.append_pair(PROTOCOL_QUERY_PARAM, "2");
                }
                Framing::Single => {}
            }
        }
        url
    }

    /// An address of the gateway in the same family as `source`, so a
    /// socket bound to an IPv4 source never tries an IPv6 destination.
    pub fn addr_for(&self, source: Option<IpAddr>) -> Option<SocketAddr> {
        match source {
            None => self.addrs.first().copied(),
            Some(src) => self
                .addrs
                .iter()
                .copied()
                .find(|a| a.is_ipv4() == src.is_ipv4()),
        }
    }
}

/// Every gateway to load, and the HTTP base URL.
#[derive(Debug, Clone)]
pub struct Targets {
    pub endpoints: Vec<Endpoint>,
    pub api: Url,
}

impl Targets {
    /// Parses and checks the URLs, then resolves the gateways' hosts.
    pub async fn resolve(
        urls: &[String],
        api: Option<&str>,
        allow_remote: bool,
        framing: Framing,
    ) -> anyhow::Result<Targets> {
        let ws_urls = parse_ws_urls(urls)?;
        let api = match api {
            Some(api) => parse_api_url(api)?,
            None => api_base_from(&ws_urls[0]),
        };
        if !allow_remote {
            for url in ws_urls.iter().chain(std::iter::once(&api)) {
                ensure_loopback(url)?;
            }
        }
        let mut endpoints = Vec::with_capacity(ws_urls.len());
        for url in ws_urls {
            let addrs = lookup(&url).await?;
            endpoints.push(Endpoint {
                url,
                addrs,
                framing,
            });
        }
        Ok(Targets { endpoints, api })
    }

    /// The gateway for the `i`-th client: clients are spread round-robin.
    pub fn endpoint(&self, i: usize) -> &Endpoint {
        &self.endpoints[i % self.endpoints.len()]
    }

    /// `base` + `path`, e.g. `/api/canvas.bin`.
    pub fn api_url(&self, path: &str) -> Url {
        let mut url = self.api.clone();
        url.set_path(path);
        url
    }
}

/// Parses `--url` values (each may itself be a comma-separated list).
fn parse_ws_urls(urls: &[String]) -> anyhow::Result<Vec<Url>> {
    let mut out = Vec::new();
    for raw in urls.iter().flat_map(|u| u.split(',')) {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let url = Url::parse(raw).with_context(|| format!("--url {raw:?} is not a URL"))?;
        match url.scheme() {
            "ws" => {}
            "wss" => bail!("--url {raw}: wss:// is not supported (this tool is built without TLS)"),
            other => bail!("--url {raw}: the scheme must be ws://, not {other}://"),
        }
        if url.host().is_none() {
            bail!("--url {raw} has no host");
        }
        // A URL that tungstenite's request builder would refuse is refused
        // here, once, rather than on every connection.
        HeaderValue::from_str(url.as_str())
            .with_context(|| format!("--url {raw} has characters a request cannot carry"))?;
        out.push(url);
    }
    if out.is_empty() {
        bail!("--url names no gateway");
    }
    Ok(out)
}

fn parse_api_url(raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw).with_context(|| format!("--api {raw:?} is not a URL"))?;
    match url.scheme() {
        "http" => Ok(url),
        "https" => bail!("--api {raw}: https:// is not supported (this tool is built without TLS)"),
        other => bail!("--api {raw}: the scheme must be http://, not {other}://"),
    }
}

/// `ws://host:port/ws?x` → `http://host:port`: the gateway serves `/api`
/// and `/metrics` itself in every deployment mode.
pub fn api_base_from(ws: &Url) -> Url {
    let mut url = ws.clone();
    url.set_scheme("http")
        .expect("ws and http are both special schemes");
    url.set_path("");
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// Refuses a host that is not this machine: a load test pointed at a
/// production gateway by mistake is an outage.
pub fn ensure_loopback(url: &Url) -> anyhow::Result<()> {
    let loopback = url.host_str().is_some_and(is_loopback_host);
    if !loopback {
        bail!(
            "refusing to load {url}: its host is not a loopback address \
             (127.0.0.0/8, localhost, ::1); pass --allow-remote if you mean it"
        );
    }
    Ok(())
}

async fn lookup(url: &Url) -> anyhow::Result<Vec<SocketAddr>> {
    let host = url.host_str().expect("checked when parsed");
    // `host_str` keeps IPv6 brackets; the resolver wants them off.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot connect to {url}: cannot resolve {host}"))?
        .collect();
    if addrs.is_empty() {
        bail!("cannot connect to {url}: {host} resolves to no address");
    }
    Ok(addrs)
}

/// `localhost`, or an IP address (IPv6 in brackets, as URLs write it) on
/// the loopback interface.
fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comma_separated_and_repeated_urls_are_all_taken() {
        let urls = parse_ws_urls(&[
            "ws://127.0.0.1:1/ws,ws://127.0.0.2:2/ws".into(),
            "ws://localhost:3/ws".into(),
        ])
        .unwrap();
        assert_eq!(urls.len(), 3);
        assert_eq!(urls[2].port(), Some(3));
    }

    #[test]
    fn api_base_drops_the_path_and_query() {
        let ws = Url::parse("ws://127.0.0.1:8080/ws?username=a").unwrap();
        assert_eq!(api_base_from(&ws).as_str(), "http://127.0.0.1:8080/");
    }

    #[test]
    fn only_loopback_hosts_pass_without_allow_remote() {
        for ok in [
            "ws://127.0.0.1/ws",
            "ws://127.9.9.9/ws",
            "ws://localhost/ws",
            "ws://[::1]/ws",
        ] {
            assert!(ensure_loopback(&Url::parse(ok).unwrap()).is_ok(), "{ok}");
        }
        for bad in [
            "ws://10.0.0.1/ws",
            "ws://example.com/ws",
            "ws://[::2]/ws",
            "ws://0.0.0.0/ws",
        ] {
            assert!(ensure_loopback(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }

    #[test]
    fn other_schemes_are_refused() {
        assert!(parse_ws_urls(&["http://127.0.0.1/ws".into()]).is_err());
        assert!(parse_ws_urls(&["wss://127.0.0.1/ws".into()]).is_err());
        assert!(parse_ws_urls(&[",".into()]).is_err());
    }

    #[test]
    fn username_and_framing_are_added_to_the_query() {
        let mut e = Endpoint {
            url: Url::parse("ws://127.0.0.1:1/ws").unwrap(),
            addrs: vec![],
            framing: Framing::Batched,
        };
        assert_eq!(
            e.url_for("lt-w-0").as_str(),
            "ws://127.0.0.1:1/ws?username=lt-w-0&batch=1"
        );
        e.framing = Framing::Single;
        assert_eq!(
            e.url_for("lt-w-0").as_str(),
            "ws://127.0.0.1:1/ws?username=lt-w-0"
        );
        e.framing = Framing::Binary;
        assert_eq!(
            e.url_for("lt-w-0").as_str(),
            "ws://127.0.0.1:1/ws?username=lt-w-0&protocol=2"
        );
    }
}
