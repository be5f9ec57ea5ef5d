//! A WebSocket proxy that loses messages on purpose: it passes every frame
//! between clients and a real gateway, except every `drop_every`-th frame
//! from the gateway that carries pixel events. It stands for a gateway that
//! drops messages, to prove that the load-test tool notices.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

pub struct LossyProxy {
    pub addr: SocketAddr,
    /// Pixel frames dropped so far, over every connection.
    pub dropped: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl LossyProxy {
    /// Proxies `ws://ADDR/<path>` to `upstream` (`127.0.0.1:port`), the same
    /// path and query.
    pub async fn start(upstream: SocketAddr, drop_every: u64) -> LossyProxy {
        assert!(drop_every > 0);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(relay(socket, upstream, drop_every, counter.clone()));
            }
        });
        LossyProxy {
            addr,
            dropped,
            task,
        }
    }

    pub fn ws(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// The handshake callback's error type is tungstenite's, large or not.
#[allow(clippy::result_large_err)]
async fn relay(socket: TcpStream, upstream: SocketAddr, drop_every: u64, dropped: Arc<AtomicU64>) {
    let mut path = String::from("/ws");
    let callback = |req: &Request, resp: Response| {
        path = req
            .uri()
            .path_and_query()
            .map_or("/ws".into(), |p| p.to_string());
        Ok(resp)
    };
    let Ok(client) = tokio_tungstenite::accept_hdr_async(socket, callback).await else {
        return;
    };
    let Ok((server, _)) = tokio_tungstenite::connect_async(format!("ws://{upstream}{path}")).await
    else {
        return;
    };
    let (mut to_client, mut from_client) = client.split();
    let (mut to_server, mut from_server) = server.split();
    let up = async {
        while let Some(Ok(m)) = from_client.next().await {
            if to_server.send(m).await.is_err() {
                break;
            }
        }
        let _ = to_server.close().await;
    };
    let down = async {
        let mut pixel_frames = 0u64;
        while let Some(Ok(m)) = from_server.next().await {
            if let Message::Text(text) = &m
                && text.contains("\"pixel_updated\"")
            {
                pixel_frames += 1;
                if pixel_frames.is_multiple_of(drop_every) {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            if to_client.send(m).await.is_err() {
                break;
            }
        }
        let _ = to_client.close().await;
    };
    tokio::join!(up, down);
}
