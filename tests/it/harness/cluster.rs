//! The local multi-pod cluster of `scripts/cluster.sh` (Redis, two
//! canvas-api, three gateways, nginx in front), started in a fresh folder for
//! one test and stopped when dropped. Tests reach it the way players do,
//! through the load balancer's one URL, and signal its processes by pid.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::process::binary;
use super::redis_server::free_port;
use super::{TempDir, temp_dir};

pub struct Cluster {
    /// `cluster.env`: URL, WS_URL, REDIS_URL, GATEWAY_<i>_URL, ...
    env: HashMap<String, String>,
    // Last: the folder outlives the processes stopped in `drop`.
    dir: TempDir,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .join("scripts/cluster.sh")
}

impl Cluster {
    /// `scripts/cluster.sh up` with the debug binaries the suite runs, and
    /// `extra` environment for every service.
    pub async fn up(extra: &[(&str, &str)]) -> Cluster {
        let dir = temp_dir("cluster");
        let bin_dir = binary("server").parent().expect("binary folder").to_owned();
        binary("canvas-api");
        // The load balancer's port is picked free, then bound by nginx: on
        // the rare race with another process, try another.
        for _ in 0..5 {
            let port = free_port();
            let out = tokio::process::Command::new("bash")
                .arg(script())
                .arg("up")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("RUST_LOG", "info")
                .env("CLUSTER_DIR", &*dir)
                .env("CLUSTER_PORT", port.to_string())
                .env("CLUSTER_BIN_DIR", &bin_dir)
                .envs(extra.iter().copied())
                .stdin(Stdio::null())
                .output()
                .await
                .expect("run scripts/cluster.sh");
            if out.status.success() {
                let text = std::fs::read_to_string(dir.join("cluster.env")).expect("cluster.env");
                let env = text
                    .lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                return Cluster { env, dir };
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            if !stderr.contains("is taken") {
                panic!(
                    "scripts/cluster.sh up failed:\n{}{stderr}",
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        }
        panic!("no free port for the cluster's load balancer");
    }

    fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from cluster.env"))
    }

    /// The load balancer: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.get("URL").to_owned()
    }

    /// WebSockets through the load balancer.
    pub fn ws(&self) -> String {
        self.get("WS_URL").to_owned()
    }

    /// Gateway `i` (from 1) directly, not through the load balancer.
    pub fn gateway_url(&self, i: usize) -> String {
        self.get(&format!("GATEWAY_{i}_URL")).to_owned()
    }

    pub fn redis_url(&self) -> String {
        self.get("REDIS_URL").to_owned()
    }

    pub fn pid(&self, process: &str) -> u32 {
        let path = self.dir.join("pids").join(format!("{process}.pid"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .parse()
            .expect("pid file holds a pid")
    }

    pub fn log(&self, process: &str) -> String {
        std::fs::read_to_string(self.dir.join("logs").join(format!("{process}.log")))
            .unwrap_or_default()
    }

    /// Sends `signal` (`TERM`, `KILL`) to `process` and waits until it is
    /// gone, at most `limit`.
    pub async fn stop(&self, process: &str, signal: &str, limit: Duration) {
        let pid = self.pid(process);
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {process} ({pid}) failed");
        // Not our child (the script started it), so there is no wait():
        // watch /proc until it is gone or a zombie.
        let deadline = tokio::time::Instant::now() + limit;
        while is_running(pid) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{process} still runs {limit:?} after SIGKILL/SIGTERM:\n{}",
                self.log(process)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in [
                "gateway-1",
                "gateway-2",
                "gateway-3",
                "canvas-api-1",
                "nginx",
            ] {
                let log = self.log(name);
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                eprintln!("---- end of the log of {name} ----");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        let _ = std::process::Command::new("bash")
            .arg(script())
            .arg("down")
            .env("CLUSTER_DIR", &*self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
    }
}
