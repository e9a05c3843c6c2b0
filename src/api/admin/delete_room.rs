//! `DELETE /_eltrix/admin/v1/rooms/{roomId}`: blocks the room, makes every
//! local member leave, then purges its events, state, aliases and
//! memberships.
//!
//! The block is committed first, so a join that starts after it fails, and
//! every join applied before it is in the member list the leaves are built
//! from. The room record is deleted last, so a deletion that failed part
//! way can be repeated.

use std::{cell::RefCell, rc::Rc};

use ruma::{OwnedRoomId, OwnedUserId};
use serde_json::{Value, json};

use super::{deactivate::leave_draft, deletion::Deletion, rooms::parse_room_id};
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    room::{Room, append::append},
    shard::{Shard, now_millis},
    store::{BlockedRoomRecord, Map, WriteBatch, keys},
};

/// Rejects joins to a room that an admin deleted.
///
/// # Errors
///
/// `M_FORBIDDEN` for a blocked room, or a storage error.
pub fn check_not_blocked(shard: &Shard, room_id: &OwnedRoomId) -> ApiResult<()> {
    if shard
        .store
        .get(Map::BlockedRooms, room_id.as_bytes())?
        .is_some()
    {
        return Err(MatrixError::forbidden(
            "This room was deleted by a server admin and cannot be joined",
        ));
    }
    Ok(())
}

/// `DELETE /_eltrix/admin/v1/rooms/{roomId}`, on the room's shard.
pub async fn delete(shard: &Rc<Shard>, request: &ApiRequest, room_id: &str) -> ApiResult<Value> {
    let admin_id = request.auth()?.user_id.clone();
    let room_id = parse_room_id(room_id)?;
    shard
        .on_shard(shard.owner(room_id.as_str()), move |shard| async move {
            delete_on_owner(&shard, &room_id, &admin_id).await
        })
        .await?
}

async fn delete_on_owner(
    shard: &Rc<Shard>,
    room_id: &OwnedRoomId,
    admin_id: &OwnedUserId,
) -> ApiResult<Value> {
    let room = shard.room(room_id)?;
    let mut batch = WriteBatch::default();
    let block = BlockedRoomRecord {
        blocked_by: admin_id.to_string(),
        blocked_ts: now_millis(),
    };
    batch.put_json(Map::BlockedRooms, room_id.as_bytes().to_vec(), &block);
    shard.committer.commit(batch).await?;

    let kicked = remove_members(shard, &room).await?;
    let purged_events = purge_room(shard, room_id, &room).await?;
    // NOTE: the members' sync indexes keep the room, as left, until a
    // restart, so an incremental `/sync` lists it under `rooms.leave` with an
    // empty timeline.
    shard.evict_room(room_id);
    tracing::info!(
        %admin_id,
        %room_id,
        kicked = kicked.len(),
        purged_events,
        "deleted room"
    );
    Ok(json!({
        "kicked_users": kicked,
        "blocked": true,
        "purged": true,
        "purged_events": purged_events,
    }))
}

/// Sends a leave event for every local member who is joined, invited or
/// knocking, all in one batch, and returns those users.
///
/// NOTE: members on other servers are not removed, and their servers learn
/// of the deletion only from the local members' leave events.
async fn remove_members(shard: &Rc<Shard>, room: &Rc<RefCell<Room>>) -> ApiResult<Vec<String>> {
    let suffix = format!(":{}", shard.config.server_name);
    let mut members: Vec<OwnedUserId> = room
        .borrow()
        .members
        .iter()
        .filter(|(user_id, membership)| {
            matches!(membership.as_str(), "join" | "invite" | "knock")
                && user_id.as_str().ends_with(&suffix)
        })
        .map(|(user_id, _)| user_id.clone())
        .collect();
    members.sort();
    if !members.is_empty() {
        append(shard, room, members.iter().map(leave_draft).collect()).await?;
    }
    Ok(members.iter().map(ToString::to_string).collect())
}

/// Deletes every key of the room, its local aliases on their shards, and
/// the room's memberships and transactions in the maps keyed by user.
/// Returns the number of events deleted.
async fn purge_room(
    shard: &Rc<Shard>,
    room_id: &OwnedRoomId,
    room: &Rc<RefCell<Room>>,
) -> ApiResult<usize> {
    let room_key = room_id.as_str();
    let prefix = keys::prefix(room_key);
    release_aliases(shard, room_id).await?;

    let mut deletion = Deletion::default();
    for (key, event_id) in shard.store.scan_prefix(Map::Timeline, &prefix)? {
        let event_id = String::from_utf8_lossy(&event_id);
        deletion.delete_event(room_key, &event_id, keys::timeline_pos(&key));
    }
    for map in [
        Map::StateHistory,
        Map::RoomState,
        Map::RoomAliases,
        Map::StateGroups,
    ] {
        for (key, _) in shard.store.scan_prefix(map, &prefix)? {
            deletion.delete(map, key);
        }
    }
    let users: Vec<OwnedUserId> = room.borrow().members.keys().cloned().collect();
    let suffix = format!(":{}", shard.config.server_name);
    for user_id in users.iter().filter(|u| u.as_str().ends_with(&suffix)) {
        deletion.delete(Map::UserRooms, keys::pair(user_id.as_str(), room_key));
        for key in room_txns(shard, user_id.as_str(), room_key)? {
            deletion.delete(Map::Txns, key);
        }
    }
    deletion.delete(Map::Rooms, room_key.as_bytes().to_vec());
    deletion.commit(shard).await
}

/// Returns the `userid_deviceid_txnid_eventid` keys of `user_id` whose scope
/// (`room_id/send/type` or `room_id/redact/event_id`) is in `room_id`.
fn room_txns(shard: &Shard, user_id: &str, room_id: &str) -> ApiResult<Vec<Vec<u8>>> {
    let scope_prefix = format!("{room_id}/");
    let mut found = Vec::new();
    for (key, _) in shard.store.scan_prefix(Map::Txns, &keys::prefix(user_id))? {
        let scope = key.split(|b| *b == 0).nth(2).unwrap_or_default();
        if scope.starts_with(scope_prefix.as_bytes()) {
            found.push(key);
        }
    }
    Ok(found)
}

/// Deletes each alias of the room on the alias's shard, which serializes
/// alias changes, unless it was moved to another room meanwhile.
async fn release_aliases(shard: &Rc<Shard>, room_id: &OwnedRoomId) -> ApiResult<()> {
    let aliases: Vec<String> = shard
        .store
        .scan_prefix(Map::RoomAliases, &keys::prefix(room_id.as_str()))?
        .iter()
        .map(|(key, _)| keys::last_part(key))
        .collect();
    for alias in aliases {
        let room_id = room_id.to_string();
        shard
            .on_shard(shard.owner(&alias), move |shard| async move {
                let record = shard
                    .store
                    .get_json::<Value>(Map::Aliases, alias.as_bytes())?;
                let points_here = record
                    .as_ref()
                    .and_then(|record| record.get("room_id"))
                    .and_then(Value::as_str)
                    == Some(room_id.as_str());
                if points_here {
                    let mut batch = WriteBatch::default();
                    batch.delete(Map::Aliases, alias.into_bytes());
                    shard.committer.commit(batch).await?;
                }
                Ok::<(), MatrixError>(())
            })
            .await??;
    }
    Ok(())
}
