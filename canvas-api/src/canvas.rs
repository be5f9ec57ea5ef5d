//! [`Canvas`]: the rules of the board (bounds, palette, username, cooldown,
//! pixel pools, per-IP limits) in front of its store. Used by canvas-api's routes and, in the
//! single-process default, directly by the gateway.

use std::net::IpAddr;
use std::sync::Arc;

use protocol::http::CanvasConfig;
use protocol::username::is_valid_username;
use protocol::{Color, PixelUpdated};

use crate::config::CanvasArgs;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::palette::Palette;
use crate::store::chunk::ChunkId;
use crate::store::{
    CanvasStore, Gcra, Geometry, PixelRecord, PlaceOutcome, ReplayPage, Snapshot, Updates, Write,
};

/// One placement as its caller has it: checked by [`Canvas::place_many`].
/// `ip` is the placing client's address, counted against the per-IP pool.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    pub x: i64,
    pub y: i64,
    pub color: &'a str,
    pub username: &'a str,
    pub ip: Option<IpAddr>,
}

/// The most events one `/api/updates` page carries.
pub const MAX_UPDATES_PAGE: usize = 10_000;

#[derive(Clone)]
pub struct Canvas {
    inner: Arc<Inner>,
}

struct Inner {
    store: CanvasStore,
    palette: Palette,
    cooldown_ms: u64,
    pool: Option<Gcra>,
    ip_pool: Option<Gcra>,
    history_len: usize,
    /// The moderation API's bearer token; `None` disables it.
    admin_token: Option<String>,
    metrics: Arc<Metrics>,
}

impl Canvas {
    /// A board with a cooldown and nothing else (no pools, no moderation).
    pub fn new(store: CanvasStore, palette: Palette, cooldown_ms: u64) -> Self {
        let metrics = Arc::new(Metrics::counting_announcements_of(&store));
        Canvas {
            inner: Arc::new(Inner {
                store,
                palette,
                cooldown_ms,
                pool: None,
                ip_pool: None,
                history_len: crate::store::embedded::DEFAULT_HISTORY_LEN,
                admin_token: None,
                metrics,
            }),
        }
    }

    /// A board with every rule the configuration names.
    pub fn from_args(store: CanvasStore, args: &CanvasArgs) -> Self {
        let metrics = Arc::new(Metrics::counting_announcements_of(&store));
        Canvas {
            inner: Arc::new(Inner {
                store,
                palette: args.palette.clone(),
                cooldown_ms: args.cooldown_ms,
                pool: args.pool(),
                ip_pool: args.ip_pool(),
                history_len: args.history_len as usize,
                admin_token: args.admin_token.clone(),
                metrics,
            }),
        }
    }

    pub fn admin_token(&self) -> Option<&str> {
        self.inner.admin_token.as_deref()
    }

    /// How many placements each pixel's history keeps.
    pub fn history_len(&self) -> usize {
        self.inner.history_len
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
        let store = &self.inner.store;
        let clustered = matches!(store, CanvasStore::Cluster(_));
        let seq = if clustered {
            0
        } else {
            store.latest_seq().await?
        };
        let g = self.geometry();
        Ok(CanvasConfig {
            width: g.width,
            height: g.height,
            palette: self.inner.palette.colors().to_vec(),
            any_color: self.inner.palette.is_any(),
            cooldown_ms: self.inner.cooldown_ms,
            pool_size: self.inner.pool.map(|p| p.size),
            pool_refill_ms: self.inner.pool.map(|p| p.refill_ms),
            seq,
            // The board's owner does not know; `/api/config` fills it in.
            auth_required: false,
            chunk_size: crate::store::chunk::CHUNK_SIZE,
            whole_board: !clustered && g.byte_len() as u64 <= crate::store::MAX_WHOLE_READ_BYTES,
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
            pool: self.inner.pool,
            ip_pool: None,
        })
    }

    /// Validates and stores one pixel. `Ok` means stored. `ip` is the
    /// placing client's address, counted against the per-IP pool.
    pub async fn place(
        &self,
        x: i64,
        y: i64,
        color: &str,
        username: &str,
        ip: Option<IpAddr>,
    ) -> Result<PixelUpdated, ApiError> {
        let placement = Placement {
            x,
            y,
            color,
            username,
            ip,
        };
        self.place_many(std::slice::from_ref(&placement))
            .await
            .pop()
            .unwrap_or_else(|| Err(ApiError::Internal("a placement got no answer".into())))
    }

