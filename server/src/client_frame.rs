//! What one text frame from a client asks of its connection: decoded,
//! weighed against how the connection came by its name, and turned into a
//! reply, a rename or a placement. Pure: the connection carries it out.

use axum::extract::ws::Message;
use protocol::messages::{MAX_CLIENT_FRAME_BYTES, MAX_SUBSCRIBE_FRAME_BYTES};
use protocol::username::is_valid_username;
use protocol::{ClientMessage, ErrorCode, ServerMessage};

use crate::connection::Identity;
use crate::decode::decode;
use crate::replies::{encode, error};

/// What a client frame asks of the connection.
#[derive(Debug)]
pub enum Action {
    Reply(Message),
    /// `set_username`, already checked.
    Rename(String),
    Place {
        x: i64,
        y: i64,
        color: String,
        id: Option<u64>,
    },
    /// `subscribe`: these chunks only, or (`None`) the whole board; the
    /// connection checks them against the board.
    Subscribe(Option<Vec<[u32; 2]>>),
}

/// Reads one text frame.
pub fn handle_text(text: &str, identity: Identity) -> Action {
    let too_large = || {
        Action::Reply(error(
            None,
            ErrorCode::FrameTooLarge,
            format!(
                "frames are at most {MAX_CLIENT_FRAME_BYTES} bytes ({MAX_SUBSCRIBE_FRAME_BYTES} for subscribe); this one is {}",
                text.len()
            ),
        ))
    };
    if text.len() > MAX_SUBSCRIBE_FRAME_BYTES {
        return too_large();
    }
    let message = match decode(text) {
        Ok(m) => m,
        Err(_) if text.len() > MAX_CLIENT_FRAME_BYTES => return too_large(),
        Err(e) => return Action::Reply(error(e.id, e.code, e.message)),
    };
    match message {
        ClientMessage::Subscribe { chunks } => Action::Subscribe(chunks),
        _ if text.len() > MAX_CLIENT_FRAME_BYTES => too_large(),
        ClientMessage::Ping => Action::Reply(encode(&ServerMessage::Pong)),
        ClientMessage::SetUsername { .. } if identity != Identity::Claimed => Action::Reply(error(
            None,
            ErrorCode::Unauthorized,
            match identity {
                Identity::Verified => "this connection's name comes from its session token",
                _ => {
                    "AUTH=required: get a session token (POST /api/session) and connect with ?token="
                }
            },
        )),
        ClientMessage::SetUsername { username } => {
            if is_valid_username(&username) {
                Action::Rename(username)
            } else {
                Action::Reply(error(
                    None,
                    ErrorCode::InvalidUsername,
                    "a username is 1-32 letters, digits, '_' or '-'",
                ))
            }
        }
        ClientMessage::PixelUpdate { id, .. } if identity == Identity::Watcher => {
            Action::Reply(error(
                id,
                ErrorCode::Unauthorized,
                "AUTH=required: placing needs a session token (POST /api/session, then ?token=)",
            ))
        }
        // A `username` in the frame, if any, is ignored: the connection's
        // identity places.
        ClientMessage::PixelUpdate { x, y, color, id } => Action::Place { x, y, color, id },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_code(action: Action) -> ErrorCode {
        match action {
            Action::Reply(Message::Text(text)) => {
                match serde_json::from_str::<ServerMessage>(&text).unwrap() {
                    ServerMessage::Error { code, .. } => code,
                    other => panic!("not an error: {other:?}"),
                }
            }
            other => panic!("not a reply: {other:?}"),
        }
    }

    const PLACE: &str =
        r##"{"type":"pixel_update","x":1,"y":2,"color":"#FF4500","id":7,"username":"mallory"}"##;

    #[test]
    fn only_a_claimed_name_may_be_changed() {
        let rename = r#"{"type":"set_username","username":"bob"}"#;
        assert!(matches!(handle_text(rename, Identity::Claimed), Action::Rename(n) if n == "bob"));
        for identity in [Identity::Verified, Identity::Watcher] {
            assert_eq!(
                error_code(handle_text(rename, identity)),
                ErrorCode::Unauthorized
            );
        }
        let bad = r#"{"type":"set_username","username":"<b>"}"#;
        assert_eq!(
            error_code(handle_text(bad, Identity::Claimed)),
            ErrorCode::InvalidUsername
        );
    }

    #[test]
    fn a_watcher_may_not_place_and_a_username_in_the_frame_is_ignored() {
        assert_eq!(
            error_code(handle_text(PLACE, Identity::Watcher)),
            ErrorCode::Unauthorized
        );
        match handle_text(PLACE, Identity::Verified) {
            Action::Place { x, y, color, id } => {
                assert_eq!((x, y, color.as_str(), id), (1, 2, "#FF4500", Some(7)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oversized_and_unreadable_frames_are_answered_with_their_error() {
        let big = format!(
            r#"{{"type":"ping","pad":"{}"}}"#,
            "x".repeat(MAX_CLIENT_FRAME_BYTES)
        );
        assert_eq!(
            error_code(handle_text(&big, Identity::Claimed)),
            ErrorCode::FrameTooLarge
        );
        assert_eq!(
            error_code(handle_text("{nope", Identity::Claimed)),
            ErrorCode::BadRequest
        );
        assert!(matches!(
            handle_text(r#"{"type":"ping"}"#, Identity::Watcher),
            Action::Reply(_)
        ));
    }

    #[test]
    fn only_subscribe_may_exceed_the_frame_limit_up_to_its_own() {
        let chunks: Vec<[u32; 2]> = (0..1024).map(|i| [i % 256, i / 256]).collect();
        let subscribe = serde_json::json!({"type": "subscribe", "chunks": chunks}).to_string();
        assert!(subscribe.len() > MAX_CLIENT_FRAME_BYTES);
        assert!(
            matches!(handle_text(&subscribe, Identity::Watcher), Action::Subscribe(Some(c)) if c.len() == 1024)
        );
        let padded = format!(
            r#"{{"type":"ping","pad":"{}"}}"#,
            "x".repeat(MAX_CLIENT_FRAME_BYTES)
        );
        assert_eq!(
            error_code(handle_text(&padded, Identity::Claimed)),
            ErrorCode::FrameTooLarge
        );
        let huge = format!(
            r#"{{"type":"subscribe","chunks":[],"pad":"{}"}}"#,
            "x".repeat(MAX_SUBSCRIBE_FRAME_BYTES)
        );
        assert_eq!(
            error_code(handle_text(&huge, Identity::Claimed)),
            ErrorCode::FrameTooLarge
        );
        assert!(matches!(
            handle_text(r#"{"type":"subscribe"}"#, Identity::Claimed),
            Action::Subscribe(None)
        ));
    }
}
