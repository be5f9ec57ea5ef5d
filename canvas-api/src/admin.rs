//! The moderation API, `/api/admin/*`: bans (and their list), rollback, undo, protected
//! rectangles, clearing, and the audit log. Every route needs
//! `Authorization: Bearer <ADMIN_TOKEN>` (compared in constant time);
//! without `ADMIN_TOKEN` configured they all answer 404
//! `moderation_disabled`. Each action is recorded in the store's audit log
//! and in the tracing log with who (the body's `by`, else the
//! `x-admin-name` header, else `admin`), what and when.

use std::collections::HashMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::NoticeCode;
use protocol::http::{
    AuditEntry, AuditPage, BanInfo, BanRequest, ClearRequest, ModerationResult, ProtectRequest,
    Protection, RollbackRequest, UnbanRequest, UndoRequest, UnprotectRequest,
};
use protocol::username::is_valid_username;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::clock::now_ms;
use crate::error::ApiError;

/// The largest admin request body.
pub const MAX_ADMIN_BODY: usize = 4 * 1024;
/// The header naming the acting admin when the body does not.
pub const HEADER_ADMIN_NAME: &str = "x-admin-name";
/// Audit entries one `GET /api/admin/audit` returns when `limit` is not
/// given.
const DEFAULT_AUDIT_PAGE: usize = 100;

pub fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/api/admin/ban", post(ban))
        .route("/api/admin/unban", post(unban))
        .route("/api/admin/bans", get(bans))
        .route("/api/admin/rollback", post(rollback))
        .route("/api/admin/undo", post(undo))
        .route("/api/admin/protect", post(protect))
        .route("/api/admin/unprotect", post(unprotect))
        .route("/api/admin/protections", get(protections))
        .route("/api/admin/clear", post(clear))
        .route("/api/admin/audit", get(audit))
        .layer(DefaultBodyLimit::max(MAX_ADMIN_BODY))
}

/// Equal-length byte strings compared without an early exit, so the time
/// taken says nothing about how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses a request without the admin token; returns the acting admin.
fn authorize(state: &AppState, headers: &HeaderMap, by: Option<&str>) -> Result<String, ApiError> {
    let Some(token) = state.canvas.admin_token() else {
        return Err(ApiError::ModerationDisabled);
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
        return Err(ApiError::Unauthorized(
            "the admin routes need `Authorization: Bearer <ADMIN_TOKEN>`".into(),
        ));
    }
    let by = by
        .map(str::to_owned)
        .or_else(|| {
            headers
                .get(HEADER_ADMIN_NAME)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "admin".into());
    if !is_valid_username(&by) {
        return Err(ApiError::BadRequest(
            "`by` (or x-admin-name) is 1-32 letters, digits, '_' or '-'".into(),
        ));
    }
    Ok(by)
}

/// The body, or a typed 400 saying what was wrong with it. Checked after
/// the token, so an unauthorized caller learns nothing about the shape.
fn body<T: DeserializeOwned>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b).map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(MAX_ADMIN_BODY)
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })
}

/// The token check needs `by` from the body, but the body's errors must
/// come after the token check: peek at `by` leniently first.
fn by_of(raw: &Result<Json<serde_json::Value>, JsonRejection>) -> Option<&str> {
    raw.as_ref().ok()?.0.get("by")?.as_str()
}

/// Authorizes, then parses the body as `T`.
fn admit<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    raw: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(String, T), ApiError> {
    let by = authorize(state, headers, by_of(&raw))?;
    let value = body(raw)?;
    let parsed = serde_json::from_value(value)
        .map_err(|e| ApiError::BadRequest(format!("the body does not fit this route: {e}")))?;
    Ok((by, parsed))
}

/// Records an action in the audit log and the tracing log.
async fn record(state: &AppState, by: &str, action: &str, detail: String) {
    tracing::info!(by, action, %detail, "moderation");
    let entry = AuditEntry {
        at: now_ms(),
        by: by.to_owned(),
        action: action.to_owned(),
        detail,
    };
    if let Err(e) = state.canvas.store().audit_push(&entry).await {
        tracing::error!(error = %e, by, action, "the audit log cannot be written");
    }
}

/// Runs a moderation action to its end in a task of its own: a caller that
/// gives up (a proxy's timeout on a big rollback) must not cut it off
/// halfway, between its slices, unannounced and unaudited.
async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(work)
        .await
        .map_err(|e| ApiError::Internal(format!("moderation task: {e}")))?
}

fn check_username(username: &str) -> Result<(), ApiError> {
    if is_valid_username(username) {
        Ok(())
    } else {
        Err(ApiError::InvalidUsername(
            "a username is 1-32 letters, digits, '_' or '-'".into(),
        ))
    }
}

