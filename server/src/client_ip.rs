//! The client IP of a request to this gateway: the socket's peer, or what a
//! trusted proxy says it saw. One function for every per-IP limit; it lives
//! in `plumbing`, which canvas-api uses too (sessions per IP).

pub use plumbing::client_ip::client_ip;
