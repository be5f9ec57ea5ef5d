//! Protocol v1: JSON text frames over the gateway's WebSocket, a superset of
//! the Node.js prototype's. Every message is an object with a `type`.

use serde::{Deserialize, Serialize};

use crate::{Color, ErrorCode};

/// The largest text frame the gateway answers; larger ones get a
/// `frame_too_large` error. `subscribe` may be larger (a list of chunks).
pub const MAX_CLIENT_FRAME_BYTES: usize = 4 * 1024;

/// The largest `subscribe` frame: room for [`MAX_SUBSCRIBED_CHUNKS`] pairs.
pub const MAX_SUBSCRIBE_FRAME_BYTES: usize = 16 * 1024;

/// The most chunks one connection follows (a 4K screen at one screen pixel
/// per board pixel sees about 150 chunks of 256²).
pub const MAX_SUBSCRIBED_CHUNKS: usize = 1024;

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
    /// Follow only these chunks, `[cx, cy]` each (a chunk is the square of
    /// `chunkSize` pixels of `/api/config`, `GET /api/chunk/{cx}/{cy}.bin`),
    /// replacing what the connection followed; without `chunks`, the whole
    /// board again. Answered with `subscribed` once in force.
    Subscribe {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chunks: Option<Vec<[u32; 2]>>,
    },
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
    /// The answer to `subscribe`: from now on this connection gets the
    /// pixel events of these `chunks` (0: of the whole board) and no other;
    /// `seq` is the highest this gateway had delivered. Load a chunk after
    /// this, and apply the events after its `X-Canvas-Seq`.
    Subscribed {
        chunks: u32,
        seq: u64,
    },
    /// Several messages, in order. Sent only to connections that asked for
    /// batches ([`BATCH_QUERY_PARAM`]); every other connection gets each
    /// message on its own, as the prototype's clients expect.
    Batch {
        events: Vec<ServerMessage>,
    },
    /// Updates were lost beyond repair: refetch the board (its
    /// `X-Canvas-Seq` says where to resume).
    Resync {
        seq: u64,
        reason: String,
    },
    /// Addressed to one user: a placement they made elsewhere (`source`)
    /// was stored. Sent to every connection of that user, on any gateway;
    /// the placing connection itself gets `ack` instead.
    Placed {
        source: PlacementSource,
        seq: u64,
        x: u32,
        y: u32,
        color: Color,
        timestamp: u64,
    },
    /// Addressed to one user: a placement they made elsewhere was refused
    /// and nothing was stored. `code` and `retryAfterMs` mean what they mean
    /// in `error`.
    PlacementFailed {
        source: PlacementSource,
        x: i64,
        y: i64,
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// Addressed to one user: the cooldown of their last placement is over,
    /// they may place again.
    CooldownOver,
    /// Addressed to one user: a message from the operators (moderation).
    Notice {
        code: NoticeCode,
        message: String,
    },
    /// A `type` this build does not know (sent by a newer server): ignore
    /// it. Never sent.
    #[serde(other)]
    Unknown,
}

/// Where a placement reported by `placed` or `placement_failed` was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlacementSource {
    /// `PUT /api/pixel`, through any gateway or canvas-api directly.
    Http,
    /// A source this build does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

/// What a `notice` is about. Clients branch on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeCode {
    /// For information only.
    Info,
    /// A warning from the moderators.
    Warning,
    /// The user may no longer place pixels.
    Banned,
    /// A code this build does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl ServerMessage {
    /// The message's `type`, e.g. as the SSE event name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerMessage::Connected { .. } => "connected",
            ServerMessage::PixelUpdated(_) => "pixel_updated",
            ServerMessage::Ack { .. } => "ack",
            ServerMessage::Error { .. } => "error",
            ServerMessage::Stats { .. } => "stats",
            ServerMessage::UserList { .. } => "user_list",
            ServerMessage::Pong => "pong",
            ServerMessage::Subscribed { .. } => "subscribed",
            ServerMessage::Batch { .. } => "batch",
            ServerMessage::Resync { .. } => "resync",
            ServerMessage::Placed { .. } => "placed",
            ServerMessage::PlacementFailed { .. } => "placement_failed",
            ServerMessage::CooldownOver => "cooldown_over",
            ServerMessage::Notice { .. } => "notice",
            ServerMessage::Unknown => "unknown",
        }
    }
}

