//! Opening one client connection: TCP (optionally from a chosen source
//! address), the WebSocket handshake, and the `connected` greeting that
//! proves the other end speaks protocol v1.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt;
use protocol::{Color, ServerMessage};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::target::Endpoint;

pub type Ws = WebSocketStream<TcpStream>;

/// The board's rules, from the `connected` greeting.
#[derive(Debug, Clone)]
pub struct Hello {
    pub width: u32,
    pub height: u32,
    pub palette: Vec<Color>,
    pub any_color: bool,
    pub cooldown_ms: u64,
    /// The highest `seq` the gateway had delivered when it greeted us.
    pub seq: u64,
}

/// How big a client's read buffer is. tungstenite allocates it eagerly, so
/// an idle connection wants it small; and it zero-fills the free part before
/// every read, so even a busy observer wants it only moderately large (at
/// 64 KiB that memset was a fifth of the load test's CPU).
#[derive(Debug, Clone, Copy)]
pub enum ReadBuffer {
    Small,
    Large,
}

impl ReadBuffer {
    fn config(self) -> WebSocketConfig {
        let bytes = match self {
            ReadBuffer::Small => 2 * 1024,
            ReadBuffer::Large => 8 * 1024,
        };
        WebSocketConfig::default().read_buffer_size(bytes)
    }
}

/// Connects as `username`; done when the `connected` frame has arrived.
pub async fn connect(
    endpoint: &Endpoint,
    username: &str,
    source: Option<IpAddr>,
    buffer: ReadBuffer,
    timeout: Duration,
) -> Result<(Ws, Hello), ConnectError> {
    let url = endpoint.url_for(username);
    let attempt = async {
        let addr = endpoint
            .addr_for(source)
            .ok_or(ConnectErrorKind::NoAddressInFamily)?;
        let stream = open_tcp(addr, source).await?;
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(
            url.as_str(),
            stream,
            Some(buffer.config()),
        )
        .await
        .map_err(ConnectErrorKind::from_ws)?;
        let hello = read_hello(&mut ws).await?;
        Ok((ws, hello))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(kind)) => Err(ConnectError {
            url: endpoint.url.to_string(),
            kind,
        }),
        Err(_) => Err(ConnectError {
            url: endpoint.url.to_string(),
            kind: ConnectErrorKind::Timeout(timeout),
        }),
    }
}

async fn open_tcp(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, ConnectErrorKind> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(ConnectErrorKind::Io)?;
    if let Some(ip) = source {
        // Port 0: the kernel picks a free port on that address, so each
        // source address brings a whole ephemeral range of its own.
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| ConnectErrorKind::Bind(ip, e))?;
    }
    let stream = socket.connect(addr).await.map_err(ConnectErrorKind::Io)?;
    // Placements are tiny frames; Nagle would add latency to each.
    stream.set_nodelay(true).map_err(ConnectErrorKind::Io)?;
    Ok(stream)
}

