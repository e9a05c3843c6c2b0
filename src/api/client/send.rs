//! `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}` and
//! `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`.
//!
//! A transaction ID is scoped to the sending device: a repeat returns the
//! first request's event ID and creates nothing, including a repeat that
//! arrives while the first is still being committed.

use std::rc::Rc;

use ruma::{OwnedEventId, OwnedRoomId};
use serde_json::{Value, json};

use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    room::{EventDraft, Txn, append},
    shard::Shard,
    store::{EventRecord, Map},
};

/// `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`.
pub async fn send(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
    kind: &str,
    txn: &str,
) -> ApiResult<Value> {
    let auth = request.auth()?;
    let mut content = request.body_object()?;
    // A redaction sent through /send names its target in the content. The
    // builder puts it where the room version expects it: at the top level
    // before version 11, in the content from version 11.
    let redacts = if kind == "m.room.redaction" {
        let target = match content.remove("redacts") {
            Some(Value::String(id)) => OwnedEventId::try_from(id)
                .map_err(|_| MatrixError::invalid_param("Invalid redacts event ID"))?,
            _ => {
                return Err(MatrixError::bad_json(
                    "A redaction needs a redacts event ID",
                ));
            }
        };
        check_may_redact(shard, request, room_id, &target)?;
        Some(target)
    } else {
        None
    };
    let draft = EventDraft {
        sender: auth.user_id.clone(),
        kind: kind.to_owned(),
        state_key: None,
        content: Value::Object(content),
        redacts,
        txn: Some(Txn::new(
            auth.user_id.as_str(),
            &auth.device_id,
            &format!("{room_id}/send/{kind}"),
            txn,
        )),
        origin_server_ts: None,
    };
    send_once(shard, room_id, draft).await
}

#[derive(Default, serde::Deserialize)]
struct RedactBody {
    reason: Option<String>,
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`: allowed
/// for the event's sender and for users with the room's `redact` level.
pub async fn redact(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
    event_id: &str,
    txn: &str,
) -> ApiResult<Value> {
    let auth = request.auth()?;
    let body: RedactBody = request.body_or_default()?;
    let target = OwnedEventId::try_from(event_id)
        .map_err(|_| MatrixError::invalid_param("Invalid event ID"))?;
    check_may_redact(shard, request, room_id, &target)?;
    let mut content = serde_json::Map::new();
    if let Some(reason) = body.reason {
        content.insert("reason".to_owned(), Value::String(reason));
    }
    let draft = EventDraft {
        sender: auth.user_id.clone(),
        kind: "m.room.redaction".to_owned(),
        state_key: None,
        content: Value::Object(content),
        txn: Some(Txn::new(
            auth.user_id.as_str(),
            &auth.device_id,
            &format!("{room_id}/redact/{target}"),
            txn,
        )),
        redacts: Some(target),
        origin_server_ts: None,
    };
    send_once(shard, room_id, draft).await
}

/// Checks that the user may redact `target`: their own event, or any event
/// with the room's `redact` level.
fn check_may_redact(
    shard: &Shard,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
    target: &OwnedEventId,
) -> ApiResult<()> {
    let auth = request.auth()?;
    let record = shard
        .store
        .get_json::<EventRecord>(Map::Events, target.as_bytes())?
        .filter(|record| record.room_id == room_id.as_str())
        .ok_or_else(|| MatrixError::not_found("Event not found in this room"))?;
    let target_sender = record
        .pdu
        .get("sender")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();

    let room = shard.room(room_id)?;
    {
        let room = room.borrow();
        if !room.may_redact(auth.user_id.as_str(), &target_sender) {
            return Err(MatrixError::forbidden(
                "You may not redact other users' events",
            ));
        }
    }
    Ok(())
}

async fn send_once(
    shard: &Rc<Shard>,
    room_id: &OwnedRoomId,
    draft: EventDraft,
) -> ApiResult<Value> {
    let store_key = draft
        .txn
        .as_ref()
        .map(|txn| txn.key.clone())
        .unwrap_or_default();
    let txn_key = store_key.clone();
    if let Some(event_id) = shard.store.get(Map::Txns, &store_key)? {
        return Ok(json!({ "event_id": String::from_utf8_lossy(&event_id) }));
    }

    let room = shard.room(room_id)?;
    let pending = room.borrow().pending_txns.get(&txn_key).cloned();
    if let Some((event_id, committed)) = pending {
        committed.notified().await;
        if shard.store.get(Map::Txns, &store_key)?.is_none() {
            return Err(MatrixError::internal(
                "The first request with this transaction ID failed; retry",
            ));
        }
        return Ok(json!({ "event_id": event_id }));
    }

    let (pdus, batch) = append::prepare(shard, &mut room.borrow_mut(), vec![draft])?;
    let event_id = pdus[0].event_id.clone();
    let committed = Rc::new(tokio::sync::Notify::new());
    room.borrow_mut()
        .pending_txns
        .insert(txn_key.clone(), (event_id.clone(), committed.clone()));
    let result = append::commit(shard, room_id, batch).await;
    room.borrow_mut().pending_txns.remove(&txn_key);
    committed.notify_waiters();
    result?;
    append::send_to_other_servers(shard, &mut room.borrow_mut(), &pdus);
    Ok(json!({ "event_id": event_id }))
}
