//! Building a new PDU: auth event selection, the room version's event
//! format, content hash, signature and event ID.

use std::sync::Arc;

use ruma::{
    CanonicalJsonError, CanonicalJsonObject, CanonicalJsonValue, OwnedEventId, OwnedUserId,
    events::TimelineEventType,
    room_version_rules::{EventIdFormatVersion, EventsReferenceFormatVersion},
    signatures::{add_content_hash_to_event, hash_and_sign_event, reference_hash},
};

use super::{keys::SigningKey, pdu::Pdu, state::Room};
use crate::api::error::MatrixError;

/// Largest PDU accepted, in bytes of canonical JSON with signatures.
pub const MAX_PDU_BYTES: usize = 65_536;

/// An event requested by a client or by the server, before it is built.
#[derive(Debug, Clone)]
pub struct EventDraft {
    pub sender: OwnedUserId,
    pub kind: String,
    pub state_key: Option<String>,
    pub content: serde_json::Value,
    pub redacts: Option<OwnedEventId>,
    /// The client transaction that sent the event, if any.
    pub txn: Option<Txn>,
    /// Fixed `origin_server_ts`, so that a create event built twice has the
    /// same reference hash (a v12 room ID is derived from it).
    pub origin_server_ts: Option<u64>,
}

/// A client transaction: its device, its ID, and the `userid_deviceid_txnid_eventid`
/// key, which also names the endpoint and room so that the same ID used in
/// another room is another transaction.
#[derive(Debug, Clone)]
pub struct Txn {
    pub device_id: String,
    pub txn_id: String,
    pub key: Vec<u8>,
}

impl Txn {
    /// Returns the transaction `txn_id` of `user_id`'s `device_id` on the endpoint
    /// `scope` (for example `"!room:x/send/m.room.message"`).
    #[must_use]
    pub fn new(user_id: &str, device_id: &str, scope: &str, txn_id: &str) -> Self {
        let key = crate::store::keys::join(&[
            user_id.as_bytes(),
            device_id.as_bytes(),
            scope.as_bytes(),
            txn_id.as_bytes(),
        ]);
        Self {
            device_id: device_id.to_owned(),
            txn_id: txn_id.to_owned(),
            key,
        }
    }
}

impl EventDraft {
    /// Returns a state event draft.
    #[must_use]
    pub fn state(
        sender: &OwnedUserId,
        kind: &str,
        state_key: &str,
        content: serde_json::Value,
    ) -> Self {
        Self {
            sender: sender.clone(),
            kind: kind.to_owned(),
            state_key: Some(state_key.to_owned()),
            content,
            redacts: None,
            txn: None,
            origin_server_ts: None,
        }
    }
}

/// Converts client content to canonical JSON.
///
/// # Errors
///
/// `M_BAD_JSON` for content that is not an object or contains floats or
/// integers outside ±(2^53−1).
pub fn canonical_content(content: serde_json::Value) -> Result<CanonicalJsonValue, MatrixError> {
    if !content.is_object() {
        return Err(MatrixError::bad_json("Event content must be a JSON object"));
    }
    // NOTE: room versions 1 to 5 do not require canonical JSON, but the
    // content is still rejected there, because events are signed as
    // canonical JSON, which has no floats or larger integers.
    CanonicalJsonValue::try_from(content).map_err(|error| {
        let reason = match error {
            CanonicalJsonError::IntegerOutOfRange => {
                "it contains an integer outside ±(2^53−1)".to_owned()
            }
            CanonicalJsonError::InvalidType(kind) if kind == "float" => {
                "it contains a number with a fraction or exponent".to_owned()
            }
            other => other.to_string(),
        };
        MatrixError::bad_json(format!("Event content is not canonical JSON: {reason}"))
    })
}

/// Builds and signs the PDU for `draft` as the next event of `room`.
///
/// # Errors
///
/// `M_BAD_JSON` for content that cannot be signed as canonical JSON,
/// `M_TOO_LARGE` for PDUs over 65536 bytes, `M_FORBIDDEN` when the auth
/// events cannot be selected.
pub fn build(
    room: &Room,
    draft: &EventDraft,
    origin: &str,
    key: &SigningKey,
    pos: u64,
    now_ms: u64,
) -> Result<Pdu, MatrixError> {
    assemble(room, draft, origin, key, pos, now_ms, true)
}

/// Builds the PDU like [`build`], with its content hash and event ID but
/// without the signature, which [`super::signature`] adds when the event
/// first leaves the server. The size limit counts the signature all the same.
///
/// # Errors
///
/// The errors of [`build`].
pub fn build_unsigned(
    room: &Room,
    draft: &EventDraft,
    origin: &str,
    key: &SigningKey,
    pos: u64,
    now_ms: u64,
) -> Result<Pdu, MatrixError> {
    assemble(room, draft, origin, key, pos, now_ms, false)
}