async fn ban(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<BanInfo>, ApiError> {
    let (by, req): (_, BanRequest) = admit(&state, &headers, raw)?;
    check_username(&req.username)?;
    let at = now_ms();
    let ban = BanInfo {
        username: req.username.clone(),
        reason: req.reason.clone(),
        until: req.duration_ms.map(|d| at.saturating_add(d.max(1))),
        by: by.clone(),
        at,
    };
    state.canvas.store().ban(&ban).await?;
    let message = match &req.reason {
        Some(reason) => format!("You are banned from placing pixels: {reason}"),
        None => "You are banned from placing pixels.".to_owned(),
    };
    if let Err(cause) = state
        .notices
        .notice(&req.username, NoticeCode::Banned, message)
        .await
    {
        tracing::warn!(%cause, username = %req.username, "cannot tell the user of their ban");
    }
    record(
        &state,
        &by,
        "ban",
        format!(
            "{} (reason: {}, until: {})",
            req.username,
            req.reason.as_deref().unwrap_or("none"),
            ban.until.map_or("unbanned".into(), |u| u.to_string())
        ),
    )
    .await;
    Ok(Json(ban))
}

async fn unban(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (by, req): (_, UnbanRequest) = admit(&state, &headers, raw)?;
    check_username(&req.username)?;
    let was_banned = state.canvas.store().unban(&req.username).await?;
    if was_banned
        && let Err(cause) = state
            .notices
            .notice(
                &req.username,
                NoticeCode::Info,
                "Your ban was lifted; you may place pixels again.",
            )
            .await
    {
        tracing::debug!(%cause, "cannot tell the user of their unban");
    }
    record(
        &state,
        &by,
        "unban",
        format!("{} (was banned: {was_banned})", req.username),
    )
    .await;
    Ok(Json(
        serde_json::json!({ "username": req.username, "wasBanned": was_banned }),
    ))
}

async fn bans(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<BanInfo>>, ApiError> {
    authorize(&state, &headers, None)?;
    Ok(Json(state.canvas.store().bans().await?))
}

async fn rollback(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<ModerationResult>, ApiError> {
    let (by, req): (_, RollbackRequest) = admit(&state, &headers, raw)?;
    let result = detached(async move {
        // The store announced each write as it stored it.
        let (_events, result) = state.canvas.rollback(req.rect, req.at).await?;
        let r = req.rect;
        record(
            &state,
            &by,
            "rollback",
            format!(
                "({}, {})-({}, {}) to {}: {} changed, {} skipped, {} unknown",
                r.x0, r.y0, r.x1, r.y1, req.at, result.changed, result.skipped, result.unknown
            ),
        )
        .await;
        Ok(result)
    })
    .await?;
    Ok(Json(result))
}

async fn undo(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<ModerationResult>, ApiError> {
    let (by, req): (_, UndoRequest) = admit(&state, &headers, raw)?;
    check_username(&req.username)?;
    let result = detached(async move {
        // The store announced each write as it stored it.
        let (_events, result) = state.canvas.undo(&req.username, req.since).await?;
        record(
            &state,
            &by,
            "undo",
            format!(
                "{} since {}: {} changed, {} skipped, {} unknown",
                req.username, req.since, result.changed, result.skipped, result.unknown
            ),
        )
        .await;
        Ok(result)
    })
    .await?;
    Ok(Json(result))
}

async fn protect(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<Protection>, ApiError> {
    let (by, req): (_, ProtectRequest) = admit(&state, &headers, raw)?;
    let r = req.rect;
    let g = state.canvas.geometry();
    if r.x0 > r.x1 || r.y0 > r.y1 || r.x1 >= g.width || r.y1 >= g.height {
        return Err(ApiError::BadRequest(format!(
            "a rectangle needs x0 <= x1 < {} and y0 <= y1 < {}",
            g.width, g.height
        )));
    }
    let protection = state
        .canvas
        .store()
        .protect(r, &by, now_ms())
        .await?
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "at most {} rectangles may be protected at once",
                crate::store::MAX_PROTECTIONS
            ))
        })?;
    record(
        &state,
        &by,
        "protect",
        format!(
            "#{} ({}, {})-({}, {})",
            protection.id, r.x0, r.y0, r.x1, r.y1
        ),
    )
    .await;
    Ok(Json(protection))
}

async fn unprotect(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (by, req): (_, UnprotectRequest) = admit(&state, &headers, raw)?;
    if !state.canvas.store().unprotect(req.id).await? {
        return Err(ApiError::NotFound(format!("no protection #{}", req.id)));
    }
    record(&state, &by, "unprotect", format!("#{}", req.id)).await;
    Ok(Json(serde_json::json!({ "id": req.id })))
}

async fn protections(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Vec<Protection>>, ApiError> {
    authorize(&state, &headers, None)?;
    Ok(Json(state.canvas.store().protections().await?))
}

async fn clear(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<ModerationResult>, ApiError> {
    let (by, _req): (_, ClearRequest) = admit(&state, &headers, raw)?;
    let (seq, _) = state.canvas.store().clear().await?;
    record(
        &state,
        &by,
        "clear",
        format!("the whole board, as seq {seq}"),
    )
    .await;
    let g = state.canvas.geometry();
    Ok(Json(ModerationResult {
        changed: g.pixel_count() as u64,
        skipped: 0,
        unknown: 0,
        seq,
    }))
}

async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>, ApiError> {
    authorize(&state, &headers, None)?;
    let limit = match query.get("limit") {
        None => DEFAULT_AUDIT_PAGE,
        Some(raw) => raw.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| {
            ApiError::BadRequest(format!("`limit` must be a positive integer, got {raw:?}"))
        })?,
    };
    let entries = state
        .canvas
        .store()
        .audit(limit.min(crate::store::AUDIT_LEN))
        .await?;
    Ok(Json(AuditPage { entries }))
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcdeg"));
        assert!(!constant_time_eq(b"abcdef", b"abcde"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
