//! Turns a client's text frame into a [`ClientMessage`], or into the typed
//! reason it is not one, so the client is told exactly what was wrong.

use protocol::{ClientMessage, ErrorCode};

/// Why a frame was refused; sent back as an `error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub code: ErrorCode,
    pub message: String,
    /// The frame's `id`, when one could be read, to echo back.
    pub id: Option<u64>,
}

/// The `type`s protocol v1 knows.
const KNOWN_TYPES: [&str; 3] = ["pixel_update", "set_username", "ping"];

pub fn decode(text: &str) -> Result<ClientMessage, DecodeError> {
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(m) => Ok(m),
        Err(e) => Err(classify(text, e)),
    }
}

/// Only on the error path: a second, loose parse to find what was wrong.
fn classify(text: &str, err: serde_json::Error) -> DecodeError {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => {
            return DecodeError {
                code: ErrorCode::BadRequest,
                message: format!("not valid JSON: {err}"),
                id: None,
            };
        }
    };
    let Some(object) = value.as_object() else {
        return DecodeError {
            code: ErrorCode::BadRequest,
            message: "a message must be a JSON object with a \"type\"".into(),
            id: None,
        };
    };
    let id = object.get("id").and_then(serde_json::Value::as_u64);
    match object.get("type").map(|t| t.as_str()) {
        None => DecodeError {
            code: ErrorCode::UnknownType,
            message: "the message has no \"type\"".into(),
            id,
        },
        Some(Some(t)) if !KNOWN_TYPES.contains(&t) => DecodeError {
            code: ErrorCode::UnknownType,
            message: format!(
                "unknown type {:?}; known types are {}",
                t.chars().take(32).collect::<String>(),
                KNOWN_TYPES.join(", ")
            ),
            id,
        },
        Some(None) => DecodeError {
            code: ErrorCode::UnknownType,
            message: "\"type\" must be a string".into(),
            id,
        },
        Some(Some(t)) => DecodeError {
            code: ErrorCode::BadRequest,
            message: format!("invalid {t}: {}", strip_position(&err.to_string())),
            id,
        },
    }
}

/// serde_json appends " at line 1 column 57", which says nothing to a
/// client that sent one line.
fn strip_position(msg: &str) -> &str {
    msg.find(" at line ").map_or(msg, |i| &msg[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        decode(text).unwrap_err().code
    }

    #[test]
    fn decodes_the_three_types() {
        assert!(matches!(
            decode(r##"{"type":"pixel_update","x":1,"y":2,"color":"#000000","id":5}"##),
            Ok(ClientMessage::PixelUpdate { id: Some(5), .. })
        ));
        assert_eq!(decode(r#"{"type":"ping"}"#), Ok(ClientMessage::Ping));
    }

    #[test]
    fn each_fault_has_its_code() {
        assert_eq!(code("{"), ErrorCode::BadRequest);
        assert_eq!(code("[1,2]"), ErrorCode::BadRequest);
        assert_eq!(code("{}"), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":"fly"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"type":7}"#), ErrorCode::UnknownType);
        assert_eq!(
            code(r##"{"type":"pixel_update","x":"1","y":2,"color":"#000000"}"##),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r##"{"type":"pixel_update","x":1.5,"y":2,"color":"#000000"}"##),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r##"{"type":"pixel_update","y":2,"color":"#000000"}"##),
            ErrorCode::BadRequest
        );
        assert_eq!(code(r#"{"type":"set_username"}"#), ErrorCode::BadRequest);
    }

    #[test]
    fn the_id_is_kept_for_the_reply() {
        let e = decode(r#"{"type":"pixel_update","x":"a","id":42}"#).unwrap_err();
        assert_eq!(e.id, Some(42));
        assert!(
            e.message.starts_with("invalid pixel_update: "),
            "{}",
            e.message
        );
        assert!(!e.message.contains("line 1"), "{}", e.message);
    }
}
