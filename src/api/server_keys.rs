//! `GET /_matrix/key/v2/server`: the server's signing keys, signed by the
//! current key, for other servers to verify what this server signs.

use ruma::{CanonicalJsonObject, CanonicalJsonValue, signatures::sign_json};
use serde_json::Value;

use super::error::{ApiResult, MatrixError};
use crate::shard::{Shard, now_millis};

/// How long other servers may cache the response: one day, short enough
/// that a rotated key reaches them the same day.
const VALIDITY_MS: u64 = 24 * 60 * 60 * 1000;

/// Returns the signed key response.
///
/// # Errors
///
/// Returns 500 if the response cannot be signed.
pub fn server_keys(shard: &Shard) -> ApiResult<Value> {
    let key = &shard.key;
    let server_name = shard.config.server_name.as_str();
    let string = |text: &str| CanonicalJsonValue::String(text.to_owned());
    let integer = |value: u64| {
        CanonicalJsonValue::Integer(ruma::Int::new_saturating(
            i64::try_from(value).unwrap_or(i64::MAX),
        ))
    };

    let mut verify_keys = CanonicalJsonObject::new();
    verify_keys.insert(
        key.key_id(),
        CanonicalJsonValue::Object(CanonicalJsonObject::from([(
            "key".to_owned(),
            string(&key.public_base64),
        )])),
    );
    let mut old_verify_keys = CanonicalJsonObject::new();
    for old in &key.old_keys {
        old_verify_keys.insert(
            old.key_id.clone(),
            CanonicalJsonValue::Object(CanonicalJsonObject::from([
                ("key".to_owned(), string(&old.public_base64)),
                ("expired_ts".to_owned(), integer(old.expired_ts)),
            ])),
        );
    }
    let mut object = CanonicalJsonObject::from([
        ("server_name".to_owned(), string(server_name)),
        (
            "valid_until_ts".to_owned(),
            integer(now_millis() + VALIDITY_MS),
        ),
        (
            "verify_keys".to_owned(),
            CanonicalJsonValue::Object(verify_keys),
        ),
        (
            "old_verify_keys".to_owned(),
            CanonicalJsonValue::Object(old_verify_keys),
        ),
    ]);
    sign_json(server_name, &key.pair, &mut object).map_err(|error| {
        tracing::error!(%error, "failed to sign the server key response");
        MatrixError::internal(format!("Failed to sign the key response: {error}"))
    })?;
    serde_json::to_value(object)
        .map_err(|error| MatrixError::internal(format!("Failed to encode the keys: {error}")))
}
