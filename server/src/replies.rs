//! What a connection writes besides the hub's frames: server messages
//! encoded for one client, and close frames.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use protocol::{ErrorCode, ServerMessage, close};

pub fn encode(message: &ServerMessage) -> Message {
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(message).expect("server messages encode"),
    ))
}

pub fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Message {
    encode(&ServerMessage::Error {
        id,
        code,
        message: message.into(),
        retry_after_ms: None,
    })
}

pub fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// The close for a client too far behind to catch up (a whole ring, or a
/// full mailbox).
pub fn too_slow() -> Message {
    close_frame(
        close::TOO_SLOW_RESYNC,
        "too slow; reconnect and refetch the board",
    )
}
