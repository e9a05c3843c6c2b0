//! Joins of users of other servers: `make_join` offers a join event to
//! sign, and `send_join` accepts the signed event and returns the room's
//! state and its auth chain.
//!
//! NOTE: the resident server does not forward a join to the other servers
//! in the room. They get it only when they fetch it as a predecessor of a
//! later event.

use std::{
    collections::{BTreeSet, HashSet},
    rc::Rc,
};

use ruma::{CanonicalJsonObject, CanonicalJsonValue, OwnedRoomId, OwnedUserId};
use serde_json::{Value, json};

use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    federation::keys,
    room::{
        EventDraft, append, builder,
        ingest::{self, Outcome},
        signature::{self, NewSignatures},
        state::load_pdu,
        state_groups,
    },
    shard::{Shard, now_millis},
};

fn parse_room(room_id: &str) -> ApiResult<OwnedRoomId> {
    OwnedRoomId::try_from(room_id).map_err(|_| MatrixError::invalid_param("Invalid room ID"))
}

fn origin(request: &ApiRequest) -> ApiResult<&str> {
    request
        .origin
        .as_deref()
        .ok_or_else(|| MatrixError::unauthorized("Missing X-Matrix authorization"))
}

/// `GET /_matrix/federation/v1/make_join/{roomId}/{userId}`.
pub async fn make_join(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    room_id: &str,
    user_id: &str,
) -> ApiResult<Value> {
    let origin = origin(request)?;
    let room_id = parse_room(room_id)?;
    let user_id = OwnedUserId::try_from(user_id)
        .map_err(|_| MatrixError::invalid_param("Invalid user ID"))?;
    if user_id.server_name().as_str() != origin {
        return Err(MatrixError::forbidden(format!(
            "{origin} cannot join users of another server"
        )));
    }
    let room_rc = shard.room(&room_id)?;
    super::acl::check(&room_rc.borrow(), origin)?;
    let version = room_rc.borrow().version.to_string();
    let supported: Vec<&str> = request
        .query
        .iter()
        .filter(|(key, _)| key == "ver")
        .map(|(_, value)| value.as_str())
        .collect();
    // Without `ver`, the joining server supports only room version 1.
    let accepted = if supported.is_empty() {
        version == "1"
    } else {
        supported.contains(&version.as_str())
    };
    if !accepted {
        return Err(MatrixError {
            status: 400,
            errcode: "M_INCOMPATIBLE_ROOM_VERSION",
            message: format!("The room has version {version}, which {origin} does not support"),
            extra: Some(json!({ "room_version": version })),
        });
    }

    let mut draft = EventDraft::state(
        &user_id,
        "m.room.member",
        user_id.as_str(),
        json!({ "membership": "join" }),
    );
    super::restricted::authorise_template(shard, &room_rc, &user_id, &mut draft).await?;
    let room = room_rc.borrow();
    append::check(shard, &room, &draft)?;
    let pdu = builder::build_unsigned(&room, &draft, origin, &shard.key, 0, now_millis())?;
    let mut template = pdu.json;
    for field in ["signatures", "hashes", "event_id", "unsigned"] {
        template.remove(field);
    }
    Ok(json!({ "room_version": version, "event": template }))
}

