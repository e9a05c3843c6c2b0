//! `POST /_eltrix/admin/v1/users/{userId}/deactivate`: marks the account
//! deactivated, logs out every device, and leaves every room the user is
//! joined to, invited to or knocking on.
//!
//! Deactivating an account again repeats the logout and the leaves, so a run
//! that failed part way can be finished.

use std::rc::Rc;

use ruma::{OwnedRoomId, OwnedUserId};
use serde_json::{Value, json};

use super::account::{self, user_object};
use crate::{
    api::{
        error::{ApiResult, MatrixError},
        request::ApiRequest,
    },
    room::{EventDraft, append::append},
    shard::Shard,
    store::{DeviceRecord, Map, MembershipRecord, WriteBatch, keys},
};

/// `POST /_eltrix/admin/v1/users/{userId}/deactivate`, moved to the user's
/// shard, where logins write their devices.
pub async fn deactivate(
    shard: &Rc<Shard>,
    request: &ApiRequest,
    user_id: &str,
) -> ApiResult<Value> {
    let admin_id = request.auth()?.user_id.clone();
    let user_id = account::parse_local_user_id(shard, user_id)?;
    let owner = shard.owner(user_id.as_str());
    shard
        .on_shard(owner, move |shard| async move {
            deactivate_on_owner(&shard, &user_id, &admin_id).await
        })
        .await?
}

async fn deactivate_on_owner(
    shard: &Rc<Shard>,
    user_id: &OwnedUserId,
    admin_id: &OwnedUserId,
) -> ApiResult<Value> {
    let mut record = account::load_user(shard, user_id.as_str())?;
    record.deactivated = true;
    let mut batch = WriteBatch::default();
    batch.put_json(Map::Users, user_id.as_bytes().to_vec(), &record);
    let mut removed_tokens = stage_logout(shard, &mut batch, user_id.as_str())?;
    shard.committer.commit(batch).await?;

    // A login on this shard that read the account before the commit above
    // applied may have queued its device after it. Batches apply in the
    // order they were queued, so once an empty batch queued now is
    // acknowledged, such a device is in the store and the sweep finds it.
    // Logins that read the account later see it deactivated.
    shard.committer.commit(WriteBatch::default()).await?;
    let mut sweep = WriteBatch::default();
    let late_tokens = stage_logout(shard, &mut sweep, user_id.as_str())?;
    if !late_tokens.is_empty() {
        shard.committer.commit(sweep).await?;
        removed_tokens.extend(late_tokens);
    }
    let devices = removed_tokens.len();
    shard.evict_tokens(removed_tokens).await;

    let left = leave_rooms(shard, user_id).await?;
    tracing::info!(
        %admin_id,
        %user_id,
        devices,
        rooms_left = left.len(),
        "deactivated account"
    );
    Ok(user_object(user_id.as_str(), &record))
}

/// Adds the removal of every device of `user_id` and its token to `batch`,
/// returning the token hashes to evict from the caches.
fn stage_logout(shard: &Shard, batch: &mut WriteBatch, user_id: &str) -> ApiResult<Vec<String>> {
    let mut token_hashes = Vec::new();
    for (key, value) in shard
        .store
        .scan_prefix(Map::Devices, &keys::prefix(user_id))?
    {
        if let Ok(device) = serde_json::from_slice::<DeviceRecord>(&value) {
            batch.delete(Map::Tokens, device.token_hash.clone().into_bytes());
            token_hashes.push(device.token_hash);
        }
        batch.delete(Map::Devices, key);
    }
    Ok(token_hashes)
}

/// Sends a leave event for `user_id` in every room where the store records
/// them as joined, invited or knocking, each on the room's shard. Returns
/// the rooms left.
///
/// # Errors
///
/// Returns the first server error; rooms whose authorization rules reject
/// the leave are logged and skipped.
async fn leave_rooms(shard: &Rc<Shard>, user_id: &OwnedUserId) -> ApiResult<Vec<OwnedRoomId>> {
    let rows = shard
        .store
        .scan_prefix(Map::UserRooms, &keys::prefix(user_id.as_str()))?;
    let mut left = Vec::new();
    for (key, value) in rows {
        let Ok(record) = serde_json::from_slice::<MembershipRecord>(&value) else {
            continue;
        };
        if !matches!(record.membership.as_str(), "join" | "invite" | "knock") {
            continue;
        }
        let Ok(room_id) = OwnedRoomId::try_from(keys::last_part(&key)) else {
            continue;
        };
        let (target, user) = (room_id.clone(), user_id.clone());
        let result = shard
            .on_shard(shard.owner(room_id.as_str()), move |shard| async move {
                let room = shard.room(&target)?;
                append(&shard, &room, vec![leave_draft(&user)]).await?;
                Ok::<(), MatrixError>(())
            })
            .await?;
        match result {
            Ok(()) => left.push(room_id),
            Err(error) if error.status < 500 => {
                tracing::warn!(
                    %user_id,
                    %room_id,
                    errcode = error.errcode,
                    message = error.message,
                    "could not leave a room of a deactivated account"
                );
            }
            Err(error) => return Err(error),
        }
    }
    Ok(left)
}

/// Returns the `m.room.member` event in which `user_id` leaves, rejects an
/// invite or withdraws a knock.
#[must_use]
pub fn leave_draft(user_id: &OwnedUserId) -> EventDraft {
    EventDraft::state(
        user_id,
        "m.room.member",
        user_id.as_str(),
        json!({ "membership": "leave" }),
    )
}
