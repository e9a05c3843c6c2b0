//! `GET /_matrix/client/v3/rooms/{roomId}/joined_members` and
//! `GET /_matrix/client/v3/rooms/{roomId}/members`.

use ruma::OwnedRoomId;
use serde_json::{Map as JsonMap, Value, json};

use super::messages::{history_limit, viewer};
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    room::client_format,
    shard::{Shard, now_millis},
};

/// `GET /_matrix/client/v3/rooms/{roomId}/joined_members`.
pub fn joined_members(shard: &Shard, request: &ApiRequest, room_id: &OwnedRoomId) -> ApiResult<Value> {
    let auth = request.auth()?;
    let room = shard.room(room_id).map_err(|_| MatrixError::forbidden("You are not in this room"))?;
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
/// and `not_membership` filters.
// NOTE: `at` is ignored; the current member list is returned.
pub fn members(shard: &Shard, request: &ApiRequest, room_id: &OwnedRoomId) -> ApiResult<Value> {
    let auth = request.auth()?;
    let room = shard.room(room_id).map_err(|_| MatrixError::forbidden("You are not in this room"))?;
    let room = room.borrow();
    history_limit(&room, auth.user_id.as_str())?;
    let only = request.query("membership");
    let except = request.query("not_membership");
    let now = now_millis();
    let chunk: Vec<Value> = room
        .state
        .iter()
        .filter(|((kind, _), _)| kind == "m.room.member")
        .filter(|(_, pdu)| {
            let membership = pdu.membership();
            only.is_none_or(|only| membership.as_deref() == Some(only))
                && except.is_none_or(|except| membership.as_deref() != Some(except))
        })
        .filter_map(|(_, pdu)| client_format::load(&shard.store, pdu.event_id.as_str(), Some(viewer(auth)), now))
        .map(|(event, _)| event)
        .collect();
    Ok(json!({ "chunk": chunk }))
}
