//! The client-server event format: the PDU without its federation fields,
//! redacted if a redaction applies, with `unsigned` filled in for the viewer.

use ruma::{CanonicalJsonObject, canonical_json::redact};
use serde_json::{Map, Value, json};

use super::versions;
use crate::store::{EventRecord, Map as StoreMap, Store};

/// Fields copied from the PDU into the client format.
const CLIENT_FIELDS: [&str; 7] = [
    "content",
    "origin_server_ts",
    "room_id",
    "sender",
    "state_key",
    "type",
    "redacts",
];

/// The reading user and device, for `unsigned.transaction_id`.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    pub user_id: &'a str,
    pub device_id: &'a str,
}

/// Formats a stored event for `viewer`.
#[must_use]
pub fn format(
    store: &Store,
    event_id: &str,
    record: &EventRecord,
    viewer: Option<Viewer<'_>>,
    now_ms: u64,
) -> Value {
    let mut pdu = record.pdu.clone();
    let mut redacted_because = None;

    if let Some(redaction_id) = &record.redacted_by {
        pdu = redacted(pdu, record);
        redacted_because = store
            .get_json::<EventRecord>(StoreMap::Events, redaction_id.as_bytes())
            .ok()
            .flatten()
            .map(|redaction| format(store, redaction_id, &redaction, None, now_ms));
    }

    let mut event = Map::new();
    event.insert("event_id".to_owned(), Value::String(event_id.to_owned()));
    for field in CLIENT_FIELDS {
        if let Some(value) = pdu.get(field) {
            event.insert(field.to_owned(), value.clone());
        }
    }
    if !event.contains_key("room_id") {
        event.insert("room_id".to_owned(), Value::String(record.room_id.clone()));
    }
    // Room version 11 moved `redacts` into the content; clients still read it
    // from the top level.
    if let Some(redacts) = pdu.get("content").and_then(|c| c.get("redacts")) {
        event.entry("redacts").or_insert_with(|| redacts.clone());
    }

    let ts = pdu
        .get("origin_server_ts")
        .and_then(Value::as_u64)
        .unwrap_or(now_ms);
    let mut unsigned = json!({ "age": now_ms.saturating_sub(ts) });
    if let (Some(viewer), Some((device_id, txn_id))) = (viewer, &record.txn) {
        let sender = pdu.get("sender").and_then(Value::as_str);
        if sender == Some(viewer.user_id) && device_id == viewer.device_id {
            unsigned["transaction_id"] = Value::String(txn_id.clone());
        }
    }
    if let Some(because) = redacted_because {
        unsigned["redacted_because"] = because;
    }
    event.insert("unsigned".to_owned(), unsigned);
    Value::Object(event)
}

fn redacted(pdu: Value, record: &EventRecord) -> Value {
    let version = pdu_room_version(record);
    let Ok((_, rules)) = versions::rules_for(&version) else {
        return pdu;
    };
    let Ok(object) = serde_json::from_value::<CanonicalJsonObject>(pdu.clone()) else {
        return pdu;
    };
    match redact(object, &rules.redaction, None) {
        Ok(object) => serde_json::to_value(object).unwrap_or(pdu),
        Err(_) => pdu,
    }
}

fn pdu_room_version(record: &EventRecord) -> String {
    record
        .room_version
        .clone()
        .unwrap_or_else(|| versions::DEFAULT_ROOM_VERSION.to_owned())
}

/// Returns the stripped state format used in `invite_state`.
#[must_use]
pub fn stripped(record: &EventRecord) -> Value {
    let pdu = &record.pdu;
    json!({
        "type": pdu.get("type"),
        "state_key": pdu.get("state_key"),
        "sender": pdu.get("sender"),
        "content": pdu.get("content"),
    })
}

/// Loads and formats the stored event `event_id`; `None` if unknown.
#[must_use]
pub fn load(
    store: &Store,
    event_id: &str,
    viewer: Option<Viewer<'_>>,
    now_ms: u64,
) -> Option<(Value, EventRecord)> {
    let record = store
        .get_json::<EventRecord>(StoreMap::Events, event_id.as_bytes())
        .ok()
        .flatten()?;
    Some((format(store, event_id, &record, viewer, now_ms), record))
}
