//! The integration suite: one test binary, every test against real
//! processes over real sockets.

mod harness;

mod api;
mod embedded;
mod faults;
mod gateway;
mod loadtest;
mod presence;
mod sse;
