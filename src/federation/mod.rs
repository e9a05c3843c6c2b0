//! The server-server API's transport: finding another server, signing and
//! checking requests with `X-Matrix` authorization, the HTTPS client, and
//! the cache of other servers' signing keys.

pub mod client;
pub mod destination;
pub mod keys;
pub mod request_auth;
pub mod sender;

pub use client::{FederationError, FederationResponse};
pub use keys::KeyCache;
