//! Typed view of the parts of a `/sync` response body that the `fanout`
//! members read. Deserializing only these fields skips building a
//! `serde_json::Value` of the whole body.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer};

use crate::{
    http::Response,
    matrix::{ApiError, status_error},
};

/// The fields of a sync response that the members use. Other fields, and
/// rooms in sections other than `join`, are skipped.
#[derive(Debug, Deserialize)]
pub struct SyncBody {
    pub next_batch: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub rooms: Rooms,
}

/// The `rooms` object of a sync response.
#[derive(Debug, Default, Deserialize)]
pub struct Rooms {
    /// Joined rooms by room ID.
    #[serde(default, deserialize_with = "null_as_default")]
    pub join: HashMap<String, JoinedRoom>,
}

/// One entry of `rooms.join`.
#[derive(Debug, Default, Deserialize)]
pub struct JoinedRoom {
    #[serde(default, deserialize_with = "null_as_default")]
    pub timeline: Timeline,
}

/// The `timeline` of a joined room.
#[derive(Debug, Default, Deserialize)]
pub struct Timeline {
    #[serde(default, deserialize_with = "null_as_default")]
    pub events: Vec<TimelineEvent>,
    /// Whether the server cut the timeline short, so that events between
    /// two syncs may be missing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub limited: bool,
}

/// The fields of a timeline event that identify it and its sender. A field
/// that is missing or `null` is `None`.
#[derive(Debug, Deserialize)]
pub struct TimelineEvent {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub sender: Option<String>,
    pub event_id: Option<String>,
}

impl SyncBody {
    /// Parses the body of a 2xx response. Any other status becomes the
    /// [`ApiError`] of its standard error body.
    pub fn from_response(response: &Response) -> Result<Self, ApiError> {
        if !(200..300).contains(&response.status) {
            return Err(status_error(response.status, &response.body));
        }
        Self::from_slice(&response.body)
    }

    /// Parses a sync response body.
    pub fn from_slice(body: &[u8]) -> Result<Self, ApiError> {
        serde_json::from_slice(body).map_err(|error| ApiError::InvalidBody(error.to_string()))
    }

    /// Returns the timeline of a joined room, or `None` when the room is
    /// not in the response.
    pub fn timeline(&self, room_id: &str) -> Option<&Timeline> {
        self.rooms.join.get(room_id).map(|room| &room.timeline)
    }
}

/// Deserializes `null` as the type's default, the same as a missing field.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::SyncBody;
    use crate::{http::Response, matrix::ApiError};

    fn parse(body: &str) -> SyncBody {
        SyncBody::from_slice(body.as_bytes()).unwrap()
    }

    #[test]
    fn joined_room_timeline_is_read() {
        let body = parse(
            r#"{"next_batch": "s42", "rooms": {"join": {"!a:x": {"timeline": {
                "events": [
                    {"type": "m.room.message", "sender": "@s:x", "event_id": "$1"},
                    {"type": "m.room.member", "sender": "@m:x", "event_id": "$2"}
                ],
                "limited": true
            }}}}}"#,
        );
        assert_eq!(body.next_batch, "s42");
        let timeline = body.timeline("!a:x").unwrap();
        assert!(timeline.limited);
        assert_eq!(timeline.events.len(), 2);
        let first = &timeline.events[0];
        assert_eq!(first.kind.as_deref(), Some("m.room.message"));
        assert_eq!(first.sender.as_deref(), Some("@s:x"));
        assert_eq!(first.event_id.as_deref(), Some("$1"));
        assert!(body.timeline("!b:x").is_none());
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let body = parse(
            r#"{"next_batch": "s1", "account_data": {"events": [{"type": "x"}]},
                "presence": {}, "device_lists": {"changed": ["@a:x"]},
                "rooms": {"join": {"!a:x": {
                    "state": {"events": [{"type": "m.room.member", "state_key": "@a:x"}]},
                    "ephemeral": {"events": []},
                    "unread_notifications": {"highlight_count": 0},
                    "summary": {"m.joined_member_count": 3},
                    "timeline": {"prev_batch": "p1", "events": [{
                        "type": "m.room.message", "sender": "@s:x", "event_id": "$1",
                        "origin_server_ts": 1, "content": {"body": "hi", "nested": [[{}]]},
                        "unsigned": {"age": 5}
                    }]}
                }}}}"#,
        );
        let timeline = body.timeline("!a:x").unwrap();
        assert_eq!(timeline.events.len(), 1);
        assert_eq!(timeline.events[0].event_id.as_deref(), Some("$1"));
        assert!(!timeline.limited);
    }

    #[test]
    fn rooms_outside_join_are_skipped() {
        let body = parse(
            r#"{"next_batch": "s2", "rooms": {
                "invite": {"!i:x": {"invite_state": {"events": []}}},
                "leave": {"!l:x": {"timeline": {"events": [{"event_id": "$9"}]}}},
                "knock": {"!k:x": {}}
            }}"#,
        );
        assert!(body.rooms.join.is_empty());
        assert!(body.timeline("!l:x").is_none());
    }

    #[test]
    fn missing_and_null_fields_are_empty() {
        let minimal = parse(r#"{"next_batch": "s3"}"#);
        assert!(minimal.rooms.join.is_empty());

        let nulls = parse(
            r#"{"next_batch": "s4", "rooms": {"join": {
                "!a:x": {"timeline": {"events": null, "limited": null}},
                "!b:x": {"timeline": null},
                "!c:x": {}
            }}}"#,
        );
        for room_id in ["!a:x", "!b:x", "!c:x"] {
            let timeline = nulls.timeline(room_id).unwrap();
            assert!(timeline.events.is_empty(), "{room_id}");
            assert!(!timeline.limited, "{room_id}");
        }

        let event = parse(
            r#"{"next_batch": "s5", "rooms": {"join": {
                "!a:x": {"timeline": {"events": [{"sender": null}]}}
            }}}"#,
        );
        let fields = &event.timeline("!a:x").unwrap().events[0];
        assert!(fields.kind.is_none());
        assert!(fields.sender.is_none());
        assert!(fields.event_id.is_none());
    }

    #[test]
    fn missing_next_batch_is_invalid() {
        for body in [r#"{"rooms": {}}"#, r#"{"next_batch": 5}"#, "not json", ""] {
            let result = SyncBody::from_slice(body.as_bytes());
            assert!(
                matches!(result, Err(ApiError::InvalidBody(_))),
                "{body:?} gave {result:?}"
            );
        }
    }

    #[test]
    fn error_status_becomes_status_error() {
        let response = Response {
            status: 401,
            body: br#"{"errcode":"M_UNKNOWN_TOKEN","error":"Unknown token"}"#.to_vec(),
            keep_alive: true,
        };
        let error = SyncBody::from_response(&response).unwrap_err();
        assert_eq!(error.label(), "M_UNKNOWN_TOKEN");
        assert_eq!(error.to_string(), "HTTP 401 M_UNKNOWN_TOKEN: Unknown token");

        let ok = Response {
            status: 200,
            body: br#"{"next_batch": "s6"}"#.to_vec(),
            keep_alive: true,
        };
        assert_eq!(SyncBody::from_response(&ok).unwrap().next_batch, "s6");
    }
}
