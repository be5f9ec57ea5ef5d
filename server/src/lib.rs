//! The WebSocket gateway.
//!
//! Clients hold a WebSocket here; placements go to the board's store
//! ([`backend`]), stored pixels go out on the event bus ([`bus`]), and every
//! event heard back is fanned out to this gateway's clients ([`fanout`],
//! [`hub`]). With no Redis and no separate canvas-api configured, this one
//! process is the whole product, serving the web client and `/api` too.

pub mod admission;
pub mod backend;
pub mod client_frame;
pub mod client_ip;
pub mod config;
pub mod connection;
pub mod connection_log;
pub mod decode;
pub mod drain;
pub mod fanout;
pub mod hub;
pub mod idle;
pub mod incoming;
pub mod ip_limits;
pub mod mailbox;
pub mod metrics;
pub mod mode;
pub mod placement;
pub mod placement_batch;
pub mod presence;
pub mod proxy;
pub mod registration;
pub mod replies;
pub mod routes;
pub mod seq_tracker;
pub mod sse;
pub mod subscriber;
pub mod viewport;
pub mod web;

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use canvas_api::{Auth, Canvas, UserNotices};
use plumbing::HttpPolicy;
use protocol::http::CanvasConfig;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::{CanvasBackend, RemoteCanvas};
use crate::config::Config;
use crate::fanout::Fanout;
use crate::hub::Hub;
use crate::idle::IdleClock;
use crate::incoming::{INGEST_CAPACITY, Incoming};
use crate::ip_limits::IpLimits;
use crate::mailbox::Mailboxes;
use crate::metrics::GatewayMetrics;
use crate::mode::{BoardSite, Transport};
use crate::placement_batch::PlacementBatcher;
use crate::presence::{LocalUsers, PresenceTask};
use crate::subscriber::Subscriber;

pub use routes::router;

/// Everything a connection or handler needs. Cheap to clone.
#[derive(Clone)]
pub struct Gateway(Arc<GatewayInner>);

impl Deref for Gateway {
    type Target = GatewayInner;
    fn deref(&self) -> &GatewayInner {
        &self.0
    }
}

pub struct GatewayInner {
    pub pod_id: String,
    /// The board's rules, sent in every `connected`.
    pub canvas_config: CanvasConfig,
    pub backend: CanvasBackend,
    /// Where connections hand their placements: batched to `backend`.
    pub batcher: PlacementBatcher,
    /// Set only for a gateway of a remote canvas-api without Redis: no
    /// announcement reaches it, so it hands its own placements to its
    /// fan-out (anything else arrives through the replay log).
    pub echo_placements: Option<mpsc::Sender<Incoming>>,
    pub hub: Arc<Hub>,
    pub users: Arc<LocalUsers>,
    /// Where events addressed to one user reach that user's connections.
    pub mailboxes: Arc<Mailboxes>,
    /// Events this gateway addresses to one user (`cooldown_over` after a
    /// WebSocket placement).
    pub notices: UserNotices,
    pub metrics: Arc<GatewayMetrics>,
    pub max_connections: usize,
    /// Session tokens: who a connection is.
    pub auth: Auth,
    /// Time and body limits, CORS.
    pub http_policy: HttpPolicy,
    /// Connections and messages per client IP.
    pub ip_limits: Arc<IpLimits>,
    /// The idle-timeout clock (None: no idle timeout).
    pub idle_clock: Option<IdleClock>,
    /// The most events a Last-Event-ID replay sends; further behind, the
    /// stream gets `resync` instead.
    pub sse_max_replay: u64,
    /// The largest client message, in bytes (1009 past it).
    pub max_frame_bytes: usize,
    /// How long a write to a client may wait for its socket.
    pub write_timeout: Duration,
    /// One permit per placement in flight, gateway-wide (load shedding).
    pub placement_slots: Arc<Semaphore>,
    /// How `/api` is served here.
    pub api: ApiMode,
    /// Cancelled when the gateway stops: connections close with 1001, each
    /// at its own moment of the drain window ([`drain`]).
    pub shutdown: CancellationToken,
    /// The window over which connections are closed on shutdown.
    pub shutdown_drain: Duration,
    /// Connection tasks, awaited on shutdown.
    pub connections: TaskTracker,
    /// True while the Redis subscription is live (None: no Redis).
    subscriber_live: Option<Arc<AtomicBool>>,
    /// Background tasks (fan-out, subscriber, presence, store upkeep).
    background: TaskTracker,
    background_stop: CancellationToken,
    shutdown_grace: Duration,
}

