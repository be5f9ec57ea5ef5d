//! `GET /api/chunk/{cx}/{cy}.bin`: one chunk of the board, what a client
//! that views part of a large board loads instead of `canvas.bin`.
//!
//! The body is [`CHUNK_BYTES`] of RGB, row-major, [`CHUNK_SIZE`] pixels a
//! row, white outside the board; `X-Canvas-Seq` is the last write the bytes
//! include and `X-Canvas-Epoch` the board's epoch, read in the same atomic
//! step, so a client applies exactly the events after it. The response is
//! cacheable with revalidation: its `ETag` is a hash of the chunk's bytes,
//! so it changes only when the chunk does (a write elsewhere on the board
//! leaves it), and a matching `If-None-Match` is answered 304 without the
//! bytes but with the current `X-Canvas-Seq`, which the cached bytes are
//! then still exact for.

use std::sync::LazyLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use protocol::http::{HEADER_CANVAS_CHUNK_SIZE, HEADER_CANVAS_EPOCH, HEADER_CANVAS_SEQ};

use crate::AppState;
use crate::checksum::fnv1a64;
use crate::error::ApiError;
use crate::store::chunk::{CHUNK_BYTES, CHUNK_SIZE, ChunkId};

/// A chunk nobody wrote, shared by every answer that needs it.
static WHITE_CHUNK: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(vec![0xFF; CHUNK_BYTES]));

pub fn chunk_routes() -> Router<AppState> {
    Router::new().route("/api/chunk/{cx}/{file}", get(chunk))
}

async fn chunk(
    State(state): State<AppState>,
    Path((cx, file)): Path<(String, String)>,
    request_headers: HeaderMap,
) -> Result<Response, ApiError> {
    let g = state.canvas.geometry();
    let id = parse_chunk(&cx, &file)?;
    if !g.has_chunk(id) {
        return Err(ApiError::NotFound(format!(
            "chunk ({}, {}) is outside the board: it has {}x{} chunks of {CHUNK_SIZE}x{CHUNK_SIZE} pixels",
            id.cx,
            id.cy,
            g.chunks_across(),
            g.chunks_down()
        )));
    }
    let chunk = state.canvas.store().chunk(id).await?;
    let etag = match &chunk.rgb {
        Some(rgb) => format!("\"c{:016x}\"", fnv1a64(rgb)),
        None => "\"white\"".to_owned(),
    };
    let fresh = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        chunk
            .rgb
            .unwrap_or_else(|| WHITE_CHUNK.clone())
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // Any cache may keep it, and must ask (cheaply, by ETag) before reuse:
    // the chunk changes with every write in it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(HEADER_CANVAS_SEQ, chunk.seq.into());
    h.insert(HEADER_CANVAS_CHUNK_SIZE, CHUNK_SIZE.into());
    if let Ok(epoch) = HeaderValue::from_str(&chunk.epoch) {
        h.insert(HEADER_CANVAS_EPOCH, epoch);
    }
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-canvas-seq, x-canvas-epoch, x-canvas-chunk-size, etag"),
    );
    Ok(response)
}

/// `cx` and `"<cy>.bin"` as a chunk position, or why not.
fn parse_chunk(cx: &str, file: &str) -> Result<ChunkId, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "/api/chunk/{cx}/{file} is not a chunk: the path is /api/chunk/{{cx}}/{{cy}}.bin \
             with cx and cy chunk numbers (pixel x / {CHUNK_SIZE}, y / {CHUNK_SIZE})"
        ))
    };
    let cy = file.strip_suffix(".bin").ok_or_else(bad)?;
    let number = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u32>().ok()
    };
    Ok(ChunkId {
        cx: number(cx).ok_or_else(bad)?,
        cy: number(cy).ok_or_else(bad)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_paths_parse_only_as_two_numbers_and_bin() {
        assert_eq!(
            parse_chunk("3", "17.bin").unwrap(),
            ChunkId { cx: 3, cy: 17 }
        );
        for (cx, file) in [
            ("3", "17"),
            ("3", "17.png"),
            ("-1", "0.bin"),
            ("+1", "0.bin"),
            ("a", "0.bin"),
            ("0", ".bin"),
            ("0", "99999999999.bin"),
        ] {
            let err = parse_chunk(cx, file).unwrap_err();
            assert!(
                err.to_string().contains("{cx}/{cy}.bin"),
                "{cx}/{file}: {err}"
            );
        }
    }
}
