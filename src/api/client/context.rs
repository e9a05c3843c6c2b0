//! `GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}`: an event with
//! the events around it and the room state at the last one returned.

use ruma::OwnedRoomId;
use serde_json::{Value, json};

use super::messages::{Scan, member_room, read_page, viewer, visibility};
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    room::{client_format, history},
    shard::{Shard, now_millis},
    sync::{filter, filter::EventFilter, token},
};

/// Largest `limit` served.
const MAX_LIMIT: u64 = 1000;

/// `GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}`. The `limit`
/// (10 by default) is shared between the events before and after, with the
/// extra one after when it is odd.
///
/// # Errors
///
/// `M_NOT_FOUND` when the event is unknown, in another room or hidden from
/// the user by history visibility. `M_FORBIDDEN` when the user may not read
/// the room.
pub fn context(
    shard: &Shard,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
    event_id: &str,
) -> ApiResult<Value> {
    let auth = request.auth()?;
    member_room(shard, room_id)?;
    let visibility = visibility(shard, room_id, auth.user_id.as_str())?;
    let limit = request.query_u64("limit")?.unwrap_or(10).min(MAX_LIMIT);
    let event_filter: EventFilter = match request.query("filter") {
        Some(text) => filter::parse(text)?,
        None => EventFilter::default(),
    };

    let not_found = || MatrixError::not_found("Event not found");
    let event = client_format::load(shard, event_id, Some(viewer(auth)), now_millis())
        .ok_or_else(not_found)?;
    let pos = event.event.record.pos;
    if event.event.record.room_id != room_id.as_str()
        || !visibility.can_see_event(pos, &event.event.client)
    {
        return Err(not_found());
    }

    let before_limit = limit / 2;
    let after_limit = limit - before_limit;
    let before = if before_limit == 0 {
        Vec::new()
    } else {
        let scan = Scan {
            room_id,
            low: 0,
            high: pos,
            backwards: true,
            limit: before_limit,
        };
        read_page(shard, auth, &scan, &event_filter, &visibility)?.events
    };
    let after = if after_limit == 0 {
        Vec::new()
    } else {
        let scan = Scan {
            room_id,
            low: pos + 1,
            high: u64::MAX,
            backwards: false,
            limit: after_limit,
        };
        read_page(shard, auth, &scan, &event_filter, &visibility)?.events
    };

    let position_of = |events: &[(u64, Value)]| events.last().map(|(pos, _)| *pos);
    let start = position_of(&before).unwrap_or(pos);
    let end = position_of(&after).unwrap_or(pos);
    let now = now_millis();
    // The filter applies to the state as well as to the events around.
    // The state is the one after the last event returned.
    let end_event_id = after
        .last()
        .and_then(|(_, event)| event.get("event_id"))
        .and_then(Value::as_str)
        .unwrap_or(event_id);
    let state_ids = history::state_after_event(&shard.store, room_id.as_str(), end_event_id, end)?;
    let state: Vec<Value> = state_ids
        .values()
        .filter_map(|id| client_format::load(shard, id, Some(viewer(auth)), now))
        .filter(|event| event_filter.matches(&event.event.client))
        .map(|event| event.to_value())
        .collect();
    let strip = |events: Vec<(u64, Value)>| -> Vec<Value> {
        events.into_iter().map(|(_, event)| event).collect()
    };
    Ok(json!({
        "start": token::format_boundary(start),
        "end": token::format_boundary(end + 1),
        "events_before": strip(before),
        "event": event.to_value(),
        "events_after": strip(after),
        "state": state,
    }))
}
