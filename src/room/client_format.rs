//! The client-server event format: the PDU without its federation fields,
//! redacted if a redaction applies, with `unsigned` filled in for the viewer.

use std::rc::Rc;

use ruma::{CanonicalJsonObject, canonical_json::redact};
use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Value, json};

use super::{
    event_cache::{CachedEvent, EventCache},
    versions,
};
use crate::{
    shard::Shard,
    store::{EventRecord, Store},
};

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

/// Returns the client-format fields of a stored event without `unsigned`,
/// redacted when a redaction applies.
#[must_use]
pub fn fields(event_id: &str, record: &EventRecord) -> Map<String, Value> {
    let redacted_pdu;
    let pdu = if record.redacted_by.is_some() {
        redacted_pdu = redacted(record.pdu.clone(), record);
        &redacted_pdu
    } else {
        &record.pdu
    };
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
    // Room version 11 moved a redaction's `redacts` into the content; clients
    // still read it from the top level.
    if let Some(redacts) = pdu
        .get("content")
        .and_then(|c| c.get("redacts"))
        .filter(|_| pdu.get("type").and_then(Value::as_str) == Some("m.room.redaction"))
    {
        event.entry("redacts").or_insert_with(|| redacts.clone());
    }
    event
}

/// A cached event with its `unsigned` for one viewer, serialized in the
/// client format without building a JSON tree.
#[derive(Debug)]
pub struct ClientEvent {
    pub event: Rc<CachedEvent>,
    unsigned: Unsigned,
}

#[derive(Debug, Serialize)]
struct Unsigned {
    age: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redacted_because: Option<Box<ClientEvent>>,
}

impl Serialize for ClientEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let fields = &self.event.client;
        let mut map = serializer.serialize_map(Some(fields.len() + 1))?;
        for (key, value) in fields {
            map.serialize_entry(key, value)?;
        }
        map.serialize_entry("unsigned", &self.unsigned)?;
        map.end()
    }
}

impl ClientEvent {
    /// Adds `viewer`'s `unsigned` to a cached event. A redacted event gets
    /// its redaction in `redacted_because`, read through `cache`.
    #[must_use]
    pub fn new(
        cache: &EventCache,
        store: &Store,
        event: Rc<CachedEvent>,
        viewer: Option<Viewer<'_>>,
        now_ms: u64,
    ) -> Self {
        let record = &event.record;
        let ts = record
            .pdu
            .get("origin_server_ts")
            .and_then(Value::as_u64)
            .unwrap_or(now_ms);
        let transaction_id = match (viewer, &record.txn) {
            (Some(viewer), Some((device_id, txn_id)))
                if device_id == viewer.device_id
                    && record.pdu.get("sender").and_then(Value::as_str) == Some(viewer.user_id) =>
            {
                Some(txn_id.clone())
            }
            _ => None,
        };
        let redacted_because = record
            .redacted_by
            .as_deref()
            .and_then(|redaction_id| cache.get(store, redaction_id).ok().flatten())
            .map(|redaction| Box::new(Self::new(cache, store, redaction, None, now_ms)));
        Self {
            unsigned: Unsigned {
                age: now_ms.saturating_sub(ts),
                transaction_id,
                redacted_because,
            },
            event,
        }
    }

    /// Returns the event as a JSON value, for handlers that build their
    /// response as one.
    #[must_use]
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
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

/// Loads and formats the stored event `event_id` for `viewer`, or returns
/// `None` if it is unknown or unreadable.
#[must_use]
pub fn load(
    shard: &Shard,
    event_id: &str,
    viewer: Option<Viewer<'_>>,
    now_ms: u64,
) -> Option<ClientEvent> {
    let event = shard.events.get(&shard.store, event_id).ok().flatten()?;
    Some(ClientEvent::new(
        &shard.events,
        &shard.store,
        event,
        viewer,
        now_ms,
    ))
}
