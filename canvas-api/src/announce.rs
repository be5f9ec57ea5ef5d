//! [`Announcer`]: how events addressed to one user reach the gateways that
//! hold that user's connections — on the user's channel
//! (`user:<username>`), or in process. Pixels are not announced here: the
//! store announces each write as it stores it (`place.lua`, the embedded
//! store's `Announce`).

use std::sync::Arc;

use plumbing::redis::Connection;
use protocol::ServerMessage;
use protocol::names::user_channel;

/// Takes a username and the JSON of a message addressed to that user.
pub type LocalUserSink = Arc<dyn Fn(&str, String) + Send + Sync>;

#[derive(Clone)]
pub enum Announcer {
    /// No gateway listens (a standalone canvas-api on the embedded store).
    Nobody,
    /// `PUBLISH user:<username>`.
    Redis(Connection),
    /// Handed to the gateway in the same process.
    Local { users: LocalUserSink },
}

impl Announcer {
    /// Sends `message` to the connections of `username`, on every gateway
    /// that holds one (and only there).
    pub async fn tell_user(&self, username: &str, message: &ServerMessage) -> Result<(), String> {
        let json = serde_json::to_string(message).map_err(|e| e.to_string())?;
        match self {
            Announcer::Nobody => Ok(()),
            Announcer::Local { users } => {
                users(username, json);
                Ok(())
            }
            Announcer::Redis(conn) => publish(conn, &user_channel(username), json).await,
        }
    }
}

async fn publish(conn: &Connection, channel: &str, json: String) -> Result<(), String> {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(json)
        .query_async::<i64>(&mut conn.clone())
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}
