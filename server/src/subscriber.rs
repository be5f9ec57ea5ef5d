//! The process's one Redis subscriber: a single task owns the pub/sub
//! connection for `pixel-updates` and `user-events`, reconnects with backoff,
//! and tells the fan-out after every (re)subscription so the gap is repaired.
//! Connection tasks never talk to Redis.
//!
//! On the same connection it follows the users who have a connection here:
//! it subscribes to `user:<key>` when a user's first connection arrives and
//! unsubscribes when the last one leaves (subscribing again to all of them
//! after a reconnect), and hands each message on such a channel to that
//! user's mailboxes. Pods holding no connection of a user never hear its
//! events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures_util::StreamExt;
use protocol::ServerMessage;
use protocol::names::{
    PIXEL_UPDATES_CHANNEL, USER_CHANNEL_PREFIX, USER_EVENTS_CHANNEL, user_channel,
};
use redis::aio::{PubSubSink, PubSubStream};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::incoming::Incoming;
use crate::mailbox::Mailboxes;
use crate::metrics::GatewayMetrics;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// User channels per `SUBSCRIBE`/`UNSUBSCRIBE` command, so that a gateway
/// coming back with many users sends commands of a sane size.
const CHANNELS_PER_COMMAND: usize = 1000;

pub struct Subscriber {
    pub client: redis::Client,
    pub ingest: mpsc::Sender<Incoming>,
    /// Woken on every `user-events` message.
    pub presence_changed: Arc<Notify>,
    /// True while subscribed (readiness).
    pub live: Arc<AtomicBool>,
    pub metrics: Arc<GatewayMetrics>,
    /// The users with a connection here, and where their events go.
    pub mailboxes: Arc<Mailboxes>,
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
                    let (sink, stream) = pubsub.split();
                    // Both end when the connection does; the select ends
                    // with the first.
                    let ended = tokio::select! {
                        ended = self.pump(stream, &cancel) => ended,
                        () = self.follow_users(sink) => true,
                    };
                    self.live.store(false, Ordering::Relaxed);
                    self.metrics.user_channels.set(0);
                    if !ended {
                        return;
                    }
                    tracing::warn!("Redis subscription lost; resubscribing");
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot subscribe to Redis")
                }
            }
            // Arrivals and departures while unsubscribed are superseded (a
            // new subscription starts from everyone here); dropping them
            // keeps the list short through a long outage.
            drop(self.mailboxes.take_changes());
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
    async fn pump(&self, mut messages: PubSubStream, cancel: &CancellationToken) -> bool {
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
                channel => {
                    if let Some(key) = channel.strip_prefix(USER_CHANNEL_PREFIX) {
                        self.deliver_to_user(key, msg.get_payload_bytes());
                    }
                }
            }
        }
    }

    /// Hands a message on a user's channel to that user's connections here.
    fn deliver_to_user(&self, key: &str, payload: &[u8]) {
        self.metrics.user_events.inc();
        let Some(frame) = parse_user_message(payload) else {
            tracing::warn!("ignored an unreadable message on {USER_CHANNEL_PREFIX}{key}");
            return;
        };
        let n = self.mailboxes.deliver(key, &frame);
        self.metrics.user_frames.add(n as u64);
    }

    /// Keeps the subscriptions to user channels in step with the users who
    /// have a connection here, until the connection fails. Each round takes
    /// every change made since the last, so a burst of arrivals costs a few
    /// commands, not one each.
    async fn follow_users(&self, mut sink: PubSubSink) {
        // After a (re)connect nothing is subscribed: everyone here is new.
        let _ = self.mailboxes.take_changes();
        let mut changed = self.mailboxes.keys();
        loop {
            let (mut arrived, mut left) = (Vec::new(), Vec::new());
            for key in changed {
                if self.mailboxes.contains(&key) {
                    arrived.push(user_channel(&key));
                } else {
                    left.push(user_channel(&key));
                }
            }
            // Either command is harmless when repeated: subscribing twice
            // still delivers once, so no record of the subscriptions is kept.
            for channels in arrived.chunks(CHANNELS_PER_COMMAND) {
                if let Err(e) = sink.subscribe(channels).await {
                    tracing::warn!(error = %e, "cannot subscribe to user channels");
                    return;
                }
            }
            for channels in left.chunks(CHANNELS_PER_COMMAND) {
                if let Err(e) = sink.unsubscribe(channels).await {
                    tracing::warn!(error = %e, "cannot unsubscribe from user channels");
                    return;
                }
            }
            self.metrics
                .user_channels
                .set(self.mailboxes.user_count() as u64);
            self.mailboxes.changes_waiting().await;
            changed = self.mailboxes.take_changes();
        }
    }
}

/// Checks that a message on a user's channel is protocol v1 before any
/// client sees it, keeping its bytes to pass on. Types this build does not
/// know are passed on too (clients ignore what they do not know).
fn parse_user_message(payload: &[u8]) -> Option<Utf8Bytes> {
    serde_json::from_slice::<ServerMessage>(payload).ok()?;
    Utf8Bytes::try_from(payload.to_vec()).ok()
}

/// Reads a `pixel_updated` for its `seq` and its protocol v2 fields,
/// keeping its bytes to pass on.
fn parse_pixel(payload: &[u8]) -> Option<Incoming> {
    let Ok(ServerMessage::PixelUpdated(event)) = serde_json::from_slice(payload) else {
        return None;
    };
    let json = Utf8Bytes::try_from(payload.to_vec()).ok()?;
    Some(Incoming::Pixel {
        event: crate::incoming::compact(&event)?,
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
            Some(Incoming::Pixel { event, json }) => {
                assert_eq!(event.seq, 9);
                assert_eq!((event.x, event.y, event.color.0), (1, 2, [255, 0, 0]));
                assert_eq!(json.as_str().as_bytes(), payload);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_pixel(b"{\"type\":\"pong\"}").is_none());
        assert!(parse_pixel(b"garbage").is_none());
    }

    #[test]
    fn user_messages_must_be_protocol_messages() {
        let notice = br#"{"type":"notice","code":"banned","message":"bye"}"#;
        assert_eq!(
            parse_user_message(notice).map(|f| f.as_str().to_owned()),
            Some(String::from_utf8(notice.to_vec()).unwrap())
        );
        assert!(parse_user_message(br#"{"type":"from_the_future"}"#).is_some());
        assert!(parse_user_message(b"garbage").is_none());
        assert!(parse_user_message(br#"{"no":"type"}"#).is_none());
    }
}