/// The WebSocket URL query parameter by which a client asks for `batch`
/// messages: `/ws?batch=1`. Without it, each event is one WebSocket message.
pub const BATCH_QUERY_PARAM: &str = "batch";

/// Reads a [`BATCH_QUERY_PARAM`] value: `1`/`true` asks for batches,
/// `0`/`false` declines; anything else is `None`, an error to report.
pub fn parse_batch_param(value: &str) -> Option<bool> {
    match value {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
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
    fn type_name_is_the_serialized_type() {
        let messages = [
            ServerMessage::Pong,
            ServerMessage::Ack { id: None, seq: 1 },
            ServerMessage::Placed {
                source: PlacementSource::Http,
                seq: 3,
                x: 1,
                y: 2,
                color: Color([0, 0, 0]),
                timestamp: 4,
            },
            ServerMessage::PlacementFailed {
                source: PlacementSource::Http,
                x: -1,
                y: 2,
                code: ErrorCode::OutOfBounds,
                message: "off".into(),
                retry_after_ms: None,
            },
            ServerMessage::CooldownOver,
            ServerMessage::Notice {
                code: NoticeCode::Banned,
                message: "bye".into(),
            },
        ];
        for m in messages {
            let json: serde_json::Value = serde_json::to_value(&m).unwrap();
            assert_eq!(json["type"], m.type_name(), "{json}");
            let back: ServerMessage = serde_json::from_value(json).unwrap();
            assert_eq!(back, m);
        }
    }

    #[test]
    fn per_user_messages_use_camel_case_fields() {
        let m = ServerMessage::PlacementFailed {
            source: PlacementSource::Http,
            x: 5,
            y: 6,
            code: ErrorCode::Cooldown,
            message: "wait".into(),
            retry_after_ms: Some(900),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"placement_failed","source":"http","x":5,"y":6,"code":"cooldown","message":"wait","retryAfterMs":900}"#
        );
        assert_eq!(
            serde_json::to_string(&ServerMessage::CooldownOver).unwrap(),
            r#"{"type":"cooldown_over"}"#
        );
    }

    #[test]
    fn unknown_types_and_codes_from_a_newer_server_are_readable() {
        let m: ServerMessage =
            serde_json::from_str(r#"{"type":"brand_new","anything":[1,2]}"#).unwrap();
        assert_eq!(m, ServerMessage::Unknown);
        let m: ServerMessage =
            serde_json::from_str(r#"{"type":"notice","code":"muted","message":"m"}"#).unwrap();
        assert!(matches!(
            m,
            ServerMessage::Notice {
                code: NoticeCode::Unknown,
                ..
            }
        ));
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

/// Property test: a client reading the server's messages (this crate's
/// types) gets a value or an error for any input, never a panic.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn any_text_parses_or_fails_cleanly(text in ".{0,300}") {
            let _ = serde_json::from_str::<ServerMessage>(&text);
            let _ = serde_json::from_str::<ClientMessage>(&text);
        }

        #[test]
        fn typed_messages_with_any_fields_parse_or_fail_cleanly(
            kind in prop_oneof![Just("pixel_updated"), Just("error"), Just("batch"), Just("connected"), Just("ack"), Just("resync")],
            fields in prop::collection::btree_map("[a-zA-Z]{1,10}", prop_oneof![
                any::<i64>().prop_map(|n| serde_json::json!(n)),
                ".{0,20}".prop_map(serde_json::Value::String),
                Just(serde_json::json!([])),
                Just(serde_json::Value::Null),
            ], 0..8),
        ) {
            let mut object: serde_json::Map<String, serde_json::Value> = fields.into_iter().collect();
            object.insert("type".into(), kind.into());
            let _ = serde_json::from_value::<ServerMessage>(serde_json::Value::Object(object));
        }
    }
}