pub enum ApiMode {
    /// The board is in this process: serve canvas-api's routes directly.
    Local(canvas_api::AppState),
    /// Pass `/api` through to a separate canvas-api.
    Proxy(RemoteCanvas),
}

impl Gateway {
    /// Connects to what the configuration names and starts the background
    /// tasks.
    pub async fn start(config: &Config) -> anyhow::Result<Gateway> {
        config.validate().map_err(anyhow::Error::msg)?;
        let pod_id = config.resolved_pod_id();
        let transport = Transport::connect(config).await?;
        let site = BoardSite::of(config);
        let metrics = Arc::new(GatewayMetrics::default());
        let hub = Arc::new(Hub::default());
        let users = Arc::new(LocalUsers::default());
        // With Redis, the subscriber follows who is here; without, events
        // for a user are handed over in process.
        let mailboxes = Arc::new(Mailboxes::new(transport.redis_info().is_some()));
        let background = TaskTracker::new();
        let background_stop = CancellationToken::new();
        let (ingest_tx, ingest_rx) = mpsc::channel::<Incoming>(INGEST_CAPACITY);
        let presence_changed = Arc::new(Notify::new());
        let announcer = transport.announcer(&mailboxes);

        let http_policy = HttpPolicy::from_args(&config.http).map_err(anyhow::Error::msg)?;
        // Every pod must agree on the secret: through Redis when there is
        // one, else the single process keeps it in DATA_DIR. A gateway of a
        // remote canvas-api without Redis needs AUTH_SECRET.
        let auth_dir =
            matches!(site, BoardSite::InProcess).then_some(config.store.data_dir.as_path());
        let auth = Auth::start(
            &config.auth,
            transport
                .redis_conn()
                .map(|c| plumbing::redis::Connection::Node(c.clone())),
            auth_dir,
        )
        .await?;

        // Kept by whichever process holds the board.
        let mut archive = None;
        let backend = match site.remote(auth.clone()) {
            Some(remote) => CanvasBackend::Remote(remote?),
            None => {
                // The gateway runs on one node or none (a cluster is refused
                // with the rest of its options).
                let redis_info = match transport.redis_info() {
                    Some(info) => plumbing::redis::RedisTarget::Node(Box::new(info.clone())),
                    None => plumbing::redis::RedisTarget::Embedded,
                };
                let store =
                    canvas_api::open_store(&config.canvas, redis_info, &config.store).await?;
                // Without Redis, the embedded store hands each write to
                // this fan-out as it stores it (Redis announces by itself).
                store.announce_to(incoming::fanout_announce(ingest_tx.clone()));
                canvas_api::maintenance::spawn(store.clone(), &background, background_stop.clone());
                if let Some(dir) = config
                    .archive
                    .folder(
                        &config.store,
                        transport.redis_info().is_some(),
                        config.canvas.readable_whole(),
                    )
                    .map_err(anyhow::Error::msg)?
                {
                    archive = Some(canvas_api::archive::Archive::start(
                        store.clone(),
                        dir,
                        config.archive.keyframe_every,
                        &background,
                        background_stop.clone(),
                    )?);
                }
                CanvasBackend::InProcess(Canvas::from_args(store, &config.canvas))
            }
        };
        let canvas_config = fetch_config(&backend).await?;
        let notices = UserNotices::start(
            announcer.clone(),
            canvas_config.cooldown_ms,
            &background,
            background_stop.clone(),
        );
        let api = match &backend {
            CanvasBackend::Remote(remote) => ApiMode::Proxy(remote.clone()),
            CanvasBackend::InProcess(canvas) => ApiMode::Local(canvas_api::AppState {
                canvas: canvas.clone(),
                announcer,
                notices: notices.clone(),
                auth: auth.clone(),
                archive,
                gateway_proofs: false,
                http_placements: Arc::new(canvas_api::placement_rate::PlacementRate::new(
                    config.canvas.http_placements_per_sec_per_ip,
                )),
            }),
        };

        let batcher = PlacementBatcher::start(
            backend.clone(),
            config.max_placements_in_flight as usize,
            metrics.clone(),
            &background,
            background_stop.clone(),
        );

        let fanout = Fanout {
            rx: ingest_rx,
            hub: hub.clone(),
            backend: backend.clone(),
            grace: config.gap_grace(),
            window: Duration::from_millis(config.fanout_window_ms),
            metrics: metrics.clone(),
        };
        background.spawn(fanout.run(background_stop.clone()));

        let subscriber_live = match transport.redis_info() {
            Some(info) => {
                let live = Arc::new(AtomicBool::new(false));
                let subscriber = Subscriber {
                    client: redis::Client::open(info.clone())?,
                    ingest: ingest_tx.clone(),
                    presence_changed: presence_changed.clone(),
                    live: live.clone(),
                    metrics: metrics.clone(),
                    mailboxes: mailboxes.clone(),
                };
                background.spawn(subscriber.run(background_stop.clone()));
                Some(live)
            }
            None => None,
        };
        let echo_placements = (transport.redis_info().is_none()
            && matches!(site, BoardSite::Remote(_)))
        .then(|| ingest_tx.clone());
        drop(ingest_tx);

        let presence = PresenceTask {
            store: transport.presence_store(&pod_id, config.presence_ttl()),
            users: users.clone(),
            remote_changed: presence_changed,
            hub: hub.clone(),
        };
        background.spawn(presence.run(background_stop.clone()));

        let idle_clock = idle::start(
            Duration::from_secs(config.idle_timeout_secs),
            &background,
            background_stop.clone(),
        );

        tracing::info!(%pod_id, mode = mode::name(&transport, &site), "gateway started");
        Ok(Gateway(Arc::new(GatewayInner {
            pod_id,
            canvas_config,
            backend,
            batcher,
            echo_placements,
            hub,
            users,
            mailboxes,
            notices,
            metrics,
            max_connections: config.max_connections,
            auth,
            http_policy,
            ip_limits: IpLimits::new(
                config.max_connections_per_ip,
                config.messages_per_sec_per_ip,
            ),
            idle_clock,
            sse_max_replay: config.sse_max_replay,
            max_frame_bytes: config.max_frame_bytes as usize,
            write_timeout: Duration::from_secs(config.write_timeout_secs),
            placement_slots: Arc::new(Semaphore::new(config.max_placements_in_flight as usize)),
            api,
            shutdown: CancellationToken::new(),
            shutdown_drain: Duration::from_millis(config.shutdown_drain_ms),
            connections: TaskTracker::new(),
            subscriber_live,
            background,
            background_stop,
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
        })))
    }

