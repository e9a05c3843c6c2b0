//! `GET`/`PUT`/`DELETE /_matrix/client/v3/directory/room/{roomAlias}`, on
//! the shard that owns the alias, which serializes claims of the same alias.

use std::rc::Rc;

use ruma::{OwnedRoomAliasId, OwnedRoomId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::messages::member_room;
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    shard::Shard,
    store::{Map, WriteBatch, keys},
};

/// `alias_roomid`: the room an alias points to and who created it.
#[derive(Serialize, Deserialize)]
struct AliasRecord {
    room_id: String,
    creator: String,
}

#[derive(Deserialize)]
struct PutAliasBody {
    room_id: String,
}

fn parse_alias(shard: &Shard, alias: &str, must_be_local: bool) -> ApiResult<OwnedRoomAliasId> {
    let invalid = || MatrixError::invalid_param(format!("Invalid room alias {alias:?}"));
    let parsed = OwnedRoomAliasId::try_from(alias).map_err(|_| invalid())?;
    if parsed.alias().is_empty()
        || alias.len() > 255
        || alias.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid());
    }
    if must_be_local && parsed.server_name() != shard.config.server_name.as_str() {
        return Err(MatrixError::invalid_param(
            "Room alias must be on this server",
        ));
    }
    Ok(parsed)
}

/// `GET /_matrix/client/v3/directory/room/{roomAlias}`. An alias of another
/// server is asked of that server over federation.
pub async fn get(shard: &Shard, alias: &str) -> ApiResult<Value> {
    let alias = parse_alias(shard, alias, false)?;
    if alias.server_name() != shard.config.server_name.as_str() {
        return get_remote(shard, &alias).await;
    }
    let record = shard
        .store
        .get_json::<AliasRecord>(Map::Aliases, alias.as_bytes())?
        .ok_or_else(|| MatrixError::not_found("Room alias not found"))?;
    Ok(json!({ "room_id": record.room_id, "servers": [shard.config.server_name] }))
}

