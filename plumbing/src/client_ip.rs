//! Who the client is, by IP: the socket's peer, or — only when that peer is
//! a configured trusted proxy — the address that proxy saw. Every per-IP
//! limit (sessions, connections, messages, placements) asks here, so they
//! all agree on who one client is, and counts it under [`limit_key`], so
//! they all agree on how much of the address space one client is.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's IP. Without `trusted` proxies, or when `peer` is not one,
/// `X-Forwarded-For` is ignored (anyone can send it). Otherwise the list is
/// read from the right (each proxy appends the address it saw) and the
/// first entry that is not itself a trusted proxy is the client; an entry
/// that is not an address stops the walk at the last hop that was trusted.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut last_trusted = peer;
    // Several X-Forwarded-For headers are one list, in order.
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for entry in entries.iter().rev() {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            return last_trusted;
        };
        let ip = ip.to_canonical();
        if !is_trusted(&ip) {
            return ip;
        }
        last_trusted = ip;
    }
    last_trusted
}

/// Notices requests that carry `X-Forwarded-For` from a peer that is not
/// in `TRUSTED_PROXIES`: the header is then ignored, so if that peer is a
/// proxy, every client behind it shares one per-IP budget (one person can
/// use up everyone's sessions). Counted for `/metrics`, and logged as a
/// warning the first time, so the misconfiguration is loud.
#[derive(Debug, Default)]
pub struct ForwardedForWatch {
    untrusted: AtomicU64,
}

impl ForwardedForWatch {
    /// Looks at one request from `peer`.
    pub fn observe(&self, peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) {
        let peer = peer.to_canonical();
        if !headers.contains_key("x-forwarded-for") || trusted.iter().any(|n| n.contains(&peer)) {
            return;
        }
        if self.untrusted.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                %peer,
                "a request came with X-Forwarded-For from {peer}, which is not in TRUSTED_PROXIES: \
                 the header is ignored, so every client behind that proxy shares one per-IP budget \
                 (sessions, connections, pools); list the proxies in TRUSTED_PROXIES \
                 (counted in http_untrusted_forwarded_for_total)"
            );
        }
    }

    /// Requests seen with an untrusted `X-Forwarded-For`.
    pub fn untrusted(&self) -> u64 {
        self.untrusted.load(Ordering::Relaxed)
    }

    /// The counter, in Prometheus text.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "# HELP http_untrusted_forwarded_for_total Requests with X-Forwarded-For from a peer not in TRUSTED_PROXIES (the header was ignored).\n\
             # TYPE http_untrusted_forwarded_for_total counter\n\
             http_untrusted_forwarded_for_total {}",
            self.untrusted()
        );
    }
}

/// The address a per-IP limit counts `ip` under: an IPv4 address alone
/// (IPv4-mapped IPv6 unwrapped), an IPv6 address by its /64, since one host
/// usually holds a whole /64 and could otherwise open a fresh budget per
/// address.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(s: &str) -> Vec<IpNet> {
        crate::config::parse_cidrs(s).unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let h = headers(&["1.2.3.4"]);
        assert_eq!(client_ip(ip("10.0.0.5"), &h, &[]), ip("10.0.0.5"));
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let h = headers(&["1.2.3.4"]);
        assert_eq!(
            client_ip(ip("192.168.1.9"), &h, &nets("10.0.0.0/8")),
            ip("192.168.1.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        // The client spoofed 6.6.6.6; the edge proxy appended the real one.
        let h = headers(&["6.6.6.6, 1.2.3.4", "10.0.0.7"]);
        assert_eq!(
            client_ip(ip("10.0.0.5"), &h, &nets("10.0.0.0/8")),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn garbage_stops_at_the_last_trusted_hop() {
        let h = headers(&["1.2.3.4, junk, 10.0.0.7"]);
        assert_eq!(
            client_ip(ip("10.0.0.5"), &h, &nets("10.0.0.0/8")),
            ip("10.0.0.7")
        );
        // No header at all: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.5"), &HeaderMap::new(), &nets("10.0.0.0/8")),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn a_v6_host_is_one_key_per_64_and_mapped_v4_is_v4() {
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1")),
            limit_key(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_eq!(limit_key(ip("2001:db8:1:2::5")), ip("2001:db8:1:2::"));
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(limit_key(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(limit_key(ip("1.2.3.4")), ip("1.2.3.4"));
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        assert_eq!(
            client_ip(ip("::ffff:1.2.3.4"), &HeaderMap::new(), &[]),
            ip("1.2.3.4")
        );
    }
}
