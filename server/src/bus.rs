//! [`EventBus`]: how a stored pixel reaches every gateway. In Redis mode
//! it is `PUBLISH pixel-updates`, which this gateway's own subscriber hears
//! too; in the single-process default it goes straight to the fan-out.

use axum::extract::ws::Utf8Bytes;
use protocol::names::PIXEL_UPDATES_CHANNEL;
use protocol::{PixelUpdated, ServerMessage};
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

/// An event entering the fan-out.
#[derive(Debug)]
pub enum Incoming {
    /// A `pixel_updated` with its encoded JSON, passed on byte for byte.
    Pixel { seq: u64, json: Utf8Bytes },
    /// The subscription was (re-)established: anything published meanwhile
    /// was missed, so check the replay log now.
    Resubscribed,
}

/// Depth of the queue into the fan-out task.
pub const INGEST_CAPACITY: usize = 16 * 1024;

#[derive(Clone)]
pub enum EventBus {
    Redis(ConnectionManager),
    Local(mpsc::Sender<Incoming>),
}

/// Encodes a `pixel_updated` once; every later hop passes these bytes on.
pub fn encode_pixel(event: &PixelUpdated) -> Utf8Bytes {
    let json = serde_json::to_string(&ServerMessage::PixelUpdated(event.clone()))
        .expect("a pixel event always encodes");
    Utf8Bytes::from(json)
}

impl EventBus {
    pub async fn publish(&self, event: &PixelUpdated) -> Result<(), String> {
        let json = encode_pixel(event);
        match self {
            EventBus::Redis(conn) => {
                let mut conn = conn.clone();
                let publish = || {
                    redis::cmd("PUBLISH")
                        .arg(PIXEL_UPDATES_CHANNEL)
                        .arg(json.as_str())
                        .to_owned()
                };
                // The first command after Redis came back fails while the
                // connection is re-made; one more try usually goes through.
                match publish().query_async::<i64>(&mut conn).await {
                    Ok(_) => Ok(()),
                    Err(_) => publish()
                        .query_async::<i64>(&mut conn)
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string()),
                }
            }
            EventBus::Local(tx) => tx
                .send(Incoming::Pixel {
                    seq: event.seq,
                    json,
                })
                .await
                .map_err(|_| "the fan-out has stopped".to_owned()),
        }
    }
}
