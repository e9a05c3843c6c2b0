//! Discovery and health: `GET /_matrix/client/versions`,
//! `GET /.well-known/matrix/client`, `GET /_matrix/client/v3/capabilities`,
//! `GET /health`, `/health/live` and `/health/ready`.

use std::rc::Rc;

use serde_json::{Value, json};

use crate::{
    api::error::{ApiResult, MatrixError},
    room::versions::{DEFAULT_ROOM_VERSION, SUPPORTED},
    shard::Shard,
    store::Map,
};

/// Spec versions whose endpoints used by the core client flows (accounts,
/// rooms, messages, sync) are served.
// NOTE: features added by these versions outside those flows (profiles,
// devices, media, E2EE key upload, push rules) are not served yet.
const SPEC_VERSIONS: [&str; 12] = [
    "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11",
    "v1.12",
];

/// `GET /_matrix/client/versions`.
pub fn versions() -> Value {
    json!({ "versions": SPEC_VERSIONS, "unstable_features": {} })
}

/// `GET /.well-known/matrix/client`.
pub fn well_known(shard: &Shard) -> Value {
    let base_url = shard
        .config
        .public_baseurl
        .clone()
        .unwrap_or_else(|| format!("http://{}", shard.config.listen));
    json!({ "m.homeserver": { "base_url": base_url } })
}

/// `GET /_matrix/client/v3/capabilities`.
pub fn capabilities() -> Value {
    let available: serde_json::Map<String, Value> = SUPPORTED
        .iter()
        .map(|version| ((*version).to_owned(), json!("stable")))
        .collect();
    json!({
        "capabilities": {
            "m.room_versions": { "default": DEFAULT_ROOM_VERSION, "available": available },
            "m.change_password": { "enabled": false },
            "m.set_displayname": { "enabled": false },
            "m.set_avatar_url": { "enabled": false },
            "m.3pid_changes": { "enabled": false },
        }
    })
}

/// `GET /health`.
pub fn health() -> Value {
    json!({ "status": "healthy" })
}

/// `GET /health/live`.
pub fn live() -> Value {
    json!({ "status": "alive" })
}

/// How long `/health/ready` waits for each shard to respond.
const SHARD_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /health/ready`: ready when every shard responds within two seconds,
/// the store reads and its commit thread runs. Otherwise 503, naming the
/// failing check: `database` for the store, and a `shards` entry listing the
/// shards that did not respond.
pub async fn ready(shard: &Rc<Shard>) -> ApiResult<Value> {
    let database = match shard.store.get(Map::Meta, b"ready-probe") {
        Ok(_) if shard.committer.is_running() => "ok".to_owned(),
        Ok(_) => "failed: the commit thread has stopped".to_owned(),
        Err(error) => format!("failed: {error}"),
    };
    let mut silent = Vec::new();
    for target in 0..shard.nr_shards() {
        let probe = shard.on_shard(target, |_| async {});
        if !matches!(
            monoio::time::timeout(SHARD_PROBE_TIMEOUT, probe).await,
            Ok(Ok(()))
        ) {
            silent.push(target);
        }
    }
    let mut checks = json!({ "database": database, "cache": "ok" });
    if silent.is_empty() && database == "ok" {
        return Ok(json!({ "status": "ready", "checks": checks }));
    }
    if !silent.is_empty() {
        checks["shards"] = json!(format!("failed: shards {silent:?} did not respond"));
    }
    tracing::warn!(shard_id = shard.id, %checks, "readiness check failed");
    Err(MatrixError::unavailable("The server is not ready")
        .with_extra(json!({ "status": "unavailable", "checks": checks })))
}