    /// Validates and stores each placement on its own, the valid ones in
    /// one store step (one script call, one lock): one answer per
    /// placement, in order. A store that fails answers each of them with
    /// its error.
    pub async fn place_many(
        &self,
        placements: &[Placement<'_>],
    ) -> Vec<Result<PixelUpdated, ApiError>> {
        let m = &self.inner.metrics;
        let mut answers: Vec<Option<Result<PixelUpdated, ApiError>>> =
            Vec::with_capacity(placements.len());
        let mut writes = Vec::with_capacity(placements.len());
        // For each write, the index of its placement.
        let mut of_placement = Vec::with_capacity(placements.len());
        for (i, p) in placements.iter().enumerate() {
            match self.validate(p.x, p.y, p.color, p.username) {
                Ok(w) => {
                    writes.push(Write {
                        ip_pool: self.inner.ip_pool.zip(p.ip).map(|(pool, ip)| (ip, pool)),
                        ..w
                    });
                    of_placement.push(i);
                    answers.push(None);
                }
                Err(e) => {
                    m.placements_invalid.inc();
                    answers.push(Some(Err(e)));
                }
            }
        }
        if !writes.is_empty() {
            let started = std::time::Instant::now();
            let outcomes = self.inner.store.place_many(&writes).await;
            m.store_latency.observe(started.elapsed());
            m.place_batches.inc();
            match outcomes {
                Ok(outcomes) => {
                    for (i, outcome) in of_placement.iter().zip(outcomes) {
                        answers[*i] = Some(self.answer(outcome));
                    }
                }
                Err(e) => {
                    for i in of_placement {
                        m.placements_failed.inc();
                        answers[i] = Some(Err(e.clone().into()));
                    }
                }
            }
        }
        answers
            .into_iter()
            .map(|a| a.unwrap_or_else(|| Err(ApiError::Internal("a write got no outcome".into()))))
            .collect()
    }

    /// What a store's outcome means to the placing client, counted.
    fn answer(&self, outcome: PlaceOutcome) -> Result<PixelUpdated, ApiError> {
        let m = &self.inner.metrics;
        match outcome {
            PlaceOutcome::Stored(event) => {
                m.placements_stored.inc();
                m.seq.set(event.seq);
                Ok(event)
            }
            PlaceOutcome::Cooldown { retry_after_ms }
            | PlaceOutcome::PoolEmpty { retry_after_ms } => {
                m.placements_cooldown.inc();
                Err(ApiError::Cooldown { retry_after_ms })
            }
            PlaceOutcome::IpLimited { retry_after_ms } => {
                m.placements_ip_limited.inc();
                Err(ApiError::RateLimited {
                    message: format!(
                        "too many placements from your address; retry in {}.{:03} s",
                        retry_after_ms / 1000,
                        retry_after_ms % 1000
                    ),
                    retry_after_ms,
                })
            }
            PlaceOutcome::Banned => {
                m.placements_moderated.inc();
                Err(ApiError::Banned)
            }
            PlaceOutcome::Protected => {
                m.placements_moderated.inc();
                Err(ApiError::Protected)
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
    ) -> Result<ReplayPage, ApiError> {
        let limit = limit.clamp(1, MAX_UPDATES_PAGE);
        match self.inner.store.updates_since(since, limit, epoch).await? {
            Updates::Page(page) => Ok(page),
            Updates::Gone { latest_seq } => Err(ApiError::Gone { since, latest_seq }),
        }
    }

    /// One chunk's events after its `seq` `since`, on a Redis Cluster
    /// (which counts `seq` per chunk); elsewhere `seq` is canvas-wide and
    /// [`Self::updates_since`] serves every chunk.
    pub async fn chunk_updates_since(
        &self,
        id: ChunkId,
        since: u64,
        limit: usize,
        epoch: Option<&str>,
    ) -> Result<ReplayPage, ApiError> {
        let CanvasStore::Cluster(store) = &self.inner.store else {
            return Err(ApiError::BadRequest(
                "`chunk` is for a board on a Redis Cluster, where seq counts per chunk; this \
                 board's seq is canvas-wide: ask without it"
                    .into(),
            ));
        };
        let limit = limit.clamp(1, MAX_UPDATES_PAGE);
        match store.chunk_updates_since(id, since, limit, epoch).await? {
            Updates::Page(page) => Ok(page),
            Updates::Gone { latest_seq } => Err(ApiError::Gone { since, latest_seq }),
        }
    }

    pub async fn ready(&self) -> Result<(), ApiError> {
        Ok(self.inner.store.ping().await?)
    }
}
