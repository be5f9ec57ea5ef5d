//! `POST /api/pixels`: many placements in one request, each decided on its
//! own and answered in order. The route a gateway sends the placements of
//! its WebSockets to (one request per batch, one store step for all of
//! them), and usable by anyone else under the rules of `PUT /api/pixel`:
//! an item carries a client IP, and is answered to the caller alone, only
//! with a gateway proof that signs exactly that item.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use protocol::http::{BatchPlacement, BatchResult, MAX_BATCH_PLACEMENTS, PlacePixelResponse};
use protocol::username::is_valid_username;

use crate::AppState;
use crate::auth::bearer;
use crate::canvas::Placement;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::gateway_proof::PlacementClaim;
use crate::routes::read_body;

/// The largest `POST /api/pixels` body: every route's limit, which holds
/// [`MAX_BATCH_PLACEMENTS`] items of a gateway (about 200 bytes each).
pub const MAX_PIXELS_BODY: usize = plumbing::http_policy::MAX_REQUEST_BODY;

pub fn batch_routes() -> Router<AppState> {
    Router::new().route("/api/pixels", axum::routing::post(place_pixels))
}

/// Who places an item and from which address, once its proof (or the
/// request's token, or the peer's address) has spoken.
struct Checked {
    username: String,
    /// Counted against the per-IP pool (`None`: a gateway that did not
    /// know its client's address, as on `PUT /api/pixel`).
    ip: Option<IpAddr>,
    /// Not a gateway's: the user's connections hear the answer too.
    over_http: bool,
}

async fn place_pixels(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Vec<BatchResult>>, ApiError> {
    let body = read_body(body, MAX_PIXELS_BODY)?;
    let items: Vec<BatchPlacement> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body must be a JSON array of {{\"x\", \"y\", \"color\", \"username\", \"ip\", \"proof\"}}: {e}"
        ))
    })?;
    if items.is_empty() || items.len() > MAX_BATCH_PLACEMENTS {
        return Err(ApiError::BadRequest(format!(
            "a batch holds 1 to {MAX_BATCH_PLACEMENTS} placements, got {}",
            items.len()
        )));
    }
    let token_user = match bearer(&headers)? {
        Some(token) => Some(state.auth.verify(token)?.username),
        None => None,
    };
    let now = now_ms();
    let checked: Vec<Result<Checked, ApiError>> = items
        .iter()
        .map(|item| {
            check(
                &state,
                item,
                token_user.as_deref(),
                peer.ip(),
                &headers,
                now,
            )
        })
        .collect();
    let placements: Vec<Placement<'_>> = items
        .iter()
        .zip(&checked)
        .filter_map(|(item, c)| {
            let c = c.as_ref().ok()?;
            Some(Placement {
                x: item.x,
                y: item.y,
                color: &item.color,
                username: &c.username,
                ip: c.ip,
            })
        })
        .collect();
    let mut placed = state.canvas.place_many(&placements).await.into_iter();
    let mut results = Vec::with_capacity(items.len());
    for (item, c) in items.iter().zip(checked) {
        let (answer, c) = match c {
            Ok(c) => (
                placed
                    .next()
                    .unwrap_or_else(|| Err(ApiError::Internal("a placement got no answer".into()))),
                Some(c),
            ),
            Err(e) => (Err(e), None),
        };
        // The store announced each stored pixel as it stored it; only the
        // answers to users placing over HTTP are left.
        if let Some(c) = c.as_ref().filter(|c| c.over_http) {
            match &answer {
                Ok(event) => state.notices.placed_over_http(event).await,
                Err(e) if is_valid_username(&c.username) => {
                    state
                        .notices
                        .failed_over_http(&c.username, item.x, item.y, e)
                        .await
                }
                Err(_) => {}
            }
        }
        results.push(match answer {
            Ok(event) => BatchResult::Placed(PlacePixelResponse {
                seq: event.seq,
                timestamp: event.timestamp,
                x: event.x,
                y: event.y,
                color: event.color,
            }),
            Err(e) => {
                if let ApiError::Unavailable(cause) | ApiError::Internal(cause) = &e {
                    tracing::warn!(%cause, "a batched placement failed");
                }
                BatchResult::Failed(e.detail())
            }
        });
    }
    Ok(Json(results))
}

/// One item's user and address, as `PUT /api/pixel` decides them: a
/// gateway's proof for exactly this item, else the token's user (or the
/// item's name, unless AUTH=required) counted by the caller's address.
fn check(
    state: &AppState,
    item: &BatchPlacement,
    token_user: Option<&str>,
    peer: IpAddr,
    headers: &HeaderMap,
    now: u64,
) -> Result<Checked, ApiError> {
    // The single process's public route never believes a proof: no gateway
    // calls it, so whoever sends one is a client.
    match item.proof.as_deref().filter(|_| state.gateway_proofs) {
        Some(proof) => {
            let ip = match &item.ip {
                Some(ip) => Some(ip.parse::<IpAddr>().map_err(|_| {
                    ApiError::BadRequest(format!("`ip` must be an IP address, got {ip:?}"))
                })?),
                None => None,
            };
            let claim = PlacementClaim {
                username: &item.username,
                ip,
                x: item.x,
                y: item.y,
                color: &item.color,
            };
            state
                .auth
                .gateway_key()
                .verify(proof, &claim, now)
                .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
            Ok(Checked {
                username: item.username.clone(),
                ip,
                over_http: false,
            })
        }
        None => {
            let username = match token_user {
                Some(user) => user.to_owned(),
                None if state.auth.required() => {
                    return Err(ApiError::Unauthorized(
                        "AUTH=required: send `Authorization: Bearer <token>` (from POST /api/session)"
                            .into(),
                    ));
                }
                None => item.username.clone(),
            };
            let ip = state.auth.client_ip(peer, headers);
            state.http_placements.take(ip)?;
            Ok(Checked {
                username,
                ip: Some(ip),
                over_http: true,
            })
        }
    }
}
