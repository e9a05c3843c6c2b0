//! The state of a room after each of its events, stored as state groups.
//!
//! A state group is either a full snapshot of a room's state or a delta on a
//! parent group. `eventid_stategroup` maps every event to the group of the
//! state after it, so the state at any event can be rebuilt even when the
//! room's history forks. A message shares its predecessor's group, and a
//! state event adds a one-entry delta. After [`MAX_CHAIN`] deltas the next
//! group is a full snapshot, which bounds the reads that rebuilding takes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::store::{Map, Store, StoreError, WriteBatch, keys};

/// Deltas allowed between a group and its nearest full snapshot.
pub const MAX_CHAIN: u32 = 50;

/// `(event type, state key)` to event ID.
pub type StateIds = BTreeMap<(String, String), String>;

/// One stored state group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateGroupRecord {
    /// The group this one changes; `None` for a full snapshot.
    pub parent: Option<u64>,
    /// `(event type, state key, event ID)` entries set by this group.
    pub entries: Vec<(String, String, String)>,
}

/// Returns the key of group `group` of `room_id`.
#[must_use]
pub fn group_key(room_id: &str, group: u64) -> Vec<u8> {
    keys::timeline(room_id, group)
}

/// Stages a full snapshot of `state` as group `group`.
pub fn stage_snapshot(batch: &mut WriteBatch, room_id: &str, group: u64, state: &StateIds) {
    let record = StateGroupRecord {
        parent: None,
        entries: state
            .iter()
            .map(|((kind, key), id)| (kind.clone(), key.clone(), id.clone()))
            .collect(),
    };
    batch.put_json(Map::StateGroups, group_key(room_id, group), &record);
}

/// Stages group `group` as `parent` with one more state event.
pub fn stage_delta(
    batch: &mut WriteBatch,
    room_id: &str,
    group: u64,
    parent: u64,
    entry: (String, String, String),
) {
    let record = StateGroupRecord {
        parent: Some(parent),
        entries: vec![entry],
    };
    batch.put_json(Map::StateGroups, group_key(room_id, group), &record);
}

/// Stages group `group` as `parent` with several more state events.
pub fn stage_entries(
    batch: &mut WriteBatch,
    room_id: &str,
    group: u64,
    parent: u64,
    entries: Vec<(String, String, String)>,
) {
    let record = StateGroupRecord {
        parent: Some(parent),
        entries,
    };
    batch.put_json(Map::StateGroups, group_key(room_id, group), &record);
}

/// Stages that the state after `event_id` is group `group`, which is
/// `chain` deltas from its nearest full snapshot.
pub fn stage_event_group(batch: &mut WriteBatch, event_id: &str, group: u64, chain: u32) {
    let mut value = group.to_be_bytes().to_vec();
    value.extend_from_slice(&chain.to_be_bytes());
    batch.put(Map::EventStates, event_id.as_bytes().to_vec(), value);
}

/// Returns the group of the state after `event_id` and its chain length, or
/// `None` for an event stored before state groups existed. A row written
/// without the chain length reports [`MAX_CHAIN`].
///
/// # Errors
///
/// Returns a storage error.
pub fn group_of(store: &Store, event_id: &str) -> Result<Option<(u64, u32)>, StoreError> {
    let Some(bytes) = store.get(Map::EventStates, event_id.as_bytes())? else {
        return Ok(None);
    };
    let group = bytes
        .get(..8)
        .and_then(|head| <[u8; 8]>::try_from(head).ok())
        .map(u64::from_be_bytes);
    let chain = bytes
        .get(8..12)
        .and_then(|tail| <[u8; 4]>::try_from(tail).ok())
        .map_or(MAX_CHAIN, u32::from_be_bytes);
    Ok(group.map(|group| (group, chain)))
}

/// Rebuilds the state of group `group`. A group whose chain is broken (a
/// parent that is missing) yields the entries found up to the break.
///
/// # Errors
///
/// Returns a storage error.
pub fn load(store: &Store, room_id: &str, group: u64) -> Result<StateIds, StoreError> {
    let mut chain = Vec::new();
    let mut next = Some(group);
    // The bound stops a cycle in corrupt data from looping forever.
    while let Some(id) = next
        && chain.len() <= MAX_CHAIN as usize + 1
    {
        let Some(record) =
            store.get_json::<StateGroupRecord>(Map::StateGroups, &group_key(room_id, id))?
        else {
            tracing::warn!(room_id, group = id, "state group not found");
            break;
        };
        next = record.parent;
        chain.push(record);
    }
    let mut state = StateIds::new();
    for record in chain.into_iter().rev() {
        for (kind, key, event_id) in record.entries {
            state.insert((kind, key), event_id);
        }
    }
    Ok(state)
}

/// Returns the state after `event_id`, or `None` when the event has no
/// recorded group.
///
/// # Errors
///
/// Returns a storage error.
pub fn state_after(
    store: &Store,
    room_id: &str,
    event_id: &str,
) -> Result<Option<StateIds>, StoreError> {
    match group_of(store, event_id)? {
        Some((group, _)) => load(store, room_id, group).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Committer;

    fn write(store: &Store, batch: WriteBatch) {
        let (committer, thread) = Committer::start(store.clone()).expect("commit thread starts");
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime builds");
        runtime
            .block_on(committer.commit(batch))
            .expect("batch commits");
        committer.stop();
        thread.join().expect("commit thread exits");
    }

    fn entry(kind: &str, key: &str, id: &str) -> (String, String, String) {
        (kind.to_owned(), key.to_owned(), id.to_owned())
    }

    #[test]
    fn deltas_rebuild_state_after_each_event() {
        let dir = std::env::temp_dir().join(format!("eltrix-groups-{}", std::process::id()));
        let store = Store::open(&dir).expect("store opens");
        let room = "!r:localhost";
        let mut batch = WriteBatch::default();
        let base = StateIds::from([(("m.room.create".to_owned(), String::new()), "$c".to_owned())]);
        stage_snapshot(&mut batch, room, 1, &base);
        stage_event_group(&mut batch, "$c", 1, 0);
        stage_delta(&mut batch, room, 2, 1, entry("m.room.topic", "", "$t1"));
        stage_event_group(&mut batch, "$t1", 2, 1);
        stage_event_group(&mut batch, "$m", 2, 1);
        stage_delta(&mut batch, room, 3, 2, entry("m.room.topic", "", "$t2"));
        stage_event_group(&mut batch, "$t2", 3, 2);
        write(&store, batch);

        let topic = ("m.room.topic".to_owned(), String::new());
        let after_create = state_after(&store, room, "$c").unwrap().unwrap();
        assert_eq!(after_create, base);
        let after_message = state_after(&store, room, "$m").unwrap().unwrap();
        assert_eq!(after_message.get(&topic).map(String::as_str), Some("$t1"));
        assert_eq!(after_message.len(), 2);
        let after_second = state_after(&store, room, "$t2").unwrap().unwrap();
        assert_eq!(after_second.get(&topic).map(String::as_str), Some("$t2"));
        assert_eq!(state_after(&store, room, "$unknown").unwrap(), None);
        assert_eq!(group_of(&store, "$t2").unwrap(), Some((3, 2)));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
