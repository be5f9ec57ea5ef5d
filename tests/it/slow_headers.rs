//! Clients that connect and never finish their headers (slowloris): both
//! services close them after `HEADER_READ_TIMEOUT_SECS`, and one address
//! may hold only `MAX_PENDING_CONNECTIONS_PER_IP` of them at once.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::{Process, single_process, temp_dir};

/// What a slow client sends: a request line and a header, never the blank
/// line that ends the headers.
const PARTIAL: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n";
/// On top of a configured timeout: a loaded machine is late.
const MARGIN: Duration = Duration::from_secs(3);

async fn connect_from(source: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

async fn partial(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(PARTIAL).await.unwrap();
    stream
}

/// Reads until the server closes the connection (true) or `limit` passes
/// (false). Whatever the server writes before closing is read and dropped.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Partial headers and silence are both cut off after the timeout, not
/// before it.
async fn assert_slow_clients_are_closed(addr: SocketAddr) {
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = Vec::new();
    for _ in 0..5 {
        slow.push(partial(addr).await);
    }
    slow.push(TcpStream::connect(addr).await.unwrap());
    for (i, stream) in slow.iter_mut().enumerate() {
        assert!(
            closed_within(stream, Duration::from_secs(1) + MARGIN).await,
            "slow connection {i} still open after {:?}",
            started.elapsed()
        );
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed before the timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unfinished_headers_are_closed_after_the_header_timeout_in_both_services() {
    let timeout = ("HEADER_READ_TIMEOUT_SECS", "1");
    let (server, _dir) = single_process("slow-headers", &[timeout]).await;
    assert_slow_clients_are_closed(server.addr).await;

    let dir = temp_dir("slow-headers-api");
    let api = Process::spawn(
        "canvas-api",
        &[
            ("DATA_DIR", dir.display().to_string()),
            (timeout.0, timeout.1.to_owned()),
        ],
    )
    .await;
    assert_slow_clients_are_closed(api.addr).await;
}

#[tokio::test]
async fn one_address_may_hold_only_so_many_unfinished_connections() {
    let (server, _dir) = single_process(
        "pending-cap",
        &[
            ("HEADER_READ_TIMEOUT_SECS", "60"),
            ("MAX_PENDING_CONNECTIONS_PER_IP", "3"),
        ],
    )
    .await;
    let addr = server.addr;
    let mut slow = Vec::new();
    for _ in 0..3 {
        slow.push(partial(addr).await);
    }
    let mut refused = partial(addr).await;
    assert!(
        closed_within(&mut refused, MARGIN).await,
        "a fourth unfinished connection from one address was kept"
    );
    for stream in &mut slow {
        assert!(
            !closed_within(stream, Duration::from_millis(100)).await,
            "the first three are within the cap"
        );
    }
    // Another address is another client.
    let mut other = connect_from(IpAddr::from([127, 0, 0, 2]), addr).await;
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    other.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    // Finishing a request frees its slot for a new connection.
    slow[0].write_all(b"\r\n").await.unwrap();
    slow[0].read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    let mut again = TcpStream::connect(addr).await.unwrap();
    again
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    again.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
}

#[tokio::test]
async fn a_slow_second_request_is_closed_but_a_long_stream_lives_on() {
    let (server, _dir) = single_process("slow-second", &[("HEADER_READ_TIMEOUT_SECS", "1")]).await;
    // A whole first request, then a second that never finishes.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    stream.write_all(PARTIAL).await.unwrap();
    assert!(
        closed_within(&mut stream, Duration::from_secs(1) + MARGIN).await,
        "a partial second request head was waited for"
    );
    // An SSE stream is one request in flight, however long it lasts: it
    // outlives the timeout and still gets what is placed after it.
    let mut events = crate::harness::SseStream::open(&server.http(), "", None).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = crate::harness::http::put_pixel(&server.http(), 3, 3, "#000000", "late").await;
    assert_eq!(r.status(), 200);
    let (_, pixel) = events.next_pixel().await;
    assert_eq!((pixel.x, pixel.y), (3, 3));
}

#[tokio::test]
async fn a_websocket_outlives_the_header_timeout_even_unread() {
    let (server, _dir) = single_process("ws-outlives", &[("HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut ws = crate::harness::WsClient::connect(&server.ws(), None).await;
    // Past the timeout without reading a frame or sending one.
    tokio::time::sleep(Duration::from_secs(1) + MARGIN).await;
    let r = crate::harness::http::put_pixel(&server.http(), 4, 4, "#000000", "later").await;
    assert_eq!(r.status(), 200);
    ws.expect("the pixel placed after the timeout", |m| {
        crate::harness::client::pixel_event(m, 4, 4).is_some()
    })
    .await;
}
