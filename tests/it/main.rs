//! The integration suite: one test binary, every test against real
//! processes over real sockets.

mod harness;

mod abuse;
mod api;
mod auth;
mod batched_placements;
mod chunks;
mod cli;
mod cluster;
mod embedded;
mod faults;
mod forwarded_for;
mod gateway;
mod gateway_proof;
mod history;
mod ingress_routes;
mod ipv6_limits;
mod k8s;
mod limits;
mod loadtest;
mod metrics;
mod moderation;
mod pool;
mod presence;
mod protocol_v2;
mod prototype_clients;
mod redis_chunks;
mod redis_cluster;
mod redis_tls;
mod shutdown;
mod slow_headers;
mod sse;
mod store_conformance;
mod user_delivery;
