//! `GET /_eltrix/admin/v1/statistics`: counts read from the store.
//!
//! Media is not served and federation counts are not collected, so both are
//! zero.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::account::decode_user;
use crate::{
    api::error::ApiResult,
    shard::{Shard, now_millis},
    store::{DeviceRecord, Map, RoomRecord, StoreError},
};

/// The window of `active_30d`, in milliseconds.
const ACTIVE_WINDOW_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// `GET /_eltrix/admin/v1/statistics`.
///
/// `users.total` counts every account, deactivated ones included.
/// `users.active_30d` counts accounts that are not deactivated and were
/// created in the last 30 days or have a device whose `last_seen_ts` is in
/// them. A device's `last_seen_ts` is written when it logs in or registers;
/// later requests do not update it. `rooms.total` counts every stored room
/// and `rooms.local` those whose creator is a user of this server.
pub fn statistics(shard: &Shard) -> ApiResult<Value> {
    let since = now_millis().saturating_sub(ACTIVE_WINDOW_MS);
    let last_seen = last_seen_by_user(shard)?;

    let (mut total_users, mut active_users) = (0u64, 0u64);
    for (key, value) in shard.store.scan_prefix(Map::Users, b"")? {
        let record = decode_user(&value)?;
        total_users += 1;
        let seen = last_seen.get(key.as_slice()).copied().unwrap_or(0);
        if !record.deactivated && (record.created_ts >= since || seen >= since) {
            active_users += 1;
        }
    }

    let suffix = format!(":{}", shard.config.server_name);
    let (mut total_rooms, mut local_rooms) = (0u64, 0u64);
    for (_, value) in shard.store.scan_prefix(Map::Rooms, b"")? {
        let record: RoomRecord =
            serde_json::from_slice(&value).map_err(|source| StoreError::Corrupt {
                map: "roomid_room",
                source,
            })?;
        total_rooms += 1;
        if record.creator.ends_with(&suffix) {
            local_rooms += 1;
        }
    }

    Ok(json!({
        "users": { "total": total_users, "active_30d": active_users },
        "rooms": { "total": total_rooms, "local": local_rooms },
        "media": { "total_size_bytes": 0, "count": 0 },
        "federation": { "known_servers": 0, "active_servers": 0 },
    }))
}

/// Returns the newest device `last_seen_ts` of each user, keyed by user ID.
fn last_seen_by_user(shard: &Shard) -> ApiResult<HashMap<Vec<u8>, u64>> {
    let mut last_seen: HashMap<Vec<u8>, u64> = HashMap::new();
    for (key, value) in shard.store.scan_prefix(Map::Devices, b"")? {
        let Some(end) = key.iter().position(|b| *b == 0) else {
            continue;
        };
        let Ok(device) = serde_json::from_slice::<DeviceRecord>(&value) else {
            continue;
        };
        let newest = last_seen.entry(key[..end].to_vec()).or_default();
        *newest = (*newest).max(device.last_seen_ts);
    }
    Ok(last_seen)
}
