//! Plumbing both services share and neither owns: where and how they
//! listen (`listen`, the accept loop with its header and pending-connection
//! limits), what wraps every HTTP route (`http_policy`, `http_metrics`),
//! which IP a client is (`client_ip`), metric primitives and process
//! metrics, signals and logs (`process`), the wall clock (`clock`), how
//! to reach Redis (`redis`), and the options for these (`config`). Nothing here knows the board; the
//! gateway reaches canvas-api only where one process holds both.

pub mod client_ip;
pub mod clock;
pub mod config;
pub mod http_metrics;
pub mod http_policy;
pub mod listen;
pub mod metrics;
pub mod process;
pub mod process_metrics;
pub mod redis;

pub use http_policy::{HttpPolicy, http_layers};
