//! `GET`/`POST /_matrix/client/v3/login`, `POST /_matrix/client/v3/logout`
//! and `POST /_matrix/client/v3/logout/all`.

use std::rc::Rc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    auth::token::{hash_token, new_access_token, new_device_id},
    shard::{Shard, now_millis},
    store::{DeviceRecord, Map, TokenRecord, UserRecord, WriteBatch, keys},
};

#[derive(Deserialize)]
struct LoginBody {
    #[serde(rename = "type")]
    kind: String,
    identifier: Option<Identifier>,
    user: Option<String>,
    password: Option<String>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
}

#[derive(Deserialize)]
struct Identifier {
    #[serde(rename = "type")]
    kind: String,
    user: Option<String>,
}

/// `GET /_matrix/client/v3/login`.
pub fn flows() -> Value {
    json!({ "flows": [{ "type": "m.login.password" }] })
}

/// `POST /_matrix/client/v3/login` with `m.login.password` and `m.id.user`.
///
/// Unknown users and wrong passwords get the same `M_FORBIDDEN` after the
/// same amount of hashing work. A deactivated account with the right
/// password gets `M_USER_DEACTIVATED`.
pub async fn login(shard: &Rc<Shard>, request: &ApiRequest) -> ApiResult<Value> {
    let body: LoginBody = request.body()?;
    if body.kind != "m.login.password" {
        return Err(MatrixError::unknown(format!(
            "Unsupported login type {:?}",
            body.kind
        )));
    }
    let user = match &body.identifier {
        Some(identifier) if identifier.kind == "m.id.user" => identifier.user.clone(),
        Some(identifier) => {
            return Err(MatrixError::unknown(format!(
                "Unsupported identifier type {:?}",
                identifier.kind
            )));
        }
        None => body.user.clone(),
    };
    let user = user.ok_or_else(|| MatrixError::bad_json("Missing identifier.user"))?;
    let password = body
        .password
        .ok_or_else(|| MatrixError::bad_json("Missing password"))?;
    let user_id = full_user_id(&user, &shard.config.server_name);

    let record = match &user_id {
        Some(user_id) => shard
            .store
            .get_json::<UserRecord>(Map::Users, user_id.as_bytes())?,
        None => None,
    };
    let stored_hash = record.as_ref().and_then(|r| r.password_hash.clone());
    let verified = shard.passwords.verify(password, stored_hash).await;
    let (true, Some(user_id)) = (verified, user_id) else {
        return Err(MatrixError::forbidden("Invalid username or password"));
    };
    if record.is_some_and(|r| r.deactivated) {
        return Err(deactivated());
    }

    let (device_id, display_name) = (body.device_id, body.initial_device_display_name);
    let owner = shard.owner(&user_id);
    shard
        .on_shard(owner, move |shard| async move {
            // Deactivation also runs on this shard. Either this read returns
            // the deactivated account, or this device is queued before
            // deactivation's last sweep of the account's devices.
            match shard
                .store
                .get_json::<UserRecord>(Map::Users, user_id.as_bytes())?
            {
                Some(current) if current.deactivated => return Err(deactivated()),
                Some(_) => {}
                None => return Err(MatrixError::forbidden("Invalid username or password")),
            }
            let mut batch = WriteBatch::default();
            let issued = issue_device(&shard, &mut batch, &user_id, device_id, display_name)?;
            shard.committer.commit(batch).await?;
            shard
                .evict_tokens(issued.replaced_token.into_iter().collect())
                .await;
            let (device_id, token) = (issued.device_id, issued.access_token);
            tracing::info!(user_id, device_id, "logged in");
            Ok(json!({
                "user_id": user_id,
                "access_token": token,
                "device_id": device_id,
                "home_server": shard.config.server_name,
            }))
        })
        .await?
}

fn deactivated() -> MatrixError {
    MatrixError::user_deactivated("This account has been deactivated")
}