/// Reads up to the first text frame, which must be `connected`.
async fn read_hello(ws: &mut Ws) -> Result<Hello, ConnectErrorKind> {
    loop {
        let frame = match ws.next().await {
            None => return Err(ConnectErrorKind::Closed(None, String::new())),
            Some(Err(e)) => return Err(ConnectErrorKind::from_ws(e)),
            Some(Ok(frame)) => frame,
        };
        match frame {
            Message::Text(text) => return parse_hello(text.as_str()),
            Message::Close(frame) => {
                let (code, reason) = frame
                    .map(|f| (Some(u16::from(f.code)), f.reason.to_string()))
                    .unwrap_or_default();
                return Err(ConnectErrorKind::Closed(code, reason));
            }
            Message::Binary(b) => {
                return Err(ConnectErrorKind::Mismatch(format!(
                    "a binary frame of {} bytes",
                    b.len()
                )));
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

fn parse_hello(text: &str) -> Result<Hello, ConnectErrorKind> {
    match serde_json::from_str::<ServerMessage>(text) {
        Ok(ServerMessage::Connected {
            width,
            height,
            palette,
            any_color,
            cooldown_ms,
            seq,
            ..
        }) => Ok(Hello {
            width,
            height,
            palette,
            any_color,
            cooldown_ms,
            seq,
        }),
        _ => Err(ConnectErrorKind::Mismatch(shorten(text, 120))),
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Why one connection did not reach `connected`.
#[derive(Debug)]
pub struct ConnectError {
    pub url: String,
    pub kind: ConnectErrorKind,
}

#[derive(Debug)]
pub enum ConnectErrorKind {
    Io(io::Error),
    Bind(IpAddr, io::Error),
    NoAddressInFamily,
    /// The upgrade was answered with this HTTP status.
    Http(u16),
    Handshake(String),
    /// Closed before `connected`, with this close code and reason.
    Closed(Option<u16>, String),
    /// The first text frame was not `connected`.
    Mismatch(String),
    Timeout(Duration),
}

impl ConnectErrorKind {
    fn from_ws(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Io(e) => ConnectErrorKind::Io(e),
            tungstenite::Error::Http(response) => {
                ConnectErrorKind::Http(response.status().as_u16())
            }
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                ConnectErrorKind::Closed(None, String::new())
            }
            other => ConnectErrorKind::Handshake(other.to_string()),
        }
    }
}

impl ConnectError {
    /// True when the gateway answered but not in protocol v1.
    pub fn is_mismatch(&self) -> bool {
        matches!(self.kind, ConnectErrorKind::Mismatch(_))
    }

    /// A short stable label for tallying failures by cause.
    pub fn cause(&self) -> String {
        match &self.kind {
            ConnectErrorKind::Io(e) | ConnectErrorKind::Bind(_, e) => io_cause(e),
            ConnectErrorKind::NoAddressInFamily => "no_address_in_family".into(),
            ConnectErrorKind::Http(status) => format!("http_{status}"),
            ConnectErrorKind::Handshake(_) => "handshake".into(),
            ConnectErrorKind::Closed(Some(code), _) => format!("closed_{code}"),
            ConnectErrorKind::Closed(None, _) => "closed".into(),
            ConnectErrorKind::Mismatch(_) => "protocol_mismatch".into(),
            ConnectErrorKind::Timeout(_) => "timeout".into(),
        }
    }
}

fn is_emfile(e: &io::Error) -> bool {
    // EMFILE (24, per process) and ENFILE (23, system-wide) on Linux.
    matches!(e.raw_os_error(), Some(23 | 24))
}

fn io_cause(e: &io::Error) -> String {
    if is_emfile(e) {
        return "too_many_open_files".into();
    }
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "refused".into(),
        io::ErrorKind::ConnectionReset => "reset".into(),
        io::ErrorKind::AddrNotAvailable => "address_not_available".into(),
        io::ErrorKind::AddrInUse => "address_in_use".into(),
        io::ErrorKind::TimedOut => "timeout".into(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe => "closed".into(),
        _ => match e.raw_os_error() {
            Some(code) => format!("os_error_{code}"),
            None => "io".into(),
        },
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.url;
        match &self.kind {
            ConnectErrorKind::Mismatch(got) => write!(
                f,
                "protocol mismatch: expected a connected message, got {got} (from {url})"
            ),
            ConnectErrorKind::Io(e) if is_emfile(e) => write!(
                f,
                "cannot connect to {url}: {e}: raise the open-file limit (`ulimit -n`) above the number of connections"
            ),
            ConnectErrorKind::Io(e) => write!(f, "cannot connect to {url}: {e}"),
            ConnectErrorKind::Bind(ip, e) => {
                write!(
                    f,
                    "cannot connect to {url}: cannot bind to source address {ip}: {e}"
                )
            }
            ConnectErrorKind::NoAddressInFamily => write!(
                f,
                "cannot connect to {url}: its host has no address in the source address's family"
            ),
            ConnectErrorKind::Http(status) => write!(
                f,
                "cannot connect to {url}: the WebSocket upgrade was answered with HTTP {status}"
            ),
            ConnectErrorKind::Handshake(e) => write!(f, "cannot connect to {url}: {e}"),
            ConnectErrorKind::Closed(code, reason) => {
                write!(f, "cannot connect to {url}: closed before `connected`")?;
                if let Some(code) = code {
                    write!(f, " with code {code}")?;
                }
                if !reason.is_empty() {
                    write!(f, " ({reason})")?;
                }
                Ok(())
            }
            ConnectErrorKind::Timeout(t) => {
                write!(f, "cannot connect to {url}: no `connected` within {t:?}")
            }
        }
    }
}

impl std::error::Error for ConnectError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connected_frame_is_a_hello() {
        let json = r##"{"type":"connected","clientId":"c","username":"u","podId":"p","width":10,"height":20,"palette":["#FF0000"],"anyColor":false,"cooldownMs":0,"seq":7}"##;
        let hello = parse_hello(json).unwrap();
        assert_eq!((hello.width, hello.height, hello.seq), (10, 20, 7));
        assert_eq!(hello.palette, vec![Color([255, 0, 0])]);
    }

    #[test]
    fn anything_else_first_is_a_protocol_mismatch() {
        let err = ConnectError {
            url: "ws://127.0.0.1:1/ws".into(),
            kind: parse_hello(r#"{"type":"hello"}"#).unwrap_err(),
        };
        assert!(err.is_mismatch());
        assert!(err.to_string().starts_with(
            "protocol mismatch: expected a connected message, got {\"type\":\"hello\"}"
        ));
    }

    #[test]
    fn emfile_is_named_and_explained() {
        let err = ConnectError {
            url: "ws://127.0.0.1:1/ws".into(),
            kind: ConnectErrorKind::Io(io::Error::from_raw_os_error(24)),
        };
        assert_eq!(err.cause(), "too_many_open_files");
        assert!(err.to_string().contains("ulimit -n"));
    }

    #[test]
    fn long_frames_are_cut_on_a_char_boundary() {
        let s = "é".repeat(100);
        let cut = shorten(&s, 9);
        assert!(cut.ends_with('…'));
        assert!(cut.len() < 20);
    }
}
