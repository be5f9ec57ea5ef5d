//! Listening sockets and the accept loop, the same for every service: a
//! deep accept backlog, so a reconnect storm after a gateway restart does
//! not overflow it (the default of 128 makes the overflow wait out a 1 s
//! SYN retransmit); `TCP_NODELAY` on every accepted connection, so a small
//! frame written after another is not held back by Nagle waiting for a
//! delayed ACK; and two guards against clients that connect and never
//! finish a request (slowloris): a time limit on reading each request's
//! headers, and a cap on connections per client IP that have not yet
//! finished their first request.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tower::ServiceExt;

use crate::client_ip::{ForwardedForWatch, limit_key};
use crate::http_policy::HttpPolicy;

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

/// How long clients may take over a request, before any handler runs.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// Time to send a request's headers, counted from the moment the
    /// server waits for them: a connection that never finishes them, or an
    /// idle keep-alive connection, is closed after it.
    pub header_read_timeout: Duration,
    /// Connections one client IP (IPv6: one /64) may have open that have
    /// not yet sent a whole first request; past it a new one is closed at
    /// once. 0: no limit.
    pub max_pending_per_ip: u32,
    /// `TRUSTED_PROXIES`: the cap does not apply to them (many clients
    /// arrive through each), and only they may send `X-Forwarded-For`.
    pub trusted_proxies: Vec<IpNet>,
    /// Shown every request, to count an `X-Forwarded-For` from anyone else.
    pub forwarded_for: Arc<ForwardedForWatch>,
}

impl ServeLimits {
    pub fn new(
        policy: &HttpPolicy,
        trusted_proxies: &[IpNet],
        forwarded_for: &Arc<ForwardedForWatch>,
    ) -> ServeLimits {
        ServeLimits {
            header_read_timeout: policy.header_read_timeout,
            max_pending_per_ip: policy.max_pending_connections_per_ip,
            trusted_proxies: trusted_proxies.to_vec(),
            forwarded_for: forwarded_for.clone(),
        }
    }
}

/// Serves `router` until `shutdown`, then stops accepting, lets each
/// connection finish the request it is on, and returns once all have
/// closed (WebSockets, once upgraded, are their handlers' to close).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let limits = Arc::new(limits);
    let pending = Arc::new(PendingConnections {
        max_per_ip: limits.max_pending_per_ip,
        ips: Mutex::default(),
    });
    // Dropping `stop_tx` tells every connection to finish up; each holds a
    // `done_rx` until it has, so `done_tx.closed()` waits for them all.
    let (stop_tx, stop_rx) = watch::channel(());
    let (done_tx, done_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Failure only costs latency; the connection still works.
        let _ = tcp.set_nodelay(true);
        let exempt = limits
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer.ip().to_canonical()));
        let slot = if exempt || limits.max_pending_per_ip == 0 {
            None
        } else {
            match pending.enter(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(%peer, "too many unfinished connections from this address; closed");
                    continue;
                }
            }
        };
        tokio::spawn(serve_connection(
            tcp,
            peer,
            router.clone(),
            limits.clone(),
            slot,
            stop_rx.clone(),
            done_rx.clone(),
        ));
    }
    drop(listener);
    drop(stop_tx);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// One connection, HTTP/1.1 with upgrades (WebSockets).
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Arc<ServeLimits>,
    slot: Option<PendingSlot>,
    mut stop: watch::Receiver<()>,
    _done: watch::Receiver<()>,
) {
    // The first request releases the connection's pending slot (before the
    // handler runs); closing releases it too.
    let slot = Arc::new(Mutex::new(slot));
    let header_read_timeout = limits.header_read_timeout;
    let activity = Arc::new(Activity::new());
    let on_request = activity.clone();
    let service = router
        .map_request(move |mut request: Request<Incoming>| {
            slot.lock().expect("not poisoned").take();
            limits
                .forwarded_for
                .observe(peer.ip(), request.headers(), &limits.trusted_proxies);
            request.extensions_mut().insert(ConnectInfo(peer));
            request.map(Body::new)
        })
        .map_response(move |response: axum::response::Response| {
            // An upgraded connection (a WebSocket) is its handler's from
            // now on; hyper may hand it over only later, so it must never
            // be cut here.
            if response.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS {
                on_request.upgraded();
            }
            // In flight until hyper has written the whole body (an SSE
            // stream: for as long as it lives) and dropped it.
            let guard = InFlight::start(on_request.clone());
            response.map(|body| {
                Body::new(GuardedBody {
                    body,
                    _guard: guard,
                })
            })
        });
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        // Nothing in flight: the next request head is due within the
        // timeout of the last response (or of the connection's start).
        let deadline = activity.idle_deadline(header_read_timeout);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(%peer, error = %e, "connection ended");
                }
                break;
            }
            () = tokio::time::sleep_until(deadline), if !activity.is_upgraded() => {
                if activity.idle_deadline(header_read_timeout) <= tokio::time::Instant::now() {
                    tracing::debug!(%peer, "no whole request head within HEADER_READ_TIMEOUT_SECS; closed");
                    break;
                }
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// When a connection last had nothing in flight, how much it has, and
/// whether it was upgraded. hyper's own header-read timeout is not used:
/// with it, upgraded connections (WebSockets) were cut.
struct Activity {
    state: Mutex<(usize, tokio::time::Instant)>,
    upgraded: std::sync::atomic::AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            state: Mutex::new((0, tokio::time::Instant::now())),
            upgraded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn upgraded(&self) {
        self.upgraded
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn is_upgraded(&self) -> bool {
        self.upgraded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// While a request is in flight, a check a whole timeout from now;
    /// otherwise the moment the connection has been idle for the timeout.
    fn idle_deadline(&self, timeout: Duration) -> tokio::time::Instant {
        let (in_flight, idle_since) = *self.state.lock().expect("not poisoned");
        if in_flight > 0 {
            tokio::time::Instant::now() + timeout
        } else {
            idle_since + timeout
        }
    }
}

/// One request in flight on a connection, from its response's start until
/// its body is dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: Arc<Activity>) -> InFlight {
        activity.state.lock().expect("not poisoned").0 += 1;
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().expect("not poisoned");
        state.0 -= 1;
        state.1 = tokio::time::Instant::now();
    }
}

/// A response body that keeps its request counted as in flight.
struct GuardedBody {
    body: Body,
    _guard: InFlight,
}

impl hyper::body::Body for GuardedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// An accept error: a connection that failed before we took it is no
/// concern; anything else (out of file descriptors) is waited out, as a
/// tight retry loop would only spin.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Connections per client IP that have not yet sent a whole request.
struct PendingConnections {
    max_per_ip: u32,
    ips: Mutex<HashMap<IpAddr, u32>>,
}

impl PendingConnections {
    fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<PendingSlot> {
        let key = limit_key(ip);
        let mut ips = self.ips.lock().expect("not poisoned");
        let count = ips.entry(key).or_insert(0);
        if *count >= self.max_per_ip {
            return None;
        }
        *count += 1;
        Some(PendingSlot {
            pending: self.clone(),
            key,
        })
    }
}

/// One unfinished connection's place in its IP's count; released when its
/// first request arrives or it closes.
struct PendingSlot {
    pending: Arc<PendingConnections>,
    key: IpAddr,
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut ips = self.pending.ips.lock().expect("not poisoned");
        if let Some(count) = ips.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                ips.remove(&self.key);
            }
        }
    }
}
