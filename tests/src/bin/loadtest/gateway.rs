//! Looking at the gateway from outside: its resident memory (from
//! `/proc/<pid>/status`, when it runs on this machine) and a gauge from its
//! `/metrics`.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Url;

/// The process's resident set size in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).with_context(|| format!("--pid {pid}: reading {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("--pid {pid}: no VmRSS line in {path}"))
}

/// `VmRSS:\t  123456 kB` → bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value * 1024),
        Some(_) => None,
    }
}

/// Checks `--pid` names a live process before the run starts, so a typo is
/// not found after the ramp.
pub fn check_pid(pid: u32) -> anyhow::Result<()> {
    rss_bytes(pid).map(drop)
}

/// Reads the unlabelled sample `name` from a Prometheus text endpoint;
/// `None` when the endpoint has no such sample.
pub async fn scrape(http: &reqwest::Client, url: Url, name: &str) -> anyhow::Result<Option<f64>> {
    let response = http
        .get(url.clone())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        bail!("GET {url}: HTTP {}", response.status());
    }
    let text = response
        .text()
        .await
        .with_context(|| format!("GET {url}"))?;
    Ok(parse_metric(&text, name))
}

fn parse_metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next()? == name).then(|| parts.next()?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tserver\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn the_named_gauge_is_found_and_its_prefixes_are_not() {
        let text = "# HELP gateway_connections Open WebSocket connections.\n\
                    # TYPE gateway_connections gauge\n\
                    gateway_connections_total 40\n\
                    gateway_connections 12\n";
        assert_eq!(parse_metric(text, "gateway_connections"), Some(12.0));
        assert_eq!(parse_metric(text, "gateway_missing"), None);
    }

    #[test]
    fn our_own_process_has_a_resident_size() {
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
    }
}
