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
const KNOWN_TYPES: [&str; 4] = ["pixel_update", "set_username", "ping", "subscribe"];

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

/// Whether a read failed because a text frame was not UTF-8 (closed with
/// 1007, which tungstenite leaves to us).
pub fn is_invalid_utf8(e: &axum::Error) -> bool {
    e.to_string().to_ascii_lowercase().contains("utf-8")
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

/// Property tests: whatever a client sends, the decoder answers with a
/// message or a typed error, and never panics. Thousands of cases per run.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// Any JSON value, nested a few levels.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,40}".prop_map(Value::String),
            prop_oneof![
                Just("pixel_update"),
                Just("set_username"),
                Just("ping"),
                Just("#FF4500")
            ]
            .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("type".to_owned()),
                        Just("x".to_owned()),
                        Just("id".to_owned()),
                        "[a-z]{1,8}"
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A valid message with one field replaced, removed or added.
    fn mutated_message() -> impl Strategy<Value = Value> {
        let base = prop_oneof![
            Just(json!({"type": "pixel_update", "x": 1, "y": 2, "color": "#000000", "id": 3})),
            Just(json!({"type": "set_username", "username": "alice"})),
            Just(json!({"type": "ping"})),
        ];
        let field = prop_oneof![
            Just("type"),
            Just("x"),
            Just("y"),
            Just("color"),
            Just("id"),
            Just("username"),
            Just("extra"),
        ];
        (base, field, prop::option::of(any_json())).prop_map(|(mut message, field, value)| {
            let object = message.as_object_mut().expect("an object");
            match value {
                Some(v) => object.insert(field.to_owned(), v),
                None => object.remove(field),
            };
            message
        })
    }

    /// The decoder's contract for any input.
    fn check(text: &str) -> Result<(), TestCaseError> {
        match decode(text) {
            Ok(message) => {
                // A decoded message survives a round trip unchanged.
                let again: ClientMessage =
                    serde_json::from_str(&serde_json::to_string(&message).unwrap()).unwrap();
                prop_assert_eq!(again, message);
            }
            Err(e) => {
                prop_assert!(
                    matches!(e.code, ErrorCode::BadRequest | ErrorCode::UnknownType),
                    "unexpected code {:?}",
                    e.code
                );
                prop_assert!(!e.message.is_empty());
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            check(&String::from_utf8_lossy(&bytes))?;
        }

        #[test]
        fn arbitrary_json_never_panics(value in any_json()) {
            check(&value.to_string())?;
        }

        #[test]
        fn mutated_messages_decode_or_say_why(value in mutated_message()) {
            check(&value.to_string())?;
        }

        #[test]
        fn truncated_messages_say_why(value in mutated_message(), cut in 0usize..200) {
            let text = value.to_string();
            let cut = cut.min(text.len());
            if text.is_char_boundary(cut) {
                check(&text[..cut])?;
            }
        }
    }
}
