//! `/api/history` and `/api/timelapse`: the history archive over HTTP.

use std::collections::HashMap;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use protocol::http::{HEADER_CANVAS_SEQ, HEADER_HISTORY_TIME, HistoryInfo};

use crate::archive::Archive;
use crate::archive::timelapse::TimelapseRequest;
use crate::{ApiError, AppState, render};

/// Frames in a timelapse when `frames` is not given.
pub const DEFAULT_FRAMES: u32 = 60;
/// Frames per second when `fps` is not given.
pub const DEFAULT_FPS: u16 = 15;
/// The longest side a timelapse frame gets when `scale` is not given.
pub const DEFAULT_MAX_SIDE: u32 = 1000;

pub fn history_routes() -> Router<AppState> {
    Router::new()
        .route("/api/history", get(info))
        .route("/api/history/board.png", get(board_png))
        .route("/api/timelapse", get(timelapse))
}

fn archive(state: &AppState) -> Result<&Archive, ApiError> {
    state.archive.as_ref().ok_or_else(|| {
        ApiError::NotFound(
            "the history archive is off (HISTORY_ARCHIVE=off, or Redis without ARCHIVE_DIR)".into(),
        )
    })
}

/// A whole-number query parameter, with a clear error for anything else.
fn number<T: std::str::FromStr>(
    query: &HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    query
        .get(name)
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::BadRequest(format!("{name} must be a whole number, not {v:?}"))
            })
        })
        .transpose()
}

async fn info(State(state): State<AppState>) -> Result<Json<HistoryInfo>, ApiError> {
    Ok(Json(archive(&state)?.info()))
}

/// `?at=MS`: the board as it was then, as a PNG.
async fn board_png(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let archive = archive(&state)?;
    let at = number::<u64>(&query, "at")?
        .ok_or_else(|| ApiError::BadRequest("at (ms since the Unix epoch) is required".into()))?;
    let board = archive.board_at(at).await?;
    let geometry = archive.geometry();
    let png = tokio::task::spawn_blocking(move || render::png(geometry, &board.rgb))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("PNG encoding: {e}")))?;
    let mut response = png.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    // A moment that has passed never changes (but the archive's newest
    // one may still grow, so only past moments are cacheable).
    let settled = archive.info().to.is_some_and(|to| at < to);
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if settled {
            "public, max-age=86400"
        } else {
            "no-store"
        }),
    );
    h.insert(HEADER_CANVAS_SEQ, board.seq.into());
    h.insert(HEADER_HISTORY_TIME, board.ts.into());
    Ok(response)
}

/// `?from=MS&to=MS&frames=N&fps=N&scale=N`: an animated PNG; `from` and
/// `to` default to the whole archive.
async fn timelapse(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let archive = archive(&state)?;
    let info = archive.info();
    let (Some(first), Some(last)) = (info.from, info.to) else {
        return Err(ApiError::NotFound("the archive holds nothing yet".into()));
    };
    let geometry = archive.geometry();
    let long_side = geometry.width.max(geometry.height);
    let request = TimelapseRequest {
        from: number(&query, "from")?.unwrap_or(first),
        to: number(&query, "to")?.unwrap_or(last.max(first + 1)),
        frames: number(&query, "frames")?.unwrap_or(DEFAULT_FRAMES),
        fps: number(&query, "fps")?.unwrap_or(DEFAULT_FPS),
        scale: number(&query, "scale")?.unwrap_or(long_side.div_ceil(DEFAULT_MAX_SIDE)),
    };
    let apng = archive.timelapse(request).await?;
    let mut response = apng.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/apng"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
