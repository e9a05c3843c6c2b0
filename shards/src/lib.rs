//! Thread-per-core runtime for Eltrix: one executor per core, the stable hash
//! that assigns rooms and users to shards, and the cross-shard task channels.
//!
//! Nothing is shared between shards except the messages on these channels:
//! each shard owns its state in `Rc`/`RefCell`s, and other shards reach it only
//! by submitting a task that runs on the owning shard's thread.

mod executor;
mod hash;
mod mesh;

pub use executor::{ExecutorOptions, spawn_executors};
pub use hash::shard_of;
pub use mesh::{Mesh, ShardTask, SubmitError};

/// Index of a shard, from 0 to `nr_shards - 1`.
pub type ShardId = usize;
