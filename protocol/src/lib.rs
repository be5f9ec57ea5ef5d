//! Wire types of the pixel canvas, shared by every crate that speaks to a
//! client or to Redis: protocol v1 messages, protocol v2's binary messages, the HTTP API bodies, error and
//! close codes, and the Redis channel and key names.
//!
//! Only this crate knows the wire. Services convert to their own types at the
//! edge, so a change here is a change of the public contract.

pub mod binary;
pub mod close;
pub mod color;
pub mod error;
pub mod http;
pub mod messages;
pub mod names;
pub mod presence;
pub mod username;

pub use color::{Color, ParseColorError};
pub use error::ErrorCode;
pub use messages::{ClientMessage, NoticeCode, PixelUpdated, PlacementSource, ServerMessage};
