//! The `summary` of a joined room in `/sync`: member counts and, for rooms
//! with neither a name nor a canonical alias, the heroes clients name the
//! room after.

use serde_json::{Value, json};

use crate::store::{EventRecord, Map, Store, StoreError, keys};

/// Heroes listed at most, as the spec suggests.
const MAX_HEROES: usize = 5;

/// Builds the summary of `room_id` for `user_id` from the current state.
///
/// # Errors
///
/// Returns a storage error.
pub fn room_summary(store: &Store, room_id: &str, user_id: &str) -> Result<Value, StoreError> {
    let (mut joined, mut invited, mut named) = (0u64, 0u64, false);
    let mut heroes = Vec::new();
    for (key, event_id) in store.scan_prefix(Map::RoomState, &keys::prefix(room_id))? {
        let mut parts = key.split(|b| *b == 0).skip(1);
        let kind = parts.next().unwrap_or_default();
        let state_key = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
        match kind {
            b"m.room.name" | b"m.room.canonical_alias" => named |= has_content(store, &event_id)?,
            b"m.room.member" => {
                let membership = membership_of(store, &event_id)?;
                match membership.as_deref() {
                    Some("join") => joined += 1,
                    Some("invite") => invited += 1,
                    _ => continue,
                }
                if state_key != user_id {
                    heroes.push(state_key);
                }
            }
            _ => {}
        }
    }
    let mut summary = json!({
        "m.joined_member_count": joined,
        "m.invited_member_count": invited,
    });
    if !named {
        heroes.sort();
        heroes.truncate(MAX_HEROES);
        summary["m.heroes"] = json!(heroes);
    }
    Ok(summary)
}

fn load(store: &Store, event_id: &[u8]) -> Result<Option<EventRecord>, StoreError> {
    store.get_json::<EventRecord>(Map::Events, event_id)
}

/// Returns whether a name or alias event sets a non-empty value.
fn has_content(store: &Store, event_id: &[u8]) -> Result<bool, StoreError> {
    let Some(record) = load(store, event_id)? else {
        return Ok(false);
    };
    let content = record.pdu.get("content");
    let value = content.and_then(|c| c.get("name").or_else(|| c.get("alias")));
    Ok(value
        .and_then(Value::as_str)
        .is_some_and(|text| !text.is_empty()))
}

fn membership_of(store: &Store, event_id: &[u8]) -> Result<Option<String>, StoreError> {
    Ok(load(store, event_id)?.and_then(|record| {
        record
            .pdu
            .pointer("/content/membership")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }))
}
