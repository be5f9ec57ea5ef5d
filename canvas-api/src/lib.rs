//! canvas-api: the board's owner. It validates pixel writes, stores them
//! atomically (Redis, or the embedded on-disk store), and serves the board
//! over HTTP. The gateway links this crate too, to run everything in one
//! process when no Redis is configured.

pub mod admin;
pub mod announce;
pub mod archive;
pub mod auth;
pub mod batch_routes;
pub mod canvas;
pub mod checksum;
pub mod chunks;
pub mod config;
pub mod error;
pub mod gateway_proof;
pub mod history;
pub mod maintenance;
pub mod metrics;
pub mod moderation;
pub mod notices;
pub mod palette;
pub mod placement_rate;
pub mod render;
pub mod routes;
pub mod store;

use std::future::Future;

use axum::Router;
// The shared plumbing, under the names this crate has always used for it.
pub use plumbing::{HttpPolicy, http_layers};
use plumbing::{client_ip, clock, listen};
use tokio::net::TcpListener;

pub use announce::Announcer;
pub use auth::Auth;
pub use canvas::Canvas;
pub use error::ApiError;
pub use notices::UserNotices;

/// What every canvas-api handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub canvas: Canvas,
    pub announcer: Announcer,
    /// Events for one user: the answers to their HTTP placements.
    pub notices: UserNotices,
    /// Session tokens and username claims.
    pub auth: Auth,
    /// The history archive, when kept by this process.
    pub archive: Option<archive::Archive>,
    /// Whether `PUT /api/pixel` believes a gateway's placement proof (the
    /// client IP it passes, and that it answers its client itself): the
    /// standalone canvas-api, which gateways call. Never the single
    /// process, whose public route no gateway calls.
    pub gateway_proofs: bool,
    /// `HTTP_PLACEMENTS_PER_SEC_PER_IP`: placements over HTTP per client IP.
    pub http_placements: std::sync::Arc<placement_rate::PlacementRate>,
}

/// The standalone canvas-api's router.
pub fn router(state: AppState, policy: &HttpPolicy) -> Router {
    let router = routes::all_routes()
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state);
    http_layers(router, policy)
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes
/// the requests in flight.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: listen::ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listen::serve(listener, router, limits, shutdown).await
}

/// Opens the store the configuration names: Redis when given, else the
/// embedded store in `DATA_DIR`.
pub async fn open_store(
    canvas: &config::CanvasArgs,
    redis: plumbing::redis::RedisTarget,
    store: &config::StoreArgs,
) -> anyhow::Result<store::CanvasStore> {
    canvas.validate_for_store().map_err(anyhow::Error::msg)?;
    let geometry = store::Geometry {
        width: canvas.width,
        height: canvas.height,
    };
    use plumbing::redis::RedisTarget;
    Ok(match redis {
        RedisTarget::Cluster(nodes) => store::CanvasStore::Cluster(
            store::ClusterStore::connect(
                nodes,
                geometry,
                canvas.replay_log_len,
                canvas.history_len as usize,
            )
            .await
            .map_err(|e| anyhow::anyhow!("Redis Cluster: {e}"))?,
        ),
        RedisTarget::Node(info) => store::CanvasStore::Redis(
            store::RedisStore::connect(
                *info,
                geometry,
                canvas.replay_log_len,
                canvas.history_len as usize,
            )
            .await
            .map_err(|e| anyhow::anyhow!("Redis: {e}"))?,
        ),
        RedisTarget::Embedded => {
            let dir = store.data_dir.clone();
            let log_len = canvas.replay_log_len;
            let history_len = canvas.history_len as usize;
            let embedded = tokio::task::spawn_blocking(move || {
                store::EmbeddedStore::open_with_history(&dir, geometry, log_len, history_len)
            })
            .await??;
            store::CanvasStore::Embedded(embedded)
        }
    })
}