/// `PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}`.
pub async fn send_join(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    room_id: &str,
    event_id: &str,
) -> ApiResult<Value> {
    let origin = origin(request)?.to_owned();
    let room_id = parse_room(room_id)?;
    let object: CanonicalJsonObject = serde_json::from_value(Value::Object(request.body_object()?))
        .map_err(|error| MatrixError::bad_json(format!("Invalid event: {error}")))?;
    let field = |name: &str| match object.get(name) {
        Some(CanonicalJsonValue::String(value)) => Some(value.clone()),
        _ => None,
    };
    let sender = field("sender").unwrap_or_default();
    let is_join = field("type").as_deref() == Some("m.room.member")
        && field("state_key").as_deref() == Some(sender.as_str())
        && matches!(
            object.get("content"),
            Some(CanonicalJsonValue::Object(content))
                if content.get("membership") == Some(&CanonicalJsonValue::String("join".to_owned()))
        );
    if !is_join {
        return Err(MatrixError::bad_json(
            "The event is not a join of its sender",
        ));
    }
    let sender_server = OwnedUserId::try_from(sender.as_str())
        .ok()
        .map(|user| user.server_name().to_string());
    if sender_server.as_deref() != Some(origin.as_str()) {
        return Err(MatrixError::forbidden(format!(
            "{origin} cannot join users of another server"
        )));
    }

    let room = shard.room(&room_id)?;
    super::acl::check(&room.borrow(), &origin)?;
    let computed = ingest::event_id(&object, &room.borrow().rules)?;
    let mut object = object;
    let sender_id = OwnedUserId::try_from(sender.as_str())
        .map_err(|_| MatrixError::bad_json("Invalid sender"))?;
    if computed.as_str() != event_id {
        return Err(MatrixError::bad_json(format!(
            "The event's ID is {computed}, not {event_id}"
        )));
    }
    super::restricted::countersign(shard, &room, &sender_id, &mut object).await?;
    let signers = keys::keys_of_signers(shard, &object).await;
    let join = match ingest::ingest(shard, &room, object.clone(), &signers).await? {
        Outcome::Accepted(pdu) | Outcome::SoftFailed(pdu) => pdu,
        Outcome::Known => {
            let id = ingest::event_id(&object, &room.borrow().rules)?;
            std::sync::Arc::new(
                load_pdu(&shard.store, id.as_str())?
                    .ok_or_else(|| MatrixError::not_found("The join event is not stored"))?,
            )
        }
    };

    // The state before the join: the state after its one predecessor, or
    // the current state without the join.
    let state = match join.prev_events.as_slice() {
        [prev] => state_groups::state_after(&shard.store, room_id.as_str(), prev.as_str())?,
        _ => None,
    };
    let state: Vec<String> = match state {
        Some(state) => state.into_values().collect(),
        None => room
            .borrow()
            .state_id_map()
            .into_values()
            .filter(|id| id != join.event_id.as_str())
            .collect(),
    };
    let mut starts: Vec<String> = state.clone();
    starts.push(join.event_id.to_string());
    let chain = auth_chain(shard, &starts)?;
    let state_pdus = wire_events(shard, &state)?;
    let chain_pdus = wire_events(shard, &chain)?;
    let servers: BTreeSet<String> = room
        .borrow()
        .members
        .iter()
        .filter(|(_, membership)| membership.as_str() == "join")
        .map(|(user, _)| user.server_name().to_string())
        .collect();
    Ok(json!({
        "origin": shard.config.server_name,
        "event": join.json,
        "state": state_pdus,
        "auth_chain": chain_pdus,
        "members_omitted": false,
        "servers_in_room": servers,
    }))
}

/// Returns the IDs of every event reachable from `starts` through
/// `auth_events`, the starts excluded.
pub(super) fn auth_chain(shard: &Shard, starts: &[String]) -> ApiResult<Vec<String>> {
    let mut seen: HashSet<String> = starts.iter().cloned().collect();
    let mut queue: Vec<String> = starts.to_vec();
    let mut chain = Vec::new();
    while let Some(id) = queue.pop() {
        let Some(pdu) = load_pdu(&shard.store, &id)? else {
            continue;
        };
        for auth in pdu.auth_events {
            let auth = auth.to_string();
            if seen.insert(auth.clone()) {
                chain.push(auth.clone());
                queue.push(auth);
            }
        }
    }
    Ok(chain)
}

/// Returns the stored PDUs of `ids` as sent over federation.
pub fn wire_events(shard: &Shard, ids: &[String]) -> ApiResult<Vec<Value>> {
    let mut new = NewSignatures::default();
    let mut events = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(event) = signature::load_wire_event(shard, id, &mut new)? {
            events.push(event);
        }
    }
    new.persist(shard);
    Ok(events)
}
