//! This machine's limits on client connections: the open-file limit (every
//! connection is a file descriptor) and the ephemeral port range (every
//! connection from one source address to one gateway takes a port).
//!
//! Raising `RLIMIT_NOFILE` needs the `setrlimit` system call, and this crate
//! neither links `libc` nor allows `unsafe`; `prlimit(1)` from util-linux
//! makes the same call on our behalf, so it is used when present.

use std::process::Command;

/// The soft and hard `RLIMIT_NOFILE` of this process.
pub fn open_files() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files(&limits)
}

fn parse_open_files(limits: &str) -> Option<(u64, u64)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut words = line["Max open files".len()..].split_whitespace();
    let parse = |w: Option<&str>| match w? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    Some((parse(words.next())?, parse(words.next())?))
}

/// Makes room for `needed` descriptors if the soft limit is lower, raising
/// it to the hard limit. Returns a warning for the user when the limit stays
/// too low.
pub fn ensure_open_files(needed: u64) -> Option<String> {
    let (soft, hard) = open_files()?;
    if soft >= needed {
        return None;
    }
    if hard > soft {
        let pid = std::process::id().to_string();
        let raised = Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={hard}:{hard}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if raised && open_files().is_some_and(|(s, _)| s >= needed) {
            return None;
        }
    }
    let (soft, hard) = open_files().unwrap_or((soft, hard));
    Some(format!(
        "the open-file limit is {soft} (hard {hard}) but about {needed} are needed: \
         connections past it will fail with \"Too many open files\"; \
         raise it with `ulimit -n {needed}` (as root if above the hard limit)"
    ))
}

/// How many ports the kernel hands out for outgoing connections.
pub fn ephemeral_ports() -> Option<u64> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut words = range.split_whitespace();
    let low: u64 = words.next()?.parse().ok()?;
    let high: u64 = words.next()?.parse().ok()?;
    Some(high.saturating_sub(low) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_files_line_is_parsed() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             127473               127473               processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_open_files(limits), Some((1024, 524_288)));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_open_files(unlimited), Some((u64::MAX, u64::MAX)));
    }

    #[test]
    fn this_process_has_limits() {
        let (soft, hard) = open_files().unwrap();
        assert!(soft <= hard);
        assert!(ephemeral_ports().unwrap() > 1000);
    }
}
