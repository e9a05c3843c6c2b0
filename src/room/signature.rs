//! This server's signature on its own events.
//!
//! Events of a room with joined members on other servers are signed when
//! they are built, because they leave at once. Events of a room with only
//! local members are stored without the signature. It is added the first
//! time such an event leaves the server (in a federation response or
//! transaction) and kept in `eventid_signature`, so it is computed once.
//! Ed25519 signatures are deterministic and cover the redacted event, so the
//! result equals signing at build time, before or after a redaction.

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, RoomVersionId, UserId, canonical_json::redact,
    room_version_rules::RedactionRules, signatures::sign_event,
};
use serde_json::Value;

use super::Pdu;
use crate::{
    api::error::{ApiResult, MatrixError},
    shard::Shard,
    store::{Committer, EventRecord, Map, StoreError, WriteBatch},
};

/// Signatures computed while preparing a response, to persist once it is
/// sent.
#[derive(Default)]
pub struct NewSignatures {
    batch: WriteBatch,
    count: usize,
}

impl NewSignatures {
    /// Returns the number of signatures computed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.count
    }

    /// Returns whether no signature was computed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Persists the new signatures in the background. Losing them in a
    /// crash costs only their recomputation.
    pub fn persist(self, shard: &Shard) {
        if self.is_empty() {
            return;
        }
        let committer = shard.committer.clone();
        monoio::spawn(async move {
            if let Err(error) = self.commit(&committer).await {
                tracing::warn!(%error, "failed to store event signatures");
            }
        });
    }

    /// Persists the new signatures and waits until they are durable.
    ///
    /// # Errors
    ///
    /// Returns the storage error.
    pub async fn commit(self, committer: &Committer) -> Result<(), StoreError> {
        committer.commit(self.batch).await
    }
}

/// Returns whether `object` carries a signature of `server`.
#[must_use]
pub fn is_signed_by(object: &CanonicalJsonObject, server: &str) -> bool {
    matches!(
        object.get("signatures"),
        Some(CanonicalJsonValue::Object(signatures))
            if matches!(signatures.get(server), Some(CanonicalJsonValue::Object(keys)) if !keys.is_empty())
    )
}

/// Adds this server's signature to `object` when it is one of this
/// server's events stored without it: from `eventid_signature`, or signed
/// now and queued in `new`.
///
/// # Errors
///
/// `M_UNKNOWN` when the stored event cannot be signed.
pub fn complete(
    shard: &Shard,
    event_id: &str,
    object: &mut CanonicalJsonObject,
    rules: &RedactionRules,
    new: &mut NewSignatures,
) -> ApiResult<()> {
    let own = shard.config.server_name.as_str();
    let local_sender = matches!(
        object.get("sender"),
        Some(CanonicalJsonValue::String(sender))
            if <&UserId>::try_from(sender.as_str()).is_ok_and(|user| user.server_name() == own)
    );
    if !local_sender || is_signed_by(object, own) {
        return Ok(());
    }
    if let Some(stored) = shard.store.get(Map::EventSignatures, event_id.as_bytes())?
        && let Ok(keys) = serde_json::from_slice::<CanonicalJsonObject>(&stored)
    {
        insert(object, own, keys)?;
        return Ok(());
    }
    sign_event(own, &shard.key.pair, object, rules)
        .map_err(|error| MatrixError::internal(format!("Cannot sign {event_id}: {error}")))?;
    if let Some(CanonicalJsonValue::Object(signatures)) = object.get("signatures")
        && let Some(keys) = signatures.get(own)
    {
        let bytes = serde_json::to_vec(keys).map_err(|e| MatrixError::internal(e.to_string()))?;
        new.batch
            .put(Map::EventSignatures, event_id.as_bytes().to_vec(), bytes);
        new.count += 1;
    }
    Ok(())
}

fn insert(
    object: &mut CanonicalJsonObject,
    server: &str,
    keys: CanonicalJsonObject,
) -> ApiResult<()> {
    let signatures = object
        .entry("signatures".to_owned())
        .or_insert_with(|| CanonicalJsonValue::Object(CanonicalJsonObject::new()));
    let CanonicalJsonValue::Object(signatures) = signatures else {
        return Err(MatrixError::internal(
            "Stored event has malformed signatures",
        ));
    };
    signatures.insert(server.to_owned(), CanonicalJsonValue::Object(keys));
    Ok(())
}

/// Returns a PDU built on this shard in the federation format, with this
/// server's signature completed.
///
/// # Errors
///
/// `M_UNKNOWN` when the PDU cannot be signed.
pub fn wire_pdu(
    shard: &Shard,
    pdu: &Pdu,
    rules: &RedactionRules,
    new: &mut NewSignatures,
) -> ApiResult<Value> {
    let mut object = pdu.json.clone();
    complete(shard, pdu.event_id.as_str(), &mut object, rules, new)?;
    to_value(object)
}

/// Loads a stored event in the federation format, with this server's
/// signature completed. `None` when the event is unknown.
///
/// # Errors
///
/// A storage error, or `M_UNKNOWN` for a stored event that cannot be read
/// or signed.
pub fn load_wire_event(
    shard: &Shard,
    event_id: &str,
    new: &mut NewSignatures,
) -> ApiResult<Option<Value>> {
    let Some(record) = shard
        .store
        .get_json::<EventRecord>(Map::Events, event_id.as_bytes())?
    else {
        return Ok(None);
    };
    wire_event(shard, event_id, record, new).map(Some)
}

/// Turns a stored record into the federation format: redacted when a
/// redaction applies, with this server's signature completed.
///
/// # Errors
///
/// `M_UNKNOWN` for a record that cannot be read, redacted or signed.
pub fn wire_event(
    shard: &Shard,
    event_id: &str,
    record: EventRecord,
    new: &mut NewSignatures,
) -> ApiResult<Value> {
    let mut object: CanonicalJsonObject = serde_json::from_value(record.pdu)
        .map_err(|e| MatrixError::internal(format!("Stored event {event_id} is malformed: {e}")))?;
    let redacted = record.redacted_by.is_some();
    if redacted || !is_signed_by(&object, &shard.config.server_name) {
        let rules = record_rules(shard, &record.room_id, record.room_version.as_deref())?;
        complete(shard, event_id, &mut object, &rules, new)?;
        if redacted {
            // The signature covers the redacted form, so it stays valid.
            object = redact(object, &rules, None).map_err(|e| {
                MatrixError::internal(format!("Cannot redact stored event {event_id}: {e}"))
            })?;
        }
    }
    to_value(object)
}

fn to_value(object: CanonicalJsonObject) -> ApiResult<Value> {
    serde_json::to_value(object).map_err(|e| MatrixError::internal(e.to_string()))
}

/// The redaction rules of the room version recorded with an event, or of
/// its room when the record predates that field.
fn record_rules(shard: &Shard, room_id: &str, version: Option<&str>) -> ApiResult<RedactionRules> {
    let version = match version {
        Some(version) => version.to_owned(),
        None => {
            shard
                .store
                .get_json::<crate::store::RoomRecord>(Map::Rooms, room_id.as_bytes())?
                .ok_or_else(|| MatrixError::internal(format!("Unknown room {room_id}")))?
                .room_version
        }
    };
    RoomVersionId::try_from(version.as_str())
        .ok()
        .and_then(|id| id.rules())
        .map(|rules| rules.redaction)
        .ok_or_else(|| MatrixError::internal(format!("Unsupported room version {version}")))
}
