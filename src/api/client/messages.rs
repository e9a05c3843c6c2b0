//! `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}` and
//! `GET /_matrix/client/v3/rooms/{roomId}/messages`.
//!
//! Events are filtered by the spec's history visibility rules, applied to
//! the room's state at each event.

use std::{cell::RefCell, collections::BTreeMap, rc::Rc};

use ruma::OwnedRoomId;
use serde_json::{Value, json};

use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::{ApiRequest, Auth},
    },
    room::{
        Room,
        client_format::{self, Viewer},
        history::{self, Visibility},
    },
    shard::{Shard, now_millis},
    store::{Map, keys},
    sync::{
        filter::{self, EventFilter},
        token,
    },
};

/// Largest `limit` served by `/messages`.
const MAX_LIMIT: u64 = 1000;

/// Returns the viewer of a request.
#[must_use]
pub fn viewer(auth: &Auth) -> Viewer<'_> {
    Viewer {
        user_id: auth.user_id.as_str(),
        device_id: &auth.device_id,
    }
}

/// Returns the room for a request that only members may make: an unknown
/// room is `M_FORBIDDEN`, as for a room the user is not in, so the response does
/// not reveal which rooms exist. Storage failures stay errors.
///
/// # Errors
///
/// `M_FORBIDDEN` for an unknown room, or a storage error.
pub fn member_room(shard: &Shard, room_id: &OwnedRoomId) -> ApiResult<Rc<RefCell<Room>>> {
    shard.room(room_id).map_err(|error| {
        if error.status == 404 {
            MatrixError::forbidden("You are not in this room")
        } else {
            error
        }
    })
}

/// The room state a user may read.
#[derive(Debug, Clone)]
pub enum StateView {
    /// A joined member reads the current state.
    Current,
    /// A user who left or was banned reads the state after the membership
    /// event that made them leave, at position `pos`.
    At {
        pos: u64,
        event_id: ruma::OwnedEventId,
    },
}

/// Decides which state `user_id` may read.
///
/// # Errors
///
/// `M_FORBIDDEN` unless the user is joined or left the room after being in
/// it.
pub fn state_view(shard: &Shard, room: &Room, user_id: &str) -> ApiResult<StateView> {
    let forbidden = || MatrixError::forbidden("You are not in this room");
    let member = room
        .state_event("m.room.member", user_id)
        .ok_or_else(forbidden)?;
    match member.membership().as_deref() {
        Some("join") => Ok(StateView::Current),
        Some("leave" | "ban") if !forgot(shard, &room.room_id, user_id)? => Ok(StateView::At {
            pos: member.pos,
            event_id: member.event_id.clone(),
        }),
        _ => Err(forbidden()),
    }
}

/// Returns the state event IDs visible through `view`, by `(type, state key)`.
///
/// # Errors
///
/// Returns a storage error.
pub fn state_event_ids(
    shard: &Shard,
    room: &Room,
    view: StateView,
) -> ApiResult<BTreeMap<(String, String), String>> {
    match view {
        StateView::Current => Ok(room
            .state
            .iter()
            .map(|(key, pdu)| (key.clone(), pdu.event_id.to_string()))
            .collect()),
        StateView::At { pos, event_id } => Ok(history::state_after_event(
            &shard.store,
            room.room_id.as_str(),
            event_id.as_str(),
            pos,
        )?),
    }
}

/// Loads what `user_id` may see of the timeline of `room_id`.
///
/// # Errors
///
/// `M_FORBIDDEN` if the user was never in the room and it is not world
/// readable.
pub fn visibility(shard: &Shard, room_id: &OwnedRoomId, user_id: &str) -> ApiResult<Visibility> {
    let visibility = Visibility::load(&shard.store, room_id.as_str(), user_id)?;
    let world_readable = visibility.world_readable_at(u64::MAX);
    if !world_readable && (!visibility.ever_member() || forgot(shard, room_id, user_id)?) {
        return Err(MatrixError::forbidden("You are not in this room"));
    }
    Ok(visibility)
}

/// Returns whether the user forgot the room: `forget` deletes their membership
/// record, which every later membership event writes again.
fn forgot(shard: &Shard, room_id: &OwnedRoomId, user_id: &str) -> ApiResult<bool> {
    let local = user_id.ends_with(&format!(":{}", shard.config.server_name));
    Ok(local
        && shard
            .store
            .get(Map::UserRooms, &keys::pair(user_id, room_id.as_str()))?
            .is_none())
}

