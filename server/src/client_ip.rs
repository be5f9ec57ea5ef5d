//! The client IP of a request to this gateway: the socket's peer, or what a
//! trusted proxy says it saw. One function for every per-IP limit; it lives
//! in canvas-api, which needs it too (sessions per IP).

pub use canvas_api::client_ip::client_ip;
