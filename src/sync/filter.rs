//! Event filters: the `RoomEventFilter` of `/messages` and the `Filter` of
//! `/sync`, with `*` wildcards in type patterns.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::error::{ApiResult, MatrixError};

/// A room event filter.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EventFilter {
    pub limit: Option<u64>,
    pub types: Option<Vec<String>>,
    #[serde(default)]
    pub not_types: Vec<String>,
    pub senders: Option<Vec<String>>,
    #[serde(default)]
    pub not_senders: Vec<String>,
    pub rooms: Option<Vec<String>>,
    #[serde(default)]
    pub not_rooms: Vec<String>,
    pub contains_url: Option<bool>,
    pub lazy_load_members: Option<bool>,
    pub include_redundant_members: Option<bool>,
    pub unread_thread_notifications: Option<bool>,
}

impl EventFilter {
    /// Returns whether a client-format event passes the filter.
    #[must_use]
    pub fn matches(&self, event: &serde_json::Map<String, Value>) -> bool {
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let sender = event
            .get("sender")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let allowed_type = self
            .types
            .as_ref()
            .is_none_or(|types| types.iter().any(|p| pattern_matches(p, kind)));
        let excluded_type = self.not_types.iter().any(|p| pattern_matches(p, kind));
        let allowed_sender = self
            .senders
            .as_ref()
            .is_none_or(|senders| senders.iter().any(|s| s == sender));
        let excluded_sender = self.not_senders.iter().any(|s| s == sender);
        allowed_type && !excluded_type && allowed_sender && !excluded_sender
    }
}

/// A sync `Filter`. Every field is type-checked; `room` and
/// `event_format` are applied.
// NOTE: `event_fields`, `presence` and `account_data` are accepted but not
// applied, because sync returns no presence or account data yet.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncFilter {
    #[serde(default)]
    pub room: RoomFilter,
    pub event_fields: Option<Vec<String>>,
    pub event_format: Option<EventFormat>,
    #[serde(default)]
    pub presence: EventFilter,
    #[serde(default)]
    pub account_data: EventFilter,
}

/// `event_format` of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    /// The client-server event format.
    Client,
    /// The PDU as signed, with hashes and signatures.
    Federation,
}

/// The `room` section of a sync filter.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoomFilter {
    #[serde(default)]
    pub timeline: EventFilter,
    #[serde(default)]
    pub state: EventFilter,
    #[serde(default)]
    pub ephemeral: EventFilter,
    #[serde(default)]
    pub account_data: EventFilter,
    pub rooms: Option<Vec<String>>,
    #[serde(default)]
    pub not_rooms: Vec<String>,
    #[serde(default)]
    pub include_leave: bool,
}

impl RoomFilter {
    /// Returns whether `room_id` is selected.
    #[must_use]
    pub fn allows_room(&self, room_id: &str) -> bool {
        self.rooms
            .as_ref()
            .is_none_or(|rooms| rooms.iter().any(|r| r == room_id))
            && !self.not_rooms.iter().any(|r| r == room_id)
    }
}

/// Matches an event type against a pattern whose `*` matches any sequence.
#[must_use]
pub fn pattern_matches(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.starts_with(head)
                && value.len() >= head.len()
                && (tail.is_empty()
                    || (1..=value.len() - head.len()).chain([0]).any(|skip| {
                        pattern_matches(tail, &value[(head.len() + skip).min(value.len())..])
                    }))
        }
    }
}

/// Parses filter JSON.
///
/// # Errors
///
/// `M_NOT_JSON` for invalid JSON, `M_BAD_JSON` for the wrong shape.
pub fn parse<T: serde::de::DeserializeOwned>(text: &str) -> ApiResult<T> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| MatrixError::not_json(format!("Filter is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(MatrixError::bad_json("Filter must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| MatrixError::bad_json(format!("Invalid filter: {e}")))
}

#[cfg(test)]
mod tests {
    use super::{EventFilter, pattern_matches};
    use serde_json::json;

    #[test]
    fn wildcards() {
        assert!(pattern_matches("m.room.*", "m.room.message"));
        assert!(pattern_matches("*", "anything"));
        assert!(!pattern_matches("m.room.*", "m.call.invite"));
        assert!(pattern_matches("m.*.message", "m.room.message"));
    }

    #[test]
    fn types_and_not_types() {
        let filter = EventFilter {
            types: Some(vec!["m.room.*".into()]),
            not_types: vec!["m.room.member".into()],
            ..EventFilter::default()
        };
        assert!(filter.matches(json!({ "type": "m.room.message" }).as_object().unwrap()));
        assert!(!filter.matches(json!({ "type": "m.room.member" }).as_object().unwrap()));
        assert!(!filter.matches(json!({ "type": "m.reaction" }).as_object().unwrap()));
    }
}
