//! The user object that the admin API returns, and the account creation
//! shared by `POST /users`, shared-secret registration and
//! `eltrix --create-admin`.

use std::rc::Rc;

use ruma::OwnedUserId;
use serde_json::{Value, json};

use crate::{
    api::{
        client::{IssuedDevice, issue_device},
        error::{ApiResult, MatrixError},
    },
    shard::{Shard, now_millis},
    store::{Map, StoreError, UserRecord, WriteBatch},
};

/// The localpart rules of registration, which accounts created by an admin
/// follow too.
pub(crate) use crate::api::client::validate_localpart;

/// Checks a password for an account created by an admin.
///
/// # Errors
///
/// `M_INVALID_PARAM` for an empty password.
pub fn validate_password(password: &str) -> ApiResult<()> {
    if password.is_empty() {
        return Err(MatrixError::invalid_param("password must not be empty"));
    }
    Ok(())
}

/// Parses a user ID from a path and requires it to be local.
///
/// # Errors
///
/// `M_INVALID_PARAM` for text that is not a user ID, `M_NOT_FOUND` for a
/// user of another server.
pub fn parse_local_user_id(shard: &Shard, user_id: &str) -> ApiResult<OwnedUserId> {
    let parsed = OwnedUserId::try_from(user_id)
        .map_err(|_| MatrixError::invalid_param(format!("Invalid user ID {user_id:?}")))?;
    if parsed.server_name() != shard.config.server_name.as_str() {
        return Err(MatrixError::not_found(format!(
            "{user_id} is not a user of this server"
        )));
    }
    Ok(parsed)
}

/// Reads the account `user_id`.
///
/// # Errors
///
/// `M_NOT_FOUND` for an unknown user, or a storage error.
pub fn load_user(shard: &Shard, user_id: &str) -> ApiResult<UserRecord> {
    shard
        .store
        .get_json::<UserRecord>(Map::Users, user_id.as_bytes())?
        .ok_or_else(|| MatrixError::not_found(format!("Unknown user {user_id}")))
}

/// Decodes one `userid_user` value.
///
/// # Errors
///
/// A storage error for a record that does not decode.
pub fn decode_user(value: &[u8]) -> Result<UserRecord, StoreError> {
    serde_json::from_slice(value).map_err(|source| StoreError::Corrupt {
        map: "userid_user",
        source,
    })
}

/// Returns a new account record, created now.
#[must_use]
pub fn new_record(password_hash: String, admin: bool) -> UserRecord {
    UserRecord {
        password_hash: Some(password_hash),
        created_ts: now_millis(),
        deactivated: false,
        admin,
    }
}

/// Returns the user object of the admin API.
// NOTE: profiles are not served, so no display name is stored and
// `displayname` is always null.
#[must_use]
pub fn user_object(user_id: &str, record: &UserRecord) -> Value {
    json!({
        "user_id": user_id,
        "displayname": null,
        "admin": record.admin,
        "deactivated": record.deactivated,
        "created_at": rfc3339(record.created_ts),
    })
}

/// Formats milliseconds since the Unix epoch as an RFC 3339 UTC timestamp.
#[must_use]
pub fn rfc3339(millis: u64) -> String {
    let nanos = i128::from(millis) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// An account created by [`create_account`].
pub struct Created {
    pub user_id: String,
    pub record: UserRecord,
    /// The first device, when one was requested.
    pub device: Option<IssuedDevice>,
}

/// Creates the account `localpart` with `password`, and a first device if
/// `with_device` is set. The password is hashed on this shard's password
/// worker. The account is written on the user's shard, because that shard
/// serializes claims of the same user ID with registration.
///
/// # Errors
///
/// `M_INVALID_USERNAME`, `M_INVALID_PARAM` for an empty password,
/// `M_USER_IN_USE`, or a storage error.
pub async fn create_account(
    shard: &Rc<Shard>,
    localpart: &str,
    password: String,
    admin: bool,
    with_device: bool,
) -> ApiResult<Created> {
    let user_id = validate_localpart(localpart, &shard.config.server_name)?;
    validate_password(&password)?;
    if shard.store.get(Map::Users, user_id.as_bytes())?.is_some() {
        return Err(MatrixError::user_in_use("The user ID is already taken"));
    }
    let password_hash = shard
        .passwords
        .hash(password)
        .await
        .ok_or_else(|| MatrixError::internal("Password hashing failed"))?;

    let owner = shard.owner(&user_id);
    shard
        .on_shard(owner, move |shard| async move {
            if shard.store.get(Map::Users, user_id.as_bytes())?.is_some() {
                return Err(MatrixError::user_in_use("The user ID is already taken"));
            }
            let record = new_record(password_hash, admin);
            let mut batch = WriteBatch::default();
            batch.put_json(Map::Users, user_id.as_bytes().to_vec(), &record);
            // A new account has no earlier device, so no token is replaced.
            let device = if with_device {
                Some(issue_device(&shard, &mut batch, &user_id, None, None)?)
            } else {
                None
            };
            shard.committer.commit(batch).await?;
            tracing::info!(user_id, admin, "created account through the admin API");
            Ok(Created {
                user_id,
                record,
                device,
            })
        })
        .await?
}

#[cfg(test)]
mod tests {
    use super::{rfc3339, validate_localpart};

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn localpart_rules_match_registration() {
        assert!(validate_localpart("admin.1", "localhost").is_ok());
        for bad in ["Admin", "", "a b", "a:b"] {
            assert!(validate_localpart(bad, "localhost").is_err(), "{bad:?}");
        }
        assert!(validate_localpart(&"a".repeat(250), "localhost").is_err());
    }
}
