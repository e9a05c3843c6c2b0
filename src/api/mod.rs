//! The HTTP API: routing, authentication, dispatch to the owning shard, and
//! the endpoint handlers.

pub mod admin;
pub mod client;
mod dispatch;
pub mod error;
pub mod federation;
pub mod request;
pub mod router;
mod server_keys;

pub use dispatch::serve;
