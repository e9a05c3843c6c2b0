//! Other servers' signing keys, fetched from `/_matrix/key/v2/server` on
//! the server itself and kept per shard until they expire.
//!
//! NOTE: no notary (`trusted_key_servers`) is asked, so a server that is
//! unreachable cannot be verified even when others hold its keys.

use std::{cell::RefCell, collections::HashMap};

use ruma::{
    CanonicalJsonObject,
    signatures::{PublicKeyMap, PublicKeySet},
};
use serde_json::Value;

use super::{client, request_auth};
use crate::shard::{Shard, now_millis};

/// Longest time keys are kept without fetching them again, in milliseconds.
const MAX_CACHE_MS: u64 = 24 * 60 * 60 * 1000;

/// One server's keys: current ones and old ones with their expiry.
#[derive(Debug, Clone)]
struct ServerKeys {
    keys: PublicKeySet,
    /// When the current keys stop being valid (`valid_until_ts`), capped.
    fresh_until_ms: u64,
}

/// A shard's cache of other servers' keys.
#[derive(Default)]
pub struct KeyCache {
    entries: RefCell<HashMap<String, ServerKeys>>,
}

impl KeyCache {
    /// Returns the keys of `server`, fetching them when none are cached, they
    /// have expired, or `key_id` is not among them.
    ///
    /// # Errors
    ///
    /// Returns why the keys could not be fetched or checked.
    pub async fn keys_for(
        &self,
        shard: &Shard,
        server: &str,
        key_id: &str,
    ) -> Result<PublicKeySet, String> {
        let now = now_millis();
        if let Some(cached) = self.entries.borrow().get(server)
            && cached.fresh_until_ms > now
            && cached.keys.contains_key(key_id)
        {
            return Ok(cached.keys.clone());
        }
        let fetched = fetch(shard, server, now).await?;
        let keys = fetched.keys.clone();
        self.entries.borrow_mut().insert(server.to_owned(), fetched);
        Ok(keys)
    }
}

async fn fetch(shard: &Shard, server: &str, now: u64) -> Result<ServerKeys, String> {
    let response = client::request(shard, server, "GET", "/_matrix/key/v2/server", None, false)
        .await
        .map_err(|error| format!("failed to fetch the keys of {server}: {error}"))?;
    if response.status != 200 {
        return Err(format!(
            "{server} answered its key request with status {}",
            response.status
        ));
    }
    let body = response.json().map_err(|error| error.to_string())?;
    parse_and_check(server, &body, now)
}

/// Checks that `body` is `server`'s key response, signed by one of its
/// current keys, and returns its keys.
fn parse_and_check(server: &str, body: &Value, now: u64) -> Result<ServerKeys, String> {
    if body.get("server_name").and_then(Value::as_str) != Some(server) {
        return Err(format!("the key response of {server} names another server"));
    }
    let decode = |section: &str| -> PublicKeySet {
        body.get(section)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(id, entry)| {
                let key = entry.get("key").and_then(Value::as_str)?;
                Some((id.clone(), request_auth::public_key(key)?))
            })
            .collect()
    };
    let current = decode("verify_keys");
    if current.is_empty() {
        return Err(format!("{server} published no verify_keys"));
    }
    let object: CanonicalJsonObject = serde_json::from_value(body.clone())
        .map_err(|error| format!("the key response of {server} is not canonical JSON: {error}"))?;
    let map: PublicKeyMap = [(server.to_owned(), current.clone())].into();
    ruma::signatures::verify_json(&map, &object).map_err(|error| {
        format!("the key response of {server} is not signed by its keys: {error}")
    })?;
    let valid_until = body
        .get("valid_until_ts")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if valid_until <= now {
        return Err(format!("the keys of {server} expired at {valid_until}"));
    }
    let mut keys = decode("old_verify_keys");
    keys.extend(current);
    Ok(ServerKeys {
        keys,
        fresh_until_ms: valid_until.min(now + MAX_CACHE_MS),
    })
}

/// Returns the keys of every server that signed `object`, this server's
/// own included, for checking an event's signatures. A server whose keys
/// cannot be fetched is left out, so a check that needs its signature fails.
pub async fn keys_of_signers(shard: &Shard, object: &CanonicalJsonObject) -> PublicKeyMap {
    let mut map = PublicKeyMap::new();
    let own = &shard.config.server_name;
    if let Some(key) = request_auth::public_key(&shard.key.public_base64) {
        map.insert(own.clone(), PublicKeySet::from([(shard.key.key_id(), key)]));
    }
    let Some(ruma::CanonicalJsonValue::Object(signatures)) = object.get("signatures") else {
        return map;
    };
    for (server, keys) in signatures {
        if server == own {
            continue;
        }
        let Some(key_id) = (match keys {
            ruma::CanonicalJsonValue::Object(keys) => keys.keys().next().cloned(),
            _ => None,
        }) else {
            continue;
        };
        match shard.remote_keys.keys_for(shard, server, &key_id).await {
            Ok(keys) => {
                map.insert(server.clone(), keys);
            }
            Err(reason) => {
                tracing::info!(server, %reason, "failed to get the keys of an event's signer")
            }
        }
    }
    map
}
