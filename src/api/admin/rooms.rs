//! `GET /_eltrix/admin/v1/rooms` and `GET /_eltrix/admin/v1/rooms/{roomId}`.

use std::rc::Rc;

use ruma::OwnedRoomId;
use serde_json::{Value, json};

use super::{account::rfc3339, page::PageRequest};
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    room::client_format,
    shard::Shard,
    store::{EventRecord, Map, RoomRecord, Store, StoreError, keys},
};

/// `GET /_eltrix/admin/v1/rooms`: every stored room in room ID order, read
/// from the store without loading the rooms into memory.
// NOTE: each page reads the whole `roomid_room` keyspace to count `total`.
pub fn list(shard: &Shard, request: &ApiRequest) -> ApiResult<Value> {
    let page = PageRequest::from_query(request)?;
    let rows = shard.store.scan_prefix(Map::Rooms, b"")?;
    let total = rows.len();
    let mut rooms = Vec::new();
    for (key, value) in page.select(rows) {
        let room_id = String::from_utf8_lossy(&key).into_owned();
        let record: RoomRecord =
            serde_json::from_slice(&value).map_err(|source| StoreError::Corrupt {
                map: "roomid_room",
                source,
            })?;
        rooms.push(json!({
            "room_id": room_id,
            "name": room_name(&shard.store, &room_id)?,
            "joined_members": joined_count(&shard.store, &room_id)?,
            "version": record.room_version,
            "creator": record.creator,
        }));
    }
    Ok(page.response("rooms", rooms, total))
}

/// `GET /_eltrix/admin/v1/rooms/{roomId}`, from the in-memory room on its
/// shard.
pub async fn get(shard: &Rc<Shard>, room_id: &str) -> ApiResult<Value> {
    let room_id = parse_room_id(room_id)?;
    shard
        .on_shard(shard.owner(room_id.as_str()), move |shard| async move {
            let room = shard.room(&room_id)?;
            let room = room.borrow();
            let mut members: Vec<&str> = room
                .members
                .iter()
                .filter(|(_, membership)| membership.as_str() == "join")
                .map(|(user_id, _)| user_id.as_str())
                .collect();
            members.sort_unstable();
            Ok(json!({
                "room_id": room_id,
                "name": room_name(&shard.store, room_id.as_str())?,
                "version": room.version,
                "creator": room.creator,
                "created_at": rfc3339(room.created_ts),
                "joined_members": members.len(),
                "members": members,
                "state_events": room.state.len(),
                "shard": shard.id,
            }))
        })
        .await?
}

/// Parses a room ID from a path.
///
/// # Errors
///
/// `M_INVALID_PARAM` if it is not a valid room ID.
pub fn parse_room_id(room_id: &str) -> ApiResult<OwnedRoomId> {
    OwnedRoomId::try_from(room_id)
        .map_err(|_| MatrixError::invalid_param(format!("Invalid room ID {room_id:?}")))
}

/// Returns the `name` of the room's current `m.room.name` event, after
/// redaction, or `None`.
fn room_name(store: &Store, room_id: &str) -> Result<Option<String>, StoreError> {
    let Some(event_id) = store.get(Map::RoomState, &keys::state(room_id, "m.room.name", ""))?
    else {
        return Ok(None);
    };
    let event_id = String::from_utf8_lossy(&event_id);
    let Some(record) = store.get_json::<EventRecord>(Map::Events, event_id.as_bytes())? else {
        return Ok(None);
    };
    let fields = client_format::fields(&event_id, &record);
    Ok(fields
        .get("content")
        .and_then(|content| content.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// Counts the members whose current membership is `join`.
fn joined_count(store: &Store, room_id: &str) -> Result<usize, StoreError> {
    let prefix = keys::state(room_id, "m.room.member", "");
    let mut joined = 0;
    for (_, event_id) in store.scan_prefix(Map::RoomState, &prefix)? {
        let record = store.get_json::<EventRecord>(Map::Events, &event_id)?;
        let membership = record
            .as_ref()
            .and_then(|record| record.pdu.pointer("/content/membership"))
            .and_then(Value::as_str);
        if membership == Some("join") {
            joined += 1;
        }
    }
    Ok(joined)
}
