//! `GET /_matrix/client/v3/rooms/{roomId}/joined_members` and
//! `GET /_matrix/client/v3/rooms/{roomId}/members`.

use ruma::OwnedRoomId;
use serde_json::{Map as JsonMap, Value, json};

use super::messages::{member_room, state_event_ids, state_view, viewer};
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    room::client_format,
    shard::{Shard, now_millis},
};

/// `GET /_matrix/client/v3/rooms/{roomId}/joined_members`.
pub fn joined_members(
    shard: &Shard,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
) -> ApiResult<Value> {
    let auth = request.auth()?;
    let room = member_room(shard, room_id)?;
    let room = room.borrow();
    if room.membership(auth.user_id.as_str()) != "join" {
        return Err(MatrixError::forbidden("You are not in this room"));
    }
    let mut joined = JsonMap::new();
    for ((kind, key), pdu) in &room.state {
        if kind == "m.room.member" && pdu.membership().as_deref() == Some("join") {
            let content = pdu.content_value();
            let profile = json!({
                "display_name": content.get("displayname"),
                "avatar_url": content.get("avatar_url"),
            });
            joined.insert(key.clone(), profile);
        }
    }
    Ok(json!({ "joined": joined }))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/members`, with the `membership`
/// and `not_membership` filters. A user who left gets the members at the
/// time they left.
// NOTE: `at` is ignored; joined users get the current member list.
pub fn members(shard: &Shard, request: &ApiRequest, room_id: &OwnedRoomId) -> ApiResult<Value> {
    const MEMBERSHIPS: [&str; 5] = ["join", "invite", "knock", "leave", "ban"];
    let auth = request.auth()?;
    let only = request.query("membership");
    let except = request.query("not_membership");
    for value in [only, except].into_iter().flatten() {
        if !MEMBERSHIPS.contains(&value) {
            return Err(MatrixError::invalid_param(format!(
                "Unknown membership {value:?}"
            )));
        }
    }
    let room = member_room(shard, room_id)?;
    let room = room.borrow();
    let view = state_view(shard, &room, auth.user_id.as_str())?;
    let now = now_millis();
    let mut chunk = Vec::new();
    for ((kind, _), event_id) in state_event_ids(shard, &room, view)? {
        if kind != "m.room.member" {
            continue;
        }
        let Some(event) =
            client_format::load(shard, &event_id, Some(viewer(auth)), now).map(|e| e.to_value())
        else {
            continue;
        };
        let membership = event.pointer("/content/membership").and_then(Value::as_str);
        if only.is_some_and(|only| membership != Some(only))
            || except.is_some_and(|except| membership == Some(except))
        {
            continue;
        }
        chunk.push(event);
    }
    Ok(json!({ "chunk": chunk }))
}
