//! `GET /_matrix/client/v3/rooms/{roomId}/state`, `GET` and `PUT
//! /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`.

use std::rc::Rc;

use ruma::OwnedRoomId;
use serde_json::{Value, json};

use super::messages::{history_limit, viewer};
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    room::{EventDraft, append::append, client_format},
    shard::{Shard, now_millis},
};

/// `GET /_matrix/client/v3/rooms/{roomId}/state`.
// NOTE: a user who has left gets the current state, not the state at the
// time they left.
pub fn all_state(shard: &Shard, request: &ApiRequest, room_id: &OwnedRoomId) -> ApiResult<Value> {
    let auth = request.auth()?;
    let room = shard.room(room_id).map_err(|_| MatrixError::forbidden("You are not in this room"))?;
    let room = room.borrow();
    history_limit(&room, auth.user_id.as_str())?;
    let now = now_millis();
    let events: Vec<Value> = room
        .state
        .values()
        .filter_map(|pdu| client_format::load(&shard.store, pdu.event_id.as_str(), Some(viewer(auth)), now))
        .map(|(event, _)| event)
        .collect();
    Ok(Value::Array(events))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`:
/// the event's content.
pub fn get_state(shard: &Shard, request: &ApiRequest, room_id: &OwnedRoomId, kind: &str, key: &str) -> ApiResult<Value> {
    let auth = request.auth()?;
    let room = shard.room(room_id).map_err(|_| MatrixError::forbidden("You are not in this room"))?;
    let room = room.borrow();
    history_limit(&room, auth.user_id.as_str())?;
    let pdu = room.state_event(kind, key).ok_or_else(|| MatrixError::not_found("State event not found"))?;
    if request.query("format") == Some("event") {
        let (event, _) = client_format::load(&shard.store, pdu.event_id.as_str(), Some(viewer(auth)), now_millis())
            .ok_or_else(|| MatrixError::not_found("State event not found"))?;
        return Ok(event);
    }
    let (event, _) = client_format::load(&shard.store, pdu.event_id.as_str(), None, now_millis())
        .ok_or_else(|| MatrixError::not_found("State event not found"))?;
    Ok(event.get("content").cloned().unwrap_or_else(|| json!({})))
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`.
pub async fn put_state(shard: &Rc<Shard>, request: &ApiRequest, room_id: &OwnedRoomId, kind: &str, key: &str) -> ApiResult<Value> {
    let sender = request.auth()?.user_id.clone();
    let content = Value::Object(request.body_object()?);
    let room = shard.room(room_id).map_err(|_| MatrixError::forbidden("You are not in this room"))?;
    let draft = EventDraft::state(&sender, kind, key, content);
    let pdus = append(shard, &room, vec![draft]).await?;
    Ok(json!({ "event_id": pdus[0].event_id }))
}
