//! `GET /_matrix/client/v3/rooms/{roomId}/state`, `GET` and `PUT
//! /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`.

use std::rc::Rc;

use ruma::OwnedRoomId;
use serde_json::{Value, json};

use super::messages::{member_room, state_event_ids, state_view, viewer};
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    room::{EventDraft, append::append, client_format},
    shard::{Shard, now_millis},
};

/// `GET /_matrix/client/v3/rooms/{roomId}/state`: the current state, or
/// for a user who left, the state when they left.
pub fn all_state(shard: &Shard, request: &ApiRequest, room_id: &OwnedRoomId) -> ApiResult<Value> {
    let auth = request.auth()?;
    let room = member_room(shard, room_id)?;
    let room = room.borrow();
    let view = state_view(shard, &room, auth.user_id.as_str())?;
    let now = now_millis();
    let events: Vec<Value> = state_event_ids(shard, &room, view)?
        .values()
        .filter_map(|event_id| client_format::load(shard, event_id, Some(viewer(auth)), now))
        .map(|event| event.to_value())
        .collect();
    Ok(Value::Array(events))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`:
/// the event's content.
pub fn get_state(
    shard: &Shard,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
    kind: &str,
    key: &str,
) -> ApiResult<Value> {
    let auth = request.auth()?;
    let room = member_room(shard, room_id)?;
    let room = room.borrow();
    let view = state_view(shard, &room, auth.user_id.as_str())?;
    let not_found = || MatrixError::not_found("State event not found");
    let ids = state_event_ids(shard, &room, view)?;
    let event_id = ids
        .get(&(kind.to_owned(), key.to_owned()))
        .ok_or_else(not_found)?;
    let event = client_format::load(shard, event_id, Some(viewer(auth)), now_millis())
        .ok_or_else(not_found)?
        .to_value();
    if request.query("format") == Some("event") {
        return Ok(event);
    }
    Ok(event.get("content").cloned().unwrap_or_else(|| json!({})))
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`.
pub async fn put_state(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
    kind: &str,
    key: &str,
) -> ApiResult<Value> {
    let sender = request.auth()?.user_id.clone();
    let content = request.body_object()?;
    // The server names an authoriser only after checking a restricted room's
    // allow rules, so a client may not name one itself.
    if kind == "m.room.member" && content.contains_key("join_authorised_via_users_server") {
        return Err(MatrixError::forbidden(
            "join_authorised_via_users_server is set by the server during a restricted join",
        ));
    }
    let content = Value::Object(content);
    let room = member_room(shard, room_id)?;
    let draft = EventDraft::state(&sender, kind, key, content);
    let pdus = append(shard, &room, vec![draft]).await?;
    Ok(json!({ "event_id": pdus[0].event_id }))
}
