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
mod history;
mod ingress_routes;
mod k8s;
mod limits;
mod loadtest;
mod metrics;
mod moderation;
mod pool;
mod presence;
mod prototype_clients;
mod redis_tls;
mod shutdown;
mod sse;
mod user_delivery;