/// Normalizes a login name (`alice` or `@alice:server`) to a local user ID.
fn full_user_id(user: &str, server_name: &str) -> Option<String> {
    let user_id = if user.starts_with('@') {
        user.to_owned()
    } else {
        format!("@{}:{server_name}", user.to_lowercase())
    };
    let parsed = ruma::UserId::parse(&user_id).ok()?;
    (parsed.server_name() == server_name).then_some(user_id)
}

/// A device created or given a new token by [`issue_device`].
pub struct IssuedDevice {
    pub device_id: String,
    pub access_token: String,
    /// Hash of the token this one replaced, to evict from the caches.
    pub replaced_token: Option<String>,
}

/// Adds a device with a new access token to `batch`, replacing the token
/// of an existing device with the same ID.
///
/// # Errors
///
/// `M_INVALID_PARAM` for an unusable device ID, or a storage error.
pub fn issue_device(
    shard: &Shard,
    batch: &mut WriteBatch,
    user_id: &str,
    device_id: Option<String>,
    display_name: Option<String>,
) -> ApiResult<IssuedDevice> {
    let device_id = device_id.unwrap_or_else(new_device_id);
    if device_id.is_empty() || device_id.len() > 255 || device_id.contains('\0') {
        return Err(MatrixError::invalid_param(
            "device_id must be 1 to 255 bytes without NUL",
        ));
    }
    let device_key = keys::pair(user_id, &device_id);
    let replaced_token = shard
        .store
        .get_json::<DeviceRecord>(Map::Devices, &device_key)?
        .map(|old| old.token_hash);
    if let Some(old) = &replaced_token {
        batch.delete(Map::Tokens, old.clone().into_bytes());
    }
    let token = new_access_token();
    let token_hash = hash_token(&token);
    let owner = TokenRecord {
        user_id: user_id.to_owned(),
        device_id: device_id.clone(),
    };
    batch.put_json(Map::Tokens, token_hash.clone().into_bytes(), &owner);
    let device = DeviceRecord {
        display_name,
        token_hash,
        last_seen_ts: now_millis(),
    };
    batch.put_json(Map::Devices, device_key, &device);
    Ok(IssuedDevice {
        device_id,
        access_token: token,
        replaced_token,
    })
}

/// `POST /_matrix/client/v3/logout`: deletes the device and its token.
pub async fn logout(shard: &Rc<Shard>, request: &ApiRequest) -> ApiResult<Value> {
    let auth = request.auth()?;
    let mut batch = WriteBatch::default();
    let removed = remove_device(shard, &mut batch, auth.user_id.as_str(), &auth.device_id)?;
    shard.committer.commit(batch).await?;
    shard.evict_tokens(removed.into_iter().collect()).await;
    Ok(json!({}))
}

/// `POST /_matrix/client/v3/logout/all`: deletes every device of the user.
pub async fn logout_all(shard: &Rc<Shard>, request: &ApiRequest) -> ApiResult<Value> {
    let auth = request.auth()?;
    let mut batch = WriteBatch::default();
    let mut removed = Vec::new();
    for (key, _) in shard
        .store
        .scan_prefix(Map::Devices, &keys::prefix(auth.user_id.as_str()))?
    {
        let device_id = keys::last_part(&key);
        removed.extend(remove_device(
            shard,
            &mut batch,
            auth.user_id.as_str(),
            &device_id,
        )?);
    }
    shard.committer.commit(batch).await?;
    shard.evict_tokens(removed).await;
    Ok(json!({}))
}

fn remove_device(
    shard: &Shard,
    batch: &mut WriteBatch,
    user_id: &str,
    device_id: &str,
) -> ApiResult<Option<String>> {
    let device_key = keys::pair(user_id, device_id);
    let token_hash = shard
        .store
        .get_json::<DeviceRecord>(Map::Devices, &device_key)?
        .map(|device| device.token_hash);
    if let Some(hash) = &token_hash {
        batch.delete(Map::Tokens, hash.clone().into_bytes());
    }
    batch.delete(Map::Devices, device_key);
    Ok(token_hash)
}
