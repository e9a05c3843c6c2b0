//! Reading a room's events over federation: one event, the events missing
//! between two points of the graph, and the state at an event. A server
//! reads only rooms in which one of its users has a membership.
//!
//! NOTE: history visibility is not applied to other servers' reads.

use std::{collections::HashSet, rc::Rc};

use ruma::OwnedRoomId;
use serde_json::{Value, json};

use super::{
    acl,
    membership::{auth_chain, wire_events},
};
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    room::{
        Room,
        signature::{self, NewSignatures},
        state::load_pdu,
        state_groups,
    },
    shard::{Shard, now_millis},
    store::{EventRecord, Map},
};

/// Largest `limit` of `get_missing_events`.
const MAX_MISSING: usize = 100;

fn origin(request: &ApiRequest) -> ApiResult<&str> {
    request
        .origin
        .as_deref()
        .ok_or_else(|| MatrixError::unauthorized("Missing X-Matrix authorization"))
}

/// Checks that a user of `server` has a membership in `room`.
fn check_server_in_room(room: &Room, server: &str) -> ApiResult<()> {
    if room
        .members
        .keys()
        .any(|user| user.server_name().as_str() == server)
    {
        Ok(())
    } else {
        Err(MatrixError::forbidden(format!(
            "{server} is not in the room"
        )))
    }
}

/// Checks that `server` may read `room`'s history: one of its users has a
/// membership there and the room's server ACL allows it.
fn check_server_may_read(room: &Room, server: &str) -> ApiResult<()> {
    check_server_in_room(room, server)?;
    acl::check(room, server)
}

fn parse_room(room_id: &str) -> ApiResult<OwnedRoomId> {
    OwnedRoomId::try_from(room_id).map_err(|_| MatrixError::invalid_param("Invalid room ID"))
}

/// `GET /_matrix/federation/v1/event/{eventId}`.
pub async fn event(shard: &Rc<Shard>, request: &ApiRequest, event_id: &str) -> ApiResult<Value> {
    let origin = origin(request)?.to_owned();
    let record = shard
        .store
        .get_json::<EventRecord>(Map::Events, event_id.as_bytes())?
        .ok_or_else(|| MatrixError::not_found("Unknown event"))?;
    let room_id = parse_room(&record.room_id)?;
    let owner = shard.owner(room_id.as_str());
    let event_id = event_id.to_owned();
    shard
        .on_shard(owner, move |shard| async move {
            let room = shard.room(&room_id)?;
            check_server_in_room(&room.borrow(), &origin)?;
            let mut new = NewSignatures::default();
            let pdu = signature::wire_event(&shard, &event_id, record, &mut new)?;
            new.persist(&shard);
            Ok(json!({
                "origin": shard.config.server_name,
                "origin_server_ts": now_millis(),
                "pdus": [pdu],
            }))
        })
        .await?
}

/// `POST /_matrix/federation/v1/get_missing_events/{roomId}`: the
/// predecessors of `latest_events`, newest first, back to `earliest_events`.
pub fn missing_events(shard: &Shard, request: &ApiRequest, room_id: &str) -> ApiResult<Value> {
    let room_id = parse_room(room_id)?;
    let room = shard.room(&room_id)?;
    check_server_may_read(&room.borrow(), origin(request)?)?;
    let body = request.body_object()?;
    let ids = |name: &str| -> ApiResult<Vec<String>> {
        let invalid = || MatrixError::bad_json(format!("{name} must be an array of event IDs"));
        match body.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|id| id.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(invalid),
            Some(_) => Err(invalid()),
        }
    };
    let integer = |name: &str, default: u64| -> ApiResult<u64> {
        match body.get(name) {
            None => Ok(default),
            Some(value) => value.as_u64().ok_or_else(|| {
                MatrixError::bad_json(format!("{name} must be a non-negative integer"))
            }),
        }
    };
    let limit = usize::try_from(integer("limit", 10)?)
        .unwrap_or(MAX_MISSING)
        .min(MAX_MISSING);
    let min_depth = integer("min_depth", 0)?;
    let earliest: HashSet<String> = ids("earliest_events")?.into_iter().collect();
    let latest = ids("latest_events")?;
    if limit == 0 {
        return Ok(json!({ "events": [] }));
    }

    let mut seen: HashSet<String> = latest.into_iter().collect();
    let mut queue: std::collections::VecDeque<String> = seen.iter().cloned().collect();
    let mut found = Vec::new();
    while let Some(id) = queue.pop_front() {
        let Some(pdu) = load_pdu(&shard.store, &id)? else {
            continue;
        };
        for prev in pdu.prev_events {
            let prev = prev.to_string();
            if earliest.contains(&prev) || !seen.insert(prev.clone()) {
                continue;
            }
            let Some(event) = load_pdu(&shard.store, &prev)? else {
                continue;
            };
            if event.room_id != room_id || event.depth < min_depth {
                continue;
            }
            found.push(prev.clone());
            if found.len() >= limit {
                queue.clear();
                break;
            }
            queue.push_back(prev);
        }
    }
    found.reverse();
    Ok(json!({ "events": wire_events(shard, &found)? }))
}

