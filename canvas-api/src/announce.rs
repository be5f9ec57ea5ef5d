//! [`Announcer`]: how a write stored by canvas-api's own `PUT /api/pixel`
//! reaches the gateways. A gateway placing for a WebSocket client publishes
//! the event itself (and says so with a header), so each write is announced
//! exactly once.

use std::sync::Arc;

use protocol::names::PIXEL_UPDATES_CHANNEL;
use protocol::{PixelUpdated, ServerMessage};
use redis::aio::ConnectionManager;

pub type LocalSink = Arc<dyn Fn(PixelUpdated) + Send + Sync>;

#[derive(Clone)]
pub enum Announcer {
    /// No gateway listens (a standalone canvas-api on the embedded store).
    Nobody,
    /// `PUBLISH pixel-updates`.
    Redis(ConnectionManager),
    /// Handed to the gateway in the same process.
    Local(LocalSink),
}

impl Announcer {
    pub async fn announce(&self, event: PixelUpdated) -> Result<(), String> {
        match self {
            Announcer::Nobody => Ok(()),
            Announcer::Local(sink) => {
                sink(event);
                Ok(())
            }
            Announcer::Redis(conn) => {
                let json = serde_json::to_string(&ServerMessage::PixelUpdated(event))
                    .map_err(|e| e.to_string())?;
                let mut conn = conn.clone();
                redis::cmd("PUBLISH")
                    .arg(PIXEL_UPDATES_CHANNEL)
                    .arg(json)
                    .query_async::<i64>(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    }
}