/// Asks the alias's server for its room.
async fn get_remote(shard: &Shard, alias: &ruma::RoomAliasId) -> ApiResult<Value> {
    let server = alias.server_name().as_str();
    let encoded = percent_encoding::utf8_percent_encode(alias.as_str(), QUERY_VALUE);
    let uri = format!("/_matrix/federation/v1/query/directory?room_alias={encoded}");
    let response = crate::federation::client::request(shard, server, "GET", &uri, None, true)
        .await
        .map_err(|error| {
            tracing::info!(%alias, %error, "remote alias lookup failed");
            MatrixError::bad_gateway(format!("Failed to ask {server} for the alias: {error}"))
        })?;
    match response.status {
        200 => {}
        404 => return Err(MatrixError::not_found("Room alias not found")),
        status => {
            tracing::info!(%alias, status, "remote alias lookup failed");
            return Err(MatrixError::bad_gateway(format!(
                "{server} answered the alias lookup with status {status}"
            )));
        }
    }
    let body = response
        .json()
        .map_err(|error| MatrixError::bad_gateway(error.to_string()))?;
    let room_id = body
        .get("room_id")
        .and_then(Value::as_str)
        .and_then(|id| ruma::RoomId::parse(id).ok())
        .ok_or_else(|| MatrixError::bad_gateway(format!("{server} returned no valid room_id")))?;
    let servers: Vec<&str> = body
        .get("servers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|name| ruma::ServerName::parse(name).is_ok())
        .collect();
    Ok(json!({ "room_id": room_id, "servers": servers }))
}

/// Characters escaped in a query parameter value.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Returns the room an alias points to, reading the store from any shard.
///
/// # Errors
///
/// `M_NOT_FOUND` for an unknown alias.
pub fn resolve(shard: &Shard, alias: &str) -> ApiResult<OwnedRoomId> {
    let alias = parse_alias(shard, alias, false)?;
    let record = shard
        .store
        .get_json::<AliasRecord>(Map::Aliases, alias.as_bytes())?
        .ok_or_else(|| MatrixError::not_found("Room alias not found"))?;
    OwnedRoomId::try_from(record.room_id).map_err(|e| MatrixError::internal(e.to_string()))
}

/// `PUT /_matrix/client/v3/directory/room/{roomAlias}`.
pub async fn put(shard: &Shard, request: &ApiRequest, alias: &str) -> ApiResult<Value> {
    let auth = request.auth()?;
    let alias = parse_alias(shard, alias, true)?;
    let body: PutAliasBody = request.body()?;
    let room_id = OwnedRoomId::try_from(body.room_id.as_str())
        .map_err(|_| MatrixError::invalid_param("Invalid room_id"))?;
    if shard.store.get(Map::Rooms, room_id.as_bytes())?.is_none() {
        return Err(MatrixError::not_found("Unknown room"));
    }
    if shard.store.get(Map::Aliases, alias.as_bytes())?.is_some() {
        return Err(MatrixError::conflict("Room alias already exists"));
    }
    store_alias(shard, &alias, &room_id, auth.user_id.as_str()).await?;
    Ok(json!({}))
}

async fn store_alias(
    shard: &Shard,
    alias: &OwnedRoomAliasId,
    room_id: &OwnedRoomId,
    creator: &str,
) -> ApiResult<()> {
    let mut batch = WriteBatch::default();
    let record = AliasRecord {
        room_id: room_id.to_string(),
        creator: creator.to_owned(),
    };
    batch.put_json(Map::Aliases, alias.as_bytes().to_vec(), &record);
    batch.put(
        Map::RoomAliases,
        keys::pair(room_id.as_str(), alias.as_str()),
        Vec::new(),
    );
    shard.committer.commit(batch).await?;
    Ok(())
}

/// `DELETE /_matrix/client/v3/directory/room/{roomAlias}`: allowed to the
/// alias's creator and to room members with the power to set
/// `m.room.canonical_alias`.
pub async fn delete(shard: &Rc<Shard>, request: &ApiRequest, alias: &str) -> ApiResult<Value> {
    let auth = request.auth()?.clone();
    let alias = parse_alias(shard, alias, true)?;
    let record = shard
        .store
        .get_json::<AliasRecord>(Map::Aliases, alias.as_bytes())?
        .ok_or_else(|| MatrixError::not_found("Room alias not found"))?;
    if record.creator != auth.user_id.as_str()
        && !may_manage_aliases(shard, &record.room_id, auth.user_id.to_string()).await?
    {
        return Err(MatrixError::forbidden(
            "Only the alias creator or a room moderator may delete it",
        ));
    }
    let mut batch = WriteBatch::default();
    batch.delete(Map::Aliases, alias.as_bytes().to_vec());
    batch.delete(
        Map::RoomAliases,
        keys::pair(&record.room_id, alias.as_str()),
    );
    shard.committer.commit(batch).await?;
    Ok(json!({}))
}

async fn may_manage_aliases(shard: &Rc<Shard>, room_id: &str, user_id: String) -> ApiResult<bool> {
    let Ok(room_id) = OwnedRoomId::try_from(room_id) else {
        return Ok(false);
    };
    let owner = shard.owner(room_id.as_str());
    shard
        .on_shard(owner, move |shard| async move {
            let Ok(room) = shard.room(&room_id) else {
                return false;
            };
            let room = room.borrow();
            let needed = room
                .state_event("m.room.power_levels", "")
                .and_then(|levels| {
                    levels
                        .content_value()
                        .pointer("/events/m.room.canonical_alias")
                        .and_then(Value::as_i64)
                })
                .unwrap_or_else(|| room.required_power("state_default", 50));
            room.user_power(&user_id) >= needed
        })
        .await
}

/// Claims `#name:server` for a room being created.
///
/// # Errors
///
/// `M_INVALID_PARAM` for an invalid name, `M_ROOM_IN_USE` if it is taken.
pub async fn claim_for_new_room(
    shard: &Rc<Shard>,
    name: &str,
    room_id: &OwnedRoomId,
    creator: &ruma::OwnedUserId,
) -> ApiResult<String> {
    let alias_text = format!("#{name}:{}", shard.config.server_name);
    if name.is_empty() || name.contains([':', '#', '\0']) || name.chars().any(char::is_whitespace) {
        return Err(MatrixError::invalid_param(
            "room_alias_name must be a localpart without ':' or spaces",
        ));
    }
    let alias = parse_alias(shard, &alias_text, true)?;
    let (room_id, creator) = (room_id.clone(), creator.to_string());
    shard
        .on_shard(shard.owner(alias.as_str()), move |shard| async move {
            if shard.store.get(Map::Aliases, alias.as_bytes())?.is_some() {
                return Err(MatrixError::room_in_use("Room alias already taken"));
            }
            store_alias(&shard, &alias, &room_id, &creator).await?;
            Ok(alias.to_string())
        })
        .await?
}

/// Releases an alias claimed for a room whose creation failed.
pub async fn release(shard: &Rc<Shard>, alias: &str, room_id: &OwnedRoomId) {
    let (alias, room_id) = (alias.to_owned(), room_id.to_string());
    let result = shard
        .on_shard(shard.owner(&alias), move |shard| async move {
            let mut batch = WriteBatch::default();
            batch.delete(Map::RoomAliases, keys::pair(&room_id, &alias));
            batch.delete(Map::Aliases, alias.into_bytes());
            shard.committer.commit(batch).await
        })
        .await;
    if !matches!(result, Ok(Ok(()))) {
        tracing::error!("failed to release the alias of a room that was not created");
    }
}

/// Points every local alias of `old_room` at `new_room`, each on the shard
/// that owns the alias.
///
/// # Errors
///
/// Returns a storage error; aliases moved before it stay moved.
pub async fn move_aliases(
    shard: &Rc<Shard>,
    old_room: &OwnedRoomId,
    new_room: &OwnedRoomId,
) -> ApiResult<()> {
    let aliases: Vec<String> = shard
        .store
        .scan_prefix(Map::RoomAliases, &keys::prefix(old_room.as_str()))?
        .iter()
        .map(|(key, _)| keys::last_part(key))
        .collect();
    for alias in aliases {
        let (old_room, new_room) = (old_room.to_string(), new_room.to_string());
        shard
            .on_shard(shard.owner(&alias), move |shard| async move {
                let Some(mut record) = shard
                    .store
                    .get_json::<AliasRecord>(Map::Aliases, alias.as_bytes())?
                else {
                    return Ok(());
                };
                let mut batch = WriteBatch::default();
                batch.delete(Map::RoomAliases, keys::pair(&old_room, &alias));
                if record.room_id == old_room {
                    record.room_id.clone_from(&new_room);
                    batch.put_json(Map::Aliases, alias.as_bytes().to_vec(), &record);
                    batch.put(Map::RoomAliases, keys::pair(&new_room, &alias), Vec::new());
                }
                shard.committer.commit(batch).await?;
                Ok::<(), MatrixError>(())
            })
            .await??;
    }
    Ok(())
}

/// `GET /_matrix/client/v3/rooms/{roomId}/aliases`, on the room's shard:
/// for joined members, or anyone if the room is world readable.
pub fn room_aliases(
    shard: &Shard,
    request: &ApiRequest,
    room_id: &OwnedRoomId,
) -> ApiResult<Value> {
    let auth = request.auth()?;
    let room = member_room(shard, room_id)?;
    let readable = {
        let room = room.borrow();
        let world_readable = room
            .state_event("m.room.history_visibility", "")
            .is_some_and(|event| {
                event.content_value().get("history_visibility") == Some(&json!("world_readable"))
            });
        world_readable || room.membership(auth.user_id.as_str()) == "join"
    };
    if !readable {
        return Err(MatrixError::forbidden("You are not in this room"));
    }
    let aliases: Vec<String> = shard
        .store
        .scan_prefix(Map::RoomAliases, &keys::prefix(room_id.as_str()))?
        .iter()
        .map(|(key, _)| keys::last_part(key))
        .collect();
    Ok(json!({ "aliases": aliases }))
}
