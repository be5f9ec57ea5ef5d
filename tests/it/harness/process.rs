//! Real service processes. Each is started with a clean environment, on
//! `127.0.0.1:0`, and found by the `listening on ADDR` line it logs. Its log
//! is kept and printed when a test fails, and it is killed when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use super::RedisServer;

/// The path of a workspace binary, built by `cargo build --workspace --bins`
/// (which the README's test command runs before the tests).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/it-<hash> -> target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

pub struct Process {
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `bin` with exactly `env` (plus PATH) and waits until it listens.
    pub async fn spawn(bin: &str, env: &[(&str, String)]) -> Process {
        match Self::start_listening(bin, env).await {
            Ok(p) => p,
            Err(log) => panic!("{bin} did not start listening:\n{log}"),
        }
    }

    /// Like [`Process::spawn`], but `None` when the process exits first
    /// (e.g. its fixed address is still taken).
    pub async fn try_spawn(bin: &str, env: &[(&str, String)]) -> Option<Process> {
        Self::start_listening(bin, env).await.ok()
    }

    async fn start_listening(bin: &str, env: &[(&str, String)]) -> Result<Process, String> {
        let Started {
            mut child,
            log,
            listening,
            reader,
        } = start(bin, env);
        let addr = tokio::select! {
            addr = listening => addr.ok(),
            _ = child.wait() => None,
            () = tokio::time::sleep(Duration::from_secs(30)) => None,
        };
        let Some(addr) = addr else {
            let _ = child.start_kill();
            let _ = child.wait().await;
            drained(reader).await;
            return Err(log.lock().unwrap().join("\n"));
        };
        Ok(Process {
            name: bin.to_owned(),
            addr,
            child,
            log,
        })
    }

    /// Runs `bin` expecting it to fail at start-up; returns its exit status
    /// and log.
    pub async fn spawn_expecting_failure(
        bin: &str,
        env: &[(&str, String)],
    ) -> (ExitStatus, String) {
        let Started {
            mut child,
            log,
            reader,
            ..
        } = start(bin, env);
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .unwrap_or_else(|_| panic!("{bin} kept running:\n{}", log.lock().unwrap().join("\n")))
            .expect("wait");
        drained(reader).await;
        let text = log.lock().unwrap().join("\n");
        (status, text)
    }

    pub fn http(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGTERM, then wait for the exit.
    pub async fn terminate(mut self) -> ExitStatus {
        signal(self.pid(), "TERM");
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(status) => status.expect("wait"),
            Err(_) => panic!("{} ignored SIGTERM:\n{}", self.name, self.log()),
        }
    }

    /// SIGKILL, keeping the (dead) process's place.
    pub async fn kill9_in_place(&mut self) {
        signal(self.pid(), "KILL");
        let _ = self.child.wait().await;
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub async fn kill9(mut self) {
        signal(self.pid(), "KILL");
        let _ = self.child.wait().await;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- log of {} ({}) ----\n{}",
                self.name,
                self.addr,
                self.log()
            );
        }
        let _ = self.child.start_kill();
    }
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// A started process: its log fills as it writes, and `listening` fires
/// with the address it logs.
struct Started {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    listening: oneshot::Receiver<SocketAddr>,
    /// Ends when the process's stderr closes: the whole log is in.
    reader: tokio::task::JoinHandle<()>,
}

/// Waits until an exited process's log is read to its end.
async fn drained(reader: tokio::task::JoinHandle<()>) {
    let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
}

fn start(bin: &str, env: &[(&str, String)]) -> Started {
    let mut cmd = Command::new(binary(bin));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        // Tests write over HTTP in bulk from one address; the tests of this
        // limit set it.
        .env("HTTP_PLACEMENTS_PER_SEC_PER_IP", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let stderr = child.stderr.take().expect("piped");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = oneshot::channel();
    let sink = log.clone();
    let reader = tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(rest) = line.split("listening on ").nth(1)
                && let (Some(tx), Ok(addr)) = (tx.take(), rest.trim().parse::<SocketAddr>())
            {
                let _ = tx.send(addr);
            }
            sink.lock().unwrap().push(line);
        }
    });
    Started {
        child,
        log,
        listening: rx,
        reader,
    }
}

/// Resident memory of a process, in bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// The single-process default on its own fresh `DATA_DIR`, with
/// `COOLDOWN_MS=0` and `extra` environment. Keep the folder until the
/// process is gone (the tuple drops the process first).
pub async fn single_process(name: &str, extra: &[(&str, &str)]) -> (Process, super::TempDir) {
    let dir = super::temp_dir(name);
    let mut env = vec![
        ("DATA_DIR", dir.display().to_string()),
        ("COOLDOWN_MS", "0".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (leak(k), v.to_string())));
    (Process::spawn("server", &env).await, dir)
}

/// The Kubernetes shape on one machine: Redis, one canvas-api, and gateways
/// that call it.
pub struct Stack {
    pub redis: RedisServer,
    pub api: Process,
    pub gateways: Vec<Process>,
}

impl Stack {
    /// Starts Redis, a canvas-api and `gateways` gateways, with `extra`
    /// environment for all services (e.g. `COOLDOWN_MS`).
    pub async fn start(gateways: usize, extra: &[(&str, &str)]) -> Stack {
        Self::start_on(RedisServer::start().await, gateways, extra).await
    }

    /// Like [`Stack::start`], on a Redis of the caller's.
    pub async fn start_on(redis: RedisServer, gateways: usize, extra: &[(&str, &str)]) -> Stack {
        let mut env: Vec<(&str, String)> = vec![("REDIS_URL", redis.url())];
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        let api = Process::spawn("canvas-api", &env).await;
        let mut gateway_env = env.clone();
        gateway_env.push(("CANVAS_API_URL", api.http()));
        let mut list = Vec::new();
        for i in 0..gateways {
            let mut e = gateway_env.clone();
            e.push(("POD_ID", format!("gw-{i}")));
            list.push(Process::spawn("server", &e).await);
        }
        for g in &list {
            super::http::wait_ready(&g.http()).await;
        }
        Stack {
            redis,
            api,
            gateways: list,
        }
    }

    /// Environment that starts one more gateway of this stack.
    pub fn gateway_env(&self, pod_id: &str, extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("REDIS_URL", self.redis.url()),
            ("CANVAS_API_URL", self.api.http()),
            ("POD_ID", pod_id.to_owned()),
        ];
        for (k, v) in extra {
            env.push((leak(k), v.to_string()));
        }
        env
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}
