//! `POST /_eltrix/admin/v1/rooms/{roomId}/purge`: deletes the room's events
//! sent before `purge_up_to_ts`, keeping the state that the server still
//! reads.
//!
//! The purge point is the position of the first event with an
//! `origin_server_ts` at or after `purge_up_to_ts`, and never later than the
//! newest event, which the next event references. Before the purge point,
//! a state event is kept when it is
//!
//! - the latest of its type and state key before the purge point, so the
//!   state at every remaining event, and with it history visibility, stays
//!   as it was;
//! - the latest of its type and state key at the leave or ban of a member
//!   who is no longer in the room, because `/state` and `/members` show such
//!   a user the state at that event;
//! - in the auth events, transitively, of a kept state event.
//!
//! Every other event before the purge point is deleted, with its timeline
//! row and state history row.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    rc::Rc,
};

use ruma::OwnedRoomId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{deletion::Deletion, rooms::parse_room_id};
use crate::{
    api::{error::ApiResult, request::ApiRequest},
    shard::Shard,
    store::{EventRecord, Map, keys},
};

#[derive(Deserialize)]
struct PurgeBody {
    /// Milliseconds since the Unix epoch.
    purge_up_to_ts: u64,
}

/// `(event type, state key)` to the positions and event IDs of its state
/// events, oldest first.
type StateHistory = BTreeMap<(String, String), Vec<(u64, String)>>;

/// `POST /_eltrix/admin/v1/rooms/{roomId}/purge`, on the room's shard.
pub async fn purge(shard: &Rc<Shard>, request: &ApiRequest, room_id: &str) -> ApiResult<Value> {
    let admin_id = request.auth()?.user_id.clone();
    let room_id = parse_room_id(room_id)?;
    let body: PurgeBody = request.body()?;
    shard
        .on_shard(shard.owner(room_id.as_str()), move |shard| async move {
            let deletion = plan(&shard, &room_id, body.purge_up_to_ts)?;
            let purged_events = deletion.commit(&shard).await?;
            tracing::info!(
                %admin_id,
                %room_id,
                purge_up_to_ts = body.purge_up_to_ts,
                purged_events,
                "purged room history"
            );
            Ok(json!({ "purged_events": purged_events }))
        })
        .await?
}

/// Chooses the events to delete. Runs without an await, so no event of the
/// room is appended while it reads.
fn plan(shard: &Shard, room_id: &OwnedRoomId, purge_up_to_ts: u64) -> ApiResult<Deletion> {
    let room = shard.room(room_id)?;
    let room_key = room_id.as_str();

    // Read the events before the purge point, oldest first.
    let timeline = shard
        .store
        .scan_prefix(Map::Timeline, &keys::prefix(room_key))?;
    let newest_pos = timeline
        .last()
        .map_or(0, |(key, _)| keys::timeline_pos(key));
    let mut candidates: Vec<(u64, String, EventRecord)> = Vec::new();
    for (key, event_id) in &timeline {
        let pos = keys::timeline_pos(key);
        if pos >= newest_pos {
            break;
        }
        let event_id = String::from_utf8_lossy(event_id).into_owned();
        let Some(record) = shard
            .store
            .get_json::<EventRecord>(Map::Events, event_id.as_bytes())?
        else {
            continue;
        };
        let ts = record
            .pdu
            .get("origin_server_ts")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if ts >= purge_up_to_ts {
            break;
        }
        candidates.push((pos, event_id, record));
    }
    let Some(boundary) = candidates.last().map(|(pos, ..)| pos + 1) else {
        return Ok(Deletion::default());
    };

    // Decide which state events before the purge point stay.
    let history = state_history(shard, room_key)?;
    let mut snapshots = vec![boundary - 1];
    {
        let room = room.borrow();
        for (user_id, membership) in &room.members {
            if matches!(membership.as_str(), "leave" | "ban")
                && let Some(event) = room.state_event("m.room.member", user_id.as_str())
                && event.pos < boundary
            {
                snapshots.push(event.pos);
            }
        }
    }
    let mut kept = state_at_snapshots(&history, &snapshots);
    let auth_events: HashMap<&str, Vec<String>> = candidates
        .iter()
        .map(|(_, event_id, record)| (event_id.as_str(), auth_event_ids(&record.pdu)))
        .collect();
    add_auth_chains(&mut kept, &auth_events);

    let mut deletion = Deletion::default();
    for (pos, event_id, record) in &candidates {
        if kept.contains(event_id) {
            continue;
        }
        deletion.delete_event(room_key, event_id, *pos);
        let kind = record.pdu.get("type").and_then(Value::as_str);
        let state_key = record.pdu.get("state_key").and_then(Value::as_str);
        if let (Some(kind), Some(state_key)) = (kind, state_key) {
            deletion.delete(
                Map::StateHistory,
                keys::state_history(room_key, kind, state_key, *pos),
            );
        }
    }
    tracing::debug!(
        %room_id,
        boundary,
        candidates = candidates.len(),
        purged = deletion.event_count(),
        "planned history purge"
    );
    Ok(deletion)
}

