//! `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}` and
//! `GET /_matrix/client/v3/rooms/{roomId}/messages`.
//!
//! A member sees the whole timeline (`shared` history visibility); a user
//! who left or was banned sees it up to that membership change.
// NOTE: other `m.room.history_visibility` values are not applied yet.

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

/// The viewer of a request.
#[must_use]
pub fn viewer(auth: &Auth) -> Viewer<'_> {
    Viewer { user_id: auth.user_id.as_str(), device_id: &auth.device_id }
}

/// The newest position `user_id` may read in `room`.
///
/// # Errors
///
/// `M_FORBIDDEN` if the user is not and was never a member.
pub fn history_limit(room: &Room, user_id: &str) -> ApiResult<u64> {
    let forbidden = || MatrixError::forbidden("You are not in this room");
    let member = room.state_event("m.room.member", user_id).ok_or_else(forbidden)?;
    match member.membership().as_deref() {
        Some("join") => Ok(u64::MAX),
        Some("leave" | "ban") => Ok(member.pos),
        _ => Err(forbidden()),
    }
}

/// `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`.
pub fn event(shard: &Shard, request: &ApiRequest, room_id: &OwnedRoomId, event_id: &str) -> ApiResult<Value> {
    let auth = request.auth()?;
    let room = shard.room(room_id).map_err(|_| MatrixError::forbidden("You are not in this room"))?;
    let limit = history_limit(&room.borrow(), auth.user_id.as_str())?;
    let not_found = || MatrixError::not_found("Event not found");
    let (event, record) = client_format::load(&shard.store, event_id, Some(viewer(auth)), now_millis()).ok_or_else(not_found)?;
    if record.room_id != room_id.as_str() || record.pos > limit {
        return Err(not_found());
    }
    Ok(event)
}

/// `GET /_matrix/client/v3/rooms/{roomId}/messages`.
pub fn messages(shard: &Shard, request: &ApiRequest, room_id: &OwnedRoomId) -> ApiResult<Value> {
    let auth = request.auth()?;
    let room = shard.room(room_id).map_err(|_| MatrixError::forbidden("You are not in this room"))?;
    let visible_upto = history_limit(&room.borrow(), auth.user_id.as_str())?;
    let backwards = match request.query("dir") {
        Some("b") => true,
        Some("f") => false,
        _ => return Err(MatrixError::invalid_param("dir must be \"b\" or \"f\"")),
    };
    let limit = request.query_u64("limit")?.unwrap_or(10).clamp(1, MAX_LIMIT);
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
    let visible_end = visible_upto.saturating_add(1);
    let (low, high) = if backwards {
        (to.unwrap_or(0), from.min(visible_end))
    } else {
        (from, to.unwrap_or(u64::MAX).min(visible_end))
    };
    let page = read_page(shard, auth, room_id, low, high, backwards, limit, &event_filter)?;

    let mut response = json!({
        "chunk": page.events,
        "start": request.query("from").map_or_else(|| token::format_boundary(from), str::to_owned),
        "state": [],
    });
    if let Some(last) = page.next {
        response["end"] = json!(token::format_boundary(last));
    }
    Ok(response)
}

struct Page {
    events: Vec<Value>,
    /// Boundary for the next request, if more events may follow.
    next: Option<u64>,
}

#[allow(clippy::too_many_arguments)]
fn read_page(
    shard: &Shard,
    auth: &Auth,
    room_id: &OwnedRoomId,
    low: u64,
    high: u64,
    backwards: bool,
    limit: u64,
    event_filter: &EventFilter,
) -> ApiResult<Page> {
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
            if backwards { high = pos } else { low = pos + 1 }
            let event_id = String::from_utf8_lossy(&event_id);
            if let Some((event, _)) = client_format::load(&shard.store, &event_id, Some(viewer(auth)), now) {
                if event_filter.matches(&event) {
                    events.push(event);
                    last_pos = Some(pos);
                    if events.len() == limit {
                        break;
                    }
                }
            }
        }
        if exhausted {
            break;
        }
    }
    let more = events.len() == limit && last_pos.is_some();
    let next = more.then(|| last_pos.map(|pos| if backwards { pos } else { pos + 1 })).flatten();
    Ok(Page { events, next })
}
