//! Each user's sync index, kept by the user's shard, and the `/sync`
//! endpoint that reads it.

pub mod filter;
pub mod filter_cache;
pub mod handler;
mod index;
mod response;
mod summary;
mod tail;
pub mod token;

pub use filter_cache::FilterCache;
pub use index::{RoomNotification, SyncIndex};