/// `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`.
pub fn event(
    shard: &Shard,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
    event_id: &str,
) -> ApiResult<Value> {
    let auth = request.auth()?;
    member_room(shard, room_id)?;
    let visibility = visibility(shard, room_id, auth.user_id.as_str())?;
    let not_found = || MatrixError::not_found("Event not found");
    let event = client_format::load(shard, event_id, Some(viewer(auth)), now_millis())
        .ok_or_else(not_found)?;
    let record = &event.event.record;
    if record.room_id != room_id.as_str()
        || !visibility.can_see_event(record.pos, &event.event.client)
    {
        return Err(not_found());
    }
    Ok(event.to_value())
}

/// `GET /_matrix/client/v3/rooms/{roomId}/messages`.
pub fn messages(shard: &Shard, request: &ApiRequest, room_id: &OwnedRoomId) -> ApiResult<Value> {
    let auth = request.auth()?;
    member_room(shard, room_id)?;
    let visibility = visibility(shard, room_id, auth.user_id.as_str())?;
    let backwards = match request.query("dir") {
        Some("b") => true,
        Some("f") => false,
        None => {
            return Err(MatrixError::missing_param(
                "Missing dir; use \"b\" or \"f\"",
            ));
        }
        Some(_) => return Err(MatrixError::invalid_param("dir must be \"b\" or \"f\"")),
    };
    let limit = request
        .query_u64("limit")?
        .unwrap_or(10)
        .clamp(1, MAX_LIMIT);
    let event_filter: EventFilter = match request.query("filter") {
        Some(text) => filter::parse(text)?,
        None => EventFilter::default(),
    };
    let owner_index = shard.owner(room_id.as_str());
    let boundary = |name: &str| -> ApiResult<Option<u64>> {
        request
            .query(name)
            .map(|text| {
                token::parse_boundary(text, owner_index, shard.nr_shards())
                    .ok_or_else(|| MatrixError::invalid_param(format!("Invalid {name} token")))
            })
            .transpose()
    };
    let from = boundary("from")?.unwrap_or(if backwards { u64::MAX } else { 0 });
    let to = boundary("to")?;

    // The scanned range is [low, high) in position order.
    let (low, high) = if backwards {
        (to.unwrap_or(0), from)
    } else {
        (from, to.unwrap_or(u64::MAX))
    };
    let scan = Scan {
        room_id,
        low,
        high,
        backwards,
        limit,
    };
    let page = read_page(shard, auth, &scan, &event_filter, &visibility)?;

    let chunk: Vec<Value> = page.events.into_iter().map(|(_, event)| event).collect();
    let mut response = json!({
        "chunk": chunk,
        "start": request.query("from").map_or_else(|| token::format_boundary(from), str::to_owned),
        "state": [],
    });
    if let Some(last) = page.next {
        response["end"] = json!(token::format_boundary(last));
    }
    Ok(response)
}

/// Events read from the timeline, with their positions, in scan order.
pub struct Page {
    pub events: Vec<(u64, Value)>,
    /// Boundary for the next request, if more events may follow.
    pub next: Option<u64>,
}

/// A timeline range `[low, high)` read from one end.
pub struct Scan<'a> {
    pub room_id: &'a OwnedRoomId,
    pub low: u64,
    pub high: u64,
    pub backwards: bool,
    pub limit: u64,
}

/// Reads up to `scan.limit` events of the range that pass the filter and
/// that the user may see.
///
/// # Errors
///
/// Returns a storage error.
pub fn read_page(
    shard: &Shard,
    auth: &Auth,
    scan: &Scan<'_>,
    event_filter: &EventFilter,
    visibility: &Visibility,
) -> ApiResult<Page> {
    let (room_id, low, high, backwards, limit) = (
        scan.room_id,
        scan.low,
        scan.high,
        scan.backwards,
        scan.limit,
    );
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let now = now_millis();
    let (mut low, mut high) = (low, high);
    let mut events = Vec::new();
    let mut last_pos = None;
    while events.len() < limit && low < high {
        let rows = shard.store.scan_range(
            Map::Timeline,
            &keys::timeline(room_id.as_str(), low),
            &keys::timeline(room_id.as_str(), high),
            backwards,
            limit * 2,
        )?;
        let exhausted = rows.len() < limit * 2;
        for (key, event_id) in rows {
            let pos = keys::timeline_pos(&key);
            if backwards {
                high = pos
            } else {
                low = pos + 1
            }
            let event_id = String::from_utf8_lossy(&event_id);
            if let Some(event) = client_format::load(shard, &event_id, Some(viewer(auth)), now)
                && event_filter.matches(&event.event.client)
                && visibility.can_see_event(pos, &event.event.client)
            {
                events.push((pos, event.to_value()));
                last_pos = Some(pos);
                if events.len() == limit {
                    break;
                }
            }
        }
        if exhausted {
            break;
        }
    }
    let more = events.len() == limit && last_pos.is_some();
    let next = more
        .then(|| last_pos.map(|pos| if backwards { pos } else { pos + 1 }))
        .flatten();
    Ok(Page { events, next })
}
