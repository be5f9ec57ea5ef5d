//! [`Canvas`]: the rules of the board (bounds, palette, username, cooldown)
//! in front of its store. Used by canvas-api's routes and, in the
//! single-process default, directly by the gateway.

use std::sync::Arc;

use protocol::http::CanvasConfig;
use protocol::username::is_valid_username;
use protocol::{Color, PixelUpdated};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::palette::Palette;
use crate::store::{CanvasStore, Geometry, PixelRecord, PlaceOutcome, Snapshot, Updates, Write};

/// The most events one `/api/updates` page carries.
pub const MAX_UPDATES_PAGE: usize = 10_000;

/// A page of writes from the replay log.
#[derive(Debug)]
pub struct UpdatesRead {
    pub events: Vec<PixelUpdated>,
    pub latest_seq: u64,
    pub has_more: bool,
    pub epoch: String,
}

#[derive(Clone)]
pub struct Canvas {
    inner: Arc<Inner>,
}

struct Inner {
    store: CanvasStore,
    palette: Palette,
    cooldown_ms: u64,
    metrics: Arc<Metrics>,
}

impl Canvas {
    pub fn new(store: CanvasStore, palette: Palette, cooldown_ms: u64) -> Self {
        Canvas {
            inner: Arc::new(Inner {
                store,
                palette,
                cooldown_ms,
                metrics: Arc::new(Metrics::default()),
            }),
        }
    }

    pub fn store(&self) -> &CanvasStore {
        &self.inner.store
    }

    pub fn geometry(&self) -> Geometry {
        self.inner.store.geometry()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The board's rules, and the `seq` they were read at.
    pub async fn config(&self) -> Result<CanvasConfig, ApiError> {
        let seq = self.inner.store.latest_seq().await?;
        let g = self.geometry();
        Ok(CanvasConfig {
            width: g.width,
            height: g.height,
            palette: self.inner.palette.colors().to_vec(),
            any_color: self.inner.palette.is_any(),
            cooldown_ms: self.inner.cooldown_ms,
            seq,
            // The board's owner does not know; `/api/config` fills it in.
            auth_required: false,
        })
    }

    /// Checks a placement against the board's rules without storing it.
    pub fn validate(&self, x: i64, y: i64, color: &str, username: &str) -> Result<Write, ApiError> {
        let g = self.geometry();
        if !g.contains(x, y) {
            return Err(ApiError::OutOfBounds {
                x,
                y,
                width: g.width,
                height: g.height,
            });
        }
        let color: Color = color
            .parse()
            .map_err(|e: protocol::ParseColorError| ApiError::InvalidColor(e.to_string()))?;
        if !self.inner.palette.allows(color) {
            return Err(ApiError::InvalidColor(format!(
                "{color} is not in the palette"
            )));
        }
        if !is_valid_username(username) {
            return Err(ApiError::InvalidUsername(
                "a username is 1-32 letters, digits, '_' or '-'".into(),
            ));
        }
        Ok(Write {
            x: x as u32,
            y: y as u32,
            color,
            username: username.to_owned(),
            cooldown_ms: self.inner.cooldown_ms,
        })
    }

    /// Validates and stores one pixel. `Ok` means stored.
    pub async fn place(
        &self,
        x: i64,
        y: i64,
        color: &str,
        username: &str,
    ) -> Result<PixelUpdated, ApiError> {
        let m = &self.inner.metrics;
        let write = match self.validate(x, y, color, username) {
            Ok(w) => w,
            Err(e) => {
                m.placements_invalid.inc();
                return Err(e);
            }
        };
        let started = std::time::Instant::now();
        let outcome = self.inner.store.place(&write).await;
        m.store_latency.observe(started.elapsed());
        match outcome {
            Ok(PlaceOutcome::Stored(event)) => {
                m.placements_stored.inc();
                m.seq.set(event.seq);
                Ok(event)
            }
            Ok(PlaceOutcome::Cooldown { retry_after_ms }) => {
                m.placements_cooldown.inc();
                Err(ApiError::Cooldown { retry_after_ms })
            }
            Err(e) => {
                m.placements_failed.inc();
                Err(e.into())
            }
        }
    }

    pub async fn snapshot(&self) -> Result<Snapshot, ApiError> {
        Ok(self.inner.store.snapshot().await?)
    }

    pub async fn pixel(&self, x: i64, y: i64) -> Result<PixelRecord, ApiError> {
        let g = self.geometry();
        if !g.contains(x, y) {
            return Err(ApiError::OutOfBounds {
                x,
                y,
                width: g.width,
                height: g.height,
            });
        }
        let (x, y) = (x as u32, y as u32);
        self.inner
            .store
            .pixel(x, y)
            .await?
            .ok_or(ApiError::NeverPlaced { x, y })
    }

    /// Events after `since`, at most `limit` (capped at [`MAX_UPDATES_PAGE`]);
    /// with `epoch`, 410 unless the board still has that epoch.
    pub async fn updates_since(
        &self,
        since: u64,
        limit: usize,
        epoch: Option<&str>,
    ) -> Result<UpdatesRead, ApiError> {
        let limit = limit.clamp(1, MAX_UPDATES_PAGE);
        match self.inner.store.updates_since(since, limit, epoch).await? {
            Updates::Page {
                events,
                latest_seq,
                has_more,
                epoch,
            } => Ok(UpdatesRead {
                events,
                latest_seq,
                has_more,
                epoch,
            }),
            Updates::Gone { latest_seq } => Err(ApiError::Gone { since, latest_seq }),
        }
    }

    pub async fn ready(&self) -> Result<(), ApiError> {
        Ok(self.inner.store.ping().await?)
    }
}
