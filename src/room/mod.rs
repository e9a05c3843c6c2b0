//! Rooms, owned by the shard `shard_of(room_id)`: in-memory current state,
//! event creation and signing, the authorization check, and the append path
//! that orders, persists and announces events.

pub mod append;
pub mod auth;
#[cfg(test)]
mod auth_rules_tests;
pub mod builder;
pub mod client_format;
pub mod event_cache;
pub mod history;
pub mod ingest;
#[cfg(test)]
mod ingest_tests;
pub mod keys;
pub mod pdu;
#[cfg(test)]
mod redaction_tests;
pub mod resolve;
#[cfg(test)]
mod resolve_tests;
mod resolve_v1;
pub mod restricted;
pub mod signature;
#[cfg(test)]
mod signing_tests;
pub mod state;
pub mod state_groups;
#[cfg(test)]
mod test_room;
pub mod validate;
pub mod versions;

pub use builder::{EventDraft, Txn};
pub use pdu::Pdu;
pub use state::Room;
