//! Eltrix, a thread-per-core Matrix homeserver, as a library: the binary in
//! `main.rs` runs [`server::run`], and the benchmarks reach the internals.

pub mod api;
pub mod auth;
pub mod config;
pub mod federation;
pub mod http;
pub mod metrics;
pub mod ratelimit;
pub mod room;
pub mod server;
pub mod shard;
pub mod store;
pub mod sync;
