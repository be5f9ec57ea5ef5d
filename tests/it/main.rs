//! The integration suite: one test binary, every test against real
//! processes over real sockets.

mod harness;

mod api;
mod auth;
mod cli;
mod cluster;
mod embedded;
mod faults;
mod gateway;
mod k8s;
mod limits;
mod loadtest;
mod metrics;
mod moderation;
mod pool;
mod presence;
mod redis_tls;
mod shutdown;
mod sse;
mod user_delivery;