/// `GET /_matrix/federation/v1/state_ids/{roomId}?event_id=`: the IDs of
/// the state before an event and of its auth chain.
pub fn state_ids(shard: &Shard, request: &ApiRequest, room_id: &str) -> ApiResult<Value> {
    let (pdu_ids, chain) = state_before(shard, request, room_id)?;
    Ok(json!({ "pdu_ids": pdu_ids, "auth_chain_ids": chain }))
}

/// `GET /_matrix/federation/v1/state/{roomId}?event_id=`: the state before
/// an event and its auth chain, as full PDUs.
pub fn state(shard: &Shard, request: &ApiRequest, room_id: &str) -> ApiResult<Value> {
    let (pdu_ids, chain) = state_before(shard, request, room_id)?;
    Ok(json!({
        "pdus": wire_events(shard, &pdu_ids)?,
        "auth_chain": wire_events(shard, &chain)?,
    }))
}

/// `GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}`: every event
/// in the auth chain of an event.
pub fn event_auth(
    shard: &Shard,
    request: &ApiRequest,
    room_id: &str,
    event_id: &str,
) -> ApiResult<Value> {
    let room_id = parse_room(room_id)?;
    let room = shard.room(&room_id)?;
    check_server_may_read(&room.borrow(), origin(request)?)?;
    load_pdu(&shard.store, event_id)?
        .filter(|pdu| pdu.room_id == room_id)
        .ok_or_else(|| MatrixError::not_found("Unknown event"))?;
    let chain = auth_chain(shard, &[event_id.to_owned()])?;
    Ok(json!({ "auth_chain": wire_events(shard, &chain)? }))
}

/// Returns the IDs of the state before the event named by the `event_id`
/// parameter, and of that state's auth chain.
fn state_before(
    shard: &Shard,
    request: &ApiRequest,
    room_id: &str,
) -> ApiResult<(Vec<String>, Vec<String>)> {
    let room_id = parse_room(room_id)?;
    let room = shard.room(&room_id)?;
    check_server_may_read(&room.borrow(), origin(request)?)?;
    let event_id = request
        .query("event_id")
        .ok_or_else(|| MatrixError::missing_param("Missing event_id"))?;
    let pdu = load_pdu(&shard.store, event_id)?
        .filter(|pdu| pdu.room_id == room_id)
        .ok_or_else(|| MatrixError::not_found("Unknown event"))?;

    // NOTE: an event with several predecessors gets the state after it,
    // minus its own entry, instead of the resolution of its predecessors.
    let state = match pdu.prev_events.as_slice() {
        [prev] => state_groups::state_after(&shard.store, room_id.as_str(), prev.as_str())?,
        _ => {
            state_groups::state_after(&shard.store, room_id.as_str(), event_id)?.map(|mut state| {
                state.retain(|_, id| id != event_id);
                state
            })
        }
    }
    .ok_or_else(|| MatrixError::not_found("The state at the event is not stored"))?;

    let pdu_ids: Vec<String> = state.into_values().collect();
    let chain = auth_chain(shard, &pdu_ids)?;
    Ok((pdu_ids, chain))
}

/// `GET /_matrix/federation/v1/backfill/{roomId}?v=&limit=`: the events
/// from `v` back through their predecessors, at most `limit`.
pub fn backfill(shard: &Shard, request: &ApiRequest, room_id: &str) -> ApiResult<Value> {
    let room_id = parse_room(room_id)?;
    let room = shard.room(&room_id)?;
    check_server_may_read(&room.borrow(), origin(request)?)?;
    let limit = request
        .query("limit")
        .and_then(|limit| limit.parse::<usize>().ok())
        .unwrap_or(10)
        .min(MAX_MISSING);
    let starts: Vec<String> = request
        .query
        .iter()
        .filter(|(key, _)| key == "v")
        .map(|(_, value)| value.clone())
        .collect();
    if starts.is_empty() {
        return Err(MatrixError::missing_param("Missing v"));
    }
    let mut seen: HashSet<String> = starts.iter().cloned().collect();
    let mut queue: std::collections::VecDeque<String> = starts.into_iter().collect();
    let mut found = Vec::new();
    while let Some(id) = queue.pop_front() {
        if found.len() >= limit {
            break;
        }
        let Some(pdu) = load_pdu(&shard.store, &id)? else {
            continue;
        };
        if pdu.room_id != room_id {
            continue;
        }
        found.push(id);
        for prev in pdu.prev_events {
            let prev = prev.to_string();
            if seen.insert(prev.clone()) {
                queue.push_back(prev);
            }
        }
    }
    Ok(json!({
        "origin": shard.config.server_name,
        "origin_server_ts": now_millis(),
        "pdus": wire_events(shard, &found)?,
    }))
}
