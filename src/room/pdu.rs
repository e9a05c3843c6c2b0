//! A persistent data unit: the signed event as stored and sent over
//! federation, with its fields parsed for the authorization rules.

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, MilliSecondsSinceUnixEpoch, OwnedEventId,
    OwnedRoomId, OwnedUserId, RoomId, UInt, UserId, events::TimelineEventType,
};
use serde_json::value::RawValue;

/// A parsed PDU.
#[derive(Debug, Clone)]
pub struct Pdu {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    /// Whether the PDU carries a `room_id` field (v12 create events do not).
    pub has_room_id: bool,
    pub sender: OwnedUserId,
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    pub kind: TimelineEventType,
    pub content: Box<RawValue>,
    pub state_key: Option<String>,
    pub prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    pub redacts: Option<OwnedEventId>,
    pub depth: u64,
    /// Stream position in the room's timeline.
    pub pos: u64,
    /// The signed JSON, without `event_id` for room versions 3 and later.
    pub json: CanonicalJsonObject,
}

/// A stored PDU whose fields do not parse.
#[derive(Debug, thiserror::Error)]
#[error("malformed PDU field {0}")]
pub struct MalformedPdu(pub &'static str);

impl Pdu {
    /// Parses `json` whose ID is `event_id`, in `room_id`, at `pos`.
    ///
    /// # Errors
    ///
    /// Returns the first field that is missing or of the wrong type.
    pub fn parse(
        json: CanonicalJsonObject,
        event_id: OwnedEventId,
        room_id: OwnedRoomId,
        pos: u64,
    ) -> Result<Self, MalformedPdu> {
        let text = |name: &'static str| match json.get(name) {
            Some(CanonicalJsonValue::String(value)) => Ok(value.clone()),
            _ => Err(MalformedPdu(name)),
        };
        let sender = UserId::parse(text("sender")?).map_err(|_| MalformedPdu("sender"))?;
        let kind = TimelineEventType::from(text("type")?);
        let state_key = text("state_key").ok();
        let ts = match json.get("origin_server_ts") {
            Some(CanonicalJsonValue::Integer(ts)) => u64::try_from(i64::from(*ts)).unwrap_or(0),
            _ => return Err(MalformedPdu("origin_server_ts")),
        };
        let depth = match json.get("depth") {
            Some(CanonicalJsonValue::Integer(depth)) => {
                u64::try_from(i64::from(*depth)).unwrap_or(0)
            }
            _ => 0,
        };
        let content_value = json
            .get("content")
            .cloned()
            .ok_or(MalformedPdu("content"))?;
        let content =
            serde_json::value::to_raw_value(&content_value).map_err(|_| MalformedPdu("content"))?;
        // Only a redaction names a target. `redacts` in another event's
        // content is ordinary content.
        let redacts = if kind == TimelineEventType::RoomRedaction {
            redacts_of(&json)
        } else {
            None
        };

        Ok(Self {
            event_id,
            room_id,
            has_room_id: json.contains_key("room_id"),
            sender,
            origin_server_ts: MilliSecondsSinceUnixEpoch(UInt::new_saturating(ts)),
            kind,
            content,
            state_key,
            prev_events: event_refs(json.get("prev_events")),
            auth_events: event_refs(json.get("auth_events")),
            redacts,
            depth,
            pos,
            json,
        })
    }

    /// Returns the content as a JSON value.
    #[must_use]
    pub fn content_value(&self) -> serde_json::Value {
        serde_json::from_str(self.content.get()).unwrap_or_default()
    }

    /// Returns the content's `membership` field, for `m.room.member` events.
    #[must_use]
    pub fn membership(&self) -> Option<String> {
        self.content_value()
            .get("membership")?
            .as_str()
            .map(str::to_owned)
    }
}

/// `redacts` from the top level (v1–v10) or the content (v11 and later).
fn redacts_of(json: &CanonicalJsonObject) -> Option<OwnedEventId> {
    let top = json.get("redacts");
    let in_content = match json.get("content") {
        Some(CanonicalJsonValue::Object(content)) => content.get("redacts"),
        _ => None,
    };
    match top.or(in_content) {
        Some(CanonicalJsonValue::String(id)) => EventId::parse(id).ok(),
        _ => None,
    }
}

/// Reads `prev_events` or `auth_events` in either format: a list of IDs
/// (v3 and later) or a list of `[id, hashes]` pairs (v1 and v2).
fn event_refs(value: Option<&CanonicalJsonValue>) -> Vec<OwnedEventId> {
    let Some(CanonicalJsonValue::Array(items)) = value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item {
            CanonicalJsonValue::String(id) => EventId::parse(id).ok(),
            CanonicalJsonValue::Array(pair) => match pair.first() {
                Some(CanonicalJsonValue::String(id)) => EventId::parse(id).ok(),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

impl ruma::state_res::Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }

    fn room_id(&self) -> Option<&RoomId> {
        self.has_room_id.then_some(&*self.room_id)
    }

    fn sender(&self) -> &UserId {
        &self.sender
    }

    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }

    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }

    fn content(&self) -> &RawValue {
        &self.content
    }

    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }

    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }

    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }

    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }

    fn rejected(&self) -> bool {
        false
    }
}
