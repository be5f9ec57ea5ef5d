//! A protocol v1 WebSocket client for tests. Batches are flattened, so a
//! test sees the messages in order whatever the framing.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::ServerMessage;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::WAIT;

/// The connection ended: with the server's close frame, or without one
/// (reset, or the process died).
#[derive(Debug)]
pub struct Ended(pub Option<CloseFrame>);

pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pending: VecDeque<ServerMessage>,
    /// Messages passed over by [`WsClient::expect`] while it waited for
    /// another (but `stats` and `user_list`, which the next one supersedes):
    /// a later `expect` finds them here first, so a test never
    /// depends on the order of messages the protocol does not order
    /// (concurrent replies, events from two gateways, batches).
    stash: VecDeque<ServerMessage>,
    /// The `connected` message.
    pub hello: ServerMessage,
}

impl WsClient {
    /// Connects to `url` (`ws://host/ws`), with `?username=` when given,
    /// and waits for `connected`.
    pub async fn connect(url: &str, username: Option<&str>) -> WsClient {
        Self::try_connect(url, username)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`WsClient::connect`], from another loopback source address
    /// (`127.0.0.2`…): a client of another IP, for per-IP limits.
    pub async fn connect_from(url: &str, source: std::net::IpAddr) -> WsClient {
        let addr: std::net::SocketAddr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .expect("ws://ip:port/… URL");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(std::net::SocketAddr::new(source, 0))
            .expect("bind the source address");
        let tcp = socket.connect(addr).await.expect("connect");
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .expect("upgrade");
        Self::from_stream(ws).await
    }

    /// A client on a socket already upgraded, once `connected` arrives.
    pub async fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> WsClient {
        let mut client = WsClient {
            ws,
            pending: VecDeque::new(),
            stash: VecDeque::new(),
            hello: ServerMessage::Pong,
        };
        match client.next_within(WAIT).await {
            Some(first @ ServerMessage::Connected { .. }) => client.hello = first,
            other => panic!("expected `connected` first, got {other:?}"),
        }
        client
    }

    /// Like [`WsClient::connect`], but a refusal is an answer: for clients
    /// that retry.
    pub async fn try_connect(url: &str, username: Option<&str>) -> Result<WsClient, String> {
        let url = match username {
            Some(u) => format!("{url}?username={u}"),
            None => url.to_owned(),
        };
        let (ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .map_err(|e| format!("connect {url}: {e}"))?;
        let mut client = WsClient {
            ws,
            pending: VecDeque::new(),
            stash: VecDeque::new(),
            hello: ServerMessage::Pong,
        };
        match client.try_next_within(WAIT).await {
            Ok(Some(first @ ServerMessage::Connected { .. })) => {
                client.hello = first;
                Ok(client)
            }
            other => Err(format!("{url}: expected `connected` first, got {other:?}")),
        }
    }

    pub fn username(&self) -> &str {
        match &self.hello {
            ServerMessage::Connected { username, .. } => username,
            _ => unreachable!(),
        }
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::Text(text.into().into()))
            .await
            .expect("send");
    }

    /// Sends without insisting: the server may close mid-frame.
    pub async fn try_send_text(&mut self, text: impl Into<String>) -> bool {
        self.ws
            .send(Message::Text(text.into().into()))
            .await
            .is_ok()
    }

    pub async fn send_json(&mut self, value: serde_json::Value) {
        self.send_text(value.to_string()).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .expect("send");
    }

    pub async fn place(&mut self, x: i64, y: i64, color: &str, id: u64) {
        self.send_json(
            serde_json::json!({"type": "pixel_update", "x": x, "y": y, "color": color, "id": id}),
        )
        .await;
    }

    /// The next message within `limit`, or `None`.
    pub async fn next_within(&mut self, limit: Duration) -> Option<ServerMessage> {
        match self.try_next_within(limit).await {
            Ok(m) => m,
            Err(Ended(Some(frame))) => panic!("closed by the server: {frame:?}"),
            Err(Ended(None)) => panic!("connection ended"),
        }
    }

    /// Like [`WsClient::next_within`], but the end of the connection is an
    /// answer, not a failure: for clients that reconnect.
    pub async fn try_next_within(
        &mut self,
        limit: Duration,
    ) -> Result<Option<ServerMessage>, Ended> {
        if let Some(m) = self.pending.pop_front() {
            return Ok(Some(m));
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let Ok(frame) = tokio::time::timeout_at(deadline, self.ws.next()).await else {
                return Ok(None);
            };
            match frame {
                Some(Ok(Message::Text(text))) => {
                    let m: ServerMessage = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("unreadable server message {text}: {e}"));
                    self.push_flattened(m);
                    return Ok(self.pending.pop_front());
                }
                Some(Ok(Message::Close(frame))) => return Err(Ended(frame)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(Ended(None)),
            }
        }
    }

    fn push_flattened(&mut self, m: ServerMessage) {
        match m {
            ServerMessage::Batch { events } => {
                for e in events {
                    self.push_flattened(e);
                }
            }
            other => self.pending.push_back(other),
        }
    }

    /// The first message, stashed or new, that satisfies `pred`; the others
    /// stay stashed for later calls. Panics after [`WAIT`].
    pub async fn expect(
        &mut self,
        what: &str,
        pred: impl Fn(&ServerMessage) -> bool,
    ) -> ServerMessage {
        if let Some(i) = self.stash.iter().position(&pred) {
            return self.stash.remove(i).expect("found");
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(m) if pred(&m) => return m,
                // Presence frames are superseded by the next: a stale one
                // must never satisfy a later wait.
                Some(ServerMessage::Stats { .. } | ServerMessage::UserList { .. }) => {}
                Some(m) => self.stash.push_back(m),
                None => panic!("no {what} within {WAIT:?}"),
            }
        }
    }

    /// The reply (ack or error) to the placement with `id`.
    pub async fn reply_to(&mut self, id: u64) -> ServerMessage {
        self.expect(&format!("reply to {id}"), |m| {
            matches!(m, ServerMessage::Ack { id: Some(i), .. } | ServerMessage::Error { id: Some(i), .. } if *i == id)
        })
        .await
    }

    /// Reads until the server closes; returns its close frame.
    pub async fn expect_close(&mut self) -> Option<CloseFrame> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("not closed within {WAIT:?}"),
                Ok(Some(Ok(Message::Close(frame)))) => return frame,
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_)) | None) => return None,
            }
        }
    }
}

/// The color of a `pixel_updated` for (x, y), if `m` is one.
pub fn pixel_event(m: &ServerMessage, x: u32, y: u32) -> Option<&protocol::PixelUpdated> {
    match m {
        ServerMessage::PixelUpdated(e) if e.x == x && e.y == y => Some(e),
        _ => None,
    }
}