fn assemble(
    room: &Room,
    draft: &EventDraft,
    origin: &str,
    key: &SigningKey,
    pos: u64,
    now_ms: u64,
    sign: bool,
) -> Result<Pdu, MatrixError> {
    let rules = &room.rules;
    let content = canonical_content(draft.content.clone())?;
    let content_raw = serde_json::value::to_raw_value(&content)
        .map_err(|e| MatrixError::bad_json(e.to_string()))?;
    let kind = TimelineEventType::from(draft.kind.as_str());
    let is_create = kind == TimelineEventType::RoomCreate;

    // Select the auth events from the current state.
    let auth_types = ruma::state_res::auth_types_for_event(
        &kind,
        &draft.sender,
        draft.state_key.as_deref(),
        &content_raw,
        &rules.authorization,
    )
    .map_err(MatrixError::forbidden)?;
    let auth_events: Vec<Arc<Pdu>> = auth_types
        .iter()
        .filter_map(|(kind, key)| room.state_event(&kind.to_string(), key).cloned())
        .collect();
    let prev_events = room.prev_events();

    let mut object = CanonicalJsonObject::new();
    let insert = |object: &mut CanonicalJsonObject, name: &str, value: CanonicalJsonValue| {
        object.insert(name.to_owned(), value);
    };
    insert(&mut object, "auth_events", references(room, &auth_events));
    insert(&mut object, "prev_events", references(room, &prev_events));
    insert(&mut object, "content", content);
    insert(&mut object, "depth", integer(room.depth + 1));
    insert(
        &mut object,
        "origin_server_ts",
        integer(draft.origin_server_ts.unwrap_or(now_ms)),
    );
    insert(
        &mut object,
        "sender",
        CanonicalJsonValue::String(draft.sender.to_string()),
    );
    insert(
        &mut object,
        "type",
        CanonicalJsonValue::String(draft.kind.clone()),
    );
    if !(is_create && rules.authorization.room_create_event_id_as_room_id) {
        insert(
            &mut object,
            "room_id",
            CanonicalJsonValue::String(room.room_id.to_string()),
        );
    }
    if let Some(state_key) = &draft.state_key {
        insert(
            &mut object,
            "state_key",
            CanonicalJsonValue::String(state_key.clone()),
        );
    }
    if rules.redaction.keep_origin_membership_prev_state {
        insert(
            &mut object,
            "origin",
            CanonicalJsonValue::String(origin.to_owned()),
        );
    }
    if let Some(redacts) = &draft.redacts {
        let redacts = CanonicalJsonValue::String(redacts.to_string());
        if rules.redaction.keep_room_redaction_redacts {
            if let Some(CanonicalJsonValue::Object(content)) = object.get_mut("content") {
                content.insert("redacts".to_owned(), redacts);
            }
        } else {
            insert(&mut object, "redacts", redacts);
        }
    }
    if rules.event_id_format == EventIdFormatVersion::V1 {
        let local = crate::auth::token::random_id(18);
        insert(
            &mut object,
            "event_id",
            CanonicalJsonValue::String(format!("${local}:{origin}")),
        );
    }

    // Hash, sign and derive the event ID.
    let size = if sign {
        hash_and_sign_event(origin, &key.pair, &mut object, &rules.redaction)
            .map_err(json_error)?;
        serde_json::to_vec(&object).map_or(usize::MAX, |bytes| bytes.len())
    } else {
        add_content_hash_to_event(&mut object).map_err(json_error)?;
        serde_json::to_vec(&object).map_or(usize::MAX, |bytes| {
            bytes.len() + signature_bytes(origin, key)
        })
    };
    if size > MAX_PDU_BYTES {
        return Err(MatrixError::too_large(format!(
            "Event is {size} bytes; the maximum is {MAX_PDU_BYTES}"
        )));
    }
    let event_id = match (rules.event_id_format, object.get("event_id")) {
        (EventIdFormatVersion::V1, Some(CanonicalJsonValue::String(id))) => id.clone(),
        _ => format!("${}", reference_hash(&object, rules).map_err(json_error)?),
    };
    let event_id =
        OwnedEventId::try_from(event_id).map_err(|e| MatrixError::internal(e.to_string()))?;
    let room_id = if is_create && rules.authorization.room_create_event_id_as_room_id {
        let hash = event_id.as_str().trim_start_matches('$');
        ruma::RoomId::new_v2(hash).map_err(|e| MatrixError::internal(e.to_string()))?
    } else {
        room.room_id.clone()
    };
    Pdu::parse(object, event_id, room_id, pos).map_err(|e| MatrixError::internal(e.to_string()))
}

/// Bytes that this server's signature adds to a PDU without `signatures`:
/// the field, its separator, and one ed25519 signature in unpadded base64.
pub(super) fn signature_bytes(origin: &str, key: &SigningKey) -> usize {
    const SIGNATURE_BASE64: usize = 86;
    let field = serde_json::json!({ origin: { key.key_id(): "" } });
    let inner = serde_json::to_vec(&field).map_or(0, |bytes| bytes.len());
    // `,"signatures":` before the object, and the signature inside it.
    ",\"signatures\":".len() + inner + SIGNATURE_BASE64
}

fn json_error(error: ruma::signatures::JsonError) -> MatrixError {
    match error {
        ruma::signatures::JsonError::PduTooLarge => {
            MatrixError::too_large(format!("Event exceeds {MAX_PDU_BYTES} bytes"))
        }
        other => MatrixError::bad_json(format!("Event cannot be signed: {other}")),
    }
}

fn integer(value: u64) -> CanonicalJsonValue {
    CanonicalJsonValue::Integer(ruma::Int::new_saturating(
        i64::try_from(value).unwrap_or(i64::MAX),
    ))
}

/// Event references in the room version's format: IDs, or `[id, hashes]`.
fn references(room: &Room, events: &[Arc<Pdu>]) -> CanonicalJsonValue {
    let items = events
        .iter()
        .map(|pdu| match room.rules.events_reference_format {
            EventsReferenceFormatVersion::V1 => {
                let hash = reference_hash(&pdu.json, &room.rules).unwrap_or_default();
                let hashes = CanonicalJsonObject::from([(
                    "sha256".to_owned(),
                    CanonicalJsonValue::String(hash),
                )]);
                CanonicalJsonValue::Array(vec![
                    CanonicalJsonValue::String(pdu.event_id.to_string()),
                    CanonicalJsonValue::Object(hashes),
                ])
            }
            _ => CanonicalJsonValue::String(pdu.event_id.to_string()),
        })
        .collect();
    CanonicalJsonValue::Array(items)
}
