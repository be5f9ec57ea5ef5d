//! Protocol v1: JSON text frames over the gateway's WebSocket, a superset of
//! the Node.js prototype's. Every message is an object with a `type`.

use serde::{Deserialize, Serialize};

use crate::{Color, ErrorCode};

/// The largest text frame the gateway answers; larger ones get a
/// `frame_too_large` error.
pub const MAX_CLIENT_FRAME_BYTES: usize = 4 * 1024;

/// A message from a client.
///
/// Coordinates are signed and colors are strings here on purpose: a negative
/// coordinate is `out_of_bounds` and a bad color `invalid_color`, not a
/// decoding failure, so the client learns what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ClientMessage {
    /// Place one pixel. `id`, when given, is echoed in the `ack` or `error`.
    PixelUpdate {
        x: i64,
        y: i64,
        color: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Change this connection's username.
    SetUsername { username: String },
    /// Liveness check; answered with `pong`.
    Ping,
}

/// One stored pixel write, as broadcast to every client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PixelUpdated {
    pub x: u32,
    pub y: u32,
    pub color: Color,
    pub username: String,
    /// Milliseconds since the Unix epoch, from the store's clock.
    pub timestamp: u64,
    /// The canvas-wide sequence number of this write. Gap-free: every
    /// accepted write has the next one.
    pub seq: u64,
}

/// A message from the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum ServerMessage {
    /// First message on every connection.
    Connected {
        client_id: String,
        username: String,
        pod_id: String,
        width: u32,
        height: u32,
        /// The colors that may be placed; empty when any color may be.
        palette: Vec<Color>,
        /// True when every 24-bit color may be placed (`PALETTE=any`).
        #[serde(default)]
        any_color: bool,
        cooldown_ms: u64,
        /// The highest `seq` this gateway has delivered so far.
        seq: u64,
    },
    PixelUpdated(PixelUpdated),
    /// The placement with this `id` was stored as `seq`.
    Ack {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        seq: u64,
    },
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// Users online across every gateway.
    Stats {
        active_users: u64,
        timestamp: u64,
    },
    /// Usernames online across every gateway, at most a few hundred;
    /// `total` counts them all.
    UserList {
        users: Vec<String>,
        total: u64,
        timestamp: u64,
    },
    Pong,
    /// Several messages, in order.
    Batch {
        events: Vec<ServerMessage>,
    },
    /// Updates were lost beyond repair: refetch the board (its
    /// `X-Canvas-Seq` says where to resume).
    Resync {
        seq: u64,
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_use_the_prototype_shape() {
        let m: ClientMessage =
            serde_json::from_str(r##"{"type":"pixel_update","x":3,"y":4,"color":"#FF0000"}"##)
                .unwrap();
        assert_eq!(
            m,
            ClientMessage::PixelUpdate {
                x: 3,
                y: 4,
                color: "#FF0000".into(),
                id: None
            }
        );
        let m: ClientMessage = serde_json::from_str(r#"{"type":"ping"}"#).unwrap();
        assert_eq!(m, ClientMessage::Ping);
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"set_username","username":"bob"}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::SetUsername {
                username: "bob".into()
            }
        );
    }

    #[test]
    fn server_messages_serialize_with_camel_case_fields() {
        let m = ServerMessage::Error {
            id: Some(7),
            code: ErrorCode::Cooldown,
            message: "wait".into(),
            retry_after_ms: Some(1200),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"error","id":7,"code":"cooldown","message":"wait","retryAfterMs":1200}"#
        );
        let m = ServerMessage::PixelUpdated(PixelUpdated {
            x: 1,
            y: 2,
            color: Color([255, 0, 0]),
            username: "a".into(),
            timestamp: 5,
            seq: 9,
        });
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r##"{"type":"pixel_updated","x":1,"y":2,"color":"#FF0000","username":"a","timestamp":5,"seq":9}"##
        );
        let back: ServerMessage =
            serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn batch_nests_messages() {
        let json = r#"{"type":"batch","events":[{"type":"pong"},{"type":"ack","seq":3}]}"#;
        let m: ServerMessage = serde_json::from_str(json).unwrap();
        assert_eq!(
            m,
            ServerMessage::Batch {
                events: vec![ServerMessage::Pong, ServerMessage::Ack { id: None, seq: 3 }]
            }
        );
    }
}
