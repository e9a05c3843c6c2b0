//! The embedded store: one fjall database with a keyspace per map.
//!
//! Keys are built from IDs, never from shard numbers, so the same data
//! serves any shard count. Reads go straight to fjall from any shard; writes
//! go through the writing shard's [`Committer`], which acknowledges them only
//! after `fdatasync`. The key layouts are in `docs/storage.md`.

mod commit;
pub mod keys;
mod records;

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions};

pub use commit::{Committer, WriteBatch};
pub use records::{
    BlockedRoomRecord, DeviceRecord, EventRecord, MembershipRecord, RoomRecord, TokenRecord,
    UserRecord,
};

/// Failure of the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine error: {0}")]
    Engine(#[from] fjall::Error),
    #[error("corrupt record in {map}: {source}")]
    Corrupt {
        map: &'static str,
        source: serde_json::Error,
    },
    #[error("data directory {0} is in use by another running server; stop it or set --data-dir")]
    Locked(std::path::PathBuf),
    #[error("the commit thread has stopped")]
    CommitterStopped,
}

/// A key and its value, as read by a scan.
pub type Row = (Vec<u8>, Vec<u8>);

/// Identifies one keyspace, so write batches can cross threads by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Map {
    Users,
    Tokens,
    Devices,
    Events,
    Timeline,
    RoomState,
    StateHistory,
    Rooms,
    UserRooms,
    Txns,
    Filters,
    Aliases,
    RoomAliases,
    Meta,
    BlockedRooms,
    StateGroups,
    EventStates,
    EventSignatures,
}

const MAPS: [(Map, &str); 18] = [
    (Map::Users, "userid_user"),
    (Map::Tokens, "tokenhash_device"),
    (Map::Devices, "userid_deviceid_device"),
    (Map::Events, "eventid_event"),
    (Map::Timeline, "roomid_pos_eventid"),
    (Map::RoomState, "roomid_type_statekey_eventid"),
    (Map::StateHistory, "roomid_type_statekey_pos_eventid"),
    (Map::RoomAliases, "roomid_alias"),
    (Map::Rooms, "roomid_room"),
    (Map::UserRooms, "userid_roomid_membership"),
    (Map::Txns, "userid_deviceid_txnid_eventid"),
    (Map::Filters, "userid_filterid_filter"),
    (Map::Aliases, "alias_roomid"),
    (Map::Meta, "meta"),
    (Map::BlockedRooms, "roomid_blocked"),
    (Map::StateGroups, "roomid_group_stategroup"),
    (Map::EventStates, "eventid_stategroup"),
    (Map::EventSignatures, "eventid_signature"),
];

/// Handles to the database and its keyspaces; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Database,
    maps: Vec<Keyspace>,
}

impl Store {
    /// Opens or creates the store under `dir`.
    ///
    /// # Errors
    ///
    /// Returns the engine's error if the database cannot be opened.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = match Database::builder(dir.join("store"))
            .manual_journal_persist(true)
            .open()
        {
            Err(fjall::Error::Locked) => return Err(StoreError::Locked(dir.to_path_buf())),
            result => result?,
        };
        let maps = MAPS
            .iter()
            .map(|(_, name)| db.keyspace(name, KeyspaceCreateOptions::default))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { db, maps })
    }

    /// Returns the keyspace of `map`.
    #[must_use]
    pub fn map(&self, map: Map) -> &Keyspace {
        let index = MAPS.iter().position(|(m, _)| *m == map).unwrap_or(0);
        &self.maps[index]
    }

    /// Reads one raw value.
    ///
    /// # Errors
    ///
    /// Returns the engine's error on I/O failure.
    pub fn get(&self, map: Map, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map(map).get(key)?.map(|value| value.to_vec()))
    }

    /// Reads and decodes one JSON record.
    ///
    /// # Errors
    ///
    /// Returns an error on I/O failure or if the stored record does not decode.
    pub fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        map: Map,
        key: &[u8],
    ) -> Result<Option<T>, StoreError> {
        let Some(bytes) = self.get(map, key)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                map: map_name(map),
                source,
            })
    }

    /// Returns every key and value under `prefix`, in key order.
    ///
    /// # Errors
    ///
    /// Returns the engine's error on I/O failure.
    pub fn scan_prefix(&self, map: Map, prefix: &[u8]) -> Result<Vec<Row>, StoreError> {
        let mut rows = Vec::new();
        for guard in self.map(map).prefix(prefix) {
            let (key, value) = guard.into_inner()?;
            rows.push((key.to_vec(), value.to_vec()));
        }
        Ok(rows)
    }

    /// Returns up to `limit` rows in `[start, end)`, ascending or descending.
    ///
    /// # Errors
    ///
    /// Returns the engine's error on I/O failure.
    pub fn scan_range(
        &self,
        map: Map,
        start: &[u8],
        end: &[u8],
        descending: bool,
        limit: usize,
    ) -> Result<Vec<Row>, StoreError> {
        let range = self.map(map).range(start.to_vec()..end.to_vec());
        let iter: Box<dyn Iterator<Item = fjall::Guard>> = if descending {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        let mut rows = Vec::new();
        for guard in iter.take(limit) {
            let (key, value) = guard.into_inner()?;
            rows.push((key.to_vec(), value.to_vec()));
        }
        Ok(rows)
    }

    /// Writes the journal to disk with `fdatasync`.
    ///
    /// # Errors
    ///
    /// Returns the engine's error if the sync fails.
    pub fn persist(&self) -> Result<(), StoreError> {
        self.db.persist(fjall::PersistMode::SyncData)?;
        Ok(())
    }

    fn database(&self) -> &Database {
        &self.db
    }
}

fn map_name(map: Map) -> &'static str {
    MAPS.iter()
        .find(|(m, _)| *m == map)
        .map_or("unknown", |(_, name)| name)
}
