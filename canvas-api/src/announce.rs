//! [`Announcer`]: how what canvas-api stores reaches the gateways — each
//! pixel written through its own `PUT /api/pixel` on `pixel-updates`, and
//! events addressed to one user on that user's channel (`user:<username>`).
//! A gateway placing for a WebSocket client publishes the pixel itself (and
//! says so with a header), so each write is announced exactly once.

use std::sync::Arc;

use protocol::names::{PIXEL_UPDATES_CHANNEL, user_channel};
use protocol::{PixelUpdated, ServerMessage};
use redis::aio::ConnectionManager;

pub type LocalSink = Arc<dyn Fn(PixelUpdated) + Send + Sync>;
/// Takes a username and the JSON of a message addressed to that user.
pub type LocalUserSink = Arc<dyn Fn(&str, String) + Send + Sync>;

#[derive(Clone)]
pub enum Announcer {
    /// No gateway listens (a standalone canvas-api on the embedded store).
    Nobody,
    /// `PUBLISH pixel-updates`, `PUBLISH user:<username>`.
    Redis(ConnectionManager),
    /// Handed to the gateway in the same process.
    Local {
        pixels: LocalSink,
        users: LocalUserSink,
    },
}

impl Announcer {
    pub async fn announce(&self, event: PixelUpdated) -> Result<(), String> {
        match self {
            Announcer::Nobody => Ok(()),
            Announcer::Local { pixels, .. } => {
                pixels(event);
                Ok(())
            }
            Announcer::Redis(conn) => {
                let json = serde_json::to_string(&ServerMessage::PixelUpdated(event))
                    .map_err(|e| e.to_string())?;
                publish(conn, PIXEL_UPDATES_CHANNEL, json).await
            }
        }
    }

    /// Sends `message` to the connections of `username`, on every gateway
    /// that holds one (and only there).
    pub async fn tell_user(&self, username: &str, message: &ServerMessage) -> Result<(), String> {
        let json = serde_json::to_string(message).map_err(|e| e.to_string())?;
        match self {
            Announcer::Nobody => Ok(()),
            Announcer::Local { users, .. } => {
                users(username, json);
                Ok(())
            }
            Announcer::Redis(conn) => publish(conn, &user_channel(username), json).await,
        }
    }
}

async fn publish(conn: &ConnectionManager, channel: &str, json: String) -> Result<(), String> {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(json)
        .query_async::<i64>(&mut conn.clone())
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
