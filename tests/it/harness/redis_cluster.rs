//! A real Redis Cluster on loopback: three masters (no replicas) on free
//! ports, each with its cluster bus on port + 10000, joined with
//! `redis-cli --cluster create`, killed when dropped. Each node keeps an
//! append-only file synced on every write, so a node killed and restarted
//! ([`RedisCluster::restart`]) comes back with every write it answered.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::TempDir;
use super::redis_server::free_port;

/// How long the cluster may take to agree that every slot is served.
const FORM_WITHIN: Duration = Duration::from_secs(15);

pub struct RedisCluster {
    pub ports: Vec<u16>,
    nodes: Vec<Option<Child>>,
    dir: TempDir,
}

/// Starts one node; its data and `nodes.conf` live in `dir/<port>`.
fn spawn_node(dir: &std::path::Path, port: u16) -> Child {
    let node_dir = dir.join(port.to_string());
    std::fs::create_dir_all(&node_dir).expect("node dir");
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
        .args(["--save", "", "--appendonly", "yes", "--appendfsync", "always"])
        .arg("--dir")
        .arg(&node_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run redis-server ({e}); install it with `apt-get install redis-server` (scripts/test.sh does)")
        })
}

impl RedisCluster {
    /// Starts `masters` nodes and joins them into one cluster.
    pub async fn start(masters: usize) -> RedisCluster {
        let dir = super::temp_dir("redis-cluster");
        let ports: Vec<u16> = (0..masters).map(|_| bus_free_port()).collect();
        let nodes: Vec<Option<Child>> = ports.iter().map(|&p| Some(spawn_node(&dir, p))).collect();
        for &port in &ports {
            wait_answering(port).await;
        }
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .await
            .expect("redis-cli (it comes with redis-server)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for &port in &ports {
            wait_cluster_ok(port).await;
        }
        RedisCluster { ports, nodes, dir }
    }

    /// Kills node `i` (SIGKILL, by the child handle this harness holds).
    pub async fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].take() {
            child.kill().await.expect("kill a cluster node");
        }
    }

    /// Starts node `i` again on its port and data, and waits until every
    /// node says the cluster is whole again.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i).await;
        self.nodes[i] = Some(spawn_node(&self.dir, self.ports[i]));
        wait_answering(self.ports[i]).await;
        for &port in &self.ports {
            wait_cluster_ok(port).await;
        }
    }

    /// Every node's URL, what a cluster client starts from.
    pub fn urls(&self) -> Vec<String> {
        (0..self.ports.len()).map(|i| self.url(i)).collect()
    }

    /// The URL of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("redis://127.0.0.1:{}", self.ports[i])
    }
}

/// A free port whose cluster bus port (+10000) is free too.
fn bus_free_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

async fn wait_answering(port: u16) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("url");
    let deadline = tokio::time::Instant::now() + FORM_WITHIN;
    while tokio::time::Instant::now() < deadline {
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await
            && redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("cluster node on port {port} never answered");
}

/// Polls `CLUSTER INFO` (the cluster announces nothing when it is formed).
async fn wait_cluster_ok(port: u16) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("cluster node");
    let deadline = tokio::time::Instant::now() + FORM_WITHIN;
    while tokio::time::Instant::now() < deadline {
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query_async(&mut conn)
            .await
            .expect("CLUSTER INFO");
        if info.lines().any(|l| l.trim() == "cluster_state:ok") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the cluster never reached cluster_state:ok on port {port}");
}
