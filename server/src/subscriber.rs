//! The process's one Redis subscriber: a single task owns the pub/sub
//! connection for `pixel-updates` and `user-events`, reconnects with backoff,
//! and tells the fan-out after every (re)subscription so the gap is repaired.
//! Connection tasks never talk to Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures_util::StreamExt;
use protocol::ServerMessage;
use protocol::names::{PIXEL_UPDATES_CHANNEL, USER_EVENTS_CHANNEL};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::bus::Incoming;
use crate::metrics::GatewayMetrics;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub struct Subscriber {
    pub client: redis::Client,
    pub ingest: mpsc::Sender<Incoming>,
    /// Woken on every `user-events` message.
    pub presence_changed: Arc<Notify>,
    /// True while subscribed (readiness).
    pub live: Arc<AtomicBool>,
    pub metrics: Arc<GatewayMetrics>,
}

impl Subscriber {
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        while !cancel.is_cancelled() {
            match self.subscribe().await {
                Ok(pubsub) => {
                    backoff = MIN_BACKOFF;
                    self.metrics.subscriber_reconnects.inc();
                    self.live.store(true, Ordering::Relaxed);
                    tracing::info!(
                        "subscribed to {PIXEL_UPDATES_CHANNEL} and {USER_EVENTS_CHANNEL}"
                    );
                    // Whatever was published while not subscribed is missed.
                    if self.ingest.send(Incoming::Resubscribed).await.is_err() {
                        return;
                    }
                    self.presence_changed.notify_one();
                    let ended = self.pump(pubsub, &cancel).await;
                    self.live.store(false, Ordering::Relaxed);
                    if !ended {
                        return;
                    }
                    tracing::warn!("Redis subscription lost; resubscribing");
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot subscribe to Redis")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(jittered(backoff)) => {}
                () = cancel.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn subscribe(&self) -> redis::RedisResult<redis::aio::PubSub> {
        let mut pubsub =
            tokio::time::timeout(Duration::from_secs(3), self.client.get_async_pubsub())
                .await
                .map_err(|_| {
                    redis::RedisError::from((redis::ErrorKind::Io, "connect timed out"))
                })??;
        pubsub
            .subscribe(&[PIXEL_UPDATES_CHANNEL, USER_EVENTS_CHANNEL])
            .await?;
        Ok(pubsub)
    }

    /// Passes messages on until the connection ends (true) or the process
    /// stops (false).
    async fn pump(&self, mut pubsub: redis::aio::PubSub, cancel: &CancellationToken) -> bool {
        let mut messages = pubsub.on_message();
        loop {
            let msg = tokio::select! {
                msg = messages.next() => msg,
                () = cancel.cancelled() => return false,
            };
            let Some(msg) = msg else { return true };
            match msg.get_channel_name() {
                PIXEL_UPDATES_CHANNEL => {
                    let Some(item) = parse_pixel(msg.get_payload_bytes()) else {
                        tracing::warn!("ignored an unreadable message on {PIXEL_UPDATES_CHANNEL}");
                        continue;
                    };
                    if self.ingest.send(item).await.is_err() {
                        return false;
                    }
                }
                USER_EVENTS_CHANNEL => self.presence_changed.notify_one(),
                _ => {}
            }
        }
    }
}

/// Reads a `pixel_updated` for its `seq`, keeping its bytes to pass on.
fn parse_pixel(payload: &[u8]) -> Option<Incoming> {
    let Ok(ServerMessage::PixelUpdated(event)) = serde_json::from_slice(payload) else {
        return None;
    };
    let json = Utf8Bytes::try_from(payload.to_vec()).ok()?;
    Some(Incoming::Pixel {
        seq: event.seq,
        json,
    })
}

/// `d` plus up to half of it again, so replicas do not reconnect in step.
pub fn jittered(d: Duration) -> Duration {
    let r = uuid::Uuid::new_v4().as_u128() as u64 % 1000;
    d + d.mul_f64(r as f64 / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_messages_keep_their_bytes() {
        let payload = br##"{"type":"pixel_updated","x":1,"y":2,"color":"#FF0000","username":"a","timestamp":5,"seq":9}"##;
        match parse_pixel(payload) {
            Some(Incoming::Pixel { seq, json }) => {
                assert_eq!(seq, 9);
                assert_eq!(json.as_str().as_bytes(), payload);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_pixel(b"{\"type\":\"pong\"}").is_none());
        assert!(parse_pixel(b"garbage").is_none());
    }
}
