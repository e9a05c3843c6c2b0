//! Credentials: access tokens, device IDs and password hashes.

pub mod password;
pub mod token;
pub mod token_cache;