    /// Ready to take clients: not stopping, and subscribed when on Redis.
    pub fn is_ready(&self) -> bool {
        !self.shutdown.is_cancelled()
            && self
                .subscriber_live
                .as_ref()
                .is_none_or(|live| live.load(Ordering::Relaxed))
    }
}

/// The board's rules, waiting a little for a canvas-api that starts after us.
async fn fetch_config(backend: &CanvasBackend) -> anyhow::Result<CanvasConfig> {
    let mut last = None;
    for _ in 0..60 {
        match backend.config().await {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!(error = %e, "waiting for canvas-api");
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    Err(anyhow::anyhow!(
        "cannot read the canvas config: {}",
        last.expect("tried")
    ))
}

/// Serves until `shutdown` completes. Then, at once, `/readyz` answers 503
/// and no new connection is accepted; WebSockets are closed with 1001
/// ("going away, reconnect") in batches spread over the drain window; once
/// they are gone (or the grace period since the signal is over) this pod's
/// presence key is deleted and announced, and the background tasks stop.
pub async fn run(
    listener: TcpListener,
    gateway: Gateway,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(gateway.clone());
    let limits = plumbing::listen::ServeLimits::new(
        &gateway.http_policy,
        gateway.auth.trusted_proxies(),
        gateway.auth.forwarded_for_watch(),
    );
    let token = gateway.shutdown.clone();
    let signal = async move {
        shutdown.await;
        token.cancel();
    };
    // One timer for the whole shutdown, started by the signal.
    let token = gateway.shutdown.clone();
    let grace = gateway.shutdown_grace;
    let grace_over = async move {
        token.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::pin!(grace_over);

    let serving = plumbing::listen::serve(listener, app, limits, signal);
    tokio::select! {
        result = serving => result?,
        () = &mut grace_over => tracing::warn!("HTTP requests still open after the grace period"),
    }
    gateway.connections.close();
    tokio::select! {
        () = gateway.connections.wait() => {}
        () = &mut grace_over => tracing::warn!(
            open = gateway.connections.len(),
            "connections still open after the grace period"
        ),
    }
    gateway.background_stop.cancel();
    gateway.background.close();
    if tokio::time::timeout(BACKGROUND_STOP_TIMEOUT, gateway.background.wait())
        .await
        .is_err()
    {
        tracing::warn!("background tasks (presence removal) did not stop in time");
    }
    tracing::info!("gateway stopped");
    Ok(())
}

/// The most the background tasks get to finish after the connections, on
/// top of the grace period: removing this pod's presence is one round trip.
pub const BACKGROUND_STOP_TIMEOUT: Duration = Duration::from_secs(2);
