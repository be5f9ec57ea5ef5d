//! Listening sockets, the same for every service: a deep accept backlog, so
//! a reconnect storm after a gateway restart does not overflow it (the
//! default of 128 makes the overflow wait out a 1 s SYN retransmit), and
//! `TCP_NODELAY` on every accepted connection, so a small frame written
//! after another is not held back by Nagle waiting for a delayed ACK.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum::serve::ListenerExt;
use tokio::net::{TcpListener, TcpSocket};

/// Pending connections the kernel may queue (it caps this at `somaxconn`).
pub const BACKLOG: u32 = 4096;

/// Binds `addr`. With `send_buffer`, accepted sockets inherit that
/// `SO_SNDBUF` (the kernel doubles it): the most the kernel holds for a
/// client that stops reading, so a stalled client is found out after that
/// much, not after the megabytes that send-buffer autotuning would grow to.
pub fn bind(addr: SocketAddr, send_buffer: Option<u32>) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if let Some(bytes) = send_buffer {
        socket.set_send_buffer_size(bytes)?;
    }
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `router` with `TCP_NODELAY` on every connection until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    app: IntoMakeServiceWithConnectInfo<Router, SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        // Failure only costs latency; the connection still works.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
