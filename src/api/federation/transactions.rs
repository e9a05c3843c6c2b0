//! `PUT /_matrix/federation/v1/send/{txnId}`: events from another server,
//! each taken through the receipt checks on its room's shard.
//!
//! NOTE: EDUs (typing, receipts, presence, device lists) are accepted and
//! ignored, and an event whose `prev_events` are unknown is rejected instead
//! of fetching them with `get_missing_events`.

use std::rc::Rc;

use ruma::{CanonicalJsonObject, OwnedRoomId};
use serde_json::{Map, Value, json};

use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    federation::keys,
    room::ingest,
    shard::Shard,
};

/// Most PDUs and EDUs in one transaction, per the specification.
const MAX_PDUS: usize = 50;
const MAX_EDUS: usize = 100;

/// `PUT /_matrix/federation/v1/send/{txnId}`.
pub async fn send(shard: &Rc<Shard>, request: &ApiRequest) -> ApiResult<Value> {
    let origin = request
        .origin
        .clone()
        .ok_or_else(|| MatrixError::unauthorized("Missing X-Matrix authorization"))?;
    let body = request.body_object()?;
    if body.get("origin").and_then(Value::as_str) != Some(origin.as_str()) {
        return Err(MatrixError::forbidden(
            "The transaction's origin is not the server that signed the request",
        ));
    }
    let pdus = match body.get("pdus") {
        Some(Value::Array(pdus)) => pdus.clone(),
        None => Vec::new(),
        Some(_) => return Err(MatrixError::bad_json("pdus must be an array")),
    };
    let edus = match body.get("edus") {
        Some(Value::Array(edus)) => edus.len(),
        None => 0,
        Some(_) => return Err(MatrixError::bad_json("edus must be an array")),
    };
    if pdus.len() > MAX_PDUS || edus > MAX_EDUS {
        return Err(MatrixError::bad_json(format!(
            "A transaction carries at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs"
        )));
    }

    let mut results = Map::new();
    for pdu in pdus {
        let Ok(object) = serde_json::from_value::<CanonicalJsonObject>(pdu) else {
            tracing::info!(origin, "dropped a PDU that is not canonical JSON");
            continue;
        };
        let Some(room_id) = object
            .get("room_id")
            .and_then(|value| value.as_str())
            .and_then(|id| OwnedRoomId::try_from(id).ok())
        else {
            tracing::info!(origin, "dropped a PDU without a valid room_id");
            continue;
        };
        let owner = shard.owner(room_id.as_str());
        let sender = origin.clone();
        let (event_id, outcome) = shard
            .on_shard(owner, move |shard| async move {
                take(&shard, &sender, room_id, object).await
            })
            .await?;
        let Some(event_id) = event_id else {
            // Without the room's version the event has no ID to report it by.
            tracing::info!(
                origin,
                error = outcome.err(),
                "dropped a PDU of a room unknown here"
            );
            continue;
        };
        let result = match outcome {
            Ok(()) => json!({}),
            Err(error) => {
                tracing::info!(origin, event_id, %error, "rejected a received event");
                json!({ "error": error })
            }
        };
        results.insert(event_id, result);
    }
    Ok(json!({ "pdus": results }))
}

/// Takes one event from `origin` into its room on the room's shard, unless
/// the room's server ACL denies `origin`. Returns its ID, or `None` when the
/// room is unknown or the ID cannot be computed, and the error if it failed.
async fn take(
    shard: &Rc<Shard>,
    origin: &str,
    room_id: OwnedRoomId,
    object: CanonicalJsonObject,
) -> (Option<String>, Result<(), String>) {
    let room = match shard.room(&room_id) {
        Ok(room) => room,
        Err(error) => return (None, Err(error.message)),
    };
    let rules = room.borrow().rules.clone();
    let event_id = match ingest::event_id(&object, &rules) {
        Ok(id) => id.to_string(),
        Err(error) => return (None, Err(error.message)),
    };
    if let Err(error) = super::acl::check(&room.borrow(), origin) {
        return (Some(event_id), Err(error.message));
    }
    let signers = keys::keys_of_signers(shard, &object).await;
    let outcome = ingest::ingest(shard, &room, object, &signers).await;
    (
        Some(event_id),
        outcome.map(|_| ()).map_err(|error| error.message),
    )
}