/// Reads the room's state history, grouped by type and state key.
fn state_history(shard: &Shard, room_id: &str) -> ApiResult<StateHistory> {
    let mut history = StateHistory::new();
    for (key, event_id) in shard
        .store
        .scan_prefix(Map::StateHistory, &keys::prefix(room_id))?
    {
        let Some((kind, state_key, pos)) = keys::split_state_history(&key) else {
            continue;
        };
        let event_id = String::from_utf8_lossy(&event_id).into_owned();
        history
            .entry((kind, state_key))
            .or_default()
            .push((pos, event_id));
    }
    Ok(history)
}

/// Returns, for every position in `snapshots`, the event ID of the latest
/// state event of each type and state key at or before it.
fn state_at_snapshots(history: &StateHistory, snapshots: &[u64]) -> HashSet<String> {
    let mut kept = HashSet::new();
    for entries in history.values() {
        for snapshot in snapshots {
            let applied = entries.partition_point(|(pos, _)| pos <= snapshot);
            if let Some((_, event_id)) = applied.checked_sub(1).map(|index| &entries[index]) {
                kept.insert(event_id.clone());
            }
        }
    }
    kept
}

/// Adds to `kept` the auth events, transitively, of the events in it.
/// `auth_events` lists the auth events of each event that may be deleted.
/// Events missing from it are never deleted, so their auth events are not
/// followed.
fn add_auth_chains(kept: &mut HashSet<String>, auth_events: &HashMap<&str, Vec<String>>) {
    let mut pending: Vec<String> = kept.iter().cloned().collect();
    while let Some(event_id) = pending.pop() {
        let Some(parents) = auth_events.get(event_id.as_str()) else {
            continue;
        };
        for parent in parents {
            if kept.insert(parent.clone()) {
                pending.push(parent.clone());
            }
        }
    }
}

/// Returns the `auth_events` of a PDU: IDs in room versions 3 and later,
/// `[id, hashes]` pairs in versions 1 and 2.
fn auth_event_ids(pdu: &Value) -> Vec<String> {
    let Some(list) = pdu.get("auth_events").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|item| match item {
            Value::String(id) => Some(id.clone()),
            Value::Array(pair) => pair.first().and_then(Value::as_str).map(str::to_owned),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use serde_json::json;

    use super::{StateHistory, add_auth_chains, auth_event_ids, state_at_snapshots};

    fn history() -> StateHistory {
        let mut history = StateHistory::new();
        history.insert(
            ("m.room.name".into(), String::new()),
            vec![(10, "$n1".into()), (20, "$n2".into()), (40, "$n3".into())],
        );
        history.insert(
            ("m.room.create".into(), String::new()),
            vec![(1, "$c".into())],
        );
        history
    }

    #[test]
    fn keeps_latest_state_at_each_snapshot() {
        let kept = state_at_snapshots(&history(), &[29]);
        let expected: HashSet<String> = ["$n2", "$c"].map(String::from).into();
        assert_eq!(kept, expected);

        let kept = state_at_snapshots(&history(), &[29, 15]);
        assert!(kept.contains("$n1"));
        assert!(!kept.contains("$n3"));
    }

    #[test]
    fn snapshot_before_any_state_keeps_nothing_of_it() {
        let kept = state_at_snapshots(&history(), &[5]);
        let expected: HashSet<String> = ["$c"].map(String::from).into();
        assert_eq!(kept, expected);
    }

    #[test]
    fn auth_chains_are_followed_transitively() {
        let mut kept: HashSet<String> = ["$leave"].map(String::from).into();
        let auth_events = HashMap::from([
            ("$leave", vec!["$join".to_owned(), "$create".to_owned()]),
            ("$join", vec!["$old_power".to_owned()]),
            ("$unrelated", vec!["$other".to_owned()]),
        ]);
        add_auth_chains(&mut kept, &auth_events);
        for id in ["$leave", "$join", "$create", "$old_power"] {
            assert!(kept.contains(id), "{id} was not kept");
        }
        assert!(!kept.contains("$other"));
    }

    #[test]
    fn auth_events_in_both_formats() {
        assert_eq!(
            auth_event_ids(&json!({ "auth_events": ["$a", "$b"] })),
            ["$a", "$b"]
        );
        let old = json!({ "auth_events": [["$a:x", { "sha256": "h" }]] });
        assert_eq!(auth_event_ids(&old), ["$a:x"]);
    }
}
