//! `POST /_matrix/client/v3/register` with User-Interactive Auth,
//! `GET /_matrix/client/v3/register/available` and
//! `GET /_matrix/client/v1/register/m.login.registration_token/validity`.

use std::rc::Rc;

use serde::Deserialize;
use serde_json::{Value, json};

use super::login::issue_device;
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    auth::token::{hashes_equal, random_id},
    config::RegistrationMode,
    shard::{Shard, now_millis},
    store::{Map, UserRecord, WriteBatch},
};

#[derive(Deserialize)]
struct RegisterBody {
    username: Option<String>,
    password: Option<String>,
    auth: Option<serde_json::Map<String, Value>>,
    device_id: Option<String>,
    initial_device_display_name: Option<String>,
    #[serde(default)]
    inhibit_login: bool,
}

/// `POST /_matrix/client/v3/register`.
pub async fn register(shard: &Rc<Shard>, request: &ApiRequest) -> ApiResult<Value> {
    if request.query("kind") == Some("guest") {
        return Err(MatrixError::guest_access_forbidden(
            "Guest accounts are not enabled",
        ));
    }
    if shard.config.registration == RegistrationMode::Closed {
        return Err(MatrixError::forbidden("Registration is disabled"));
    }
    let body: RegisterBody = request.body()?;
    let localpart = match &body.username {
        Some(username) => username.clone(),
        None => random_id(16).to_lowercase(),
    };
    let user_id = validate_localpart(&localpart, &shard.config.server_name)?;
    if shard.store.get(Map::Users, user_id.as_bytes())?.is_some() {
        return Err(MatrixError::user_in_use("The user ID is already taken"));
    }
    check_interactive_auth(shard, body.auth.as_ref())?;

    let password_hash = match body.password {
        Some(password) => Some(
            shard
                .passwords
                .hash(password)
                .await
                .ok_or_else(|| MatrixError::internal("Password hashing failed"))?,
        ),
        None => None,
    };
    let device =
        (!body.inhibit_login).then_some((body.device_id, body.initial_device_display_name));
    let owner = shard.owner(&user_id);
    shard
        .on_shard(owner, move |shard| async move {
            create_account(&shard, user_id, password_hash, device).await
        })
        .await?
}

/// Stores the account on the user's shard, which serializes claims of the
/// same user ID.
async fn create_account(
    shard: &Shard,
    user_id: String,
    password_hash: Option<String>,
    device: Option<(Option<String>, Option<String>)>,
) -> ApiResult<Value> {
    if shard.store.get(Map::Users, user_id.as_bytes())?.is_some() {
        return Err(MatrixError::user_in_use("The user ID is already taken"));
    }
    let mut batch = WriteBatch::default();
    let record = UserRecord {
        password_hash,
        created_ts: now_millis(),
        deactivated: false,
        admin: false,
    };
    batch.put_json(Map::Users, user_id.as_bytes().to_vec(), &record);
    let mut response = json!({ "user_id": user_id });
    if let Some((device_id, display_name)) = device {
        // A new account has no earlier device, so no token is replaced.
        let issued = issue_device(shard, &mut batch, &user_id, device_id, display_name)?;
        response["device_id"] = json!(issued.device_id);
        response["access_token"] = json!(issued.access_token);
        response["home_server"] = json!(shard.config.server_name);
    }
    shard.committer.commit(batch).await?;
    tracing::info!(user_id, "registered user");
    Ok(response)
}

fn flows(shard: &Shard) -> Value {
    let stage = match shard.config.registration {
        RegistrationMode::Token => "m.login.registration_token",
        _ => "m.login.dummy",
    };
    json!({ "flows": [{ "stages": [stage] }], "params": {}, "session": random_id(24), "completed": [] })
}

/// Checks the `auth` dict of the request against the configured flow.
// NOTE: the session ID is not tracked between requests: each flow has a
// single stage, so a request that completes it is accepted with any session.
fn check_interactive_auth(
    shard: &Shard,
    auth: Option<&serde_json::Map<String, Value>>,
) -> ApiResult<()> {
    let uia_error = |error: MatrixError| {
        let mut error = error.with_extra(flows(shard));
        error.status = 401;
        error
    };
    let Some(auth) = auth else {
        return Err(MatrixError::auth_required(flows(shard)));
    };
    let kind = auth.get("type").and_then(Value::as_str);
    match (shard.config.registration, kind) {
        (RegistrationMode::Open, Some("m.login.dummy")) => Ok(()),
        (RegistrationMode::Token, Some("m.login.registration_token")) => {
            let token = auth
                .get("token")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if token_is_valid(shard, token) {
                Ok(())
            } else {
                Err(uia_error(MatrixError::forbidden(
                    "Invalid registration token",
                )))
            }
        }
        _ => Err(uia_error(MatrixError::forbidden(
            "Unsupported authentication stage",
        ))),
    }
}

fn token_is_valid(shard: &Shard, token: &str) -> bool {
    shard
        .config
        .registration_tokens
        .iter()
        .any(|valid| hashes_equal(valid, token))
}

/// Checks a localpart and returns the full user ID: lowercase letters,
/// digits and `._=-/+`, and at most 255 bytes for the whole ID.
///
/// # Errors
///
/// `M_INVALID_USERNAME` naming the rule that failed.
pub fn validate_localpart(localpart: &str, server_name: &str) -> ApiResult<String> {
    let allowed = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '=' | '-' | '/' | '+');
    if localpart.is_empty() || !localpart.chars().all(allowed) {
        return Err(MatrixError::invalid_username(
            "User ID may only contain a-z, 0-9, and the characters . _ = - / +",
        ));
    }
    let user_id = format!("@{localpart}:{server_name}");
    if user_id.len() > 255 {
        return Err(MatrixError::invalid_username(
            "User ID is longer than 255 bytes",
        ));
    }
    Ok(user_id)
}

/// `GET /_matrix/client/v3/register/available`.
pub fn available(shard: &Shard, request: &ApiRequest) -> ApiResult<Value> {
    let username = request
        .query("username")
        .ok_or_else(|| MatrixError::missing_param("Missing username"))?;
    let user_id = validate_localpart(username, &shard.config.server_name)?;
    if shard.store.get(Map::Users, user_id.as_bytes())?.is_some() {
        return Err(MatrixError::user_in_use("The user ID is already taken"));
    }
    Ok(json!({ "available": true }))
}

/// `GET /_matrix/client/v1/register/m.login.registration_token/validity`.
pub fn token_validity(shard: &Shard, request: &ApiRequest) -> ApiResult<Value> {
    if shard.config.registration != RegistrationMode::Token {
        return Err(MatrixError::forbidden("Registration tokens are not in use"));
    }
    let token = request
        .query("token")
        .ok_or_else(|| MatrixError::missing_param("Missing token"))?;
    Ok(json!({ "valid": token_is_valid(shard, token) }))
}

#[cfg(test)]
mod tests {
    use super::validate_localpart;

    #[test]
    fn localpart_rules() {
        assert!(validate_localpart("alice.b-1", "localhost").is_ok());
        assert_eq!(
            validate_localpart("Alice", "localhost")
                .unwrap_err()
                .errcode,
            "M_INVALID_USERNAME"
        );
        assert_eq!(
            validate_localpart("", "localhost").unwrap_err().errcode,
            "M_INVALID_USERNAME"
        );
        assert!(validate_localpart(&"a".repeat(300), "localhost").is_err());
    }
}
