//! Each user's sync index, kept by the user's shard, and the `/sync`
//! endpoint that reads it.

pub mod filter;
pub mod handler;
mod index;
mod summary;
pub mod token;

pub use index::{RoomNotification, SyncIndex};
