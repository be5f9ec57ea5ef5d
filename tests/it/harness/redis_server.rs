//! A real `redis-server` per test, on a free loopback port, killed when
//! dropped: with no persistence, or with an append-only file that makes
//! every acknowledged write survive a crash.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

pub struct RedisServer {
    pub port: u16,
    child: Child,
    /// Arguments after `--port N`.
    args: Vec<String>,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        Self::start_with(&["--save", "", "--appendonly", "no"]).await
    }

    /// Keeps its data in `dir` with `appendfsync always`: a write Redis
    /// answered is on disk, so a kill -9 loses nothing.
    pub async fn start_durable(dir: &std::path::Path) -> RedisServer {
        let dir = dir.display().to_string();
        Self::start_with(&[
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
            &dir,
        ])
        .await
    }

    async fn start_with(args: &[&str]) -> RedisServer {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        for _ in 0..5 {
            let port = free_port();
            let child = spawn(port, &args);
            let mut server = RedisServer {
                port,
                child,
                args: args.clone(),
            };
            if server.wait_ready().await {
                return server;
            }
            let _ = server.child.start_kill();
        }
        panic!("redis-server did not start on any free port");
    }

    /// Kills Redis and starts an empty one on the same port: what a restart
    /// without persistence looks like to its clients.
    pub async fn restart_empty(&mut self) {
        self.kill9().await;
        self.start_again().await;
    }

    /// SIGKILL: Redis is gone until [`RedisServer::start_again`].
    pub async fn kill9(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Starts Redis again on its port with its arguments (so a durable one
    /// finds its data).
    pub async fn start_again(&mut self) {
        for _ in 0..100 {
            self.child = spawn(self.port, &self.args);
            if self.wait_ready().await {
                return;
            }
            // The old socket may linger a moment.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not restart on port {}", self.port);
    }

    async fn wait_ready(&mut self) -> bool {
        let client = redis::Client::open(self.url()).expect("url");
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // Port taken between the probe and the start.
            }
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("connect to test redis")
    }
}

fn spawn(port: u16, args: &[String]) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run redis-server ({e}); install it with `apt-get install redis-server` (scripts/test.sh does)")
        })
}

/// A port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Stores a pixel in the board's Redis keys the way `place.lua` does (seq,
/// replay-log entry, board bytes, metadata) but announces nothing: a write
/// whose `PUBLISH` was lost, which only the gateways' gap repair can find.
/// Returns its `seq`.
pub async fn store_unannounced(
    url: &str,
    width: u32,
    (x, y): (u32, u32),
    color: &str,
    username: &str,
) -> u64 {
    use protocol::names::canvas as keys;
    let client = redis::Client::open(url).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    let index = y * width + x;
    let rgb = u32::from_str_radix(&color[1..], 16).expect("#RRGGBB");
    let stored = [
        255 - (rgb >> 16) as u8,
        255 - (rgb >> 8) as u8,
        255 - rgb as u8,
    ];
    redis::Script::new(
        r"
        local seq = redis.call('INCR', KEYS[2])
        local t = redis.call('TIME')
        local ts = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
        redis.call('XADD', KEYS[4], seq .. '-0', 'x', ARGV[2], 'y', ARGV[3], 'c', ARGV[4], 'u', ARGV[5], 't', ts)
        redis.call('SETRANGE', KEYS[1], tonumber(ARGV[1]) * 3, ARGV[6])
        redis.call('HSET', KEYS[3], ARGV[1], seq .. ':' .. ts .. ':' .. ARGV[4] .. ':' .. ARGV[5])
        return seq
        ",
    )
    .key(keys::BOARD)
    .key(keys::SEQ)
    .key(keys::PIXEL_META)
    .key(keys::LOG)
    .arg(index)
    .arg(x)
    .arg(y)
    .arg(color)
    .arg(username)
    .arg(&stored[..])
    .invoke_async(&mut conn)
    .await
    .expect("store without announcing")
}
