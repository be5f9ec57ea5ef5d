//! [`CanvasBackend`]: where the gateway stores placements (a batch per
//! call, see `placement_batch.rs`) and reads the replay log: the board in
//! this process, or a separate canvas-api over a pooled keep-alive HTTP
//! client (the Kubernetes shape).

use std::net::IpAddr;
use std::time::Duration;

use canvas_api::canvas::Placement;
use canvas_api::gateway_proof::PlacementClaim;
use canvas_api::store::ReplayPage;
use canvas_api::{ApiError, Auth, Canvas};
use protocol::PixelUpdated;
use protocol::ServerMessage;
use protocol::http::{BatchPlacement, BatchResult, CanvasConfig, ErrorBody, UpdatesPage};
use serde::de::DeserializeOwned;

/// How long a call to canvas-api may take before the placement is reported
/// `unavailable`.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long an idle pooled connection to canvas-api is kept: under
/// canvas-api's least `HEADER_READ_TIMEOUT_SECS` worth using (it closes
/// idle connections after that), so a request never races the close.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// One placement a connection asked for, as the gateway hands it to the
/// store: the client's IP goes along for the per-IP pool.
#[derive(Debug, Clone)]
pub struct PixelPlacement {
    pub x: i64,
    pub y: i64,
    pub color: String,
    pub username: String,
    pub ip: Option<IpAddr>,
}

#[derive(Clone)]
pub enum CanvasBackend {
    InProcess(Canvas),
    Remote(RemoteCanvas),
}

impl CanvasBackend {
    /// Validates and stores each pixel on its own, in one store step (one
    /// request to canvas-api, one script call or lock): one answer per
    /// placement, in order; `Ok` means stored, and so announced.
    pub async fn place_many(
        &self,
        placements: &[PixelPlacement],
    ) -> Vec<Result<PixelUpdated, ApiError>> {
        match self {
            CanvasBackend::InProcess(canvas) => {
                let borrowed: Vec<Placement<'_>> = placements
                    .iter()
                    .map(|p| Placement {
                        x: p.x,
                        y: p.y,
                        color: &p.color,
                        username: &p.username,
                        ip: p.ip,
                    })
                    .collect();
                canvas.place_many(&borrowed).await
            }
            CanvasBackend::Remote(remote) => remote.place_many(placements).await,
        }
    }

    pub async fn updates_since(&self, since: u64, limit: usize) -> Result<ReplayPage, ApiError> {
        match self {
            CanvasBackend::InProcess(canvas) => canvas.updates_since(since, limit, None).await,
            CanvasBackend::Remote(remote) => remote.updates_since(since, limit).await,
        }
    }

    pub async fn config(&self) -> Result<CanvasConfig, ApiError> {
        match self {
            CanvasBackend::InProcess(canvas) => canvas.config().await,
            CanvasBackend::Remote(remote) => remote.get_json("/api/config").await,
        }
    }
}

#[derive(Clone)]
pub struct RemoteCanvas {
    http: reqwest::Client,
    base: String,
    /// Signs each placement made for a WebSocket (its user and client IP),
    /// so canvas-api never has to trust a bare username or address.
    auth: Auth,
}

impl RemoteCanvas {
    pub fn new(base_url: &str, auth: Auth) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(REMOTE_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()?;
        Ok(RemoteCanvas {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// One `POST /api/pixels` for the batch, each item with its own proof;
    /// a request that fails as a whole answers every item with its error.
    async fn place_many(
        &self,
        placements: &[PixelPlacement],
    ) -> Vec<Result<PixelUpdated, ApiError>> {
        let key = self.auth.gateway_key();
        let now = plumbing::clock::now_ms();
        let body: Vec<BatchPlacement> = placements
            .iter()
            .map(|p| BatchPlacement {
                x: p.x,
                y: p.y,
                color: p.color.clone(),
                username: p.username.clone(),
                ip: p.ip.map(|ip| ip.to_string()),
                proof: Some(key.mint(
                    &PlacementClaim {
                        username: &p.username,
                        ip: p.ip,
                        x: p.x,
                        y: p.y,
                        color: &p.color,
                    },
                    now,
                )),
            })
            .collect();
        let results = match self.post_batch(&body).await {
            Ok(results) if results.len() == placements.len() => results,
            Ok(results) => {
                let e = ApiError::Internal(format!(
                    "canvas-api answered {} results for {} placements",
                    results.len(),
                    placements.len()
                ));
                return placements.iter().map(|_| Err(e.clone())).collect();
            }
            Err(e) => return placements.iter().map(|_| Err(e.clone())).collect(),
        };
        placements
            .iter()
            .zip(results)
            .map(|(p, result)| match result {
                BatchResult::Placed(placed) => Ok(PixelUpdated {
                    x: placed.x,
                    y: placed.y,
                    color: placed.color,
                    username: p.username.clone(),
                    timestamp: placed.timestamp,
                    seq: placed.seq,
                }),
                BatchResult::Failed(detail) => Err(ApiError::Remote(detail)),
            })
            .collect()
    }

    async fn post_batch(&self, body: &[BatchPlacement]) -> Result<Vec<BatchResult>, ApiError> {
        let response = self
            .http
            .post(format!("{}/api/pixels", self.base))
            .json(body)
            .send()
            .await
            .map_err(unreachable)?;
        read_json(response).await
    }

    async fn updates_since(&self, since: u64, limit: usize) -> Result<ReplayPage, ApiError> {
        let page: UpdatesPage = self
            .get_json(&format!("/api/updates?since={since}&limit={limit}"))
            .await?;
        let events = page
            .events
            .into_iter()
            .filter_map(|m| match m {
                ServerMessage::PixelUpdated(e) => Some(e),
                _ => None,
            })
            .collect();
        Ok(ReplayPage {
            events,
            latest_seq: page.latest_seq,
            has_more: page.has_more,
            epoch: page.epoch,
        })
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .map_err(unreachable)?;
        read_json(response).await
    }
}

fn unreachable(e: reqwest::Error) -> ApiError {
    ApiError::Unavailable(format!("canvas-api: {e}"))
}

/// Reads a 2xx body as `T`, or a canvas-api error body as the same error.
async fn read_json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, ApiError> {
    let status = response.status();
    let bytes = response.bytes().await.map_err(unreachable)?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::Internal(format!(
                "canvas-api answered {status} with an unreadable body: {e}"
            ))
        });
    }
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) if status.is_client_error() => Err(ApiError::Remote(body.error)),
        Ok(body) => Err(ApiError::Unavailable(format!(
            "canvas-api answered {status}: {}",
            body.error.message
        ))),
        Err(_) => Err(ApiError::Unavailable(format!(
            "canvas-api answered {status}"
        ))),
    }
}
